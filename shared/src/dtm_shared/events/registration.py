"""Registration's events on `dtm.registration` (contract). No personal data: no names, phones or
document numbers; members carry only sex, date of birth, relationship and specific needs."""

from __future__ import annotations

from datetime import date
from typing import ClassVar
from uuid import UUID

from pydantic import BaseModel, ConfigDict

from dtm_shared.events.base import EventPayload, register
from dtm_shared.events.common import (
    DisplacementReason,
    HouseholdStatus,
    InactiveReason,
    PopulationGroup,
    Relationship,
    Sex,
    SpecificNeed,
)

TOPIC = "dtm.registration"


class MemberSnapshotV1(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    member_id: UUID
    sex: Sex
    date_of_birth: date
    date_of_birth_estimated: bool = False
    relationship: Relationship
    specific_needs: list[SpecificNeed] = []


class HouseholdSnapshotV1(EventPayload):
    """A household after the change; `aggregate_id` is the household id."""

    topic: ClassVar[str] = TOPIC

    registration_number: str
    population_group: PopulationGroup
    status: HouseholdStatus
    inactive_reason: InactiveReason | None = None
    site_id: UUID | None = None
    location_pcode: str
    origin_pcode: str | None = None
    displacement_reason: DisplacementReason
    displacement_date: date | None = None
    registration_date: date
    return_date: date | None = None
    country_of_asylum: str | None = None
    repatriation_date: date | None = None
    registered_by_org: str
    members: list[MemberSnapshotV1]
    # Added compatibly (optional): the admin1/admin2 roll-up of `location_pcode` and the date a
    # household became inactive.
    admin1_pcode: str | None = None
    admin2_pcode: str | None = None
    inactive_date: date | None = None


class HouseholdRegisteredV1(HouseholdSnapshotV1):
    event_type: ClassVar[str] = "dtm.household.registered.v1"


class HouseholdUpdatedV1(HouseholdSnapshotV1):
    event_type: ClassVar[str] = "dtm.household.updated.v1"


class HouseholdRelocatedV1(HouseholdSnapshotV1):
    event_type: ClassVar[str] = "dtm.household.relocated.v1"


class HouseholdReturnedV1(HouseholdSnapshotV1):
    event_type: ClassVar[str] = "dtm.household.returned.v1"


class HouseholdDeactivatedV1(HouseholdSnapshotV1):
    event_type: ClassVar[str] = "dtm.household.deactivated.v1"


register(
    HouseholdRegisteredV1,
    HouseholdUpdatedV1,
    HouseholdRelocatedV1,
    HouseholdReturnedV1,
    HouseholdDeactivatedV1,
)
