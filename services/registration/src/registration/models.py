"""Tables of the `registration` schema (SQLModel, own registry: never shared with another service).

New households, members, their history and outbox rows are written by the bulk path in
`repository.py` (multi-row INSERT and COPY); these classes serve reads and single changes."""

from __future__ import annotations

import uuid
from datetime import date, datetime

from sqlalchemy import Column, DateTime, String, func
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel


class Table(SQLModel, registry=registry()):
    pass


class SiteReplica(Table, table=True):
    """What registration knows of a site, from `dtm.sites` events."""

    __tablename__ = "site_replica"

    id: uuid.UUID = Field(primary_key=True)
    code: str
    location_pcode: str
    status: str
    version: int
    updated_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), server_default=func.now(), nullable=False)
    )


class Household(Table, table=True):
    __tablename__ = "households"

    id: uuid.UUID = Field(primary_key=True)
    number: int
    external_id: str | None = None
    registered_by_org: str
    population_group: str
    status: str = "active"
    inactive_reason: str | None = None
    inactive_date: date | None = None
    site_id: uuid.UUID | None = None
    location_pcode: str
    origin_pcode: str | None = None
    displacement_reason: str
    displacement_date: date | None = None
    registration_date: date
    return_date: date | None = None
    country_of_asylum: str | None = None
    repatriation_date: date | None = None
    head_name_key: str
    head_birth_date: date
    version: int = 1
    created_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), server_default=func.now(), nullable=False)
    )
    updated_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), server_default=func.now(), nullable=False)
    )


class Member(Table, table=True):
    __tablename__ = "members"

    id: uuid.UUID = Field(primary_key=True)
    household_id: uuid.UUID = Field(foreign_key="households.id")
    position: int
    given_name: str
    family_name: str
    sex: str
    date_of_birth: date
    date_of_birth_estimated: bool = False
    relationship: str
    specific_needs: list[str] = Field(default_factory=list, sa_column=Column(ARRAY(String), nullable=False))
    phone: str | None = None
    id_document_type: str | None = None
    id_document_number: str | None = None


class HouseholdHistory(Table, table=True):
    """Every change of a household as a dated fact: the non-PII snapshot after it."""

    __tablename__ = "household_history"

    household_id: uuid.UUID = Field(primary_key=True, foreign_key="households.id")
    version: int = Field(primary_key=True)
    event_type: str
    effective_date: date
    recorded_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), server_default=func.now(), nullable=False)
    )
    snapshot: dict[str, object] = Field(sa_column=Column(JSONB, nullable=False))


class DuplicateCandidate(Table, table=True):
    __tablename__ = "duplicate_candidates"

    id: uuid.UUID = Field(primary_key=True)
    household_a: uuid.UUID = Field(foreign_key="households.id")
    household_b: uuid.UUID = Field(foreign_key="households.id")
    reasons: list[str] = Field(sa_column=Column(ARRAY(String), nullable=False))
    name_similarity: float | None = None
    status: str = "pending"
    resolved_by_org: str | None = None
    resolved_by: str | None = None
    resolved_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=True))
    created_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), server_default=func.now(), nullable=False)
    )
