"""Settings common to every service, from `DTM_*` environment variables (pydantic-settings)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ServiceSettings(BaseSettings):
    """Each service subclasses this; `service_name` is also its Postgres schema and role."""

    model_config = SettingsConfigDict(env_prefix="DTM_", env_file=None, extra="ignore")

    service_name: str = "dtm"
    database_url: str = Field(
        default="postgresql://postgres@127.0.0.1:5433/dtm",
        description="The service's own role: postgresql://ROLE:PASSWORD@HOST:PORT/DB",
    )
    db_pool_size: int = 10
    db_max_overflow: int = 10
    kafka_bootstrap: str = "127.0.0.1:9092"
    topic_prefix: str = Field(default="", description="Prefix for every topic and consumer group (tests).")

    jwt_issuer: str = "dtm-local"
    jwt_audience: str = "dtm-platform"
    jwt_algorithms: list[str] = ["RS256"]
    jwt_public_key_file: Path | None = None
    jwks_url: str | None = None
    jwt_leeway_seconds: int = 30

    log_level: str = "INFO"
    log_json: bool = True

    outbox_shards: int = 8
    outbox_batch_size: int = 500
    outbox_poll_seconds: float = 0.5
    outbox_retention_hours: int = 168

    consumer_max_attempts: int = 3
    consumer_batch_size: int = 500

    max_body_bytes: int = 20 * 1024 * 1024

    def topic(self, base: str) -> str:
        return f"{self.topic_prefix}{base}"

    @property
    def schema_name(self) -> str:
        return self.service_name

    @property
    def sqlalchemy_url(self) -> str:
        url = self.database_url
        for scheme in ("postgresql+asyncpg://", "postgresql://", "postgres://"):
            if url.startswith(scheme):
                return "postgresql+asyncpg://" + url[len(scheme) :]
        return url

    @property
    def asyncpg_url(self) -> str:
        return self.sqlalchemy_url.replace("postgresql+asyncpg://", "postgresql://", 1)
