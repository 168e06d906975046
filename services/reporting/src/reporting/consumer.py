"""The reporting consumer: the shared idempotent `EventConsumer` with a batch fast path.

The shared consumer applies each partition's batch in a transaction with one savepoint per
event. At 1,000 registrations/s on 2 cores that per-event cost (and one transaction per
partition) is the lag, so this subclass applies everything one poll returned (all partitions) in
ONE transaction: every event id goes into `inbox` in one statement (already-seen ids are
skipped), the new household snapshots are applied in order by one call of `apply_households`
(set-based for new households, the per-household function for the rest), the other events go
through `HANDLERS`, the partitions' positions are stored, the transaction commits, then the Kafka
offsets are committed. If anything in the poll fails (a malformed event, a handler error), the
transaction is rolled back and each partition's batch goes through the shared per-event path
unchanged (savepoint per event, retries, `<topic>.dlq` and `dead_letters`).

The shared `run()` loop hands each poll to `process_poll()`, which this class overrides.
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
_POSITIONS = text(
    "INSERT INTO consumer_positions "
    "(group_id, topic, partition, next_offset, high_water, last_event_at, updated_at) "
    "SELECT :g, u.t, u.p, u.o, u.hw, u.ts, clock_timestamp() FROM unnest("
    "CAST(:topics AS text[]), CAST(:partitions AS integer[]), CAST(:offsets AS bigint[]), "
    "CAST(:high_waters AS bigint[]), CAST(:times AS timestamptz[])) AS u(t, p, o, hw, ts) "
    "ON CONFLICT (group_id, topic, partition) DO UPDATE "
    "SET next_offset = EXCLUDED.next_offset, high_water = EXCLUDED.high_water, "
    "last_event_at = EXCLUDED.last_event_at, updated_at = EXCLUDED.updated_at"
)


class _Fallback(Exception):
    """The poll needs the per-event path."""


class ReportingConsumer(EventConsumer):
    fallbacks = 0
    """Polls that went through the per-event path."""

    async def process(self, tp: TopicPartition, records: list[ConsumerRecord]) -> None:
        await self.process_poll({tp: records})

    async def process_poll(self, batches: dict[TopicPartition, list[ConsumerRecord]]) -> None:
        try:
            await self._fast(batches)
        except Exception as exc:  # anything: the per-event path decides (retries, DLQ)
            self.fallbacks += 1
            log.info("batch_fallback", error_class=type(exc).__name__, error=str(exc)[:300])
            for tp, records in batches.items():
                await EventConsumer.process(self, tp, records)

    async def _fast(self, batches: dict[TopicPartition, list[ConsumerRecord]]) -> None:
        assert self._consumer is not None
        decoded: list[tuple[CloudEvent, EventPayload | None]] = []
        for records in batches.values():
            for record in records:
                try:
                    event = CloudEvent.from_record(record.headers, record.value)
                    payload = parse_payload(event.type, event.data) if event.type in self.handlers else None
                except Exception as exc:
                    raise _Fallback from exc
                decoded.append((event, payload))
        async with self.sessionmaker() as session, session.begin():
            # A projection may lose its last commits in a crash without harm: the positions are in
            # the same transaction, so the lost events are simply read again.
            await session.execute(text("SET LOCAL synchronous_commit = off"))
            fresh = {
                row[0]
                for row in await session.execute(
                    _INBOX, {"ids": [e.id for e, _ in decoded], "types": [e.type for e, _ in decoded]}
                )
            }
            seen: set[Any] = set()
            households: list[dict[str, Any]] = []
            applied = skipped = 0
            for event, payload in decoded:
                if event.id not in fresh or event.id in seen or payload is None:
                    skipped += 1
                    continue
                seen.add(event.id)
                if isinstance(payload, reg.HouseholdSnapshotV1):
                    households.append(handlers.household_params(payload))
                else:
                    await self._flush(session, households)
                    households = []
                    await self.handlers[event.type](session, event, payload)
                applied += 1
            await self._flush(session, households)
            tps = list(batches)
            await session.execute(
                _POSITIONS,
                {
                    "g": self.group,
                    "topics": [tp.topic for tp in tps],
                    "partitions": [tp.partition for tp in tps],
                    "offsets": [batches[tp][-1].offset + 1 for tp in tps],
                    "high_waters": [self._consumer.highwater(tp) for tp in tps],
                    "times": [datetime.fromtimestamp(batches[tp][-1].timestamp / 1000, UTC) for tp in tps],
                },
            )
        # The Kafka offsets are advisory (on assignment the consumer seeks to the positions stored
        # with the read models): commit them without waiting for the broker.
        self._commit_task = asyncio.ensure_future(
            self._commit_offsets({tp: records[-1].offset + 1 for tp, records in batches.items()})
        )
        self.stats.applied += applied
        self.stats.skipped += skipped

    _commit_task: asyncio.Future[None] | None = None

    async def _commit_offsets(self, offsets: dict[TopicPartition, int]) -> None:
        assert self._consumer is not None
        try:
            await self._consumer.commit(offsets)
        except Exception as exc:  # advisory: the stored positions are the truth
            log.info("offset_commit_failed", error_class=type(exc).__name__)

    @staticmethod
    async def _flush(session: AsyncSession, households: list[dict[str, Any]]) -> None:
        if households:
            await session.execute(_APPLY, {"batch": json.dumps(households, default=str)})
