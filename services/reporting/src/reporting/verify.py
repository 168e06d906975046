"""`dtm verify`: compare reporting's current totals with what registration and sites report
through their APIs; exit 1 on any difference (2 when a source cannot be read).

Compared (as of today): active households and individuals per population group (registration's
`listHouseholds` with `status=active&population_group=...`, paged through: its list has no count
yet, and members are counted from the pages, PII redacted), and sites in total and open (sites'
`listSites`, paged). A `total` field in a list answer, if the source adds one, is used as is for
the household and site counts. A difference is re-checked a few times before it is reported, so
events still in flight do not fail the check.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dtm_shared.auth import mint_token
from dtm_shared.db import create_engine
from dtm_shared.events.common import PopulationGroup
from reporting import repository, service
from reporting.settings import ReportingSettings


class SourceUnavailable(RuntimeError):
    pass


@dataclass
class Comparison:
    figure: str
    reporting: int
    source: int

    @property
    def ok(self) -> bool:
        return self.reporting == self.source


def _token(settings: ReportingSettings) -> str | None:
    if settings.verify_token:
        return settings.verify_token
    if settings.verify_private_key_file:
        return mint_token(
            Path(settings.verify_private_key_file).read_bytes(),
            org="DTM-VERIFY",
            scopes=["households:read", "sites:read"],
            sub="dtm-verify",
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            ttl_seconds=600,
        )
    return None


async def _pages(client: httpx.AsyncClient, path: str, params: Mapping[str, str]) -> tuple[int, int]:
    """(items, members) over every page; `total` short-cuts the item count if the source gives one."""
    items = members = 0
    cursor: str | None = None
    while True:
        query = {**params, "limit": "500", **({"cursor": cursor} if cursor else {})}
        try:
            r = await client.get(path, params=query)
        except httpx.HTTPError as exc:
            raise SourceUnavailable(f"{client.base_url}{path}: {exc}") from exc
        if r.status_code != 200:
            raise SourceUnavailable(f"{client.base_url}{path}: HTTP {r.status_code} {r.text[:200]}")
        body: dict[str, Any] = r.json()
        page = body.get("items", [])
        items += len(page)
        members += sum(len(i.get("members", [])) if isinstance(i.get("members"), list) else 0 for i in page)
        cursor = body.get("next_cursor")
        if not cursor:
            return items, members


async def source_counts(registration: httpx.AsyncClient, sites: httpx.AsyncClient) -> dict[str, int]:
    out: dict[str, int] = {}
    for group in PopulationGroup:
        hh, ind = await _pages(registration, "/v1/households", {"status": "active", "population_group": group.value})
        out[f"households.{group.value}"] = hh
        out[f"individuals.{group.value}"] = ind
    out["sites.total"], _ = await _pages(sites, "/v1/sites", {})
    out["sites.open"], _ = await _pages(sites, "/v1/sites", {"status": "open"})
    return out


async def reporting_counts(sessions: async_sessionmaker[AsyncSession], settings: ReportingSettings) -> dict[str, int]:
    async with sessions() as session, session.begin():
        gen = await repository.current_generation(session)
        ctx = service.Context(session=session, sessionmaker=sessions, settings=settings, gen=gen)
        cells = await service.cell_population(ctx, service.today(), ["population_group"], {})
        out: dict[str, int] = {}
        for group in PopulationGroup:
            c = service.counts(cells.get((group.value,), (0,) * 11))
            out[f"households.{group.value}"] = c["households"]
            out[f"individuals.{group.value}"] = c["individuals"]
        all_sites = await repository.sites(session, gen)
        out["sites.total"] = len(all_sites)
        out["sites.open"] = sum(1 for s in all_sites if s["status"] == "open")
        return out


async def verify(
    settings: ReportingSettings,
    clients: Mapping[str, httpx.AsyncClient] | None = None,
    attempts: int = 3,
    pause: float = 2.0,
) -> list[Comparison]:
    token = _token(settings)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    owned: list[httpx.AsyncClient] = []
    if clients is None:
        owned = [
            httpx.AsyncClient(base_url=settings.registration_api_url, headers=headers, timeout=30),
            httpx.AsyncClient(base_url=settings.sites_api_url, headers=headers, timeout=30),
        ]
        clients = {"registration": owned[0], "sites": owned[1]}
    engine = create_engine(settings)
    sessions = async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)
    try:
        comparisons: list[Comparison] = []
        for attempt in range(attempts):
            source = await source_counts(clients["registration"], clients["sites"])
            mine = await reporting_counts(sessions, settings)
            comparisons = [Comparison(k, mine.get(k, 0), v) for k, v in source.items()]
            if all(c.ok for c in comparisons) or attempt == attempts - 1:
                break
            await asyncio.sleep(pause)
        return comparisons
    finally:
        for c in owned:
            await c.aclose()
        await engine.dispose()


def main() -> None:
    """Entry point for `dtm verify`: prints each comparison; exit 0 if all agree, 1 if any differs,
    2 if a source could not be read."""
    settings = ReportingSettings()
    try:
        comparisons = asyncio.run(verify(settings))
    except SourceUnavailable as exc:
        sys.stderr.write(f"verify: source unavailable: {exc}\n")
        raise SystemExit(2) from exc
    for c in comparisons:
        sys.stdout.write(json.dumps({**asdict(c), "ok": c.ok}) + "\n")
    raise SystemExit(0 if all(c.ok for c in comparisons) else 1)
