"""Idempotent consumer: applies events to a projection exactly once in effect.

For every record, in one database transaction per batch (one savepoint per event):
- the event id goes into `inbox` (a duplicate id is skipped) and the handler applies the
  projection (handlers compare the aggregate `version` and ignore stale or repeated ones);
- the partition's next offset goes into `consumer_positions` (the consumer position is stored
  with the projection; on assignment the consumer seeks to it).
Kafka offsets are committed only after the database commit. A failing event is retried
`consumer_max_attempts` times, then sent to `<topic>.dlq` with its error and recorded in
`dead_letters`, and the consumer moves on.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError
from aiokafka.structs import ConsumerRecord
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from dtm_shared.events.base import EventPayload, parse_payload
from dtm_shared.events.envelope import CloudEvent, EnvelopeError
from dtm_shared.problems import sqlstate
from dtm_shared.settings import ServiceSettings

log = structlog.get_logger("consumer")

Handler = Callable[[AsyncSession, CloudEvent, EventPayload], Awaitable[None]]


@dataclass
class ConsumerStats:
    applied: int = 0
    skipped: int = 0
    dead_lettered: int = 0
    batch_retries: int = 0


def is_transient(exc: BaseException) -> bool:
    """A failure of the infrastructure (database or broker unreachable, deadlock, serialisation),
    not of the event: the batch is rolled back and read again, never dead-lettered."""
    if isinstance(exc, OSError | TimeoutError | KafkaError | OperationalError | InterfaceError):
        return True
    if isinstance(exc, DBAPIError):
        return sqlstate(exc).startswith(("08", "40", "53", "57"))
    return False


class SeekToStoredPositions(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, owner: EventConsumer) -> None:
        self.owner = owner

    """Rebalance callbacks wait for the batch in progress to commit, so a seek to the stored
    positions never reads a position that is about to move (which would deliver a batch twice)."""

    async def on_partitions_revoked(self, revoked: Any) -> None:
        async with self.owner.processing:
            return None

    async def on_partitions_assigned(self, assigned: Any) -> None:
        async with self.owner.processing:
            await self.owner.seek_to_stored(list(assigned))


class EventConsumer:
    def __init__(
        self,
        settings: ServiceSettings,
        sessionmaker: async_sessionmaker[AsyncSession],
        *,
        group: str,
        topics: Sequence[str],
        handlers: Mapping[str, Handler],
        positions_table: str = "consumer_positions",
        inbox_table: str = "inbox",
    ) -> None:
        self.settings = settings
        self.sessionmaker = sessionmaker
        self.group = settings.topic(group)
        self.topics = [settings.topic(t) for t in topics]
        self.handlers = dict(handlers)
        self.positions_table = positions_table
        self.inbox_table = inbox_table
        self.stats = ConsumerStats()
        self._stopping = asyncio.Event()
        self.processing = asyncio.Lock()
        self._consumer: AIOKafkaConsumer | None = None
        self._producer: AIOKafkaProducer | None = None

    def stop(self) -> None:
        self._stopping.set()

    async def seek_to_stored(self, partitions: list[TopicPartition], *, force: bool = False) -> None:
        assert self._consumer is not None
        async with self.sessionmaker() as session:
            rows = (
                await session.execute(
                    text(f"SELECT topic, partition, next_offset FROM {self.positions_table} WHERE group_id = :g"),
                    {"g": self.group},
                )
            ).all()
        stored = {(r[0], r[1]): r[2] for r in rows}
        for tp in partitions:
            pos = stored.get((tp.topic, tp.partition))
            # Offsets are committed to Kafka right after the database commit, so normally Kafka
            # already starts where the database says: seeking to the same place would make the
            # fetcher deliver what it had already fetched a second time. Seek only on a difference
            # (a restored database, a lost offset commit); no stored position means the beginning.
            committed = None if force else await self._consumer.committed(tp)
            if pos is None and (force or committed is not None):
                await self._consumer.seek_to_beginning(tp)
            elif pos is not None and (force or pos != committed):
                self._consumer.seek(tp, pos)

    async def run(self, *, until_idle: float | None = None) -> None:
        """Consume until `stop()` (or, with `until_idle`, until no record arrived for that long)."""
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=self.settings.kafka_bootstrap,
            group_id=self.group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=self.settings.consumer_batch_size,
            client_id=f"{self.group}-consumer",
        )
        self._consumer.subscribe(self.topics, listener=SeekToStoredPositions(self))
        self._producer = AIOKafkaProducer(
            bootstrap_servers=self.settings.kafka_bootstrap, enable_idempotence=True, acks="all"
        )
        await self._consumer.start()
        await self._producer.start()
        idle_since = asyncio.get_running_loop().time()
        try:
            while not self._stopping.is_set():
                batches = await self._consumer.getmany(timeout_ms=200, max_records=self.settings.consumer_batch_size)
                if not batches:
                    if until_idle is not None and asyncio.get_running_loop().time() - idle_since > until_idle:
                        return
                    continue
                idle_since = asyncio.get_running_loop().time()
                try:
                    async with self.processing:
                        await self.process_poll(batches)
                except Exception as exc:
                    if not is_transient(exc):
                        raise
                    # Nothing of the batch was committed: read it again from the stored positions.
                    self.stats.batch_retries += 1
                    log.warning("consumer_batch_retry", error_class=type(exc).__name__)
                    await asyncio.sleep(1.0)
                    await self.seek_to_stored(list(batches), force=True)
        finally:
            with contextlib.suppress(Exception):
                await self._consumer.stop()
            with contextlib.suppress(Exception):
                await self._producer.stop()

    async def process_poll(self, batches: dict[TopicPartition, list[ConsumerRecord]]) -> None:
        """Apply what one poll returned; a subclass may apply it in bulk and fall back to this."""
        for tp, records in batches.items():
            await self.process(tp, records)

    async def process(self, tp: TopicPartition, records: list[ConsumerRecord]) -> None:
        """Apply one partition's batch in one transaction, then commit the Kafka offset."""
        assert self._consumer is not None
        dead: list[tuple[ConsumerRecord, str, int]] = []
        async with self.sessionmaker() as session, session.begin():
            for record in records:
                error, attempts = await self._apply_with_retries(session, record)
                if error is not None:
                    dead.append((record, error, attempts))
            for record, error, attempts in dead:
                await self._dead_letter(session, record, error, attempts)
            last = records[-1]
            high_water = self._consumer.highwater(tp)
            await session.execute(
                text(
                    f"INSERT INTO {self.positions_table} "
                    "(group_id, topic, partition, next_offset, high_water, last_event_at, updated_at) "
                    "VALUES (:g, :t, :p, :o, :hw, :ts, now()) ON CONFLICT (group_id, topic, partition) DO UPDATE "
                    "SET next_offset = EXCLUDED.next_offset, high_water = EXCLUDED.high_water, "
                    "last_event_at = EXCLUDED.last_event_at, updated_at = now()"
                ),
                {
                    "g": self.group,
                    "t": tp.topic,
                    "p": tp.partition,
                    "o": last.offset + 1,
                    "hw": high_water,
                    "ts": datetime.fromtimestamp(last.timestamp / 1000, UTC),
                },
            )
        await self._consumer.commit({tp: last.offset + 1})

    async def _apply_with_retries(self, session: AsyncSession, record: ConsumerRecord) -> tuple[str | None, int]:
        try:
            event = CloudEvent.from_record(record.headers, record.value)
        except EnvelopeError as exc:
            return f"invalid envelope: {exc}", 1
        error = ""
        for attempt in range(1, self.settings.consumer_max_attempts + 1):
            try:
                async with session.begin_nested():
                    await self._apply(session, event)
                return None, attempt
            except Exception as exc:  # the event's failure, whatever it is, must not stop the stream
                if is_transient(exc):
                    raise
                error = f"{type(exc).__name__}: {exc}"[:2000]
                log.warning(
                    "event_failed",
                    event_id=str(event.id),
                    type=event.type,
                    attempt=attempt,
                    error_class=type(exc).__name__,
                )
                if attempt < self.settings.consumer_max_attempts:
                    await asyncio.sleep(0.05 * attempt)
        return error, self.settings.consumer_max_attempts

    async def _apply(self, session: AsyncSession, event: CloudEvent) -> None:
        inserted = (
            await session.execute(
                text(
                    f"INSERT INTO {self.inbox_table} (event_id, event_type) VALUES (:id, :t) "
                    "ON CONFLICT (event_id) DO NOTHING RETURNING event_id"
                ),
                {"id": event.id, "t": event.type},
            )
        ).first()
        if inserted is None:
            self.stats.skipped += 1
            return
        handler = self.handlers.get(event.type)
        if handler is None:
            self.stats.skipped += 1  # a type this consumer does not project
            return
        payload = parse_payload(event.type, event.data)
        if payload is None:
            raise ValueError(f"no contract for event type {event.type}")
        await handler(session, event, payload)
        self.stats.applied += 1

    async def _dead_letter(self, session: AsyncSession, record: ConsumerRecord, error: str, attempts: int) -> None:
        assert self._producer is not None
        headers = list(record.headers or ()) + [
            ("dtm_error", error.encode()),
            ("dtm_attempts", str(attempts).encode()),
            ("dtm_original_topic", record.topic.encode()),
            ("dtm_original_partition", str(record.partition).encode()),
            ("dtm_original_offset", str(record.offset).encode()),
            ("dtm_consumer_group", self.group.encode()),
        ]
        await self._producer.send_and_wait(f"{record.topic}.dlq", value=record.value, key=record.key, headers=headers)
        hs = {k: (v.decode(errors="replace") if isinstance(v, bytes) else str(v)) for k, v in record.headers or ()}
        await session.execute(
            text(
                "INSERT INTO dead_letters "
                '(group_id, topic, partition, "offset", event_id, event_type, error, attempts) '
                "VALUES (:g, :t, :p, :o, :id, :type, :err, :a)"
            ),
            {
                "g": self.group,
                "t": record.topic,
                "p": record.partition,
                "o": record.offset,
                "id": hs.get("ce_id"),
                "type": hs.get("ce_type"),
                "err": error,
                "a": attempts,
            },
        )
        try:  # a redelivery of the same event is then skipped, not dead-lettered twice
            event_id = uuid.UUID(hs.get("ce_id", ""))
        except ValueError:
            event_id = None
        if event_id is not None:
            await session.execute(
                text(
                    f"INSERT INTO {self.inbox_table} (event_id, event_type) VALUES (:id, :t) "
                    "ON CONFLICT (event_id) DO NOTHING"
                ),
                {"id": event_id, "t": hs.get("ce_type", "")},
            )
        self.stats.dead_lettered += 1
        log.error(
            "event_dead_lettered",
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            type=hs.get("ce_type"),
            error=error[:200],
        )
