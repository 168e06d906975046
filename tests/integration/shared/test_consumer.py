"""The idempotent consumer against real Postgres and Kafka."""

from __future__ import annotations

import uuid

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from dtm_shared.db import create_engine, create_sessionmaker
from dtm_shared.events import CloudEvent, EventPayload
from dtm_shared.messaging.consumer import EventConsumer
from dtm_shared.settings import ServiceSettings
from tests.conftest import eventually, running
from tests.integration.shared.conftest import site_event

pytestmark = pytest.mark.integration

POISON = "poison"


async def project(session: AsyncSession, event: CloudEvent, payload: EventPayload) -> None:
    """A tiny projection: keeps the newest version per subject and counts applications."""
    if getattr(payload, "name", "") == POISON:
        raise RuntimeError("cannot project this one")
    await session.execute(
        text(
            "INSERT INTO projection (subject, version, applied) VALUES (:s, :v, 1) "
            "ON CONFLICT (subject) DO UPDATE SET version = EXCLUDED.version, applied = projection.applied + 1 "
            "WHERE projection.version < EXCLUDED.version"
        ),
        {"s": event.subject, "v": payload.version},
    )


async def publish(settings: ServiceSettings, events: list[CloudEvent], raw: list[tuple[bytes, list]] = ()) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, enable_idempotence=True, acks="all")
    await producer.start()
    try:
        for e in events:
            await producer.send_and_wait(
                settings.topic("dtm.sites"), e.value(), key=e.subject.encode(), headers=e.headers()
            )
        for value, headers in raw:
            await producer.send_and_wait(settings.topic("dtm.sites"), value, key=b"raw", headers=headers)
    finally:
        await producer.stop()


def cloud(payload) -> CloudEvent:
    return CloudEvent(
        type=payload.event_type, source="sites", subject=str(payload.aggregate_id), data=payload.model_dump(mode="json")
    )


async def test_duplicates_and_stale_versions_are_harmless_and_poison_goes_to_dlq(
    own_topics: ServiceSettings, conn
) -> None:
    probe = own_topics
    group = f"probe-{uuid.uuid4().hex[:6]}"
    a, b, c = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    v1, v2 = cloud(site_event(a, 1)), cloud(site_event(a, 2))
    poison = cloud(site_event(c, 1, name=POISON))
    events = [v1, v2, v2, v1, cloud(site_event(b, 1)), poison, cloud(site_event(b, 2))]
    garbage = [(b"{}", [("ce_id", b"nope")])]  # not a CloudEvent at all
    await publish(probe, events, garbage)

    engine = create_engine(probe)
    consumer = EventConsumer(
        probe, create_sessionmaker(engine), group=group, topics=["dtm.sites"], handlers={"dtm.site.opened.v1": project}
    )
    async with running(consumer.run(), consumer.stop):

        async def caught_up() -> bool:
            return await conn.fetchval("SELECT version FROM projection WHERE subject = $1", str(b)) == 2

        await eventually(caught_up)
        await eventually(lambda: _count(conn, "dead_letters", 2))
    await engine.dispose()

    rows = {r["subject"]: (r["version"], r["applied"]) for r in await conn.fetch("SELECT * FROM projection")}
    assert rows[str(a)] == (2, 2)  # v1 then v2 applied; the repeated v2 and the stale v1 changed nothing
    assert rows[str(b)] == (2, 2)
    assert str(c) not in rows
    # Repeated event ids were recognised by the inbox; the dead-lettered one is recorded too (so a
    # redelivery is skipped), the garbage without a valid id is not.
    assert await conn.fetchval("SELECT count(*) FROM inbox") == 5
    assert await conn.fetchval("SELECT count(*) FROM inbox WHERE event_id = $1", poison.id) == 1
    dead = await conn.fetch("SELECT event_id, error, attempts FROM dead_letters ORDER BY id")
    assert {d["event_id"] for d in dead} == {str(poison.id), "nope"}
    poisoned = next(d for d in dead if d["event_id"] == str(poison.id))
    assert poisoned["attempts"] == probe.consumer_max_attempts
    assert "cannot project this one" in poisoned["error"]
    # The position stored with the projection is the partition's end.
    positions = await conn.fetch(
        "SELECT next_offset, high_water FROM consumer_positions WHERE group_id = $1", probe.topic(group)
    )
    assert positions
    assert all(p["next_offset"] == p["high_water"] for p in positions)
    # And the dead letters are on the DLQ topic with the error.
    dlq = AIOKafkaConsumer(
        probe.topic("dtm.sites.dlq"),
        bootstrap_servers=probe.kafka_bootstrap,
        auto_offset_reset="earliest",
        group_id=None,
    )
    await dlq.start()
    try:
        batch = await dlq.getmany(timeout_ms=5000)
        headers = [dict(r.headers) for recs in batch.values() for r in recs]
    finally:
        await dlq.stop()
    ours = [h for h in headers if h.get("dtm_consumer_group") == probe.topic(group).encode()]
    assert len(ours) == 2
    assert all(h["dtm_error"] for h in ours)


async def test_a_restarted_consumer_resumes_from_the_stored_position(own_topics: ServiceSettings, conn) -> None:
    probe = own_topics
    group = f"probe-{uuid.uuid4().hex[:6]}"
    s = uuid.uuid4()
    await publish(probe, [cloud(site_event(s, 1))])
    engine = create_engine(probe)
    first = EventConsumer(
        probe, create_sessionmaker(engine), group=group, topics=["dtm.sites"], handlers={"dtm.site.opened.v1": project}
    )
    async with running(first.run(), first.stop):
        await eventually(lambda: _version(conn, s, 1))
    # Forget the inbox: only the stored position now prevents re-application.
    await conn.execute("TRUNCATE inbox")
    await publish(probe, [cloud(site_event(s, 2))])
    second = EventConsumer(
        probe, create_sessionmaker(engine), group=group, topics=["dtm.sites"], handlers={"dtm.site.opened.v1": project}
    )
    async with running(second.run(), second.stop):
        await eventually(lambda: _version(conn, s, 2))
    await engine.dispose()
    assert second.stats.applied == 1  # only the new event, not the whole topic again


async def _count(conn, table: str, n: int) -> bool:
    return await conn.fetchval(f"SELECT count(*) FROM {table}") == n


async def _version(conn, subject: uuid.UUID, v: int) -> bool:
    return await conn.fetchval("SELECT version FROM projection WHERE subject = $1", str(subject)) == v


async def test_an_infrastructure_failure_retries_the_batch_instead_of_dead_lettering(
    own_topics: ServiceSettings, conn
) -> None:
    """A lost connection or a deadlock is not the event's fault: the batch is read again and
    applied once; nothing goes to the dead-letter topic."""
    from sqlalchemy.exc import OperationalError

    probe = own_topics
    group = f"probe-{uuid.uuid4().hex[:6]}"
    s = uuid.uuid4()
    failures = {"left": 2}

    async def flaky(session: AsyncSession, event: CloudEvent, payload: EventPayload) -> None:
        if failures["left"]:
            failures["left"] -= 1
            raise OperationalError("SELECT 1", {}, ConnectionResetError("connection reset by peer"))
        await project(session, event, payload)

    await publish(probe, [cloud(site_event(s, 1)), cloud(site_event(uuid.uuid4(), 1))])
    engine = create_engine(probe)
    consumer = EventConsumer(
        probe, create_sessionmaker(engine), group=group, topics=["dtm.sites"], handlers={"dtm.site.opened.v1": flaky}
    )
    async with running(consumer.run(), consumer.stop):
        await eventually(lambda: _version(conn, s, 1))
        await eventually(lambda: _count(conn, "projection", 2))
    await engine.dispose()
    assert consumer.stats.batch_retries == 2
    assert consumer.stats.dead_lettered == 0
    assert await conn.fetchval("SELECT count(*) FROM dead_letters") == 0
    assert await conn.fetchval("SELECT sum(applied) FROM projection") == 2  # each applied exactly once
