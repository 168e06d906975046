"""Outbox relay: publishes outbox rows to Kafka and marks them published after the broker's ack.

- Claims unpublished rows (`published_at IS NULL`), never `id > last_id`: sequence values commit
  out of order, so a high-water mark would skip rows.
- Rows are spread over `outbox_shards` shards by aggregate id. A relay owns a shard by holding a
  Postgres advisory lock on it, so exactly one relay publishes a given aggregate's events, in id
  order; run several relays and they share the shards, a dead relay's shards are taken over.
- Idempotent producer (`enable_idempotence=True`, `acks=all`), key = aggregate id.
- `LISTEN` wakes the relay when a transaction staged events; it polls as a fallback.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import zlib
from dataclasses import dataclass
from typing import Any

import asyncpg
import structlog
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from dtm_shared.events.envelope import CloudEvent
from dtm_shared.messaging.outbox import notify_channel
from dtm_shared.settings import ServiceSettings

log = structlog.get_logger("relay")


@dataclass
class RelayStats:
    published: int = 0
    batches: int = 0
    errors: int = 0


class OutboxRelay:
    def __init__(self, settings: ServiceSettings, producer: AIOKafkaProducer | None = None) -> None:
        self.settings = settings
        self.schema = settings.schema_name
        self._lock_key = zlib.crc32(f"{self.schema}.outbox".encode()) & 0x7FFFFFFF
        self._producer = producer
        self._own_producer = producer is None
        self._owned: set[int] = set()
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self.stats = RelayStats()

    @staticmethod
    def make_producer(settings: ServiceSettings) -> AIOKafkaProducer:
        return AIOKafkaProducer(
            bootstrap_servers=settings.kafka_bootstrap,
            enable_idempotence=True,
            acks="all",
            linger_ms=5,
            max_batch_size=256 * 1024,
            compression_type=None,
            client_id=f"{settings.service_name}-relay",
        )

    async def _connect(self) -> asyncpg.Connection:
        return await asyncpg.connect(
            self.settings.asyncpg_url,
            server_settings={"search_path": self.schema, "application_name": f"{self.schema}-relay"},
        )

    async def _claim_shards(self, conn: asyncpg.Connection) -> None:
        for shard in range(self.settings.outbox_shards):
            if shard in self._owned:
                continue
            if await conn.fetchval("SELECT pg_try_advisory_lock($1, $2)", self._lock_key, shard):
                self._owned.add(shard)
                log.info("relay_shard_acquired", shard=shard)

    async def _verify_shards(self, conn: asyncpg.Connection) -> None:
        """Before each batch, check the advisory locks are still held: if the lock connection was
        lost, another relay may own these shards now, and publishing them too would break order.
        A lost connection raises here, which drops every shard and reconnects."""
        if not self._owned:
            return
        held = await conn.fetch(
            "SELECT objid::int AS shard FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() "
            "AND classid::bigint = $1 AND objsubid = 2 AND granted",
            self._lock_key,
        )
        still = {r["shard"] for r in held}
        lost = self._owned - still
        if lost:
            log.warning("relay_shards_lost", shards=sorted(lost))
            self._owned &= still

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    async def run(self) -> None:
        """Publish until `stop()`; reconnects after database or broker failures."""
        if self._producer is None:
            self._producer = self.make_producer(self.settings)
        await self._producer.start()
        try:
            while not self._stopping.is_set():
                try:
                    await self._run_connected()
                except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                    self.stats.errors += 1
                    self._owned.clear()
                    log.warning("relay_reconnect", error=str(exc))
                    await self._sleep(2.0)
        finally:
            if self._own_producer:
                await self._producer.stop()

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    async def _run_connected(self) -> None:
        locks = await self._connect()  # holds the advisory locks for the relay's life
        work = await self._connect()
        listen = await self._connect()

        def on_notify(*_: Any) -> None:
            self._wake.set()

        await listen.add_listener(notify_channel(self.schema), on_notify)
        try:
            await self._claim_shards(locks)
            last_claim = last_cleanup = time.monotonic()
            while not self._stopping.is_set():
                await self._verify_shards(locks)
                sent = await self.publish_once(work)
                now = time.monotonic()
                if now - last_claim > 5:
                    await self._claim_shards(locks)
                    last_claim = now
                if now - last_cleanup > 600:
                    await self.cleanup(work)
                    last_cleanup = now
                if sent < self.settings.outbox_batch_size:
                    self._wake.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), self.settings.outbox_poll_seconds)
        finally:
            for c in (listen, work, locks):
                with contextlib.suppress(Exception):
                    await c.close()

    async def publish_once(self, conn: asyncpg.Connection) -> int:
        """Publish one batch of the owned shards' unpublished rows; returns how many."""
        if not self._owned:
            return 0
        rows = await conn.fetch(
            "SELECT id, event_id, topic, key, event_type, headers, payload::text AS payload, occurred_at "
            "FROM outbox WHERE published_at IS NULL AND shard = ANY($1::smallint[]) ORDER BY id LIMIT $2",
            sorted(self._owned),
            self.settings.outbox_batch_size,
        )
        if not rows:
            return 0
        assert self._producer is not None
        try:
            futures = []
            for r in rows:
                extra = json.loads(r["headers"]) if isinstance(r["headers"], str) else (r["headers"] or {})
                event = CloudEvent(
                    type=r["event_type"],
                    source=self.settings.service_name,
                    subject=r["key"],
                    data={},
                    id=r["event_id"],
                    time=r["occurred_at"],
                    traceparent=extra.get("traceparent"),
                )
                futures.append(
                    await self._producer.send(
                        r["topic"], value=r["payload"].encode(), key=r["key"].encode(), headers=event.headers()
                    )
                )
            await asyncio.gather(*futures)
        except KafkaError as exc:
            # Nothing is marked: the whole batch is sent again; consumers drop the duplicates.
            self.stats.errors += 1
            log.warning("relay_publish_failed", error=type(exc).__name__, rows=len(rows))
            await self._sleep(1.0)
            return 0
        await conn.execute(
            "UPDATE outbox SET published_at = now() WHERE id = ANY($1::bigint[])", [r["id"] for r in rows]
        )
        self.stats.published += len(rows)
        self.stats.batches += 1
        return len(rows)

    async def cleanup(self, conn: asyncpg.Connection) -> int:
        status = await conn.execute(
            "DELETE FROM outbox WHERE published_at < now() - make_interval(hours => $1)",
            self.settings.outbox_retention_hours,
        )
        return int(status.split()[-1])
