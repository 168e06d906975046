"""Indicator use cases: read the read models of the current generation and shape the answers.

Sex and age group are not dimensions of the population cells but columns of their counts: a
breakdown (or filter) by sex or age group splits (or masks) those columns here; `households` is
then null (a household has members of both sexes and several ages).
"""

from __future__ import annotations

import calendar
import uuid
from collections import OrderedDict, defaultdict
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dtm_shared.events.common import AGE_BRACKETS, PopulationGroup, Sector
from dtm_shared.pcodes import gazetteer
from dtm_shared.problems import ValidationProblem
from reporting import repository
from reporting.schemas import (
    AreaFigures,
    AreaReasons,
    ComplianceRow,
    CountryFigures,
    Counts,
    DisplacementReasonsResponse,
    Freshness,
    GroupFigures,
    PopulationResponse,
    PopulationRow,
    ReasonShare,
    ReportComplianceResponse,
    ReturnsResponse,
    ServiceGap,
    ServiceGapsResponse,
    ServiceOverlap,
    SiteIndicator,
    SiteIndicatorsResponse,
    SummaryResponse,
    TimeseriesPoint,
    TimeseriesResponse,
)
from reporting.settings import ReportingSettings

DIMENSIONS = (*repository.CELL_DIMENSIONS, "sex", "age_group")
AREA_LEVELS = ("admin1", "admin2", "admin3")
SEXES = ("female", "male")
EARLIEST = date(1990, 1, 1)

Vector = tuple[int, ...]


class ResultCache:
    """Population results of this process, keyed by generation and data version (which changes
    with every commit of the projection), so an answer is reused only while nothing changed."""

    def __init__(self, size: int = 1024) -> None:
        self.size = size
        self.entries: OrderedDict[Hashable, dict[tuple[Any, ...], Vector]] = OrderedDict()

    def get(self, key: Hashable) -> dict[tuple[Any, ...], Vector] | None:
        value = self.entries.get(key)
        if value is not None:
            self.entries.move_to_end(key)
        return value

    max_rows = 5000
    """Larger answers (fine-grained breakdowns) are not kept: memory stays bounded."""

    def put(self, key: Hashable, value: dict[tuple[Any, ...], Vector]) -> None:
        if len(value) > self.max_rows:
            return
        self.entries[key] = value
        self.entries.move_to_end(key)
        while len(self.entries) > self.size:
            self.entries.popitem(last=False)


@dataclass
class Context:
    """What an indicator needs: the request's session, the generation it reads, and a way to open
    a separate short transaction (to create a missing monthly checkpoint)."""

    session: AsyncSession
    sessionmaker: async_sessionmaker[AsyncSession]
    settings: ReportingSettings
    gen: int
    data_version: Any = None
    checkpoint_version: Any = None
    fresh: Freshness | None = None
    cache: ResultCache | None = None


async def open_context(
    session: AsyncSession,
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: ReportingSettings,
    cache: ResultCache | None = None,
) -> Context:
    row = await repository.read_context(session, settings.topic(settings.consumer_group))
    return Context(
        session=session,
        sessionmaker=sessionmaker,
        settings=settings,
        gen=int(row["gen"]),
        data_version=(row["data_version"], row["switched_at"]),
        checkpoint_version=(row["checkpoint_version"], row["switched_at"]),
        fresh=_freshness(row),
        cache=cache,
    )


def today() -> date:
    return datetime.now(UTC).date()


def month_start(d: date) -> date:
    return d.replace(day=1)


def month_end(d: date) -> date:
    return d.replace(day=calendar.monthrange(d.year, d.month)[1])


def quarter_start(d: date) -> date:
    return date(d.year, 3 * ((d.month - 1) // 3) + 1, 1)


def add_months(d: date, n: int) -> date:
    y, m = divmod(d.year * 12 + d.month - 1 + n, 12)
    return date(y, m + 1, 1)


# -- parameters ------------------------------------------------------------------------------------


def resolve_as_of(as_of: date | None, field: str = "as_of") -> date:
    if as_of is None:
        return today()
    if as_of > today():
        raise ValidationProblem.field(["query", field], "must not be in the future")
    if as_of < EARLIEST:
        raise ValidationProblem.field(["query", field], f"must be on or after {EARLIEST.isoformat()}")
    return as_of


def parse_dimensions(raw: str | None, field: str = "group_by") -> list[str]:
    if not raw:
        return []
    dims = [d.strip() for d in raw.split(",") if d.strip()]
    unknown = [d for d in dims if d not in DIMENSIONS]
    if unknown:
        raise ValidationProblem.field(
            ["query", field], f"unknown dimension(s) {', '.join(unknown)}; use any of {', '.join(DIMENSIONS)}"
        )
    if len(set(dims)) != len(dims):
        raise ValidationProblem.field(["query", field], "a dimension is repeated")
    return dims


def parse_filters(raw: Mapping[str, str | None]) -> dict[str, list[str]]:
    """Filters by dimension: comma-separated values; validated so a typo is a 422, not an empty answer."""
    out: dict[str, list[str]] = {}
    allowed: dict[str, set[str]] = {
        "population_group": {g.value for g in PopulationGroup},
        "sex": set(SEXES),
        "age_group": set(AGE_BRACKETS),
    }
    for dim, value in raw.items():
        if value is None or value == "":
            continue
        values = [v.strip() for v in value.split(",") if v.strip()]
        if dim in allowed:
            bad = [v for v in values if v not in allowed[dim]]
            if bad:
                raise ValidationProblem.field(
                    ["query", dim], f"unknown value(s) {', '.join(bad)}; use any of {', '.join(sorted(allowed[dim]))}"
                )
        if dim in ("admin1", "admin2", "admin3", "origin_admin1"):
            level = 1 if dim == "origin_admin1" else int(dim[-1])
            bad = [v for v in values if not gazetteer().is_level(v, level)]
            if bad:
                raise ValidationProblem.field(["query", dim], f"not admin{level} P-code(s): {', '.join(bad)}")
        if dim == "site":
            try:
                values = [str(uuid.UUID(v)) for v in values]
            except ValueError:
                raise ValidationProblem.field(["query", dim], "site ids must be UUIDs") from None
        out[dim] = values
    return out


# -- population core ---------------------------------------------------------------------------------


async def ensure_checkpoint(ctx: Context, month: date) -> None:
    if await repository.checkpoint_exists(ctx.session, ctx.gen, month):
        return
    async with ctx.sessionmaker() as session, session.begin():
        await repository.create_checkpoint(session, ctx.gen, month)


async def cell_population(
    ctx: Context, as_of: date, cell_dims: Sequence[str], filters: Mapping[str, Sequence[str]]
) -> dict[tuple[Any, ...], Vector]:
    key = (
        ctx.gen,
        ctx.data_version,
        as_of,
        tuple(cell_dims),
        tuple(sorted((k, tuple(v)) for k, v in filters.items())),
    )
    if ctx.cache is not None and ctx.data_version is not None:
        hit = ctx.cache.get(key)
        if hit is not None:
            return hit
    month = month_start(as_of)
    base = _cached_checkpoint(ctx, month, cell_dims, filters)
    if base is None:
        # uncached: the checkpoint part and the month's deltas in one statement
        parts = await repository.population_parts(ctx.session, ctx.gen, month, as_of, cell_dims, filters)
        if parts is None:
            await ensure_checkpoint(ctx, month)
            parts = await repository.population_parts(ctx.session, ctx.gen, month, as_of, cell_dims, filters)
            assert parts is not None, "checkpoint created above"
        base = _store_checkpoint(ctx, month, cell_dims, filters, parts[0])
        rows = parts[1]
    else:
        rows = await repository.deltas_part(ctx.session, ctx.gen, month, as_of, cell_dims, filters)
    result = dict(base)
    for r in rows:
        prior = result.get(r.dims)
        result[r.dims] = r.counts if prior is None else tuple(a + b for a, b in zip(prior, r.counts, strict=True))
    if ctx.cache is not None and ctx.data_version is not None:
        ctx.cache.put(key, result)
    return result


def _checkpoint_key(
    ctx: Context, month: date, cell_dims: Sequence[str], filters: Mapping[str, Sequence[str]]
) -> tuple[Any, ...]:
    return (
        "checkpoint",
        ctx.gen,
        ctx.checkpoint_version,
        month,
        tuple(cell_dims),
        tuple(sorted((k, tuple(v)) for k, v in filters.items())),
    )


def _cached_checkpoint(
    ctx: Context, month: date, cell_dims: Sequence[str], filters: Mapping[str, Sequence[str]]
) -> dict[tuple[Any, ...], Vector] | None:
    """The checkpoint part, cached while no change effective before a materialised month arrives
    (`checkpoint_state.version`) and the generation stays the same."""
    if ctx.cache is None or ctx.checkpoint_version is None:
        return None
    hit: dict[tuple[Any, ...], Vector] | None = ctx.cache.get(_checkpoint_key(ctx, month, cell_dims, filters))
    return hit


def _store_checkpoint(
    ctx: Context,
    month: date,
    cell_dims: Sequence[str],
    filters: Mapping[str, Sequence[str]],
    rows: Sequence[repository.CellRow],
) -> dict[tuple[Any, ...], Vector]:
    result = {r.dims: r.counts for r in rows}
    if ctx.cache is not None and ctx.checkpoint_version is not None:
        ctx.cache.put(_checkpoint_key(ctx, month, cell_dims, filters), result)
    return result


def _mask(vec: Vector, sexes: Iterable[str], brackets: Iterable[int]) -> Vector:
    keep = {(0 if s == "female" else 1) * 5 + b + 1 for s in sexes for b in brackets}
    return (vec[0], *(v if i + 1 in keep else 0 for i, v in enumerate(vec[1:])))


def counts(vec: Vector, with_households: bool = True) -> dict[str, Any]:
    f, m = vec[1:6], vec[6:11]
    out: dict[str, Any] = {
        "households": vec[0] if with_households else None,
        "individuals": sum(f) + sum(m),
        "female": sum(f),
        "male": sum(m),
    }
    for i, b in enumerate(AGE_BRACKETS):
        out[f"female_{b}"] = f[i]
        out[f"male_{b}"] = m[i]
    return out


def split_rows(
    cells: Mapping[tuple[Any, ...], Vector],
    cell_dims: Sequence[str],
    dims: Sequence[str],
    filters: Mapping[str, Sequence[str]],
) -> list[dict[str, Any]]:
    """Rows keyed by `dims` (cell dimensions + sex/age_group) with their counts."""
    sexes = list(filters.get("sex") or SEXES)
    brackets = [i for i, b in enumerate(AGE_BRACKETS) if b in (filters.get("age_group") or AGE_BRACKETS)]
    detailed = any(d in dims or d in filters for d in ("sex", "age_group"))
    sex_parts: list[tuple[str | None, list[str]]] = [(s, [s]) for s in sexes] if "sex" in dims else [(None, sexes)]
    age_parts: list[tuple[str | None, list[int]]] = (
        [(AGE_BRACKETS[b], [b]) for b in brackets] if "age_group" in dims else [(None, brackets)]
    )
    rows = []
    for key, vec in cells.items():
        base = dict(zip(cell_dims, key, strict=True))
        for sex, sex_keep in sex_parts:
            for age, age_keep in age_parts:
                masked = _mask(vec, sex_keep, age_keep)
                row = {**base, **counts(masked, with_households=not detailed)}
                if sex is not None:
                    row["sex"] = sex
                if age is not None:
                    row["age_group"] = age
                if row["individuals"] == 0 and not row["households"]:
                    continue
                rows.append(row)
    rows.sort(key=lambda r: tuple(str(r.get(d) or "") for d in dims))
    return rows


async def site_lookup(ctx: Context) -> dict[str, Mapping[str, Any]]:
    return {str(s["site_id"]): s for s in await repository.sites(ctx.session, ctx.gen)}


def with_names(row: dict[str, Any], sites: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    g = gazetteer()
    for level in AREA_LEVELS:
        if row.get(level):
            row[f"{level}_name"] = g.name(row[level])
    if row.get("origin_admin1"):
        row["origin_admin1_name"] = g.name(row["origin_admin1"])
    if row.get("site") is not None:
        site = sites.get(str(row["site"]))
        if site:
            row["site_code"] = site["code"]
            row["site_name"] = site["name"]
    return row


def total_of(cells: Mapping[tuple[Any, ...], Vector], filters: Mapping[str, Sequence[str]]) -> Counts:
    vec = tuple(sum(col) for col in zip(*cells.values(), strict=True)) if cells else (0,) * 11
    rows = split_rows({(): vec}, [], [], filters)
    return Counts(**(rows[0] if rows else counts((0,) * 11, with_households=not _detailed([], filters))))


def _detailed(dims: Sequence[str], filters: Mapping[str, Sequence[str]]) -> bool:
    return any(d in dims or d in filters for d in ("sex", "age_group"))


async def freshness(ctx: Context) -> Freshness:
    if ctx.fresh is not None:
        return ctx.fresh
    return _freshness(await repository.freshness(ctx.session, ctx.settings.topic(ctx.settings.consumer_group)))


def _freshness(row: Mapping[str, Any]) -> Freshness:
    last, updated, behind, now = row["last_event_at"], row["updated_at"], int(row["behind"]), row["now"]
    if last is None:
        return Freshness(last_event_at=None, lag_seconds=None, pending_events=0)
    lag = (updated - last).total_seconds() if behind == 0 else (now - last).total_seconds()
    return Freshness(last_event_at=last, lag_seconds=round(max(lag, 0.0), 3), pending_events=behind)


async def population_rows(
    ctx: Context, as_of: date, dims: Sequence[str], filters: Mapping[str, Sequence[str]]
) -> tuple[list[PopulationRow], Counts]:
    cell_dims = [d for d in dims if d in repository.CELL_DIMENSIONS]
    cells = await cell_population(ctx, as_of, cell_dims, filters)
    sites = await site_lookup(ctx) if "site" in dims else {}
    rows = [PopulationRow(**with_names(r, sites)) for r in split_rows(cells, cell_dims, dims, filters)]
    return rows, total_of(cells, filters)


async def get_population(
    ctx: Context, as_of: date, dims: list[str], filters: dict[str, list[str]]
) -> PopulationResponse:
    rows, total = await population_rows(ctx, as_of, dims, filters)
    return PopulationResponse(
        as_of=as_of, freshness=await freshness(ctx), group_by=dims, filters=filters, items=rows, total=total
    )


# -- summary ---------------------------------------------------------------------------------------------


async def get_summary(ctx: Context, as_of: date) -> SummaryResponse:
    cells = await cell_population(ctx, as_of, ["population_group"], {})
    groups = []
    for group in PopulationGroup:
        vec = cells.get((group.value,), (0,) * 11)
        c = counts(vec)
        groups.append(
            GroupFigures(population_group=group.value, households=c["households"], individuals=c["individuals"])
        )
    open_sites = await repository.open_sites(ctx.session, ctx.gen, as_of)
    round_number, assessed = await repository.latest_round(ctx.session, ctx.gen, as_of)
    activities = await repository.active_activities(ctx.session, ctx.gen, as_of)
    return SummaryResponse(
        as_of=as_of,
        freshness=await freshness(ctx),
        population_groups=groups,
        households=sum(g.households for g in groups),
        individuals=sum(g.individuals for g in groups),
        open_sites=len(open_sites),
        latest_round=round_number,
        sites_assessed_in_latest_round=assessed,
        organizations_active=len({a["organization"] for a in activities}),
    )


# -- reasons, returns --------------------------------------------------------------------------------------


async def get_displacement_reasons(
    ctx: Context, as_of: date, level: str, filters: dict[str, list[str]]
) -> DisplacementReasonsResponse:
    cells = await cell_population(ctx, as_of, [level, "displacement_reason"], filters)
    per_area: dict[str, list[tuple[str, dict[str, Any]]]] = defaultdict(list)
    for (area, reason), vec in cells.items():
        c = counts(vec)
        if c["individuals"] or c["households"]:
            per_area[area].append((reason, c))
    items = []
    for area in sorted(per_area):
        total = sum(c["individuals"] for _, c in per_area[area])
        reasons = sorted(
            (
                ReasonShare(
                    displacement_reason=reason,
                    individuals=c["individuals"],
                    households=c["households"],
                    share=round(c["individuals"] / total, 4) if total else 0.0,
                )
                for reason, c in per_area[area]
            ),
            key=lambda r: (-r.individuals, r.displacement_reason),
        )
        items.append(
            AreaReasons(
                pcode=area,
                name=gazetteer().name(area),
                level=level,
                individuals=total,
                main_reason=reasons[0].displacement_reason if reasons and total else None,
                reasons=reasons,
            )
        )
    return DisplacementReasonsResponse(as_of=as_of, freshness=await freshness(ctx), level=level, items=items)


def _area(pcode: str, vec: Vector) -> AreaFigures:
    c = counts(vec)
    return AreaFigures(
        pcode=pcode,
        name=gazetteer().name(pcode),
        households=c["households"],
        individuals=c["individuals"],
        female=c["female"],
        male=c["male"],
    )


async def get_returns(ctx: Context, as_of: date, level: str) -> ReturnsResponse:
    ret = await cell_population(ctx, as_of, [level], {"population_group": ["idp_returnee"]})
    rep = await cell_population(ctx, as_of, ["country_of_asylum", level], {"population_group": ["repatriate"]})
    returnees = [_area(k[0], v) for k, v in sorted(ret.items()) if counts(v)["individuals"] or v[0]]
    by_country: dict[str | None, list[AreaFigures]] = defaultdict(list)
    for (country, area), vec in sorted(rep.items(), key=lambda kv: (str(kv[0][0] or ""), kv[0][1])):
        if counts(vec)["individuals"] or vec[0]:
            by_country[country].append(_area(area, vec))
    repatriates = [
        CountryFigures(
            country_of_asylum=country,
            households=sum(a.households for a in areas),
            individuals=sum(a.individuals for a in areas),
            areas=areas,
        )
        for country, areas in sorted(by_country.items(), key=lambda kv: str(kv[0] or ""))
    ]
    return ReturnsResponse(
        as_of=as_of,
        freshness=await freshness(ctx),
        level=level,
        returnees=returnees,
        returnees_total=sum(a.individuals for a in returnees),
        repatriates=repatriates,
        repatriates_total=sum(c.individuals for c in repatriates),
    )


# -- sites -------------------------------------------------------------------------------------------------------


def site_status_at(site: Mapping[str, Any], as_of: date) -> str:
    if site["opened_on"] > as_of:
        return "not_open_yet"
    if site["closed_on"] is not None and site["closed_on"] <= as_of:
        return "closed"
    if site["status"] == "closed" and site["closed_on"] is None:
        return "closed"
    return "open"


async def get_site_indicators(ctx: Context, as_of: date, admin1: str | None) -> SiteIndicatorsResponse:
    sites = [s for s in await repository.sites(ctx.session, ctx.gen) if s["opened_on"] <= as_of]
    if admin1:
        if not gazetteer().is_level(admin1, 1):
            raise ValidationProblem.field(["query", "admin1"], "not an admin1 P-code")
        sites = [s for s in sites if s["admin1"] == admin1]
    population = await cell_population(ctx, as_of, ["site"], {})
    assessments = {str(a["site_id"]): a for a in await repository.latest_assessments(ctx.session, ctx.gen, as_of)}
    period = f"{as_of.year:04d}-{as_of.month:02d}"
    latest_report: dict[str, Mapping[str, Any]] = {}
    for r in await repository.reports(ctx.session, ctx.gen):
        if r["period"] <= period:
            key = str(r["site_id"])
            if key not in latest_report or r["period"] > latest_report[key]["period"]:
                latest_report[key] = r
    items = []
    for s in sites:
        key = str(s["site_id"])
        c = counts(population.get((s["site_id"],), (0,) * 11))
        a = assessments.get(key)
        rep = latest_report.get(key)
        capacity = s["capacity_households"]
        items.append(
            SiteIndicator(
                site_id=s["site_id"],
                code=s["code"],
                name=s["name"],
                admin1=s["admin1"],
                admin2=s["admin2"],
                admin3=s["location_pcode"],
                status_at_date=site_status_at(s, as_of),
                registered_households=c["households"],
                registered_individuals=c["individuals"],
                assessed_households=a["households"] if a else None,
                assessed_individuals=a["individuals"] if a else None,
                individuals_difference=c["individuals"] - a["individuals"] if a else None,
                capacity_households=capacity,
                occupancy=round(c["households"] / capacity, 4) if capacity else None,
                last_assessed_on=a["assessed_on"] if a else None,
                last_assessment_round=a["round_number"] if a else None,
                latest_report_period=rep["period"] if rep else None,
                latest_report_status=rep["status"] if rep else None,
            )
        )
    return SiteIndicatorsResponse(as_of=as_of, freshness=await freshness(ctx), items=items)


async def get_service_gaps(ctx: Context, as_of: date, sector: str | None) -> ServiceGapsResponse:
    sectors = [s.value for s in Sector]
    if sector is not None and sector not in sectors:
        raise ValidationProblem.field(["query", "sector"], f"use one of {', '.join(sectors)}")
    open_sites = await repository.open_sites(ctx.session, ctx.gen, as_of)
    population = await cell_population(ctx, as_of, ["site"], {})
    covered = {
        (str(a["site_id"]), a["sector"]) for a in await repository.active_activities(ctx.session, ctx.gen, as_of)
    }
    gaps = []
    for s in open_sites:
        individuals = counts(population.get((s["site_id"],), (0,) * 11))["individuals"]
        if individuals <= 0:
            continue
        for sec in [sector] if sector else sectors:
            if (str(s["site_id"]), sec) not in covered:
                gaps.append(
                    ServiceGap(
                        site_id=s["site_id"],
                        site_code=s["code"],
                        site_name=s["name"],
                        admin1=s["admin1"],
                        admin2=s["admin2"],
                        sector=sec,
                        individuals=individuals,
                    )
                )
    sites = await site_lookup(ctx)
    overlaps = []
    for o in await repository.overlapping_activities(ctx.session, ctx.gen, as_of):
        if sector and o["sector"] != sector:
            continue
        site = sites.get(str(o["site_id"]))
        overlaps.append(
            ServiceOverlap(
                site_id=o["site_id"],
                site_code=site["code"] if site else None,
                site_name=site["name"] if site else None,
                sector=o["sector"],
                activity=o["activity"],
                organizations=[o["organization_a"], o["organization_b"]],
                activity_ids=[o["activity_a"], o["activity_b"]],
                overlap_from=o["overlap_from"],
                overlap_to=o["overlap_to"],
            )
        )
    return ServiceGapsResponse(as_of=as_of, freshness=await freshness(ctx), gaps=gaps, overlaps=overlaps)


# -- time series -------------------------------------------------------------------------------------------------


def period_label(start: date, interval: str) -> str:
    if interval == "month":
        return f"{start.year:04d}-{start.month:02d}"
    return f"{start.year:04d}-Q{(start.month - 1) // 3 + 1}"


async def get_timeseries(
    ctx: Context,
    interval: str,
    date_from: date | None,
    date_to: date | None,
    dims: list[str],
    filters: dict[str, list[str]],
) -> TimeseriesResponse:
    if interval not in ("month", "quarter"):
        raise ValidationProblem.field(["query", "interval"], "use month or quarter")
    end = resolve_as_of(date_to, "to")
    step = 1 if interval == "month" else 3
    first_of = month_start if interval == "month" else quarter_start
    start = first_of(resolve_as_of(date_from, "from")) if date_from else add_months(first_of(end), -11 * step)
    if start > end:
        raise ValidationProblem.field(["query", "from"], "must not be after `to`")
    periods: list[tuple[date, date]] = []
    p = start
    while p <= end:
        nxt = add_months(p, step)
        periods.append((p, min(nxt - timedelta(days=1), end)))
        p = nxt
    if len(periods) > 240:
        raise ValidationProblem.field(["query", "from"], "at most 240 periods")
    cell_dims = [d for d in dims if d in repository.CELL_DIMENSIONS]
    sites = await site_lookup(ctx) if "site" in dims else {}
    points = []
    for period_start, point in periods:
        # each point is an as-of answer: the month's checkpoint (cached) plus that month's deltas
        cells = await cell_population(ctx, point, cell_dims, filters)
        items = [PopulationRow(**with_names(r, sites)) for r in split_rows(cells, cell_dims, dims, filters)]
        points.append(TimeseriesPoint(period=period_label(period_start, interval), as_of=point, items=items))
    return TimeseriesResponse(
        as_of=end, freshness=await freshness(ctx), interval=interval, group_by=dims, points=points
    )


# -- report compliance -------------------------------------------------------------------------------------------


def parse_period(value: str | None, field: str, default: date) -> date:
    if not value:
        return month_start(default)
    try:
        year, month = value.split("-")
        return date(int(year), int(month), 1)
    except ValueError:
        raise ValidationProblem.field(["query", field], "use YYYY-MM") from None


async def get_report_compliance(
    ctx: Context, period_from: str | None, period_to: str | None
) -> ReportComplianceResponse:
    now = today()
    end = parse_period(period_to, "to", now)
    start = parse_period(period_from, "from", add_months(month_start(now), -5))
    if start > end:
        raise ValidationProblem.field(["query", "from"], "must not be after `to`")
    if end > month_start(now):
        raise ValidationProblem.field(["query", "to"], "must not be in the future")
    months = []
    m = start
    while m <= end:
        months.append(m)
        m = add_months(m, 1)
    if len(months) > 120:
        raise ValidationProblem.field(["query", "from"], "at most 120 months")
    labels = [f"{m.year:04d}-{m.month:02d}" for m in months]
    sites = await repository.sites(ctx.session, ctx.gen)
    validated = {
        (r["period"], str(r["site_id"]))
        for r in await repository.reports(ctx.session, ctx.gen, labels)
        if r["status"] == "validated"
    }
    items = []
    for m, label in zip(months, labels, strict=True):
        at = min(month_end(m), now)
        per_region: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for s in sites:
            if site_status_at(s, at) != "open":
                continue
            acc = per_region[s["admin1"]]
            acc[0] += 1
            acc[1] += (label, str(s["site_id"])) in validated
        for admin1 in sorted(per_region):
            open_n, ok = per_region[admin1]
            items.append(
                ComplianceRow(
                    period=label,
                    admin1=admin1,
                    admin1_name=gazetteer().name(admin1),
                    open_sites=open_n,
                    validated_reports=ok,
                    share=round(ok / open_n, 4) if open_n else None,
                )
            )
    return ReportComplianceResponse(as_of=min(month_end(end), now), freshness=await freshness(ctx), items=items)
