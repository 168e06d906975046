"""Tables of the `sites` schema (SQLModel, own registry: never shared with another service)."""

from __future__ import annotations

import uuid
from datetime import date, datetime

from sqlalchemy import Column, DateTime, func
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
