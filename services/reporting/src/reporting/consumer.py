"""The reporting consumer: the shared idempotent `EventConsumer` with a batch fast path.

Per partition batch, the fast path does in ONE transaction what the shared consumer does per
event: records every event id in `inbox` (one statement; already-seen ids are skipped), applies
the new household snapshots in order with one call of `apply_households` (the same per-household
function the per-event handler uses), applies the other events through `HANDLERS`, stores the
partition's position, commits, then commits the Kafka offset. If anything in the batch fails
(a malformed event, a handler error), the transaction is rolled back and the batch goes through
the shared per-event path unchanged (savepoint per event, retries, `<topic>.dlq` and
`dead_letters`). Same outcome, far fewer round trips: 1,000 events/s need it on 2 cores.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

import structlog
from aiokafka import TopicPartition
from aiokafka.structs import ConsumerRecord
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from dtm_shared.events import CloudEvent, EventPayload, parse_payload
from dtm_shared.events import registration as reg
from dtm_shared.messaging.consumer import EventConsumer
from reporting import handlers

log = structlog.get_logger("consumer")

_INBOX = text(
    "INSERT INTO inbox (event_id, event_type) SELECT * FROM unnest(CAST(:ids AS uuid[]), CAST(:types AS text[])) "
    "ON CONFLICT (event_id) DO NOTHING RETURNING event_id"
)
_APPLY = text("SELECT apply_households(NULL, CAST(:batch AS jsonb))")
_POSITION = text(
    "INSERT INTO consumer_positions "
    "(group_id, topic, partition, next_offset, high_water, last_event_at, updated_at) "
    "VALUES (:g, :t, :p, :o, :hw, :ts, now()) ON CONFLICT (group_id, topic, partition) DO UPDATE "
    "SET next_offset = EXCLUDED.next_offset, high_water = EXCLUDED.high_water, "
    "last_event_at = EXCLUDED.last_event_at, updated_at = now()"
)


class _Fallback(Exception):
    """The batch needs the per-event path."""


class ReportingConsumer(EventConsumer):
    fallbacks = 0
    """Batches that went through the per-event path."""
    _pending_commit: asyncio.Future[None] | None = None

    async def process(self, tp: TopicPartition, records: list[ConsumerRecord]) -> None:
        try:
            await self._fast(tp, records)
        except Exception as exc:  # anything: the per-event path decides (retries, DLQ)
            self.fallbacks += 1
            log.info("batch_fallback", error_class=type(exc).__name__, error=str(exc)[:300], records=len(records))
            await super().process(tp, records)

    async def _fast(self, tp: TopicPartition, records: list[ConsumerRecord]) -> None:
        assert self._consumer is not None
        decoded: list[tuple[CloudEvent, EventPayload | None]] = []
        for record in records:
            try:
                event = CloudEvent.from_record(record.headers, record.value)
                payload = parse_payload(event.type, event.data) if event.type in self.handlers else None
            except Exception as exc:
                raise _Fallback from exc
            decoded.append((event, payload))
        async with self.sessionmaker() as session, session.begin():
            # A projection may lose its last commits in a crash without harm: the partition's
            # position is in the same transaction, so the lost events are simply read again.
            await session.execute(text("SET LOCAL synchronous_commit = off"))
            fresh = {
                row[0]
                for row in await session.execute(
                    _INBOX, {"ids": [e.id for e, _ in decoded], "types": [e.type for e, _ in decoded]}
                )
            }
            seen_in_batch: set[Any] = set()
            households: list[dict[str, Any]] = []
            applied = skipped = 0
            for event, payload in decoded:
                if event.id not in fresh or event.id in seen_in_batch or payload is None:
                    skipped += 1
                    continue
                seen_in_batch.add(event.id)
                if isinstance(payload, reg.HouseholdSnapshotV1):
                    households.append(handlers.household_params(payload))
                else:
                    await self._flush(session, households)
                    households = []
                    await self.handlers[event.type](session, event, payload)
                applied += 1
            await self._flush(session, households)
            last = records[-1]
            await session.execute(
                _POSITION,
                {
                    "g": self.group,
                    "t": tp.topic,
                    "p": tp.partition,
                    "o": last.offset + 1,
                    "hw": self._consumer.highwater(tp),
                    "ts": datetime.fromtimestamp(last.timestamp / 1000, UTC),
                },
            )
        # The Kafka offset is advisory (the consumer seeks to the position stored with the read
        # models on assignment): commit it without waiting for the broker.
        self._pending_commit = asyncio.ensure_future(self._commit_offset(tp, last.offset + 1))
        self.stats.applied += applied
        self.stats.skipped += skipped

    async def _commit_offset(self, tp: TopicPartition, offset: int) -> None:
        assert self._consumer is not None
        try:
            await self._consumer.commit({tp: offset})
        except Exception as exc:  # advisory: the stored position is the truth
            log.info("offset_commit_failed", error_class=type(exc).__name__)

    @staticmethod
    async def _flush(session: AsyncSession, households: list[dict[str, Any]]) -> None:
        if households:
            await session.execute(_APPLY, {"batch": json.dumps(households, default=str)})
