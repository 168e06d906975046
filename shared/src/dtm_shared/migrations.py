"""Alembic per service, confined to the service's schema.

Each service keeps its migrations in `<service>/migrations/` whose `env.py` calls `run_env()`.
The version table lives in the service's schema (`version_table_schema`) and the connection's
search path is that schema only, so a migration cannot touch another service's tables.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import pool, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from dtm_shared.settings import ServiceSettings


def alembic_config(migrations_dir: Path, settings: ServiceSettings) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir))
    cfg.set_main_option("path_separator", "os")
    cfg.attributes["settings"] = settings
    return cfg


def upgrade(migrations_dir: Path, settings: ServiceSettings, revision: str = "head") -> None:
    command.upgrade(alembic_config(migrations_dir, settings), revision)


def downgrade(migrations_dir: Path, settings: ServiceSettings, revision: str = "base") -> None:
    command.downgrade(alembic_config(migrations_dir, settings), revision)


def run_env() -> None:
    """Body of every service's `migrations/env.py`."""
    from alembic import context

    settings: ServiceSettings = context.config.attributes["settings"]
    schema = settings.schema_name

    def do_run(connection: Connection) -> None:
        connection.execute(text(f'SET search_path TO "{schema}", extensions'))
        context.configure(
            connection=connection,
            target_metadata=None,
            version_table_schema=schema,
            include_schemas=False,
            transaction_per_migration=True,
        )
        with context.begin_transaction():
            context.run_migrations()

    async def run_async() -> None:
        engine = create_async_engine(settings.sqlalchemy_url, poolclass=pool.NullPool)
        async with engine.connect() as conn:
            await conn.run_sync(do_run)
            await conn.commit()
        await engine.dispose()

    if context.is_offline_mode():
        raise RuntimeError("offline migrations are not supported; run them against the database")
    asyncio.run(run_async())
