"""Alembic stairway (every migration up, down and up again) and schema-per-service isolation."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest

from dtm_cli.services import entry
from dtm_cli.stack import SERVICES, drop_database, provision_database, service_database_url, with_database
from dtm_shared.migrations import downgrade, upgrade
from tests.conftest import StackEnv

pytestmark = pytest.mark.integration


def tables(url: str, schema: str) -> set[str]:
    async def q() -> set[str]:
        conn = await asyncpg.connect(url)
        try:
            rows = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = $1", schema)
        finally:
            await conn.close()
        return {r[0] for r in rows}

    return asyncio.run(q())


@pytest.mark.parametrize("service", SERVICES)
def test_stairway_up_down_up(test_env: StackEnv, service: str) -> None:
    svc = entry(service)
    if not (svc.migrations_dir / "versions").is_dir():
        pytest.skip(f"{service} has no migrations yet")
    database = f"dtm_stairway_{uuid.uuid4().hex[:8]}"
    asyncio.run(provision_database(test_env.admin_url, database))
    url = service_database_url(service, with_database(test_env.admin_url, database))
    settings = test_env.settings(service, database_url=url)
    try:
        from alembic.script import ScriptDirectory

        from dtm_shared.migrations import alembic_config

        script = ScriptDirectory.from_config(alembic_config(svc.migrations_dir, settings))
        revisions = [r.revision for r in reversed(list(script.walk_revisions()))]
        assert revisions, "no revisions"
        for i, rev in enumerate(revisions):  # each step up, then down one, then up again
            upgrade(svc.migrations_dir, settings, rev)
            downgrade(svc.migrations_dir, settings, revisions[i - 1] if i else "base")
            upgrade(svc.migrations_dir, settings, rev)
        at_head = tables(url, service)
        assert "alembic_version" in at_head
        downgrade(svc.migrations_dir, settings, "base")
        assert tables(url, service) == {"alembic_version"}  # everything else removed
        upgrade(svc.migrations_dir, settings, "head")
        assert tables(url, service) == at_head
        # Nothing was created outside the service's own schema.
        others = [s for s in SERVICES if s != service]
        assert all(not tables(with_database(test_env.admin_url, database), o) for o in others)
    finally:
        asyncio.run(drop_database(test_env.admin_url, database))


async def test_a_service_role_cannot_touch_another_schema(migrated: StackEnv) -> None:
    conn = await asyncpg.connect(migrated.service_url("registration"))
    try:
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.fetch("SELECT * FROM sites.sites LIMIT 1")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("CREATE TABLE sites.intruder (id int)")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("CREATE TABLE public.intruder (id int)")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("CREATE SCHEMA intruder")
        # Its own schema is its own; the shared extensions are usable.
        await conn.execute("CREATE TEMP TABLE scratch (id int)")
        assert await conn.fetchval("SELECT current_schema()") == "registration"
        assert await conn.fetchval("SELECT extensions.similarity('Traoré', 'Traore')") > 0.3
    finally:
        await conn.close()
