"""Reporting tests run against their own database and topic prefix (inside the session's stack):
other suites may publish registrations or run a reporting consumer on the session's database, and
these tests compare figures exactly."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.conftest import StackEnv


@dataclass
class ReportingEnv:
    stack: StackEnv
    database: str
    prefix: str
    settings: Any
    client: httpx.AsyncClient
    app: Any

    def headers(self, *scopes: str, org: str = "OCHA") -> dict[str, str]:
        return self.stack.headers(org, *scopes)

    def consumer(self, **overrides: Any) -> Any:
        from dtm_shared.db import create_engine
        from reporting.workers import build_consumer

        settings = self.settings.model_copy(update=overrides) if overrides else self.settings
        engine = create_engine(settings)
        consumer = build_consumer(settings, engine)
        consumer._engine = engine  # disposed by the test helpers
        return consumer


async def make_env(stack: StackEnv, tag: str) -> tuple[str, str, Any]:
    from dtm_cli import stack as st
    from dtm_cli.services import entry
    from dtm_shared.migrations import upgrade

    database = f"{stack.database}_{tag}"
    prefix = f"{stack.topic_prefix}{tag}."
    await st.provision_database(stack.admin_url, database)
    await st.create_topics(stack.kafka_bootstrap, prefix=prefix)
    url = st.service_database_url("reporting", st.with_database(stack.admin_url, database))
    settings = entry("reporting").settings(
        database_url=url,
        kafka_bootstrap=stack.kafka_bootstrap,
        topic_prefix=prefix,
        jwt_public_key_file=stack.public_key_file,
        log_level="WARNING",
        rebuild_grace_seconds=0.2,
    )
    await asyncio.to_thread(upgrade, entry("reporting").migrations_dir, settings)
    return database, prefix, settings


@contextlib.asynccontextmanager
async def reporting_env(stack: StackEnv, tag: str) -> AsyncIterator[ReportingEnv]:
    from asgi_lifespan import LifespanManager

    from dtm_cli import stack as st
    from reporting.main import create_app

    database, prefix, settings = await make_env(stack, tag)
    app = create_app(settings)
    try:
        async with (
            LifespanManager(app) as manager,
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=manager.app), base_url="http://reporting.test:8003"
            ) as client,
        ):
            yield ReportingEnv(stack, database, prefix, settings, client, manager.app)
    finally:
        await st.drop_database(stack.admin_url, database)


@pytest.fixture(scope="module")
async def rep(migrated: StackEnv) -> AsyncIterator[ReportingEnv]:
    async with reporting_env(migrated, "rep" + uuid.uuid4().hex[:6]) as env:
        yield env


def record(payload: Any, *, event_id: uuid.UUID | None = None) -> tuple[str, bytes, bytes, list[tuple[str, bytes]]]:
    """(topic base, key, value, headers) of a CloudEvent for a shared payload model."""
    from dtm_shared.events import CloudEvent

    data = payload.model_dump(mode="json")
    event = CloudEvent(
        type=payload.event_type,
        source="tests",
        subject=str(payload.aggregate_id),
        data=data,
        id=event_id or uuid.uuid4(),
    )
    return payload.topic, str(payload.aggregate_id).encode(), event.value(), event.headers()


async def publish(
    env: ReportingEnv, records: Iterable[tuple[str, bytes, bytes | None, list[tuple[str, bytes]]]]
) -> None:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=env.stack.kafka_bootstrap, enable_idempotence=True, acks="all")
    await producer.start()
    try:
        for topic, key, value, headers in records:
            await producer.send(env.prefix + topic, key=key, value=value, headers=headers)
        await producer.flush()
    finally:
        await producer.stop()


async def end_offsets(env: ReportingEnv) -> dict[tuple[str, int], int]:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=env.stack.kafka_bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [
            TopicPartition(t, p)
            for t in (env.prefix + "dtm.registration", env.prefix + "dtm.sites")
            for p in consumer.partitions_for_topic(t) or await _partitions(consumer, t)
        ]
        return {(tp.topic, tp.partition): o for tp, o in (await consumer.end_offsets(tps)).items()}
    finally:
        await consumer.stop()


async def _partitions(consumer: Any, topic: str) -> set[int]:
    await consumer._client.force_metadata_update()
    return consumer.partitions_for_topic(topic) or set()


async def caught_up(env: ReportingEnv, group: str | None = None) -> bool:
    ends = await end_offsets(env)
    rows = await sql(
        env,
        "SELECT topic, partition, next_offset FROM consumer_positions WHERE group_id = :g",
        g=group or env.settings.topic(env.settings.consumer_group),
    )
    held = {(r[0], r[1]): r[2] for r in rows}
    return all(held.get(k, 0) >= v for k, v in ends.items())


async def consume_all(env: ReportingEnv, timeout: float = 60.0) -> Any:
    """Run the reporting consumer until its stored positions reach the topics' ends; returns its stats."""
    from tests.conftest import eventually, running

    consumer = env.consumer()
    try:
        async with running(consumer.run(), consumer.stop):
            await eventually(lambda: caught_up(env), timeout=timeout, interval=0.2)
    finally:
        await consumer._engine.dispose()
    stats = consumer.stats
    stats.fallbacks = consumer.fallbacks  # batches that needed the per-event path
    return stats


async def sql(env: ReportingEnv, query: str, **params: Any) -> list[Any]:
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(env.settings.sqlalchemy_url)
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SET search_path TO reporting, extensions"))
            return list((await conn.execute(text(query), params)).all())
    finally:
        await engine.dispose()


def jdump(x: Any) -> str:
    return json.dumps(x, indent=1, default=str)


def import_hxl() -> Any:
    import hxl

    return hxl
