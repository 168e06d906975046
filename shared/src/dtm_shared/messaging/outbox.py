"""Transactional outbox: events are rows written in the same transaction as the change.

`stage()` adds rows through the caller's session (so they commit or roll back together) and
asks Postgres for one `NOTIFY` per transaction as a wake-up hint for the relay. Bulk paths can
use `rows_for_copy()` with COPY instead.
"""

from __future__ import annotations

import json
import uuid
import zlib
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from dtm_shared.events.base import EventPayload
from dtm_shared.settings import ServiceSettings

OUTBOX_COLUMNS = ("event_id", "topic", "key", "event_type", "shard", "headers", "payload", "occurred_at")

_INSERT = text(
    "INSERT INTO outbox (event_id, topic, key, event_type, shard, headers, payload, occurred_at) "
    "VALUES (:event_id, :topic, :key, :event_type, :shard, CAST(:headers AS jsonb), CAST(:payload AS jsonb), "
    ":occurred_at)"
)


def notify_channel(schema: str) -> str:
    return f"{schema}_outbox"


def shard_of(key: str, shards: int) -> int:
    """Stable shard of an aggregate: one relay owns a shard at a time, so per-aggregate order holds."""
    return zlib.crc32(key.encode()) % shards


def _row(payload: EventPayload, settings: ServiceSettings, traceparent: str | None) -> dict[str, Any]:
    key = str(payload.aggregate_id)
    return {
        "event_id": uuid.uuid4(),
        "topic": settings.topic(payload.topic),
        "key": key,
        "event_type": payload.event_type,
        "shard": shard_of(key, settings.outbox_shards),
        "headers": json.dumps({"traceparent": traceparent} if traceparent else {}),
        "payload": payload.model_dump_json(),
        "occurred_at": datetime.now(UTC),
    }


async def stage(
    session: AsyncSession,
    settings: ServiceSettings,
    payloads: Sequence[EventPayload],
    *,
    traceparent: str | None = None,
) -> None:
    """Write events into the outbox within the session's current transaction."""
    if not payloads:
        return
    rows = [_row(p, settings, traceparent) for p in payloads]
    await session.execute(_INSERT, rows)
    await session.execute(text("SELECT pg_notify(:ch, '')"), {"ch": notify_channel(settings.schema_name)})


def rows_for_copy(
    settings: ServiceSettings, payloads: Iterable[EventPayload], traceparent: str | None = None
) -> list[tuple[Any, ...]]:
    """Tuples in `OUTBOX_COLUMNS` order, for `asyncpg.Connection.copy_records_to_table`."""
    out = []
    for p in payloads:
        r = _row(p, settings, traceparent)
        out.append(tuple(r[c] for c in OUTBOX_COLUMNS))
    return out
