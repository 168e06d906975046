"""API models of the sites service (named: generated clients use these names)."""

from __future__ import annotations

import uuid
from datetime import date

from pydantic import BaseModel, ConfigDict, Field

from dtm_shared.events.common import SiteStatus, SiteType


class SiteCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str = Field(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9_.\-]+$", examples=["MLI-S-001"])
    name: str = Field(min_length=1, max_length=200)
    site_type: SiteType
    location_pcode: str = Field(description="Admin3 (commune) P-code, e.g. ML090101", examples=["ML090106"])
    latitude: float | None = Field(default=None, ge=-90, le=90)
    longitude: float | None = Field(default=None, ge=-180, le=180)
    capacity_households: int | None = Field(default=None, ge=0, le=1_000_000)
    management_agency: str | None = Field(default=None, max_length=200)
    opened_on: date


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
