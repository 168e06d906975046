"""The outbox relay against real Postgres and Kafka."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from sqlalchemy.ext.asyncio import AsyncSession

from dtm_shared.db import create_engine, create_sessionmaker
from dtm_shared.events import CloudEvent
from dtm_shared.messaging import outbox
from dtm_shared.messaging.relay import OutboxRelay
from dtm_shared.settings import ServiceSettings
from tests.conftest import eventually, running
from tests.integration.shared.conftest import site_event

pytestmark = pytest.mark.integration


async def consume_keys(settings: ServiceSettings, keys: set[str], expected: int, timeout: float = 20) -> list:
    """Read the probe topic from the start; return the records whose key is in `keys`."""
    consumer = AIOKafkaConsumer(
        settings.topic("dtm.sites"),
        bootstrap_servers=settings.kafka_bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
    )
    await consumer.start()
    found = []
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline and len(found) < expected:
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                found += [r for r in records if r.key.decode() in keys]
    finally:
        await consumer.stop()
    return found


async def stage(settings: ServiceSettings, payloads: list) -> None:
    engine = create_engine(settings)
    async with create_sessionmaker(engine)() as session, session.begin():
        assert isinstance(session, AsyncSession)
        await outbox.stage(session, settings, payloads)
    await engine.dispose()


async def test_relay_publishes_in_order_with_cloudevents_and_marks_after_ack(own_topics, conn) -> None:
    probe = own_topics
    site_a, site_b = uuid.uuid4(), uuid.uuid4()
    await stage(probe, [site_event(site_a, v) for v in (1, 2, 3)] + [site_event(site_b, 1)])
    relay = OutboxRelay(probe)
    async with running(relay.run(), relay.stop):

        async def all_published() -> bool:
            return await conn.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL") == 0

        await eventually(all_published)
    records = await consume_keys(probe, {str(site_a), str(site_b)}, expected=4)
    assert len(records) == 4
    a_versions = [
        CloudEvent.from_record(r.headers, r.value).data["version"] for r in records if r.key.decode() == str(site_a)
    ]
    assert a_versions == [1, 2, 3]
    event = CloudEvent.from_record(records[0].headers, records[0].value)
    assert event.source == "probe"
    assert event.type == "dtm.site.opened.v1"
    assert event.subject == records[0].key.decode()
    ids = {CloudEvent.from_record(r.headers, r.value).id for r in records}
    assert ids == set(await conn.fetchval("SELECT array_agg(event_id) FROM outbox"))


async def test_a_row_committed_late_with_a_lower_id_is_still_published(own_topics, conn) -> None:
    probe = own_topics
    """Sequence values commit out of order; a relay tracking `id > last` would lose the first row."""
    late, early = uuid.uuid4(), uuid.uuid4()
    slow = await asyncpg.connect(probe.asyncpg_url, server_settings={"search_path": "probe"})
    tx = slow.transaction()
    await tx.start()
    rows = outbox.rows_for_copy(probe, [site_event(late, 1)])
    await slow.copy_records_to_table("outbox", records=rows, columns=list(outbox.OUTBOX_COLUMNS))
    relay = OutboxRelay(probe)
    async with running(relay.run(), relay.stop):
        await stage(probe, [site_event(early, 1)])  # gets a higher id, commits first

        async def early_published() -> bool:
            return bool(await conn.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NOT NULL"))

        await eventually(early_published)
        await tx.commit()

        async def both_published() -> bool:
            return await conn.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NOT NULL") == 2

        await eventually(both_published)
    await slow.close()
    lower_id_key = await conn.fetchval("SELECT key FROM outbox ORDER BY id LIMIT 1")
    assert lower_id_key == str(late)
    assert len(await consume_keys(probe, {str(late), str(early)}, expected=2)) == 2


async def test_two_relays_share_the_shards_and_publish_each_row_once(own_topics, conn) -> None:
    probe = own_topics
    sites = [uuid.uuid4() for _ in range(40)]
    await stage(probe, [site_event(s, v) for s in sites for v in (1, 2)])
    r1, r2 = OutboxRelay(probe), OutboxRelay(probe)
    async with running(r1.run(), r1.stop), running(r2.run(), r2.stop):

        async def all_published() -> bool:
            return await conn.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL") == 0

        await eventually(all_published)
        assert r1._owned.isdisjoint(r2._owned)
        assert r1._owned | r2._owned == set(range(probe.outbox_shards))
    records = await consume_keys(probe, {str(s) for s in sites}, expected=80)
    assert len(records) == 80
    assert r1.stats.published + r2.stats.published == 80


async def test_nothing_is_marked_published_when_the_broker_refuses(own_topics, conn) -> None:
    probe = own_topics
    bad = probe.model_copy(update={"topic_prefix": f"missing-{uuid.uuid4().hex[:6]}."})  # no such topic
    await stage(bad, [site_event(uuid.uuid4(), 1)])
    producer = AIOKafkaProducer(
        bootstrap_servers=probe.kafka_bootstrap, enable_idempotence=True, acks="all", request_timeout_ms=1500
    )
    relay = OutboxRelay(bad, producer=producer)
    await producer.start()
    try:
        async with running(relay.run(), relay.stop):
            await eventually(lambda: _true_after(relay), timeout=15)
    finally:
        await producer.stop()
    assert relay.stats.errors >= 1
    assert await conn.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL") == 1


async def _true_after(relay: OutboxRelay) -> bool:
    return relay.stats.errors >= 1


async def test_a_relay_that_loses_its_locks_stops_publishing_those_shards(own_topics, conn) -> None:
    """If the lock connection goes, another relay may own the shards: the first must notice before
    its next batch rather than publish them too."""
    probe = own_topics
    relay = OutboxRelay(probe)
    async with running(relay.run(), relay.stop):
        await eventually(lambda: _owns_all(relay, probe.outbox_shards))
        # Kill the relay's lock connection from the server side, as a network failure would.
        await conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND classid::bigint = $1",
            relay._lock_key,
        )
        # It reconnects and claims its shards again; meanwhile it never published on lost locks.
        await eventually(lambda: _errors_after(relay))
        site = uuid.uuid4()
        await stage(probe, [site_event(site, 1)])
        await eventually(lambda: _owns_all(relay, probe.outbox_shards), timeout=30)
        assert len(await consume_keys(probe, {str(site)}, expected=1)) == 1


async def _owns_all(relay: OutboxRelay, shards: int) -> bool:
    return len(relay._owned) == shards


async def _errors_after(relay: OutboxRelay) -> bool:
    return relay.stats.errors >= 1
