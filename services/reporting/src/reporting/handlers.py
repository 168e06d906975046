"""Event -> projection: an explicit registry of the event types reporting projects.

Handlers apply event-carried state to the read models of a generation (`None` = the live one),
only when the event's version is newer than the one held, so duplicates and replays are harmless.
Nothing personal is stored: members keep only sex, date of birth and specific needs.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from dtm_shared.events import CloudEvent, EventPayload
from dtm_shared.events import registration as reg
from dtm_shared.events import sites as ev
from dtm_shared.pcodes import gazetteer
from reporting import repository


class UnknownLocation(ValueError):
    """A P-code that is not in the COD-AB reference: the event cannot be placed (dead-lettered)."""


def household_params(p: reg.HouseholdSnapshotV1, gen: int | None = None) -> dict[str, Any]:
    g = gazetteer()
    location = g.ancestors(p.location_pcode)
    if 3 not in location or 2 not in location or 1 not in location:
        raise UnknownLocation(f"location_pcode {p.location_pcode!r} is not a known admin3 P-code")
    origin_admin1 = None
    if p.origin_pcode:
        origin = g.ancestors(p.origin_pcode)
        if 1 not in origin:
            raise UnknownLocation(f"origin_pcode {p.origin_pcode!r} is not a known P-code")
        origin_admin1 = origin[1].pcode
    return {
        "gen": gen,
        "id": p.aggregate_id,
        "version": p.version,
        "effective": p.effective_date,
        "status": p.status.value,
        "inactive_reason": p.inactive_reason.value if p.inactive_reason else None,
        "site": p.site_id,
        "location": p.location_pcode,
        "admin2": location[2].pcode,
        "admin1": location[1].pcode,
        "origin": p.origin_pcode,
        "origin_admin1": origin_admin1,
        "grp": p.population_group.value,
        "reason": p.displacement_reason.value,
        "country": p.country_of_asylum,
        "registration_date": p.registration_date,
        "displacement_date": p.displacement_date,
        "return_date": p.return_date,
        "repatriation_date": p.repatriation_date,
        "org": p.registered_by_org,
        "female": [m.sex.value == "female" for m in p.members],
        "dobs": [m.date_of_birth for m in p.members],
        "needs": sorted({n.value for m in p.members for n in m.specific_needs}),
    }


def site_params(p: ev.SiteSnapshotV1, gen: int | None = None) -> dict[str, Any]:
    location = gazetteer().ancestors(p.location_pcode)
    if 1 not in location or 2 not in location:
        raise UnknownLocation(f"location_pcode {p.location_pcode!r} is not a known P-code")
    return {
        "gen": gen,
        "site_id": p.aggregate_id,
        "version": p.version,
        "code": p.code,
        "name": p.name,
        "site_type": p.site_type.value,
        "location_pcode": p.location_pcode,
        "admin1": location[1].pcode,
        "admin2": location[2].pcode,
        "latitude": p.latitude,
        "longitude": p.longitude,
        "capacity_households": p.capacity_households,
        "management_agency": p.management_agency,
        "opened_on": p.opened_on,
        "status": p.status.value,
        "closed_on": p.closed_on,
    }


def assessment_params(p: ev.SiteAssessedV1, gen: int | None = None) -> dict[str, Any]:
    return {
        "gen": gen,
        "assessment_id": p.aggregate_id,
        "version": p.version,
        "site_id": p.site_id,
        "round_number": p.round_number,
        "assessed_on": p.assessed_on,
        "households": p.households,
        "individuals": p.individuals,
        "by_sex_age": json.dumps(p.individuals_by_sex_age),
        "by_reason": json.dumps({k.value: v for k, v in p.individuals_by_reason.items()}),
        "coverage": json.dumps({k.value: v.value for k, v in p.coverage.items()}),
        "priority_needs": [s.value for s in p.priority_needs],
        "risks": list(p.risks),
    }


def activity_params(p: ev.ServiceActivitySnapshotV1, gen: int | None = None) -> dict[str, Any]:
    return {
        "gen": gen,
        "activity_id": p.aggregate_id,
        "version": p.version,
        "site_id": p.site_id,
        "organization": p.organization,
        "sector": p.sector.value,
        "activity": p.activity,
        "start_date": p.start_date,
        "end_date": p.end_date,
        "status": p.status.value,
    }


def committee_params(p: ev.CommitteeUpdatedV1, gen: int | None = None) -> dict[str, Any]:
    return {
        "gen": gen,
        "committee_id": p.aggregate_id,
        "version": p.version,
        "admin1_pcode": p.admin1_pcode,
        "name": p.name,
        "member_organizations": list(p.member_organizations),
        "quorum": p.quorum,
    }


def report_params(p: ev.ActivityReportSnapshotV1, gen: int | None = None) -> dict[str, Any]:
    return {
        "gen": gen,
        "report_id": p.aggregate_id,
        "version": p.version,
        "site_id": p.site_id,
        "period": p.period,
        "report_version": p.report_version,
        "status": p.status.value,
        "submitted_by_org": p.submitted_by_org,
        "submitted_at": p.submitted_at,
        "decided_at": p.decided_at,
    }


async def project(session: AsyncSession, payload: EventPayload, gen: int | None = None) -> None:
    """Apply one payload to generation `gen` (None = the live generation)."""
    if isinstance(payload, reg.HouseholdSnapshotV1):
        await repository.apply_household(session, household_params(payload, gen))
    elif isinstance(payload, ev.SiteSnapshotV1):
        await repository.upsert(session, "sites", site_params(payload, gen))
    elif isinstance(payload, ev.SiteAssessedV1):
        await repository.upsert(session, "assessments", assessment_params(payload, gen))
    elif isinstance(payload, ev.ServiceActivitySnapshotV1):
        await repository.upsert(session, "activities", activity_params(payload, gen))
    elif isinstance(payload, ev.CommitteeUpdatedV1):
        await repository.upsert(session, "committees", committee_params(payload, gen))
    elif isinstance(payload, ev.ActivityReportSnapshotV1):
        await repository.upsert(session, "reports", report_params(payload, gen))
    else:  # pragma: no cover - HANDLERS only routes the types above
        raise TypeError(f"reporting does not project {type(payload).__name__}")


async def on_event(session: AsyncSession, event: CloudEvent, payload: EventPayload) -> None:
    await project(session, payload)


Handler = Callable[[AsyncSession, CloudEvent, EventPayload], Awaitable[None]]

HANDLERS: Mapping[str, Handler] = {
    reg.HouseholdRegisteredV1.event_type: on_event,
    reg.HouseholdUpdatedV1.event_type: on_event,
    reg.HouseholdRelocatedV1.event_type: on_event,
    reg.HouseholdReturnedV1.event_type: on_event,
    reg.HouseholdDeactivatedV1.event_type: on_event,
    ev.SiteOpenedV1.event_type: on_event,
    ev.SiteUpdatedV1.event_type: on_event,
    ev.SiteClosedV1.event_type: on_event,
    ev.SiteReopenedV1.event_type: on_event,
    ev.SiteAssessedV1.event_type: on_event,
    ev.ServiceActivityRecordedV1.event_type: on_event,
    ev.ServiceActivityUpdatedV1.event_type: on_event,
    ev.ServiceActivityEndedV1.event_type: on_event,
    ev.CommitteeUpdatedV1.event_type: on_event,
    ev.ActivityReportSubmittedV1.event_type: on_event,
    ev.ActivityReportValidatedV1.event_type: on_event,
    ev.ActivityReportRejectedV1.event_type: on_event,
}

TOPICS = (reg.TOPIC, ev.TOPIC)
