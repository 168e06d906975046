"""Use cases of the sites service: each changes rows and stages its event in the same transaction.
Nothing here commits: the request's one commit point is in `dependencies.py`."""

from __future__ import annotations

import uuid
from datetime import date

from sqlmodel.ext.asyncio.session import AsyncSession

from dtm_shared.auth import Principal
from dtm_shared.events.sites import SiteOpenedV1, SiteSnapshotV1
from dtm_shared.messaging import outbox
from dtm_shared.pcodes import gazetteer
from dtm_shared.problems import Conflict, NotFound, ValidationProblem
from sites.models import Site
from sites.repository import SiteRepository
from sites.schemas import SiteCreate, SiteRead
from sites.settings import SitesSettings

# Mali's bounding box (WGS 84), with a small margin.
MALI_LAT = (10.0, 25.1)
MALI_LON = (-12.3, 4.3)


def validate_location(data: SiteCreate) -> None:
    if not gazetteer().is_level(data.location_pcode, 3):
        raise ValidationProblem.field(
            ["body", "location_pcode"], f"{data.location_pcode!r} is not a known admin3 (commune) P-code"
        )
    if (data.latitude is None) != (data.longitude is None):
        raise ValidationProblem.field(["body", "latitude"], "latitude and longitude go together")
    if data.latitude is not None and not MALI_LAT[0] <= data.latitude <= MALI_LAT[1]:
        raise ValidationProblem.field(["body", "latitude"], "latitude is outside Mali")
    if data.longitude is not None and not MALI_LON[0] <= data.longitude <= MALI_LON[1]:
        raise ValidationProblem.field(["body", "longitude"], "longitude is outside Mali")
    if data.opened_on > date.today():
        raise ValidationProblem.field(["body", "opened_on"], "opened_on is in the future")


def snapshot(site: Site, event: type[SiteSnapshotV1], effective: date) -> SiteSnapshotV1:
    return event(
        aggregate_id=site.id,
        version=site.version,
        effective_date=effective,
        code=site.code,
        name=site.name,
        site_type=site.site_type,
        location_pcode=site.location_pcode,
        latitude=site.latitude,
        longitude=site.longitude,
        capacity_households=site.capacity_households,
        management_agency=site.management_agency,
        opened_on=site.opened_on,
        status=site.status,
        closed_on=site.closed_on,
        closure_reason=site.closure_reason,
    )


def to_read(site: Site) -> SiteRead:
    return SiteRead(
        id=site.id,
        code=site.code,
        name=site.name,
        site_type=site.site_type,
        location_pcode=site.location_pcode,
        admin1_pcode=site.location_pcode[:4],
        admin2_pcode=site.location_pcode[:6],
        latitude=site.latitude,
        longitude=site.longitude,
        capacity_households=site.capacity_households,
        management_agency=site.management_agency,
        opened_on=site.opened_on,
        status=site.status,
        closed_on=site.closed_on,
        closure_reason=site.closure_reason,
        version=site.version,
    )


async def create_site(session: AsyncSession, settings: SitesSettings, principal: Principal, data: SiteCreate) -> Site:
    validate_location(data)
    repo = SiteRepository(session)
    if await repo.get_by_code(data.code):
        raise Conflict(f"A site with code {data.code!r} already exists.")
    site = Site(id=uuid.uuid4(), created_by_org=principal.org, **data.model_dump())
    repo.add(site)
    await session.flush()
    await outbox.stage(session, settings, [snapshot(site, SiteOpenedV1, site.opened_on)])
    return site


async def get_site(session: AsyncSession, site_id: uuid.UUID) -> Site:
    site = await SiteRepository(session).get(site_id)
    if site is None:
        raise NotFound(f"No site {site_id}.")
    return site
