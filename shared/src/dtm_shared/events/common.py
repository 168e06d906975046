"""Vocabularies shared by the event contracts and the APIs (DESIGN §2)."""

from __future__ import annotations

from enum import StrEnum


class PopulationGroup(StrEnum):
    idp = "idp"
    idp_returnee = "idp_returnee"
    repatriate = "repatriate"


class DisplacementReason(StrEnum):
    armed_conflict = "armed_conflict"
    community_tension = "community_tension"
    natural_disaster = "natural_disaster"
    other = "other"


class HouseholdStatus(StrEnum):
    active = "active"
    inactive = "inactive"


class InactiveReason(StrEnum):
    duplicate = "duplicate"
    departed = "departed"
    deceased = "deceased"
    relocated_abroad = "relocated_abroad"
    other = "other"


class Sex(StrEnum):
    female = "female"
    male = "male"


class Relationship(StrEnum):
    head = "head"
    spouse = "spouse"
    child = "child"
    parent = "parent"
    sibling = "sibling"
    grandchild = "grandchild"
    other_relative = "other_relative"
    non_relative = "non_relative"


class SpecificNeed(StrEnum):
    disability = "disability"
    serious_medical_condition = "serious_medical_condition"
    unaccompanied_child = "unaccompanied_child"
    separated_child = "separated_child"
    older_person_at_risk = "older_person_at_risk"
    single_parent = "single_parent"
    pregnant_or_lactating = "pregnant_or_lactating"
    woman_at_risk = "woman_at_risk"
    other = "other"


class SiteType(StrEnum):
    planned_site = "planned_site"
    spontaneous_site = "spontaneous_site"
    collective_centre = "collective_centre"
    reception_centre = "reception_centre"


class SiteStatus(StrEnum):
    open = "open"
    closed = "closed"


class Sector(StrEnum):
    wash = "wash"
    shelter = "shelter"
    health = "health"
    education = "education"
    food_security = "food_security"
    nutrition = "nutrition"
    protection = "protection"
    livelihoods = "livelihoods"
    cccm = "cccm"


class Coverage(StrEnum):
    none = "none"
    partial = "partial"
    adequate = "adequate"


class ActivityStatus(StrEnum):
    planned = "planned"
    ongoing = "ongoing"
    ended = "ended"


class ReportStatus(StrEnum):
    submitted = "submitted"
    validated = "validated"
    rejected = "rejected"


AGE_BRACKETS = ("0_4", "5_11", "12_17", "18_59", "60_plus")
