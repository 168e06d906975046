"""Sites' events on `dtm.sites` (contract). Key = the aggregate id named by `aggregate_id`."""

from __future__ import annotations

from datetime import date, datetime
from typing import ClassVar
from uuid import UUID

from dtm_shared.events.base import EventPayload, register
from dtm_shared.events.common import (
    ActivityStatus,
    Coverage,
    DisplacementReason,
    ReportStatus,
    Sector,
    SiteStatus,
    SiteType,
)

TOPIC = "dtm.sites"


class SiteSnapshotV1(EventPayload):
    """A site after the change; `aggregate_id` is the site id."""

    topic: ClassVar[str] = TOPIC

    code: str
    name: str
    site_type: SiteType
    location_pcode: str
    latitude: float | None = None
    longitude: float | None = None
    capacity_households: int | None = None
    management_agency: str | None = None
    opened_on: date
    status: SiteStatus
    closed_on: date | None = None
    closure_reason: str | None = None


class SiteOpenedV1(SiteSnapshotV1):
    event_type: ClassVar[str] = "dtm.site.opened.v1"


class SiteUpdatedV1(SiteSnapshotV1):
    event_type: ClassVar[str] = "dtm.site.updated.v1"


class SiteClosedV1(SiteSnapshotV1):
    event_type: ClassVar[str] = "dtm.site.closed.v1"


class SiteReopenedV1(SiteSnapshotV1):
    event_type: ClassVar[str] = "dtm.site.reopened.v1"


class SiteAssessedV1(EventPayload):
    """An assessment of a site for a round; `aggregate_id` is the assessment id, `version` its
    correction number (1 = first). Keys: `individuals_by_sex_age` uses `female_0_4` ...
    `male_60_plus`; `individuals_by_reason` uses displacement reasons; `coverage` uses sectors."""

    topic: ClassVar[str] = TOPIC
    event_type: ClassVar[str] = "dtm.site.assessed.v1"

    site_id: UUID
    round_number: int
    assessed_on: date
    households: int
    individuals: int
    individuals_by_sex_age: dict[str, int]
    individuals_by_reason: dict[DisplacementReason, int]
    coverage: dict[Sector, Coverage]
    priority_needs: list[Sector]
    risks: list[str]


class ServiceActivitySnapshotV1(EventPayload):
    """Who does what where; `aggregate_id` is the activity id."""

    topic: ClassVar[str] = TOPIC

    site_id: UUID
    organization: str
    sector: Sector
    activity: str
    start_date: date
    end_date: date | None = None
    status: ActivityStatus


class ServiceActivityRecordedV1(ServiceActivitySnapshotV1):
    event_type: ClassVar[str] = "dtm.service_activity.recorded.v1"


class ServiceActivityUpdatedV1(ServiceActivitySnapshotV1):
    event_type: ClassVar[str] = "dtm.service_activity.updated.v1"


class ServiceActivityEndedV1(ServiceActivitySnapshotV1):
    event_type: ClassVar[str] = "dtm.service_activity.ended.v1"


class CommitteeUpdatedV1(EventPayload):
    """A regional committee; `aggregate_id` is the committee id."""

    topic: ClassVar[str] = TOPIC
    event_type: ClassVar[str] = "dtm.committee.updated.v1"

    admin1_pcode: str
    name: str
    member_organizations: list[str]
    quorum: int


class ActivityReportSnapshotV1(EventPayload):
    """A monthly site activity report; `aggregate_id` is the report id (one per site and period),
    `report_version` counts submissions, `version` counts every change."""

    topic: ClassVar[str] = TOPIC

    site_id: UUID
    period: str
    report_version: int
    status: ReportStatus
    submitted_by_org: str
    submitted_at: datetime
    key_figures: dict[str, int]
    approvals: list[str]
    rejection_comment: str | None = None
    decided_at: datetime | None = None


class ActivityReportSubmittedV1(ActivityReportSnapshotV1):
    event_type: ClassVar[str] = "dtm.activity_report.submitted.v1"


class ActivityReportValidatedV1(ActivityReportSnapshotV1):
    event_type: ClassVar[str] = "dtm.activity_report.validated.v1"


class ActivityReportRejectedV1(ActivityReportSnapshotV1):
    event_type: ClassVar[str] = "dtm.activity_report.rejected.v1"


register(
    SiteOpenedV1,
    SiteUpdatedV1,
    SiteClosedV1,
    SiteReopenedV1,
    SiteAssessedV1,
    ServiceActivityRecordedV1,
    ServiceActivityUpdatedV1,
    ServiceActivityEndedV1,
    CommitteeUpdatedV1,
    ActivityReportSubmittedV1,
    ActivityReportValidatedV1,
    ActivityReportRejectedV1,
)
