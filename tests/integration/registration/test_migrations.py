"""The registration migrations go up, down and up again on a fresh database ("stairway"), and stay
in the registration schema."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from tests.conftest import fresh_env

pytestmark = pytest.mark.integration


def test_upgrade_downgrade_upgrade(tmp_path) -> None:
    from dtm_cli.services import entry
    from dtm_shared.migrations import downgrade, upgrade

    svc = entry("registration")
    with fresh_env(tmp_path / "keys", migrate=False) as env:
        settings = env.settings("registration")

        async def tables() -> set[tuple[str, str]]:
            conn = await asyncpg.connect(settings.asyncpg_url)
            try:
                rows = await conn.fetch(
                    "SELECT table_schema, table_name FROM information_schema.tables "
                    "WHERE table_schema NOT IN ('pg_catalog', 'information_schema')"
                )
                return {(r[0], r[1]) for r in rows}
            finally:
                await conn.close()

        upgrade(svc.migrations_dir, settings)
        first = asyncio.run(tables())
        assert {t for s, t in first if s == "registration"} >= {
            "households",
            "members",
            "household_history",
            "duplicate_candidates",
            "idempotency_keys",
            "site_replica",
            "outbox",
            "inbox",
            "consumer_positions",
            "dead_letters",
            "alembic_version",
        }
        assert {s for s, _ in first} <= {"registration", "extensions"}
        downgrade(svc.migrations_dir, settings)
        assert {t for s, t in asyncio.run(tables()) if s == "registration"} == {"alembic_version"}
        upgrade(svc.migrations_dir, settings)
        assert asyncio.run(tables()) == first
