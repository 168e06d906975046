"""Tables of the `sites` schema (SQLModel, own registry: never shared with another service)."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import Column, DateTime, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel


class Table(SQLModel, registry=registry()):
    pass


class Site(Table, table=True):
    __tablename__ = "sites"

    id: uuid.UUID = Field(primary_key=True)
    code: str = Field(unique=True)
    name: str
    site_type: str
    location_pcode: str = Field(index=True)
    latitude: float | None = None
    longitude: float | None = None
    capacity_households: int | None = None
    management_agency: str | None = None
    opened_on: date
    status: str = "open"
    closed_on: date | None = None
    closure_reason: str | None = None
    version: int = 1
    created_by_org: str
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), server_default=func.now(), nullable=False))
    updated_at: datetime = Field(sa_column=Column(DateTime(timezone=True), server_default=func.now(), nullable=False))


def _jsonb() -> Column[Any]:
    return Column(JSONB, nullable=False)


def _timestamp() -> Column[datetime]:
    return Column(DateTime(timezone=True), server_default=func.now(), nullable=False)


class Assessment(Table, table=True):
    """The current version of a site's assessment for a round (`version` = correction number)."""

    __tablename__ = "assessments"

    id: uuid.UUID = Field(primary_key=True)
    site_id: uuid.UUID = Field(foreign_key="sites.id")
    round_number: int
    assessed_on: date
    households: int
    individuals: int
    individuals_by_sex_age: dict[str, int] = Field(sa_column=_jsonb())
    individuals_by_reason: dict[str, int] = Field(sa_column=_jsonb())
    coverage: dict[str, str] = Field(sa_column=_jsonb())
    priority_needs: list[str] = Field(sa_column=_jsonb())
    risks: list[str] = Field(sa_column=_jsonb())
    version: int = 1
    recorded_by_org: str
    created_at: datetime = Field(sa_column=_timestamp())
    updated_at: datetime = Field(sa_column=_timestamp())


class ServiceActivity(Table, table=True):
    """Who does what where: an organisation's activity in a sector at a site, over a period."""

    __tablename__ = "service_activities"

    id: uuid.UUID = Field(primary_key=True)
    site_id: uuid.UUID = Field(foreign_key="sites.id")
    organization: str
    sector: str
    activity: str
    start_date: date
    end_date: date | None = None
    status: str
    version: int = 1
    recorded_by_org: str
    created_at: datetime = Field(sa_column=_timestamp())
    updated_at: datetime = Field(sa_column=_timestamp())


class Committee(Table, table=True):
    """A regional committee: one per admin1, member organisations and the approvals quorum."""

    __tablename__ = "committees"

    id: uuid.UUID = Field(primary_key=True)
    admin1_pcode: str = Field(unique=True)
    name: str
    member_organizations: list[str] = Field(sa_column=_jsonb())
    quorum: int
    version: int = 1
    created_at: datetime = Field(sa_column=_timestamp())
    updated_at: datetime = Field(sa_column=_timestamp())


class ActivityReport(Table, table=True):
    """A site's monthly activity report; `report_version` counts submissions, `version` every change."""

    __tablename__ = "activity_reports"

    id: uuid.UUID = Field(primary_key=True)
    site_id: uuid.UUID = Field(foreign_key="sites.id")
    admin1_pcode: str
    period: str
    report_version: int = 1
    status: str
    submitted_by_org: str
    submitted_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    key_figures: dict[str, int] = Field(sa_column=_jsonb())
    narrative: str = ""
    approvals: list[str] = Field(sa_column=_jsonb())
    rejection_comment: str | None = None
    decided_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=True))
    version: int = 1
    created_at: datetime = Field(sa_column=_timestamp())
    updated_at: datetime = Field(sa_column=_timestamp())


class ReportReview(Table, table=True):
    """One organisation's decision on one submission (report version) of a report."""

    __tablename__ = "report_reviews"

    id: uuid.UUID = Field(primary_key=True)
    report_id: uuid.UUID = Field(foreign_key="activity_reports.id")
    report_version: int
    reviewer_org: str
    reviewer_sub: str
    decision: str
    comment: str | None = None
    created_at: datetime = Field(sa_column=_timestamp())
