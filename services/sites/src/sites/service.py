"""Use cases of the sites service: each changes rows and stages its event in the same transaction.
Nothing here commits: the request's one commit point is in `dependencies.py`."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from dtm_shared.auth import Principal
from dtm_shared.events.common import AGE_BRACKETS, ActivityStatus, DisplacementReason, ReportStatus, SiteStatus
from dtm_shared.events.sites import (
    ActivityReportRejectedV1,
    ActivityReportSnapshotV1,
    ActivityReportSubmittedV1,
    ActivityReportValidatedV1,
    CommitteeUpdatedV1,
    ServiceActivityEndedV1,
    ServiceActivityRecordedV1,
    ServiceActivitySnapshotV1,
    ServiceActivityUpdatedV1,
    SiteAssessedV1,
    SiteClosedV1,
    SiteOpenedV1,
    SiteReopenedV1,
    SiteSnapshotV1,
    SiteUpdatedV1,
)
from dtm_shared.http import check_if_match, decode_cursor, encode_cursor
from dtm_shared.messaging import outbox
from dtm_shared.pcodes import AdminArea, gazetteer
from dtm_shared.problems import Conflict, Forbidden, NotFound, ProblemFieldError, ValidationProblem
from sites.models import ActivityReport, Assessment, Committee, ReportReview, ServiceActivity, Site
from sites.repository import (
    ActivityFilter,
    ActivityReportRepository,
    AssessmentRepository,
    CommitteeRepository,
    ReportFilter,
    ServiceActivityRepository,
    SiteFilter,
    SiteRepository,
)
from sites.schemas import (
    ActivityReportCreate,
    ActivityReportRead,
    ActivityReportReview,
    ActivityReportSubmission,
    AdminAreaList,
    AdminAreaRead,
    AssessmentCorrection,
    AssessmentCreate,
    AssessmentData,
    AssessmentRead,
    CommitteeCreate,
    CommitteeRead,
    CommitteeUpdate,
    IndividualsBySexAge,
    ReportReviewRead,
    ReviewDecision,
    ServiceActivityCreate,
    ServiceActivityEnd,
    ServiceActivityRead,
    ServiceActivityUpdate,
    SiteClose,
    SiteCreate,
    SiteRead,
    SiteReopen,
    SiteUpdate,
)
from sites.settings import SitesSettings

# Mali's bounding box (WGS 84), with a small margin.
MALI_LAT = (10.0, 25.1)
MALI_LON = (-12.3, 4.3)
SEX_AGE_KEYS = tuple(f"{sex}_{bracket}" for sex in ("female", "male") for bracket in AGE_BRACKETS)


def today() -> date:
    return datetime.now(UTC).date()


def now() -> datetime:
    return datetime.now(UTC)


def _fail(errors: Sequence[ProblemFieldError]) -> None:
    if errors:
        raise ValidationProblem("; ".join(e.msg for e in errors), errors=list(errors))


def _err(field: str, msg: str, loc: str = "body") -> ProblemFieldError:
    return ProblemFieldError(loc=[loc, field], msg=msg, type="value_error")


# -- sites -----------------------------------------------------------------------------------------


def site_errors(
    *,
    location_pcode: str,
    latitude: float | None,
    longitude: float | None,
    opened_on: date,
    closed_on: date | None = None,
) -> list[ProblemFieldError]:
    """Everything wrong with a site's location and dates (empty when valid)."""
    errors = []
    if not gazetteer().is_level(location_pcode, 3):
        errors.append(_err("location_pcode", f"{location_pcode!r} is not a known admin3 (commune) P-code"))
    if (latitude is None) != (longitude is None):
        errors.append(_err("latitude", "latitude and longitude go together"))
    if latitude is not None and not MALI_LAT[0] <= latitude <= MALI_LAT[1]:
        errors.append(_err("latitude", "latitude is outside Mali"))
    if longitude is not None and not MALI_LON[0] <= longitude <= MALI_LON[1]:
        errors.append(_err("longitude", "longitude is outside Mali"))
    if opened_on > today():
        errors.append(_err("opened_on", "opened_on is in the future"))
    if closed_on is not None and opened_on > closed_on:
        errors.append(_err("opened_on", "opened_on is after the site's closed_on"))
    return errors


def validate_location(data: SiteCreate) -> None:
    _fail(
        site_errors(
            location_pcode=data.location_pcode,
            latitude=data.latitude,
            longitude=data.longitude,
            opened_on=data.opened_on,
        )
    )


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
    stamp = now()
    site = Site(id=uuid.uuid4(), created_by_org=principal.org, created_at=stamp, updated_at=stamp, **data.model_dump())
    repo.add(site)
    await session.flush()
    await outbox.stage(session, settings, [snapshot(site, SiteOpenedV1, site.opened_on)])
    return site


async def get_site(session: AsyncSession, site_id: uuid.UUID, *, lock: bool = False) -> Site:
    site = await SiteRepository(session).get(site_id, for_update=lock)
    if site is None:
        raise NotFound(f"No site {site_id}.")
    return site


def _admin_filter(admin1: str | None, admin2: str | None, admin3: str | None) -> None:
    errors = [
        _err(name, f"{value!r} is not a known admin{level} P-code", "query")
        for name, value, level in (("admin1", admin1, 1), ("admin2", admin2, 2), ("admin3", admin3, 3))
        if value is not None and not gazetteer().is_level(value, level)
    ]
    _fail(errors)


async def list_sites(
    session: AsyncSession, f: SiteFilter, *, limit: int, cursor: str | None
) -> tuple[list[Site], str | None]:
    _admin_filter(f.admin1, f.admin2, f.admin3)
    after = decode_cursor(cursor, (str,))
    rows = list(await SiteRepository(session).find(f, after_code=after[0] if after else None, limit=limit + 1))
    next_cursor = encode_cursor([rows[limit - 1].code]) if len(rows) > limit else None
    return rows[:limit], next_cursor


_REQUIRED_SITE_FIELDS = ("code", "name", "site_type", "location_pcode", "opened_on")


async def update_site(
    session: AsyncSession, settings: SitesSettings, site_id: uuid.UUID, data: SiteUpdate, if_match: str | None
) -> Site:
    repo = SiteRepository(session)
    site = await get_site(session, site_id, lock=True)
    check_if_match(if_match, site.version, required=True)
    changes: dict[str, Any] = data.model_dump(exclude_unset=True)
    _fail([_err(k, f"{k} cannot be null") for k in _REQUIRED_SITE_FIELDS if k in changes and changes[k] is None])
    changes = {k: v for k, v in changes.items() if getattr(site, k) != v}
    if not changes:
        return site
    merged = {**site.model_dump(), **changes}
    _fail(
        site_errors(
            location_pcode=merged["location_pcode"],
            latitude=merged["latitude"],
            longitude=merged["longitude"],
            opened_on=merged["opened_on"],
            closed_on=merged["closed_on"],
        )
    )
    if "code" in changes and await repo.get_by_code(changes["code"]):
        raise Conflict(f"A site with code {changes['code']!r} already exists.")
    old_admin1 = site.location_pcode[:4]
    for key, value in changes.items():
        setattr(site, key, value)
    site.version += 1
    site.updated_at = now()
    if site.location_pcode[:4] != old_admin1:
        await ActivityReportRepository(session).move_to_admin1(site.id, site.location_pcode[:4])
    await session.flush()
    await outbox.stage(session, settings, [snapshot(site, SiteUpdatedV1, today())])
    return site


async def close_site(
    session: AsyncSession, settings: SitesSettings, site_id: uuid.UUID, data: SiteClose, if_match: str | None
) -> Site:
    site = await get_site(session, site_id, lock=True)
    check_if_match(if_match, site.version, required=False)
    if site.status == SiteStatus.closed:
        raise Conflict(f"Site {site.code} is already closed (since {site.closed_on}).")
    if data.closed_on > today():
        _fail([_err("closed_on", "closed_on is in the future")])
    if data.closed_on < site.opened_on:
        _fail([_err("closed_on", f"closed_on is before the site opened ({site.opened_on})")])
    site.status = SiteStatus.closed
    site.closed_on = data.closed_on
    site.closure_reason = data.closure_reason
    site.version += 1
    site.updated_at = now()
    await session.flush()
    await outbox.stage(session, settings, [snapshot(site, SiteClosedV1, data.closed_on)])
    return site


async def reopen_site(
    session: AsyncSession, settings: SitesSettings, site_id: uuid.UUID, data: SiteReopen, if_match: str | None
) -> Site:
    site = await get_site(session, site_id, lock=True)
    check_if_match(if_match, site.version, required=False)
    if site.status != SiteStatus.closed or site.closed_on is None:
        raise Conflict(f"Site {site.code} is not closed.")
    reopened_on = data.reopened_on or today()
    if reopened_on > today():
        _fail([_err("reopened_on", "reopened_on is in the future")])
    if reopened_on < site.closed_on:
        _fail([_err("reopened_on", f"reopened_on is before the site closed ({site.closed_on})")])
    site.status = SiteStatus.open
    site.closed_on = None
    site.closure_reason = None
    site.version += 1
    site.updated_at = now()
    await session.flush()
    await outbox.stage(session, settings, [snapshot(site, SiteReopenedV1, reopened_on)])
    return site


# -- admin areas -----------------------------------------------------------------------------------


def area_read(area: AdminArea) -> AdminAreaRead:
    return AdminAreaRead(
        pcode=area.pcode,
        name=area.name,
        level=area.level,
        parent_pcode=area.parent_pcode,
        admin1_pcode=area.admin1,
        admin2_pcode=area.admin2,
    )


def list_admin_areas(
    *, level: int | None, parent: str | None, q: str | None, limit: int, cursor: str | None
) -> AdminAreaList:
    gaz = gazetteer()
    if parent is not None and gaz.get(parent) is None:
        _fail([_err("parent", f"{parent!r} is not a known P-code", "query")])
    after = decode_cursor(cursor, (int, str))
    areas = sorted(gaz.search((q or "").strip() or None, level, parent), key=lambda a: (a.level, a.pcode))
    if after is not None:
        key = (after[0], after[1])
        areas = [a for a in areas if (a.level, a.pcode) > key]
    page = areas[:limit]
    next_cursor = encode_cursor([page[-1].level, page[-1].pcode]) if len(areas) > limit else None
    return AdminAreaList(items=[area_read(a) for a in page], next_cursor=next_cursor)


# -- assessments -----------------------------------------------------------------------------------


def assessment_errors(data: AssessmentData, site: Site) -> list[ProblemFieldError]:
    """Totals that do not add up, and dates out of the site's life (empty when valid)."""
    errors = []
    by_sex_age = data.individuals_by_sex_age.model_dump()
    sex_age_total = sum(by_sex_age.values())
    if sex_age_total != data.individuals:
        errors.append(
            _err(
                "individuals_by_sex_age",
                f"the sex and age brackets add up to {sex_age_total}, not to individuals ({data.individuals})",
            )
        )
    reason_total = sum(data.individuals_by_reason.values())
    if reason_total != data.individuals:
        errors.append(
            _err(
                "individuals_by_reason",
                f"the displacement reasons add up to {reason_total}, not to individuals ({data.individuals})",
            )
        )
    if data.households > data.individuals:
        errors.append(_err("households", f"households ({data.households}) exceed individuals ({data.individuals})"))
    if data.households == 0 and data.individuals > 0:
        errors.append(_err("households", "individuals are counted but no household"))
    if len(set(data.priority_needs)) != len(data.priority_needs):
        errors.append(_err("priority_needs", "a sector appears more than once in the ranked priority needs"))
    if len(set(data.risks)) != len(data.risks):
        errors.append(_err("risks", "a risk appears more than once"))
    if data.assessed_on > today():
        errors.append(_err("assessed_on", "assessed_on is in the future"))
    if data.assessed_on < site.opened_on:
        errors.append(_err("assessed_on", f"assessed_on is before the site opened ({site.opened_on})"))
    return errors


def _check_assessment(data: AssessmentData, site: Site) -> None:
    _fail(assessment_errors(data, site))
    if site.closed_on is not None and data.assessed_on > site.closed_on:
        raise Conflict(f"Site {site.code} closed on {site.closed_on}: it cannot be assessed after that.")


def _assessment_values(data: AssessmentData) -> dict[str, Any]:
    return {
        "assessed_on": data.assessed_on,
        "households": data.households,
        "individuals": data.individuals,
        "individuals_by_sex_age": data.individuals_by_sex_age.model_dump(),
        "individuals_by_reason": {r.value: data.individuals_by_reason.get(r, 0) for r in DisplacementReason},
        "coverage": {s.value: c.value for s, c in data.coverage.items()},
        "priority_needs": [s.value for s in data.priority_needs],
        "risks": [r.value for r in data.risks],
    }


def assessment_event(a: Assessment) -> SiteAssessedV1:
    return SiteAssessedV1.model_validate(
        {
            "aggregate_id": a.id,
            "version": a.version,
            "effective_date": a.assessed_on,
            "site_id": a.site_id,
            "round_number": a.round_number,
            "assessed_on": a.assessed_on,
            "households": a.households,
            "individuals": a.individuals,
            "individuals_by_sex_age": a.individuals_by_sex_age,
            "individuals_by_reason": a.individuals_by_reason,
            "coverage": a.coverage,
            "priority_needs": a.priority_needs,
            "risks": a.risks,
        }
    )


def assessment_read(a: Assessment) -> AssessmentRead:
    return AssessmentRead.model_validate(
        {
            "id": a.id,
            "site_id": a.site_id,
            "round_number": a.round_number,
            "assessed_on": a.assessed_on,
            "households": a.households,
            "individuals": a.individuals,
            "individuals_by_sex_age": IndividualsBySexAge.model_validate(a.individuals_by_sex_age),
            "individuals_by_reason": a.individuals_by_reason,
            "coverage": a.coverage,
            "priority_needs": a.priority_needs,
            "risks": a.risks,
            "version": a.version,
            "recorded_by_org": a.recorded_by_org,
        }
    )


async def record_assessment(
    session: AsyncSession, settings: SitesSettings, principal: Principal, site_id: uuid.UUID, data: AssessmentCreate
) -> Assessment:
    site = await get_site(session, site_id, lock=True)
    _check_assessment(data, site)
    repo = AssessmentRepository(session)
    existing = await repo.get_round(site_id, data.round_number)
    if existing is not None:
        raise Conflict(
            f"Round {data.round_number} of site {site.code} is already recorded (version {existing.version}). "
            f"To correct it, PUT /v1/sites/{site_id}/assessments/{data.round_number} "
            f'with If-Match: "{existing.version}".'
        )
    stamp = now()
    assessment = Assessment(
        id=uuid.uuid4(),
        site_id=site_id,
        round_number=data.round_number,
        recorded_by_org=principal.org,
        created_at=stamp,
        updated_at=stamp,
        **_assessment_values(data),
    )
    repo.add(assessment)
    await session.flush()
    await outbox.stage(session, settings, [assessment_event(assessment)])
    return assessment


async def get_assessment(
    session: AsyncSession, site_id: uuid.UUID, round_number: int, *, lock: bool = False
) -> Assessment:
    assessment = await AssessmentRepository(session).get_round(site_id, round_number, for_update=lock)
    if assessment is None:
        await get_site(session, site_id)  # 404 for the site first
        raise NotFound(f"Site {site_id} has no assessment for round {round_number}.")
    return assessment


async def correct_assessment(
    session: AsyncSession,
    settings: SitesSettings,
    principal: Principal,
    site_id: uuid.UUID,
    round_number: int,
    data: AssessmentCorrection,
    if_match: str | None,
) -> Assessment:
    site = await get_site(session, site_id, lock=True)
    assessment = await get_assessment(session, site_id, round_number, lock=True)
    check_if_match(if_match, assessment.version, required=True)
    _check_assessment(data, site)
    values = _assessment_values(data)
    if all(getattr(assessment, k) == v for k, v in values.items()):
        return assessment
    for key, value in values.items():
        setattr(assessment, key, value)
    assessment.version += 1
    assessment.recorded_by_org = principal.org
    assessment.updated_at = now()
    await session.flush()
    await outbox.stage(session, settings, [assessment_event(assessment)])
    return assessment


async def list_assessments(
    session: AsyncSession, site_id: uuid.UUID, *, limit: int, cursor: str | None
) -> tuple[list[Assessment], str | None]:
    await get_site(session, site_id)
    after = decode_cursor(cursor, (int,))
    rows = list(
        await AssessmentRepository(session).list_for_site(
            site_id, after_round=after[0] if after else None, limit=limit + 1
        )
    )
    next_cursor = encode_cursor([rows[limit - 1].round_number]) if len(rows) > limit else None
    return rows[:limit], next_cursor


# -- service activities ----------------------------------------------------------------------------


def activity_status(start: date, end: date | None, on: date) -> ActivityStatus:
    if end is not None and end < on:
        return ActivityStatus.ended
    if start > on:
        return ActivityStatus.planned
    return ActivityStatus.ongoing


def activity_event(
    a: ServiceActivity, event: type[ServiceActivitySnapshotV1], effective: date
) -> ServiceActivitySnapshotV1:
    return event.model_validate(
        {
            "aggregate_id": a.id,
            "version": a.version,
            "effective_date": effective,
            "site_id": a.site_id,
            "organization": a.organization,
            "sector": a.sector,
            "activity": a.activity,
            "start_date": a.start_date,
            "end_date": a.end_date,
            "status": a.status,
        }
    )


def activity_read(a: ServiceActivity) -> ServiceActivityRead:
    return ServiceActivityRead.model_validate(a, from_attributes=True)


async def _refuse_overlap(repo: ServiceActivityRepository, a: ServiceActivity, exclude: uuid.UUID | None) -> None:
    clash = await repo.overlapping(
        site_id=a.site_id,
        organization=a.organization,
        sector=a.sector,
        activity=a.activity,
        start=a.start_date,
        end=a.end_date,
        exclude=exclude,
    )
    if clash is not None:
        raise Conflict(
            f"{a.organization} already records {a.sector}/{a.activity} at this site over an overlapping period "
            f"(activity {clash.id}, from {clash.start_date}); update that one instead."
        )


async def record_activity(
    session: AsyncSession,
    settings: SitesSettings,
    principal: Principal,
    site_id: uuid.UUID,
    data: ServiceActivityCreate,
) -> ServiceActivity:
    site = await get_site(session, site_id, lock=True)
    if site.status == SiteStatus.closed:
        raise Conflict(f"Site {site.code} is closed (since {site.closed_on}): no new activity can be recorded there.")
    if data.end_date is not None and data.end_date < data.start_date:
        _fail([_err("end_date", "end_date is before start_date")])
    stamp = now()
    activity = ServiceActivity(
        id=uuid.uuid4(),
        site_id=site_id,
        organization=data.organization or principal.org,
        sector=data.sector.value,
        activity=data.activity,
        start_date=data.start_date,
        end_date=data.end_date,
        status=activity_status(data.start_date, data.end_date, today()).value,
        recorded_by_org=principal.org,
        created_at=stamp,
        updated_at=stamp,
    )
    repo = ServiceActivityRepository(session)
    await _refuse_overlap(repo, activity, None)
    repo.add(activity)
    await session.flush()
    await outbox.stage(session, settings, [activity_event(activity, ServiceActivityRecordedV1, activity.start_date)])
    return activity


async def get_activity(session: AsyncSession, activity_id: uuid.UUID, *, lock: bool = False) -> ServiceActivity:
    activity = await ServiceActivityRepository(session).get(activity_id, for_update=lock)
    if activity is None:
        raise NotFound(f"No service activity {activity_id}.")
    return activity


def check_may_change_activity(activity: ServiceActivity, principal: Principal) -> None:
    """The organisation doing the activity, the one that recorded it, or an administrator."""
    if principal.org not in (activity.organization, activity.recorded_by_org) and not principal.has("admin"):
        raise Forbidden(
            f"Only {activity.organization} (or {activity.recorded_by_org}, which recorded it) may change this activity."
        )


async def update_activity(
    session: AsyncSession,
    settings: SitesSettings,
    principal: Principal,
    activity_id: uuid.UUID,
    data: ServiceActivityUpdate,
    if_match: str | None,
) -> ServiceActivity:
    activity = await get_activity(session, activity_id, lock=True)
    check_may_change_activity(activity, principal)
    check_if_match(if_match, activity.version, required=True)
    if activity.status == ActivityStatus.ended:
        raise Conflict(f"Service activity {activity_id} has ended: it cannot change any more.")
    changes: dict[str, Any] = data.model_dump(exclude_unset=True)
    _fail([_err(k, f"{k} cannot be null") for k in ("activity", "start_date") if k in changes and changes[k] is None])
    changes = {k: v for k, v in changes.items() if getattr(activity, k) != v}
    if not changes:
        return activity
    for key, value in changes.items():
        setattr(activity, key, value)
    if activity.end_date is not None and activity.end_date < activity.start_date:
        _fail([_err("end_date", "end_date is before start_date")])
    repo = ServiceActivityRepository(session)
    await _refuse_overlap(repo, activity, activity.id)
    activity.status = activity_status(activity.start_date, activity.end_date, today()).value
    activity.version += 1
    activity.updated_at = now()
    await session.flush()
    if activity.status == ActivityStatus.ended:
        assert activity.end_date is not None
        event = activity_event(activity, ServiceActivityEndedV1, activity.end_date)
    else:
        event = activity_event(activity, ServiceActivityUpdatedV1, today())
    await outbox.stage(session, settings, [event])
    return activity


async def end_activity(
    session: AsyncSession,
    settings: SitesSettings,
    principal: Principal,
    activity_id: uuid.UUID,
    data: ServiceActivityEnd,
    if_match: str | None,
) -> ServiceActivity:
    activity = await get_activity(session, activity_id, lock=True)
    check_may_change_activity(activity, principal)
    check_if_match(if_match, activity.version, required=False)
    if activity.status == ActivityStatus.ended:
        raise Conflict(f"Service activity {activity_id} already ended on {activity.end_date}.")
    end = data.end_date or today()
    if end > today():
        _fail([_err("end_date", "end_date is in the future: set a planned end with updateServiceActivity")])
    if end < activity.start_date:
        _fail([_err("end_date", f"end_date is before the activity started ({activity.start_date})")])
    activity.end_date = end
    activity.status = ActivityStatus.ended.value
    activity.version += 1
    activity.updated_at = now()
    await session.flush()
    await outbox.stage(session, settings, [activity_event(activity, ServiceActivityEndedV1, end)])
    return activity


async def list_activities(
    session: AsyncSession, f: ActivityFilter, *, limit: int, cursor: str | None
) -> tuple[list[ServiceActivity], str | None]:
    _admin_filter(f.admin1, f.admin2, f.admin3)
    after = decode_cursor(cursor, (str, str))
    key = _time_id_key(after)
    rows = list(await ServiceActivityRepository(session).find(f, after=key, limit=limit + 1))
    last = rows[limit - 1] if len(rows) > limit else None
    next_cursor = encode_cursor([last.created_at.isoformat(), str(last.id)]) if last else None
    return rows[:limit], next_cursor


def _time_id_key(after: list[Any] | None) -> tuple[datetime, uuid.UUID] | None:
    if after is None:
        return None
    try:
        return datetime.fromisoformat(after[0]), uuid.UUID(after[1])
    except ValueError:
        raise ValidationProblem.field(["query", "cursor"], "cursor is not one this API returned") from None


# -- committees ------------------------------------------------------------------------------------


def committee_errors(admin1: str, members: list[str], quorum: int) -> list[ProblemFieldError]:
    errors = []
    if not gazetteer().is_level(admin1, 1):
        errors.append(_err("admin1_pcode", f"{admin1!r} is not a known admin1 (region) P-code"))
    if len(set(members)) != len(members):
        errors.append(_err("member_organizations", "an organisation is listed more than once"))
    if quorum > len(set(members)):
        errors.append(
            _err("quorum", f"quorum ({quorum}) exceeds the number of member organisations ({len(set(members))})")
        )
    return errors


def committee_event(c: Committee) -> CommitteeUpdatedV1:
    return CommitteeUpdatedV1(
        aggregate_id=c.id,
        version=c.version,
        effective_date=today(),
        admin1_pcode=c.admin1_pcode,
        name=c.name,
        member_organizations=list(c.member_organizations),
        quorum=c.quorum,
    )


def committee_read(c: Committee) -> CommitteeRead:
    return CommitteeRead(
        id=c.id,
        admin1_pcode=c.admin1_pcode,
        admin1_name=gazetteer().name(c.admin1_pcode),
        name=c.name,
        member_organizations=list(c.member_organizations),
        quorum=c.quorum,
        version=c.version,
    )


async def create_committee(session: AsyncSession, settings: SitesSettings, data: CommitteeCreate) -> Committee:
    _fail(committee_errors(data.admin1_pcode, data.member_organizations, data.quorum))
    repo = CommitteeRepository(session)
    existing = await repo.get_by_admin1(data.admin1_pcode)
    if existing is not None:
        raise Conflict(
            f"{data.admin1_pcode} already has a regional committee ({existing.id}); change it with updateCommittee."
        )
    stamp = now()
    committee = Committee(
        id=uuid.uuid4(),
        admin1_pcode=data.admin1_pcode,
        name=data.name,
        member_organizations=list(data.member_organizations),
        quorum=data.quorum,
        created_at=stamp,
        updated_at=stamp,
    )
    repo.add(committee)
    await session.flush()
    await outbox.stage(session, settings, [committee_event(committee)])
    return committee


async def get_committee(session: AsyncSession, committee_id: uuid.UUID, *, lock: bool = False) -> Committee:
    committee = await CommitteeRepository(session).get(committee_id, for_update=lock)
    if committee is None:
        raise NotFound(f"No committee {committee_id}.")
    return committee


async def update_committee(
    session: AsyncSession, settings: SitesSettings, committee_id: uuid.UUID, data: CommitteeUpdate, if_match: str | None
) -> Committee:
    committee = await get_committee(session, committee_id, lock=True)
    check_if_match(if_match, committee.version, required=True)
    changes: dict[str, Any] = data.model_dump(exclude_unset=True)
    _fail([_err(k, f"{k} cannot be null") for k, v in changes.items() if v is None])
    changes = {k: v for k, v in changes.items() if getattr(committee, k) != v}
    if not changes:
        return committee
    members = changes.get("member_organizations", committee.member_organizations)
    quorum = changes.get("quorum", committee.quorum)
    _fail(committee_errors(committee.admin1_pcode, members, quorum))
    for key, value in changes.items():
        setattr(committee, key, value)
    committee.version += 1
    committee.updated_at = now()
    await session.flush()
    await outbox.stage(session, settings, [committee_event(committee)])
    return committee


async def list_committees(session: AsyncSession) -> Sequence[Committee]:
    return await CommitteeRepository(session).find()


# -- activity reports ------------------------------------------------------------------------------


def report_event(r: ActivityReport, event: type[ActivityReportSnapshotV1]) -> ActivityReportSnapshotV1:
    return event(
        aggregate_id=r.id,
        version=r.version,
        effective_date=(r.decided_at or r.submitted_at).date(),
        site_id=r.site_id,
        period=r.period,
        report_version=r.report_version,
        status=ReportStatus(r.status),
        submitted_by_org=r.submitted_by_org,
        submitted_at=r.submitted_at,
        key_figures=dict(r.key_figures),
        approvals=list(r.approvals),
        rejection_comment=r.rejection_comment,
        decided_at=r.decided_at,
    )


def report_read(
    r: ActivityReport, quorum: int | None, reviews: Sequence[ReportReview] | None = None
) -> ActivityReportRead:
    return ActivityReportRead(
        id=r.id,
        site_id=r.site_id,
        admin1_pcode=r.admin1_pcode,
        period=r.period,
        report_version=r.report_version,
        status=ReportStatus(r.status),
        submitted_by_org=r.submitted_by_org,
        submitted_at=r.submitted_at,
        key_figures=dict(r.key_figures),
        narrative=r.narrative,
        approvals=list(r.approvals),
        quorum=quorum,
        rejection_comment=r.rejection_comment,
        decided_at=r.decided_at,
        version=r.version,
        reviews=[
            ReportReviewRead(
                reviewer_org=v.reviewer_org,
                report_version=v.report_version,
                decision=ReviewDecision(v.decision),
                comment=v.comment,
                reviewed_at=v.created_at,
            )
            for v in reviews or []
        ],
    )


async def reports_read(session: AsyncSession, reports: Sequence[ActivityReport]) -> list[ActivityReportRead]:
    quorums = await CommitteeRepository(session).quorums({r.admin1_pcode for r in reports})
    return [report_read(r, quorums.get(r.admin1_pcode)) for r in reports]


def _month(d: date) -> str:
    return f"{d.year:04d}-{d.month:02d}"


async def submit_report(
    session: AsyncSession,
    settings: SitesSettings,
    principal: Principal,
    site_id: uuid.UUID,
    data: ActivityReportCreate,
) -> ActivityReport:
    site = await get_site(session, site_id, lock=True)
    if data.period > _month(today()):
        _fail([_err("period", f"period {data.period} has not started yet")])
    if data.period < _month(site.opened_on):
        _fail([_err("period", f"period {data.period} is before the site opened ({site.opened_on})")])
    if site.closed_on is not None and data.period > _month(site.closed_on):
        raise Conflict(f"Site {site.code} closed on {site.closed_on}: no report for a later month.")
    repo = ActivityReportRepository(session)
    existing = await repo.get_for_month(site_id, data.period)
    if existing is not None:
        if existing.status == ReportStatus.validated:
            raise Conflict(f"The {data.period} report of site {site.code} is validated and locked ({existing.id}).")
        raise Conflict(
            f"Site {site.code} already has a {data.period} report ({existing.id}, {existing.status}); "
            f'resubmit it with PUT /v1/activity-reports/{existing.id} and If-Match: "{existing.version}".'
        )
    stamp = now()
    report = ActivityReport(
        id=uuid.uuid4(),
        site_id=site_id,
        admin1_pcode=site.location_pcode[:4],
        period=data.period,
        status=ReportStatus.submitted.value,
        submitted_by_org=principal.org,
        submitted_at=stamp,
        key_figures=dict(data.key_figures),
        narrative=data.narrative,
        approvals=[],
        created_at=stamp,
        updated_at=stamp,
    )
    repo.add(report)
    await session.flush()
    await outbox.stage(session, settings, [report_event(report, ActivityReportSubmittedV1)])
    return report


async def get_report(session: AsyncSession, report_id: uuid.UUID, *, lock: bool = False) -> ActivityReport:
    report = await ActivityReportRepository(session).get(report_id, for_update=lock)
    if report is None:
        raise NotFound(f"No activity report {report_id}.")
    return report


async def resubmit_report(
    session: AsyncSession,
    settings: SitesSettings,
    principal: Principal,
    report_id: uuid.UUID,
    data: ActivityReportSubmission,
    if_match: str | None,
) -> ActivityReport:
    """A new version of a submitted or rejected report: earlier approvals no longer count."""
    report = await get_report(session, report_id, lock=True)
    if principal.org != report.submitted_by_org and not principal.has("admin"):
        raise Forbidden(f"Only {report.submitted_by_org}, which submitted this report, may resubmit it.")
    check_if_match(if_match, report.version, required=True)
    if report.status == ReportStatus.validated:
        raise Conflict(f"Activity report {report_id} is validated and locked: it cannot be edited.")
    stamp = now()
    report.report_version += 1
    report.status = ReportStatus.submitted.value
    report.submitted_at = stamp
    report.key_figures = dict(data.key_figures)
    report.narrative = data.narrative
    report.approvals = []
    report.rejection_comment = None
    report.decided_at = None
    report.version += 1
    report.updated_at = stamp
    await session.flush()
    await outbox.stage(session, settings, [report_event(report, ActivityReportSubmittedV1)])
    return report


async def review_report(
    session: AsyncSession,
    settings: SitesSettings,
    principal: Principal,
    report_id: uuid.UUID,
    data: ActivityReportReview,
    if_match: str | None,
) -> tuple[ActivityReport, Committee]:
    report = await get_report(session, report_id, lock=True)
    committee = await CommitteeRepository(session).get_by_admin1(report.admin1_pcode)
    if committee is None:
        raise Forbidden(f"Region {report.admin1_pcode} has no regional committee yet: nobody can review its reports.")
    if principal.org not in committee.member_organizations:
        raise Forbidden(
            f"{principal.org} is not a member of the regional committee of {report.admin1_pcode}: "
            "only its members review this report."
        )
    if principal.org == report.submitted_by_org:
        raise Forbidden(f"{principal.org} submitted this report: the other committee members review it.")
    check_if_match(if_match, report.version, required=False)
    if report.status == ReportStatus.validated:
        raise Conflict(f"Activity report {report_id} is already validated and locked.")
    if report.status == ReportStatus.rejected:
        raise Conflict(f"Activity report {report_id} was rejected: it awaits a resubmission.")
    repo = ActivityReportRepository(session)
    earlier = await repo.review_by(report.id, report.report_version, principal.org)
    if earlier is not None:
        verb = "approved" if earlier.decision == ReviewDecision.approve else "rejected"
        raise Conflict(f"{principal.org} already {verb} version {report.report_version} of this report.")
    comment = (data.comment or "").strip() or None
    if data.decision == ReviewDecision.reject and comment is None:
        _fail([_err("comment", "a rejection needs a comment saying what to fix")])
    stamp = now()
    repo.add(
        ReportReview(
            id=uuid.uuid4(),
            report_id=report.id,
            report_version=report.report_version,
            reviewer_org=principal.org,
            reviewer_sub=principal.sub,
            decision=data.decision.value,
            comment=comment,
            created_at=stamp,
        )
    )
    event: type[ActivityReportSnapshotV1] | None = None
    if data.decision == ReviewDecision.reject:
        report.status = ReportStatus.rejected.value
        report.rejection_comment = comment
        report.decided_at = stamp
        event = ActivityReportRejectedV1
    else:
        report.approvals = [*report.approvals, principal.org]
        if len(report.approvals) >= committee.quorum:
            report.status = ReportStatus.validated.value
            report.decided_at = stamp
            event = ActivityReportValidatedV1
    report.version += 1
    report.updated_at = stamp
    await session.flush()
    if event is not None:  # an approval short of the quorum is no transition: no event
        await outbox.stage(session, settings, [report_event(report, event)])
    return report, committee


async def list_reports(
    session: AsyncSession, f: ReportFilter, *, limit: int, cursor: str | None
) -> tuple[list[ActivityReport], str | None]:
    _admin_filter(f.admin1, None, None)
    after = decode_cursor(cursor, (str, str))
    rows = list(await ActivityReportRepository(session).find(f, after=_time_id_key(after), limit=limit + 1))
    last = rows[limit - 1] if len(rows) > limit else None
    next_cursor = encode_cursor([last.submitted_at.isoformat(), str(last.id)]) if last else None
    return rows[:limit], next_cursor


async def report_with_reviews(session: AsyncSession, report_id: uuid.UUID) -> ActivityReportRead:
    report = await get_report(session, report_id)
    reviews = await ActivityReportRepository(session).reviews(report_id)
    quorums = await CommitteeRepository(session).quorums({report.admin1_pcode})
    return report_read(report, quorums.get(report.admin1_pcode), reviews)
