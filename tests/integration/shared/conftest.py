from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import date

import asyncpg
import pytest

from dtm_shared.events.sites import SiteOpenedV1
from dtm_shared.messaging.tables import CONSUMER_DDL, OUTBOX_DDL
from dtm_shared.settings import ServiceSettings
from tests.conftest import StackEnv


@pytest.fixture(scope="session")
def probe(migrated: StackEnv) -> ServiceSettings:
    """A scratch schema `probe` owned by the sites role, with the messaging tables: the shared
    plumbing is tested on its own, apart from any service's tables."""
    from dtm_cli.stack import with_database

    async def setup() -> None:
        admin = await asyncpg.connect(with_database(migrated.admin_url, migrated.database))
        await admin.execute("CREATE SCHEMA IF NOT EXISTS probe AUTHORIZATION sites")
        await admin.close()
        conn = await asyncpg.connect(migrated.service_url("sites"), server_settings={"search_path": "probe"})
        for ddl in OUTBOX_DDL + CONSUMER_DDL:
            await conn.execute(ddl)
        await conn.execute(
            "CREATE TABLE projection (subject text PRIMARY KEY, version int NOT NULL, applied int NOT NULL)"
        )
        await conn.close()

    asyncio.run(setup())
    return ServiceSettings(
        service_name="probe",
        database_url=migrated.service_url("sites"),
        kafka_bootstrap=migrated.kafka_bootstrap,
        topic_prefix=migrated.topic_prefix,
        outbox_poll_seconds=0.1,
        outbox_shards=4,
    )


@pytest.fixture
async def own_topics(probe: ServiceSettings) -> ServiceSettings:
    """Settings with topics of this test's own, so other tests' events don't reach its consumer."""
    from dtm_cli.stack import create_topics

    settings = probe.model_copy(update={"topic_prefix": f"{probe.topic_prefix}{uuid.uuid4().hex[:6]}."})
    await create_topics(settings.kafka_bootstrap, prefix=settings.topic_prefix, partitions=2)
    return settings


@pytest.fixture
async def conn(probe: ServiceSettings) -> AsyncIterator[asyncpg.Connection]:
    c = await asyncpg.connect(probe.asyncpg_url, server_settings={"search_path": "probe"})
    await c.execute("TRUNCATE outbox, inbox, consumer_positions, dead_letters, projection")
    yield c
    await c.close()


def site_event(site_id: uuid.UUID, version: int, name: str = "Site") -> SiteOpenedV1:
    return SiteOpenedV1(
        aggregate_id=site_id,
        version=version,
        effective_date=date(2024, 1, version),
        code=f"C-{site_id.hex[:6]}",
        name=name,
        site_type="planned_site",
        location_pcode="ML090101",
        opened_on=date(2024, 1, 1),
        status="open",
    )
