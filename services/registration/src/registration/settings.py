from __future__ import annotations

from dtm_shared.settings import ServiceSettings


class RegistrationSettings(ServiceSettings):
    service_name: str = "registration"
    #: Most households accepted by one `registerHouseholdsBatch` request (413 above).
    batch_max_households: int = 5000
    #: Idempotency keys are answered from storage for at least this long.
    idempotency_retention_hours: int = 48
    #: Prefix of the human-readable registration numbers (`MLI-HH-000123`).
    registration_number_prefix: str = "MLI-HH-"
    #: Head-of-household name similarity (pg_trgm) at or above which a pair is a candidate.
    duplicate_name_similarity: float = 0.55
    #: Birth dates of the two heads within this many days (with the same origin) for a name match.
    duplicate_birth_window_days: int = 366
    #: The Kafka consumer group of the sites replica.
    sites_consumer_group: str = "registration-sites"
