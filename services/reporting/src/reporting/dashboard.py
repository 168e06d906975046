"""The dashboard at `/`: server-rendered HTML with inline SVG charts, no JavaScript, no external URL.

Rendered from the read models on each request, so it needs no token: it shows only aggregates,
with the same small-cell suppression as the public exports (figures under the threshold are
shown as "<N"), and site-level service gaps (sites are public facts).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from html import escape

from dtm_shared.pcodes import gazetteer
from reporting import service
from reporting.service import Context

PALETTE = ("#1f5fa8", "#e07b39", "#3a9d5d", "#b5446e", "#7a6cc4", "#8c8c8c")
REASON_LABELS = {
    "armed_conflict": "Armed conflict",
    "community_tension": "Community tension",
    "natural_disaster": "Natural disaster",
    "other": "Other",
}
GROUP_LABELS = {"idp": "IDPs", "idp_returnee": "Returned IDPs", "repatriate": "Repatriates"}


def fmt(n: int | None) -> str:
    return "–" if n is None else f"{n:,}".replace(",", " ")


def shown(individuals: int, threshold: int) -> str:
    """A count of people as the public page shows it: under the threshold (but not 0), suppressed."""
    return f"&lt;{threshold}" if 0 < individuals < threshold else fmt(individuals)


def bar_chart(bars: Sequence[tuple[str, int, bool]], title: str) -> str:
    """Horizontal bars: (label, value, suppressed)."""
    width, row, left = 640, 26, 190
    height = row * max(len(bars), 1) + 30
    top = max((v for _, v, s in bars if not s), default=0) or 1
    parts = [
        f'<svg class="chart bars" role="img" aria-label="{escape(title)}" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(title)}</title>",
    ]
    for i, (label, value, suppressed) in enumerate(bars):
        y = 10 + i * row
        w = 0 if suppressed else int((width - left - 90) * value / top)
        parts.append(f'<text x="{left - 8}" y="{y + 16}" text-anchor="end" font-size="12">{escape(label)}</text>')
        parts.append(
            f'<rect class="bar" x="{left}" y="{y + 3}" width="{max(w, 1)}" height="{row - 8}" fill="{PALETTE[0]}"/>'
        )
        shown = "suppressed" if suppressed else fmt(value)
        parts.append(f'<text x="{left + w + 6}" y="{y + 16}" font-size="12">{shown}</text>')
    if not bars:
        parts.append('<text x="10" y="20" font-size="12">No data at this date.</text>')
    parts.append("</svg>")
    return "".join(parts)


def line_chart(labels: Sequence[str], series: Sequence[tuple[str, Sequence[int]]], title: str) -> str:
    width, height, left, bottom, top_pad = 640, 260, 70, 40, 20
    plot_w, plot_h = width - left - 20, height - bottom - top_pad
    top = max((v for _, values in series for v in values), default=0) or 1
    n = max(len(labels) - 1, 1)

    def xy(i: int, v: int) -> tuple[float, float]:
        return left + plot_w * i / n, top_pad + plot_h * (1 - v / top)

    parts = [
        f'<svg class="chart line" role="img" aria-label="{escape(title)}" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(title)}</title>",
        f'<line x1="{left}" y1="{top_pad + plot_h}" x2="{left + plot_w}" y2="{top_pad + plot_h}" stroke="#999"/>',
        f'<line x1="{left}" y1="{top_pad}" x2="{left}" y2="{top_pad + plot_h}" stroke="#999"/>',
        f'<text x="{left - 6}" y="{top_pad + 4}" text-anchor="end" font-size="11">{fmt(top)}</text>',
        f'<text x="{left - 6}" y="{top_pad + plot_h}" text-anchor="end" font-size="11">0</text>',
    ]
    for i, label in enumerate(labels):
        if len(labels) <= 12 or i % 2 == 0:
            x, _ = xy(i, 0)
            parts.append(
                f'<text x="{x:.1f}" y="{height - 18}" text-anchor="middle" font-size="10">{escape(label)}</text>'
            )
    for k, (name, values) in enumerate(series):
        colour = PALETTE[k % len(PALETTE)]
        points = " ".join(f"{x:.1f},{y:.1f}" for x, y in (xy(i, v) for i, v in enumerate(values)))
        parts.append(f'<polyline class="series" fill="none" stroke="{colour}" stroke-width="2.5" points="{points}"/>')
        parts.append(
            f'<text x="{left + 10 + 150 * k}" y="{height - 2}" font-size="11" fill="{colour}">'
            f"&#9632; {escape(name)}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def stacked_bars(rows: Sequence[tuple[str, Sequence[tuple[str, float]]]], keys: Sequence[str], title: str) -> str:
    width, row, left = 640, 24, 190
    height = row * max(len(rows), 1) + 40
    plot_w = width - left - 20
    parts = [
        f'<svg class="chart stacked" role="img" aria-label="{escape(title)}" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(title)}</title>",
    ]
    for i, (label, shares) in enumerate(rows):
        y = 8 + i * row
        parts.append(f'<text x="{left - 8}" y="{y + 15}" text-anchor="end" font-size="12">{escape(label)}</text>')
        x = float(left)
        for key, share in shares:
            w = plot_w * share
            colour = PALETTE[keys.index(key) % len(PALETTE)]
            parts.append(
                f'<rect class="bar" x="{x:.1f}" y="{y + 3}" width="{w:.1f}" height="{row - 7}" fill="{colour}">'
                f"<title>{escape(REASON_LABELS.get(key, key))}: {share:.0%}</title></rect>"
            )
            x += w
    for k, key in enumerate(keys):
        parts.append(
            f'<text x="{left + 130 * k}" y="{height - 6}" font-size="11" fill="{PALETTE[k % len(PALETTE)]}">'
            f"&#9632; {escape(REASON_LABELS.get(key, key))}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


async def render(ctx: Context, as_of: date) -> str:
    threshold = ctx.settings.suppression_threshold
    summary = await service.get_summary(ctx, as_of)
    regions, _ = await service.population_rows(ctx, as_of, ["admin1"], {})
    region_bars = [
        (f"{r.admin1_name} ({r.admin1})", r.individuals, 0 < r.individuals < threshold)
        for r in sorted(regions, key=lambda r: -r.individuals)
    ]
    series = await service.get_timeseries(ctx, "month", None, as_of, ["population_group"], {})
    labels = [p.period for p in series.points]
    lines = []
    for group, name in GROUP_LABELS.items():
        values = [sum(i.individuals for i in p.items if i.population_group == group) for p in series.points]
        lines.append((name, values))
    reasons = await service.get_displacement_reasons(ctx, as_of, "admin2", {})
    keys = list(REASON_LABELS)
    top_areas = sorted(reasons.items, key=lambda a: -a.individuals)[:12]
    reason_rows = [
        (
            f"{a.name} ({a.pcode})",
            [
                (r.displacement_reason, r.share)
                for r in sorted(a.reasons, key=lambda r: keys.index(r.displacement_reason))
            ],
        )
        for a in top_areas
        if a.individuals >= threshold
    ]
    gaps = await service.get_service_gaps(ctx, as_of, None)
    gap_rows = (
        "".join(
            f"<tr><td>{escape(g.site_name)} ({escape(g.site_code)})</td>"
            f"<td>{escape(gazetteer().name(g.admin2) or g.admin2)}</td>"
            f"<td>{escape(g.sector)}</td><td class='num'>{shown(g.individuals, threshold)}</td></tr>"
            for g in gaps.gaps[:100]
        )
        or "<tr><td colspan='4'>No gap at this date.</td></tr>"
    )
    overlap_rows = (
        "".join(
            f"<tr><td>{escape(o.site_name or str(o.site_id))}</td><td>{escape(o.sector)}</td>"
            f"<td>{escape(o.activity)}</td>"
            f"<td>{escape(', '.join(o.organizations))}</td><td>{o.overlap_from}</td></tr>"
            for o in gaps.overlaps[:50]
        )
        or "<tr><td colspan='5'>No overlap.</td></tr>"
    )
    cards = "".join(
        f'<div class="card"><div class="figure">{shown(g.individuals, threshold)}</div>'
        f"<div>{escape(GROUP_LABELS[g.population_group])} ({fmt(g.households)} households)</div></div>"
        for g in summary.population_groups
    )
    cards += (
        f'<div class="card"><div class="figure">{fmt(summary.open_sites)}</div><div>open sites</div></div>'
        f'<div class="card"><div class="figure">{fmt(summary.sites_assessed_in_latest_round)}</div>'
        f"<div>sites assessed in round {summary.latest_round or '–'}</div></div>"
        f'<div class="card"><div class="figure">{fmt(summary.organizations_active)}</div>'
        "<div>organisations active</div></div>"
    )
    fresh = summary.freshness
    freshness = (
        f"last event applied {fresh.last_event_at:%Y-%m-%d %H:%M:%S} UTC, lag {fresh.lag_seconds} s"
        if fresh.last_event_at
        else "no event applied yet"
    )
    regions_svg = bar_chart(region_bars, "Individuals by region")
    trend_svg = line_chart(labels, lines, "Individuals per month")
    reasons_svg = stacked_bars(reason_rows, keys, "Reasons per cercle")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>DTM Mali – displacement dashboard</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body {{ font-family: system-ui, sans-serif; margin: 24px; color: #222; max-width: 1400px; }}
h1 {{ font-size: 22px; margin-bottom: 4px; }} h2 {{ font-size: 17px; margin-top: 28px; }}
.meta {{ color: #666; font-size: 13px; }}
.cards {{ display: flex; flex-wrap: wrap; gap: 12px; margin-top: 16px; }}
.card {{ border: 1px solid #ddd; border-radius: 6px; padding: 12px 16px; min-width: 150px; }}
.figure {{ font-size: 24px; font-weight: 600; color: #1f5fa8; }}
.grid {{ display: grid; grid-template-columns: repeat(auto-fit, minmax(660px, 1fr)); gap: 12px; }}
table {{ border-collapse: collapse; font-size: 13px; }}
td, th {{ border-bottom: 1px solid #eee; padding: 4px 10px; text-align: left; }}
td.num {{ text-align: right; }} footer {{ margin-top: 32px; font-size: 12px; color: #555; }}
</style></head>
<body>
<h1>Displacement in Mali – figures as of {as_of.isoformat()}</h1>
<div class="meta">Freshness: {escape(freshness)}. Figures under {threshold} individuals are suppressed.</div>
<section class="cards" id="summary">{cards}</section>
<div class="grid">
<section id="regions"><h2>Registered individuals by region</h2>{regions_svg}</section>
<section id="trend"><h2>Trend over the last 12 months (individuals)</h2>{trend_svg}</section>
<section id="reasons"><h2>Reasons for displacement per cercle (largest 12)</h2>{reasons_svg}</section>
<section id="gaps"><h2>Service gaps at open sites with people</h2>
<table><thead><tr><th>Site</th><th>Cercle</th><th>Sector without an active partner</th><th>Individuals</th></tr></thead>
<tbody>{gap_rows}</tbody></table>
<h2>Overlaps (same sector and activity, same site, overlapping periods)</h2>
<table><thead><tr><th>Site</th><th>Sector</th><th>Activity</th><th>Organisations</th><th>Since</th></tr></thead>
<tbody>{overlap_rows}</tbody></table></section>
</div>
<footer>Sources: household registration and site data — IOM Displacement Tracking Matrix (DTM) and partners
(DNDS, UNHCR); administrative boundaries and P-codes — OCHA Common Operational Datasets, administrative
boundaries (COD-AB) for Mali, 2021, CC BY-IGO.
Data API: <code>/v1/indicators/*</code>, exports: <code>/v1/exports/population</code>.</footer>
</body></html>"""
