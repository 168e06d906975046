"""Thin HTTP routers of the sites service.

Concurrency: every aggregate answers with `ETag: "<version>"`. Updates (`PATCH`/`PUT`) need
`If-Match` (428 without it, 412 when stale); state transitions (close, reopen, end, review) accept
it optionally and then also answer 412 when stale.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Query, Response, status

from dtm_shared.auth import SCOPES, Principal, require_scopes
from dtm_shared.events.common import ActivityStatus, ReportStatus, Sector, SiteStatus, SiteType
from dtm_shared.http import etag
from dtm_shared.problems import PROBLEM_JSON, PROBLEM_RESPONSES, Forbidden, ProblemDetail
from sites import service
from sites.dependencies import Session, Settings
from sites.repository import ActivityFilter, ReportFilter, SiteFilter
from sites.schemas import (
    ActivityReportCreate,
    ActivityReportList,
    ActivityReportRead,
    ActivityReportReview,
    ActivityReportSubmission,
    AdminAreaList,
    AssessmentCorrection,
    AssessmentCreate,
    AssessmentList,
    AssessmentRead,
    CommitteeCreate,
    CommitteeList,
    CommitteeRead,
    CommitteeUpdate,
    Period,
    ServiceActivityCreate,
    ServiceActivityEnd,
    ServiceActivityList,
    ServiceActivityRead,
    ServiceActivityUpdate,
    SiteClose,
    SiteCode,
    SiteCreate,
    SiteList,
    SiteRead,
    SiteReopen,
    SiteUpdate,
    Text,
)

router = APIRouter(prefix="/v1", responses=PROBLEM_RESPONSES)

Reader = Annotated[Principal, Depends(require_scopes("sites:read"))]
Writer = Annotated[Principal, Depends(require_scopes("sites:write"))]
Reviewer = Annotated[Principal, Depends(require_scopes("reports:review"))]
# Committee membership decides who validates reports: changing it is an administrative act, not
# something any partner with `sites:write` may do (it could add itself and approve its own reports).
CommitteeAdmin = Annotated[Principal, Depends(require_scopes("admin"))]


async def _reads_reports(principal: Annotated[Principal, Depends(require_scopes())]) -> Principal:
    """Reports are read by holders of `sites:read` and by reviewers (`reports:review`)."""
    if not (principal.has("sites:read") or principal.has("reports:review")):
        raise Forbidden("This operation needs the scope sites:read or reports:review.")
    return principal


ReportReader = Annotated[Principal, Depends(_reads_reports)]


async def _any_scope(principal: Annotated[Principal, Depends(require_scopes())]) -> Principal:
    """Reference data: any caller holding at least one scope of the platform."""
    if not principal.scopes & SCOPES.keys():
        raise Forbidden("This operation needs any scope of the platform (e.g. sites:read or households:write).")
    return principal


AnyScope = Annotated[Principal, Depends(_any_scope)]
IfMatch = Annotated[
    str | None, Header(description='The ETag read before the change, e.g. `"3"`; 412 when the resource has changed.')
]
Limit = Annotated[int, Query(ge=1, le=500, description="Page size.")]
Cursor = Annotated[str | None, Query(max_length=500, description="`next_cursor` of the previous page.")]
SiteId = Annotated[uuid.UUID, Path(description="The site's id.")]
Admin1 = Annotated[str | None, Query(max_length=12, description="Admin1 (region) P-code, e.g. ML09.")]
Admin2 = Annotated[str | None, Query(max_length=12, description="Admin2 (cercle) P-code, e.g. ML0901.")]
Admin3 = Annotated[str | None, Query(max_length=12, description="Admin3 (commune) P-code, e.g. ML090106.")]

NEEDS_IF_MATCH: dict[int | str, dict[str, Any]] = {
    428: {"model": ProblemDetail, "content": {PROBLEM_JSON: {}}, "description": "If-Match is required"}
}


def _versioned(response: Response, version: int) -> None:
    response.headers["ETag"] = etag(version)


# -- sites -----------------------------------------------------------------------------------------


@router.post(
    "/sites",
    operation_id="createSite",
    tags=["sites"],
    status_code=status.HTTP_201_CREATED,
    response_model=SiteRead,
)
async def create_site(
    body: SiteCreate, session: Session, settings: Settings, principal: Writer, response: Response
) -> SiteRead:
    site = await service.create_site(session, settings, principal, body)
    _versioned(response, site.version)
    response.headers["Location"] = f"/v1/sites/{site.id}"
    return service.to_read(site)


@router.get("/sites", operation_id="listSites", tags=["sites"], response_model=SiteList)
async def list_sites(
    session: Session,
    principal: Reader,
    status_: Annotated[SiteStatus | None, Query(alias="status")] = None,
    site_type: SiteType | None = None,
    code: Annotated[SiteCode | None, Query(description="Exact site code.")] = None,
    admin1: Admin1 = None,
    admin2: Admin2 = None,
    admin3: Admin3 = None,
    q: Annotated[
        str | None,
        Query(min_length=1, max_length=100, description="Part of the name or code; accents and case ignored."),
    ] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> SiteList:
    """Sites in code order; a closed site is listed too (filter with `status`)."""
    f = SiteFilter(
        status=status_.value if status_ else None,
        site_type=site_type.value if site_type else None,
        code=code,
        admin1=admin1,
        admin2=admin2,
        admin3=admin3,
        q=q,
    )
    rows, next_cursor = await service.list_sites(session, f, limit=limit, cursor=cursor)
    return SiteList(items=[service.to_read(s) for s in rows], next_cursor=next_cursor)


@router.get("/sites/{site_id}", operation_id="getSite", tags=["sites"], response_model=SiteRead)
async def get_site(site_id: SiteId, session: Session, principal: Reader, response: Response) -> SiteRead:
    site = await service.get_site(session, site_id)
    _versioned(response, site.version)
    return service.to_read(site)


@router.patch(
    "/sites/{site_id}", operation_id="updateSite", tags=["sites"], response_model=SiteRead, responses=NEEDS_IF_MATCH
)
async def update_site(
    site_id: SiteId,
    body: SiteUpdate,
    session: Session,
    settings: Settings,
    principal: Writer,
    response: Response,
    if_match: IfMatch = None,
) -> SiteRead:
    """Change some fields of a site (code, name, type, location, coordinates, capacity, agency, opening date)."""
    site = await service.update_site(session, settings, site_id, body, if_match)
    _versioned(response, site.version)
    return service.to_read(site)


@router.post("/sites/{site_id}/close", operation_id="closeSite", tags=["sites"], response_model=SiteRead)
async def close_site(
    site_id: SiteId,
    body: SiteClose,
    session: Session,
    settings: Settings,
    principal: Writer,
    response: Response,
    if_match: IfMatch = None,
) -> SiteRead:
    """Close an open site (409 if already closed). It stays readable; registrations there are refused."""
    site = await service.close_site(session, settings, site_id, body, if_match)
    _versioned(response, site.version)
    return service.to_read(site)


@router.post("/sites/{site_id}/reopen", operation_id="reopenSite", tags=["sites"], response_model=SiteRead)
async def reopen_site(
    site_id: SiteId,
    session: Session,
    settings: Settings,
    principal: Writer,
    response: Response,
    if_match: IfMatch = None,
    body: SiteReopen | None = None,
) -> SiteRead:
    """Reopen a closed site (409 if it is open)."""
    site = await service.reopen_site(session, settings, site_id, body or SiteReopen(), if_match)
    _versioned(response, site.version)
    return service.to_read(site)


# -- admin areas -----------------------------------------------------------------------------------


@router.get("/admin-areas", operation_id="listAdminAreas", tags=["admin-areas"], response_model=AdminAreaList)
async def list_admin_areas(
    principal: AnyScope,
    level: Annotated[int | None, Query(ge=1, le=3, description="1 region, 2 cercle, 3 commune.")] = None,
    parent: Annotated[str | None, Query(max_length=12, description="Children of this P-code.")] = None,
    q: Annotated[
        str | None,
        Query(
            min_length=1, max_length=100, description="Part of the name (accents and case ignored) or a P-code prefix."
        ),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Cursor = None,
) -> AdminAreaList:
    """The OCHA COD-AB P-code reference (Mali, 2021) every location field is checked against. Any scope."""
    return service.list_admin_areas(level=level, parent=parent, q=q, limit=limit, cursor=cursor)


# -- assessments -----------------------------------------------------------------------------------

RoundNumber = Annotated[int, Path(ge=1, le=1000)]


@router.post(
    "/sites/{site_id}/assessments",
    operation_id="recordSiteAssessment",
    tags=["assessments"],
    status_code=status.HTTP_201_CREATED,
    response_model=AssessmentRead,
)
async def record_site_assessment(
    site_id: SiteId, body: AssessmentCreate, session: Session, settings: Settings, principal: Writer, response: Response
) -> AssessmentRead:
    """Record a site's assessment for a round. Totals must add up (422 says which); a round already
    recorded is a 409: correct it with `correctSiteAssessment`."""
    assessment = await service.record_assessment(session, settings, principal, site_id, body)
    _versioned(response, assessment.version)
    response.headers["Location"] = f"/v1/sites/{site_id}/assessments/{assessment.round_number}"
    return service.assessment_read(assessment)


@router.get(
    "/sites/{site_id}/assessments",
    operation_id="listSiteAssessments",
    tags=["assessments"],
    response_model=AssessmentList,
)
async def list_site_assessments(
    site_id: SiteId, session: Session, principal: Reader, limit: Limit = 50, cursor: Cursor = None
) -> AssessmentList:
    """A site's assessments (current version of each round), by round."""
    rows, next_cursor = await service.list_assessments(session, site_id, limit=limit, cursor=cursor)
    return AssessmentList(items=[service.assessment_read(a) for a in rows], next_cursor=next_cursor)


@router.get(
    "/sites/{site_id}/assessments/{round_number}",
    operation_id="getSiteAssessment",
    tags=["assessments"],
    response_model=AssessmentRead,
)
async def get_site_assessment(
    site_id: SiteId, round_number: RoundNumber, session: Session, principal: Reader, response: Response
) -> AssessmentRead:
    assessment = await service.get_assessment(session, site_id, round_number)
    _versioned(response, assessment.version)
    return service.assessment_read(assessment)


@router.put(
    "/sites/{site_id}/assessments/{round_number}",
    operation_id="correctSiteAssessment",
    tags=["assessments"],
    response_model=AssessmentRead,
    responses=NEEDS_IF_MATCH,
)
async def correct_site_assessment(
    site_id: SiteId,
    round_number: RoundNumber,
    body: AssessmentCorrection,
    session: Session,
    settings: Settings,
    principal: Writer,
    response: Response,
    if_match: IfMatch = None,
) -> AssessmentRead:
    """Correct the current version of a round's assessment (full replacement; needs `If-Match`)."""
    assessment = await service.correct_assessment(session, settings, principal, site_id, round_number, body, if_match)
    _versioned(response, assessment.version)
    return service.assessment_read(assessment)


# -- service activities ----------------------------------------------------------------------------

ActivityId = Annotated[uuid.UUID, Path(description="The service activity's id.")]


@router.post(
    "/sites/{site_id}/service-activities",
    operation_id="recordServiceActivity",
    tags=["service-activities"],
    status_code=status.HTTP_201_CREATED,
    response_model=ServiceActivityRead,
)
async def record_service_activity(
    site_id: SiteId,
    body: ServiceActivityCreate,
    session: Session,
    settings: Settings,
    principal: Writer,
    response: Response,
) -> ServiceActivityRead:
    """Record who does what where: an organisation's activity in a sector at an open site, with its period.
    The same organisation's same activity over an overlapping period is a 409."""
    activity = await service.record_activity(session, settings, principal, site_id, body)
    _versioned(response, activity.version)
    response.headers["Location"] = f"/v1/service-activities/{activity.id}"
    return service.activity_read(activity)


@router.get(
    "/service-activities",
    operation_id="listServiceActivities",
    tags=["service-activities"],
    response_model=ServiceActivityList,
)
async def list_service_activities(
    session: Session,
    principal: Reader,
    site_id: uuid.UUID | None = None,
    organization: Annotated[Text | None, Query(max_length=64)] = None,
    sector: Sector | None = None,
    status_: Annotated[ActivityStatus | None, Query(alias="status")] = None,
    admin1: Admin1 = None,
    admin2: Admin2 = None,
    admin3: Admin3 = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> ServiceActivityList:
    f = ActivityFilter(
        site_id=site_id,
        organization=organization,
        sector=sector.value if sector else None,
        status=status_.value if status_ else None,
        admin1=admin1,
        admin2=admin2,
        admin3=admin3,
    )
    rows, next_cursor = await service.list_activities(session, f, limit=limit, cursor=cursor)
    return ServiceActivityList(items=[service.activity_read(a) for a in rows], next_cursor=next_cursor)


@router.get(
    "/service-activities/{activity_id}",
    operation_id="getServiceActivity",
    tags=["service-activities"],
    response_model=ServiceActivityRead,
)
async def get_service_activity(
    activity_id: ActivityId, session: Session, principal: Reader, response: Response
) -> ServiceActivityRead:
    activity = await service.get_activity(session, activity_id)
    _versioned(response, activity.version)
    return service.activity_read(activity)


@router.patch(
    "/service-activities/{activity_id}",
    operation_id="updateServiceActivity",
    tags=["service-activities"],
    response_model=ServiceActivityRead,
    responses=NEEDS_IF_MATCH,
)
async def update_service_activity(
    activity_id: ActivityId,
    body: ServiceActivityUpdate,
    session: Session,
    settings: Settings,
    principal: Writer,
    response: Response,
    if_match: IfMatch = None,
) -> ServiceActivityRead:
    """Change an activity's code or period (409 once ended)."""
    activity = await service.update_activity(session, settings, principal, activity_id, body, if_match)
    _versioned(response, activity.version)
    return service.activity_read(activity)


@router.post(
    "/service-activities/{activity_id}/end",
    operation_id="endServiceActivity",
    tags=["service-activities"],
    response_model=ServiceActivityRead,
)
async def end_service_activity(
    activity_id: ActivityId,
    session: Session,
    settings: Settings,
    principal: Writer,
    response: Response,
    if_match: IfMatch = None,
    body: ServiceActivityEnd | None = None,
) -> ServiceActivityRead:
    """End an activity (on `end_date`, today by default; 409 if already ended)."""
    activity = await service.end_activity(
        session, settings, principal, activity_id, body or ServiceActivityEnd(), if_match
    )
    _versioned(response, activity.version)
    return service.activity_read(activity)


# -- committees ------------------------------------------------------------------------------------

CommitteeId = Annotated[uuid.UUID, Path(description="The committee's id.")]


@router.post(
    "/committees",
    operation_id="createCommittee",
    tags=["committees"],
    status_code=status.HTTP_201_CREATED,
    response_model=CommitteeRead,
)
async def create_committee(
    body: CommitteeCreate, session: Session, settings: Settings, principal: CommitteeAdmin, response: Response
) -> CommitteeRead:
    """Create a region's committee (one per admin1: a second is a 409). Needs `admin`."""
    committee = await service.create_committee(session, settings, body)
    _versioned(response, committee.version)
    response.headers["Location"] = f"/v1/committees/{committee.id}"
    return service.committee_read(committee)


@router.get("/committees", operation_id="listCommittees", tags=["committees"], response_model=CommitteeList)
async def list_committees(session: Session, principal: Reader) -> CommitteeList:
    """Every regional committee (at most one per region: a single page)."""
    return CommitteeList(items=[service.committee_read(c) for c in await service.list_committees(session)])


@router.get(
    "/committees/{committee_id}", operation_id="getCommittee", tags=["committees"], response_model=CommitteeRead
)
async def get_committee(
    committee_id: CommitteeId, session: Session, principal: Reader, response: Response
) -> CommitteeRead:
    committee = await service.get_committee(session, committee_id)
    _versioned(response, committee.version)
    return service.committee_read(committee)


@router.patch(
    "/committees/{committee_id}",
    operation_id="updateCommittee",
    tags=["committees"],
    response_model=CommitteeRead,
    responses=NEEDS_IF_MATCH,
)
async def update_committee(
    committee_id: CommitteeId,
    body: CommitteeUpdate,
    session: Session,
    settings: Settings,
    principal: CommitteeAdmin,
    response: Response,
    if_match: IfMatch = None,
) -> CommitteeRead:
    """Change a committee's name, members or quorum (needs `If-Match` and the `admin` scope)."""
    committee = await service.update_committee(session, settings, committee_id, body, if_match)
    _versioned(response, committee.version)
    return service.committee_read(committee)


@router.get(
    "/committees/{committee_id}/pending-reports",
    operation_id="listPendingReports",
    tags=["committees", "activity-reports"],
    response_model=ActivityReportList,
)
async def list_pending_reports(
    committee_id: CommitteeId, session: Session, principal: ReportReader, limit: Limit = 50, cursor: Cursor = None
) -> ActivityReportList:
    """Reports of the committee's region awaiting review, oldest submission first."""
    committee = await service.get_committee(session, committee_id)
    f = ReportFilter(admin1=committee.admin1_pcode, status=ReportStatus.submitted.value)
    rows, next_cursor = await service.list_reports(session, f, limit=limit, cursor=cursor)
    return ActivityReportList(items=await service.reports_read(session, rows), next_cursor=next_cursor)


# -- activity reports ------------------------------------------------------------------------------

ReportId = Annotated[uuid.UUID, Path(description="The activity report's id.")]


@router.post(
    "/sites/{site_id}/activity-reports",
    operation_id="submitActivityReport",
    tags=["activity-reports"],
    status_code=status.HTTP_201_CREATED,
    response_model=ActivityReportRead,
)
async def submit_activity_report(
    site_id: SiteId,
    body: ActivityReportCreate,
    session: Session,
    settings: Settings,
    principal: Writer,
    response: Response,
) -> ActivityReportRead:
    """Submit a site's report for a month (one per site and month: a second is a 409; resubmit with
    `resubmitActivityReport`)."""
    report = await service.submit_report(session, settings, principal, site_id, body)
    _versioned(response, report.version)
    response.headers["Location"] = f"/v1/activity-reports/{report.id}"
    return (await service.reports_read(session, [report]))[0]


@router.get(
    "/activity-reports",
    operation_id="listActivityReports",
    tags=["activity-reports"],
    response_model=ActivityReportList,
)
async def list_activity_reports(
    session: Session,
    principal: ReportReader,
    site_id: uuid.UUID | None = None,
    period: Annotated[Period | None, Query(description="`YYYY-MM`")] = None,
    status_: Annotated[ReportStatus | None, Query(alias="status")] = None,
    admin1: Admin1 = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> ActivityReportList:
    f = ReportFilter(site_id=site_id, period=period, status=status_.value if status_ else None, admin1=admin1)
    rows, next_cursor = await service.list_reports(session, f, limit=limit, cursor=cursor)
    return ActivityReportList(items=await service.reports_read(session, rows), next_cursor=next_cursor)


@router.get(
    "/activity-reports/{report_id}",
    operation_id="getActivityReport",
    tags=["activity-reports"],
    response_model=ActivityReportRead,
)
async def get_activity_report(
    report_id: ReportId, session: Session, principal: ReportReader, response: Response
) -> ActivityReportRead:
    """A report with its reviews (every version's)."""
    report = await service.report_with_reviews(session, report_id)
    _versioned(response, report.version)
    return report


@router.put(
    "/activity-reports/{report_id}",
    operation_id="resubmitActivityReport",
    tags=["activity-reports"],
    response_model=ActivityReportRead,
    responses=NEEDS_IF_MATCH,
)
async def resubmit_activity_report(
    report_id: ReportId,
    body: ActivityReportSubmission,
    session: Session,
    settings: Settings,
    principal: Writer,
    response: Response,
    if_match: IfMatch = None,
) -> ActivityReportRead:
    """Edit a submitted or rejected report: a new report version, reviewed afresh. A validated report
    is locked (409)."""
    report = await service.resubmit_report(session, settings, principal, report_id, body, if_match)
    _versioned(response, report.version)
    return (await service.reports_read(session, [report]))[0]


@router.post(
    "/activity-reports/{report_id}/reviews",
    operation_id="reviewActivityReport",
    tags=["activity-reports"],
    response_model=ActivityReportRead,
)
async def review_activity_report(
    report_id: ReportId,
    body: ActivityReportReview,
    session: Session,
    settings: Settings,
    principal: Reviewer,
    response: Response,
    if_match: IfMatch = None,
) -> ActivityReportRead:
    """Approve or reject a submitted report, as a member organisation (token `org`) of the site's regional
    committee: 403 for others; one decision per organisation and report version (409). Approvals reaching
    the quorum validate and lock the report; a rejection needs a comment."""
    report, committee = await service.review_report(session, settings, principal, report_id, body, if_match)
    _versioned(response, report.version)
    return service.report_read(report, committee.quorum)
