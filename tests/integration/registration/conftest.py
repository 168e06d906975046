"""Helpers of the registration tests: a valid household body, sites in the replica, raw SQL."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg
import pytest

from tests.conftest import StackEnv

WRITE = ("households:read", "households:write")
_seq = itertools.count(1)


def member(**kw: Any) -> dict[str, Any]:
    base = {
        "given_name": "Aminata",
        "family_name": f"Traoré-{uuid.uuid4().hex[:6]}",
        "sex": "female",
        "date_of_birth": "1985-03-02",
        "relationship": "head",
        "specific_needs": [],
    }
    base.update(kw)
    return base


def _origins() -> list[str]:
    from dtm_shared.pcodes import gazetteer

    return [a.pcode for a in gazetteer().areas if a.level == 3]


def household(**kw: Any) -> dict[str, Any]:
    """A valid host-community IDP household with a unique head name, a random origin commune and
    birth date (like real data: no accidental duplicates)."""
    import random

    n = next(_seq)
    unique = uuid.uuid4().hex[:8]
    origins = _origins()
    base: dict[str, Any] = {
        "external_id": None,
        "population_group": "idp",
        "site_id": None,
        "location_pcode": "ML090106",
        "origin_pcode": random.choice(origins),
        "displacement_reason": "armed_conflict",
        "displacement_date": "2023-06-10",
        "registration_date": "2024-02-01",
        "members": [
            member(
                given_name=f"Head{unique}",
                family_name=f"Family{n}x{unique}",
                date_of_birth=f"{random.randint(1940, 2000)}-{random.randint(1, 12):02d}-{random.randint(1, 28):02d}",
            ),
            member(given_name=f"Child{unique}", sex="male", date_of_birth=None, age_years=7, relationship="child"),
        ],
    }
    base.update(kw)
    return base


@pytest.fixture
async def db(migrated: StackEnv) -> AsyncIterator[asyncpg.Connection]:
    """A connection as the registration role, in its schema."""
    settings = migrated.settings("registration")
    conn = await asyncpg.connect(settings.asyncpg_url, server_settings={"search_path": "registration,extensions"})
    try:
        yield conn
    finally:
        await conn.close()


SiteFactory = Callable[..., Awaitable[uuid.UUID]]


@pytest.fixture
def replica_site(db: asyncpg.Connection) -> SiteFactory:
    """Put a site straight into the replica (tests that are not about the consumer)."""

    async def make(location_pcode: str = "ML090106", status: str = "open", version: int = 1) -> uuid.UUID:
        site_id = uuid.uuid4()
        await db.execute(
            "INSERT INTO site_replica (id, code, location_pcode, status, version) VALUES ($1, $2, $3, $4, $5)",
            site_id,
            f"T-{site_id.hex[:8]}",
            location_pcode,
            status,
            version,
        )
        return site_id

    return make


async def read_topic(env: StackEnv, base: str, until: Callable[[list[Any]], bool], timeout: float = 30.0) -> list[Any]:
    """Every record of the session's `<prefix><base>` topic from the start, until `until(records)`."""
    import asyncio

    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        f"{env.topic_prefix}{base}",
        bootstrap_servers=env.kafka_bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    records: list[Any] = []
    try:
        deadline = asyncio.get_running_loop().time() + timeout
        while asyncio.get_running_loop().time() < deadline:
            batches = await consumer.getmany(timeout_ms=300)
            for recs in batches.values():
                records.extend(recs)
            if until(records):
                return records
        raise AssertionError(f"condition not met on {base} within {timeout}s ({len(records)} records)")
    finally:
        await consumer.stop()
