"""Async database access bound to the service's own schema (SQLAlchemy/SQLModel over asyncpg)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession

from dtm_shared.settings import ServiceSettings


def create_engine(settings: ServiceSettings, server_settings: dict[str, str] | None = None) -> AsyncEngine:
    """An engine whose connections only see the service's schema (and shared extensions);
    `server_settings` adds session settings (e.g. planner settings of a read path)."""
    return create_async_engine(
        settings.sqlalchemy_url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_pre_ping=True,
        connect_args={
            "server_settings": {
                "search_path": f"{settings.schema_name},extensions",
                "application_name": settings.service_name,
                **(server_settings or {}),
            }
        },
    )


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False, autoflush=False)
