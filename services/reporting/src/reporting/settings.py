from __future__ import annotations

from pydantic import Field

from dtm_shared.settings import ServiceSettings


class ReportingSettings(ServiceSettings):
    service_name: str = "reporting"
    consumer_group: str = Field(default="reporting", description="Consumer group of the live projection.")
    suppression_threshold: int = Field(
        default=5,
        ge=1,
        description="Export cells with fewer individuals than this are suppressed for callers without detail "
        "rights (scopes `households:pii` or `admin`).",
    )
    result_cache_size: int = Field(
        default=1024, ge=0, description="Population results kept per process (0: none); keyed by data version."
    )
    registration_api_url: str = Field(default="http://127.0.0.1:8001", description="For `dtm verify`.")
    sites_api_url: str = Field(default="http://127.0.0.1:8002", description="For `dtm verify`.")
    rebuild_grace_seconds: float = Field(
        default=2.0, description="After a switch-over, wait this long before dropping the old generation."
    )
    verify_token: str | None = Field(
        default=None, description="Bearer token for `dtm verify` (households:read sites:read)."
    )
    verify_private_key_file: str | None = Field(
        default=None, description="Or a (dev) private key `dtm verify` mints its token from."
    )
