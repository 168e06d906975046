"""API models of the registration service (named: generated clients use these names)."""

from __future__ import annotations

import uuid
from datetime import date
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

from dtm_shared.events.common import (
    DisplacementReason,
    HouseholdStatus,
    InactiveReason,
    PopulationGroup,
    Relationship,
    Sex,
    SpecificNeed,
)

# Free text never holds control characters (Postgres refuses NUL in text: a 422, never a 500).
Text = r"^[^\x00-\x1f\x7f]*$"
Name = Annotated[str, Field(min_length=1, max_length=100, pattern=Text)]
Phone = Annotated[str, Field(min_length=6, max_length=20, pattern=r"^\+?[0-9][0-9 ]{4,18}[0-9]$")]
PCode = Annotated[str, Field(min_length=4, max_length=12, pattern=r"^[A-Z]{2}[0-9]{2,10}$", examples=["ML090106"])]
ISO3 = Annotated[str, Field(pattern=r"^[A-Z]{3}$", description="ISO 3166-1 alpha-3", examples=["BFA"])]


class MemberCreate(BaseModel):
    """A person of the household. Give `date_of_birth`, or `age_years` when only an age is known
    (an estimated date of birth is then derived from the registration date)."""

    model_config = ConfigDict(extra="forbid")

    given_name: Name
    family_name: Name
    sex: Sex
    date_of_birth: date | None = None
    age_years: int | None = Field(default=None, ge=0, le=120)
    relationship: Relationship
    specific_needs: list[SpecificNeed] = Field(default_factory=list, max_length=9)
    phone: Phone | None = None
    id_document_type: str | None = Field(
        default=None, min_length=1, max_length=40, pattern=Text, examples=["national_id"]
    )
    id_document_number: str | None = Field(default=None, min_length=1, max_length=60, pattern=Text)


class MemberUpdate(MemberCreate):
    """A member in an update: `id` keeps an existing member (omit it for a new one)."""

    id: uuid.UUID | None = None


class HouseholdCreate(BaseModel):
    """A household to register: at a site (`site_id`: its P-code becomes the location) or in a host
    community (`location_pcode`, admin3)."""

    model_config = ConfigDict(extra="forbid")

    external_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=100,
        pattern=Text,
        description="The registering system's own id (idempotency).",
    )
    population_group: PopulationGroup
    site_id: uuid.UUID | None = None
    location_pcode: PCode | None = Field(default=None, description="Admin3 (commune) P-code of a host community")
    origin_pcode: PCode | None = Field(default=None, description="Admin2 or admin3 P-code of origin")
    displacement_reason: DisplacementReason
    displacement_date: date | None = None
    registration_date: date
    return_date: date | None = Field(default=None, description="Required for `idp_returnee`")
    country_of_asylum: ISO3 | None = Field(default=None, description="Required for `repatriate`")
    repatriation_date: date | None = Field(default=None, description="Required for `repatriate`")
    members: list[MemberCreate] = Field(min_length=1, max_length=50)


class HouseholdUpdate(BaseModel):
    """Fields to change (absent fields keep their value); `members`, when given, is the full new
    list. The location changes through `relocateHousehold`, the group through
    `recordHouseholdReturn`, the status through `deactivateHousehold`."""

    model_config = ConfigDict(extra="forbid")

    external_id: str | None = Field(default=None, min_length=1, max_length=100, pattern=Text)
    origin_pcode: PCode | None = None
    displacement_reason: DisplacementReason | None = None
    displacement_date: date | None = None
    registration_date: date | None = None
    return_date: date | None = None
    country_of_asylum: ISO3 | None = None
    repatriation_date: date | None = None
    members: list[MemberUpdate] | None = Field(default=None, min_length=1, max_length=50)


class HouseholdRelocation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    site_id: uuid.UUID | None = None
    location_pcode: PCode | None = None
    effective_date: date


class HouseholdReturn(BaseModel):
    """An `idp` returns: it becomes `idp_returnee` at the location, on the date."""

    model_config = ConfigDict(extra="forbid")

    site_id: uuid.UUID | None = None
    location_pcode: PCode | None = None
    return_date: date


class HouseholdDeactivation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: InactiveReason
    effective_date: date


class MemberRead(BaseModel):
    """Names, phone and document number are null (`pii_redacted`) unless the caller may see them."""

    id: uuid.UUID
    given_name: str | None
    family_name: str | None
    sex: Sex
    date_of_birth: date
    date_of_birth_estimated: bool
    relationship: Relationship
    specific_needs: list[SpecificNeed]
    phone: str | None
    id_document_type: str | None
    id_document_number: str | None


class HouseholdRead(BaseModel):
    id: uuid.UUID
    registration_number: str = Field(examples=["MLI-HH-000123"])
    external_id: str | None
    registered_by_org: str
    population_group: PopulationGroup
    status: HouseholdStatus
    inactive_reason: InactiveReason | None
    inactive_date: date | None
    site_id: uuid.UUID | None
    location_pcode: str
    admin1_pcode: str
    admin2_pcode: str
    admin3_pcode: str
    origin_pcode: str | None
    displacement_reason: DisplacementReason
    displacement_date: date | None
    registration_date: date
    return_date: date | None
    country_of_asylum: str | None
    repatriation_date: date | None
    version: int
    pii_redacted: bool
    members: list[MemberRead]


class HouseholdPage(BaseModel):
    items: list[HouseholdRead]
    next_cursor: str | None


class BatchItemStatus(StrEnum):
    created = "created"
    existing = "existing"
    rejected = "rejected"


class BatchItemError(BaseModel):
    loc: list[str | int]
    msg: str


class HouseholdBatchItemResult(BaseModel):
    index: int
    status: BatchItemStatus
    external_id: str | None = None
    household_id: uuid.UUID | None = None
    registration_number: str | None = None
    errors: list[BatchItemError] = Field(default_factory=list)


class HouseholdBatchResult(BaseModel):
    created: int
    existing: int
    rejected: int
    items: list[HouseholdBatchItemResult]


# The batch is read leniently (each item is validated on its own so that one bad item rejects only
# itself), but documented as a list of `HouseholdCreate` for generated clients.
LenientHouseholdList = Annotated[
    list[Any],
    WithJsonSchema(
        {
            "type": "array",
            "items": {"$ref": "#/components/schemas/HouseholdCreate"},
            "maxItems": 5000,
            "title": "Households",
        }
    ),
]


class HouseholdBatchCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    households: LenientHouseholdList = Field(description="Up to 5,000 households (413 above).")


class DuplicateReason(StrEnum):
    phone = "phone"
    document = "document"
    name = "name"


class DuplicateStatus(StrEnum):
    pending = "pending"
    duplicate = "duplicate"
    distinct = "distinct"


class DuplicateDecision(StrEnum):
    duplicate = "duplicate"
    distinct = "distinct"


class DuplicateHousehold(BaseModel):
    """One side of a candidate pair; `head_name` is null unless the caller may see it."""

    id: uuid.UUID
    registration_number: str
    registered_by_org: str
    population_group: PopulationGroup
    status: HouseholdStatus
    location_pcode: str
    origin_pcode: str | None
    registration_date: date
    members: int
    head_sex: Sex
    head_date_of_birth: date
    head_name: str | None


class DuplicateCandidateRead(BaseModel):
    id: uuid.UUID
    status: DuplicateStatus
    reasons: list[DuplicateReason]
    name_similarity: float | None
    older: DuplicateHousehold
    newer: DuplicateHousehold
    resolved_by_org: str | None


class DuplicateCandidatePage(BaseModel):
    items: list[DuplicateCandidateRead]
    next_cursor: str | None


class DuplicateResolution(BaseModel):
    model_config = ConfigDict(extra="forbid")

    decision: DuplicateDecision
    effective_date: date | None = Field(default=None, description="For `duplicate`: the deactivation date (today)")


class HouseholdHistoryEntry(BaseModel):
    version: int
    event_type: str
    effective_date: date
    snapshot: dict[str, Any]
