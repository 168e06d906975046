"""API models of the reporting service (named: generated clients read these names)."""

from __future__ import annotations

import uuid
from datetime import date, datetime

from pydantic import BaseModel, Field

from dtm_shared.events.common import AGE_BRACKETS

SEX_AGE_COLUMNS = tuple(f"{sex}_{bracket}" for sex in ("female", "male") for bracket in AGE_BRACKETS)


class Freshness(BaseModel):
    last_event_at: datetime | None = Field(description="Kafka time of the last event applied to the read models.")
    lag_seconds: float | None = Field(
        description="0 when the consumer had applied everything it had seen at its last batch; otherwise the "
        "seconds between now and the last applied event."
    )
    pending_events: int = Field(description="Events known to be waiting at the consumer's last batch.")


class IndicatorMeta(BaseModel):
    as_of: date
    freshness: Freshness


class Counts(BaseModel):
    households: int | None = Field(
        default=None, description="Null when the row is broken down (or filtered) by sex or age group."
    )
    individuals: int
    female: int
    male: int
    female_0_4: int
    female_5_11: int
    female_12_17: int
    female_18_59: int
    female_60_plus: int
    male_0_4: int
    male_5_11: int
    male_12_17: int
    male_18_59: int
    male_60_plus: int


class PopulationRow(Counts):
    admin1: str | None = None
    admin1_name: str | None = None
    admin2: str | None = None
    admin2_name: str | None = None
    admin3: str | None = None
    admin3_name: str | None = None
    site: uuid.UUID | None = None
    site_code: str | None = None
    site_name: str | None = None
    population_group: str | None = None
    displacement_reason: str | None = None
    origin_admin1: str | None = None
    origin_admin1_name: str | None = None
    country_of_asylum: str | None = None
    sex: str | None = None
    age_group: str | None = None


class PopulationResponse(IndicatorMeta):
    group_by: list[str]
    filters: dict[str, list[str]]
    items: list[PopulationRow]
    total: Counts


class GroupFigures(BaseModel):
    population_group: str
    households: int
    individuals: int


class SummaryResponse(IndicatorMeta):
    population_groups: list[GroupFigures]
    households: int
    individuals: int
    open_sites: int
    latest_round: int | None
    sites_assessed_in_latest_round: int
    organizations_active: int


class ReasonShare(BaseModel):
    displacement_reason: str
    individuals: int
    households: int
    share: float = Field(description="Share of the area's individuals, 0..1.")


class AreaReasons(BaseModel):
    pcode: str
    name: str | None
    level: str
    individuals: int
    main_reason: str | None
    reasons: list[ReasonShare]


class DisplacementReasonsResponse(IndicatorMeta):
    level: str
    items: list[AreaReasons]


class AreaFigures(BaseModel):
    pcode: str
    name: str | None
    households: int
    individuals: int
    female: int
    male: int


class CountryFigures(BaseModel):
    country_of_asylum: str | None
    households: int
    individuals: int
    areas: list[AreaFigures]


class ReturnsResponse(IndicatorMeta):
    level: str
    returnees: list[AreaFigures]
    returnees_total: int
    repatriates: list[CountryFigures]
    repatriates_total: int


class SiteIndicator(BaseModel):
    site_id: uuid.UUID
    code: str
    name: str
    admin1: str
    admin2: str
    admin3: str
    status_at_date: str
    registered_households: int
    registered_individuals: int
    assessed_households: int | None
    assessed_individuals: int | None
    individuals_difference: int | None = Field(description="Registered minus latest assessed individuals.")
    capacity_households: int | None
    occupancy: float | None = Field(description="Registered households / capacity.")
    last_assessed_on: date | None
    last_assessment_round: int | None
    latest_report_period: str | None
    latest_report_status: str | None


class SiteIndicatorsResponse(IndicatorMeta):
    items: list[SiteIndicator]


class ServiceGap(BaseModel):
    site_id: uuid.UUID
    site_code: str
    site_name: str
    admin1: str
    admin2: str
    sector: str
    individuals: int


class ServiceOverlap(BaseModel):
    site_id: uuid.UUID
    site_code: str | None
    site_name: str | None
    sector: str
    activity: str
    organizations: list[str]
    activity_ids: list[uuid.UUID]
    overlap_from: date
    overlap_to: date | None


class ServiceGapsResponse(IndicatorMeta):
    gaps: list[ServiceGap]
    overlaps: list[ServiceOverlap]


class TimeseriesPoint(BaseModel):
    period: str = Field(description="YYYY-MM or YYYY-Qn")
    as_of: date
    items: list[PopulationRow]


class TimeseriesResponse(IndicatorMeta):
    interval: str
    group_by: list[str]
    points: list[TimeseriesPoint]


class ComplianceRow(BaseModel):
    period: str
    admin1: str
    admin1_name: str | None
    open_sites: int
    validated_reports: int
    share: float | None


class ReportComplianceResponse(IndicatorMeta):
    items: list[ComplianceRow]
