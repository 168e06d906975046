"""API models of the sites service (named: generated clients use these names)."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from enum import StrEnum
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from dtm_shared.events.common import (
    ActivityStatus,
    Coverage,
    DisplacementReason,
    ReportStatus,
    Sector,
    SiteStatus,
    SiteType,
)


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


Text = Annotated[str, AfterValidator(_no_nul)]
OrgCode = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")]
Period = Annotated[str, StringConstraints(pattern=r"^[0-9]{4}-(0[1-9]|1[0-2])$")]
FigureKey = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
Admin1Code = Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}[0-9]{2}$")]

SiteCode = Annotated[str, StringConstraints(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9_.\-]+$")]
Count = Annotated[int, Field(ge=0, le=10_000_000)]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- sites -----------------------------------------------------------------------------------------


class SiteCreate(_In):
    code: SiteCode = Field(examples=["MLI-S-001"])
    name: Text = Field(min_length=1, max_length=200)
    site_type: SiteType
    location_pcode: Text = Field(description="Admin3 (commune) P-code, e.g. ML090101", examples=["ML090106"])
    latitude: float | None = Field(default=None, ge=-90, le=90)
    longitude: float | None = Field(default=None, ge=-180, le=180)
    capacity_households: int | None = Field(default=None, ge=0, le=1_000_000)
    management_agency: Text | None = Field(default=None, max_length=200)
    opened_on: date


class SiteUpdate(_In):
    """Fields to change (absent = unchanged; `null` clears an optional field). Needs `If-Match`."""

    code: SiteCode | None = None
    name: Text | None = Field(default=None, min_length=1, max_length=200)
    site_type: SiteType | None = None
    location_pcode: Text | None = Field(default=None, description="Admin3 (commune) P-code")
    latitude: float | None = Field(default=None, ge=-90, le=90)
    longitude: float | None = Field(default=None, ge=-180, le=180)
    capacity_households: int | None = Field(default=None, ge=0, le=1_000_000)
    management_agency: Text | None = Field(default=None, max_length=200)
    opened_on: date | None = None


class SiteClose(_In):
    closed_on: date
    closure_reason: Text = Field(min_length=1, max_length=500, examples=["residents relocated to planned site"])


class SiteReopen(_In):
    reopened_on: date | None = Field(default=None, description="Defaults to today (UTC).")


class SiteRead(BaseModel):
    id: uuid.UUID
    code: str
    name: str
    site_type: SiteType
    location_pcode: str
    admin1_pcode: str
    admin2_pcode: str
    latitude: float | None
    longitude: float | None
    capacity_households: int | None
    management_agency: str | None
    opened_on: date
    status: SiteStatus
    closed_on: date | None
    closure_reason: str | None
    version: int


class SiteList(BaseModel):
    items: list[SiteRead]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page.")


# -- admin areas -----------------------------------------------------------------------------------


class AdminAreaRead(BaseModel):
    pcode: str
    name: str
    level: int = Field(ge=1, le=3)
    parent_pcode: str | None
    admin1_pcode: str
    admin2_pcode: str | None


class AdminAreaList(BaseModel):
    items: list[AdminAreaRead]
    next_cursor: str | None


# -- assessments -----------------------------------------------------------------------------------


class IndividualsBySexAge(_In):
    """Individuals by sex and UNHCR age bracket; the ten brackets must add up to `individuals`."""

    female_0_4: Count
    female_5_11: Count
    female_12_17: Count
    female_18_59: Count
    female_60_plus: Count
    male_0_4: Count
    male_5_11: Count
    male_12_17: Count
    male_18_59: Count
    male_60_plus: Count


class Risk(StrEnum):
    flood = "flood"
    fire = "fire"
    eviction = "eviction"
    insecurity = "insecurity"
    disease_outbreak = "disease_outbreak"
    gender_based_violence = "gender_based_violence"
    overcrowding = "overcrowding"
    land_dispute = "land_dispute"
    other = "other"


class AssessmentData(_In):
    assessed_on: date
    households: Count
    individuals: Count
    individuals_by_sex_age: IndividualsBySexAge
    individuals_by_reason: dict[DisplacementReason, Count] = Field(
        description="Individuals by displacement reason; must add up to `individuals` (absent reasons count 0)."
    )
    coverage: dict[Sector, Coverage] = Field(default_factory=dict, description="Service coverage per sector.")
    priority_needs: list[Sector] = Field(default_factory=list, max_length=9, description="Ranked, most urgent first.")
    risks: list[Risk] = Field(default_factory=list, max_length=20)


class AssessmentCreate(AssessmentData):
    round_number: int = Field(ge=1, le=1000)


class AssessmentCorrection(AssessmentData):
    """A full replacement of the current version of a round's assessment (`PUT` with `If-Match`)."""


class AssessmentRead(BaseModel):
    id: uuid.UUID
    site_id: uuid.UUID
    round_number: int
    assessed_on: date
    households: int
    individuals: int
    individuals_by_sex_age: IndividualsBySexAge
    individuals_by_reason: dict[DisplacementReason, int]
    coverage: dict[Sector, Coverage]
    priority_needs: list[Sector]
    risks: list[Risk]
    version: int = Field(description="Correction number: 1 for the first recording.")
    recorded_by_org: str


class AssessmentList(BaseModel):
    items: list[AssessmentRead]
    next_cursor: str | None


# -- service activities ----------------------------------------------------------------------------


class ServiceActivityCreate(_In):
    organization: OrgCode | None = Field(default=None, description="Defaults to the caller's organisation.")
    sector: Sector
    activity: str = Field(min_length=1, max_length=100, pattern=r"^[a-z0-9][a-z0-9_.\-]*$", examples=["water_trucking"])
    start_date: date
    end_date: date | None = Field(default=None, description="Planned end, if known.")


class ServiceActivityUpdate(_In):
    activity: str | None = Field(default=None, min_length=1, max_length=100, pattern=r"^[a-z0-9][a-z0-9_.\-]*$")
    start_date: date | None = None
    end_date: date | None = None


class ServiceActivityEnd(_In):
    end_date: date | None = Field(default=None, description="Defaults to today (UTC).")


class ServiceActivityRead(BaseModel):
    id: uuid.UUID
    site_id: uuid.UUID
    organization: str
    sector: Sector
    activity: str
    start_date: date
    end_date: date | None
    status: ActivityStatus
    version: int
    recorded_by_org: str


class ServiceActivityList(BaseModel):
    items: list[ServiceActivityRead]
    next_cursor: str | None


# -- committees ------------------------------------------------------------------------------------


class CommitteeCreate(_In):
    admin1_pcode: Admin1Code = Field(examples=["ML09"])
    name: Text = Field(min_length=1, max_length=200)
    member_organizations: list[OrgCode] = Field(min_length=1, max_length=100)
    quorum: int = Field(ge=1, le=100, description="Approvals needed to validate a report.")


class CommitteeUpdate(_In):
    name: Text | None = Field(default=None, min_length=1, max_length=200)
    member_organizations: list[OrgCode] | None = Field(default=None, min_length=1, max_length=100)
    quorum: int | None = Field(default=None, ge=1, le=100)


class CommitteeRead(BaseModel):
    id: uuid.UUID
    admin1_pcode: str
    admin1_name: str | None
    name: str
    member_organizations: list[str]
    quorum: int
    version: int


class CommitteeList(BaseModel):
    items: list[CommitteeRead]
    next_cursor: str | None = Field(default=None, description="Always null: every committee fits one page.")


# -- activity reports ------------------------------------------------------------------------------


class ActivityReportSubmission(_In):
    key_figures: dict[FigureKey, Annotated[int, Field(ge=0, le=100_000_000)]] = Field(
        max_length=100, examples=[{"households_present": 412, "new_arrivals": 37, "water_points_functional": 6}]
    )
    narrative: Text = Field(default="", max_length=20_000)


class ActivityReportCreate(ActivityReportSubmission):
    period: Period = Field(examples=["2026-10"], description="The month reported on, `YYYY-MM`.")


class ReviewDecision(StrEnum):
    approve = "approve"
    reject = "reject"


class ActivityReportReview(_In):
    decision: ReviewDecision
    comment: Text | None = Field(default=None, max_length=5000, description="Required for a rejection.")


class ReportReviewRead(BaseModel):
    reviewer_org: str
    report_version: int
    decision: ReviewDecision
    comment: str | None
    reviewed_at: datetime


class ActivityReportRead(BaseModel):
    id: uuid.UUID
    site_id: uuid.UUID
    admin1_pcode: str
    period: str
    report_version: int = Field(description="Counts submissions: a resubmission starts a new one.")
    status: ReportStatus
    submitted_by_org: str
    submitted_at: datetime
    key_figures: dict[str, int]
    narrative: str
    approvals: list[str] = Field(description="Organisations that approved the current report version.")
    quorum: int | None = Field(description="Approvals the site's regional committee needs (null: no committee yet).")
    rejection_comment: str | None
    decided_at: datetime | None
    version: int
    reviews: list[ReportReviewRead] = Field(default_factory=list)


class ActivityReportList(BaseModel):
    items: list[ActivityReportRead]
    next_cursor: str | None
