"""`dtm reporting rebuild`: replay `dtm.registration` and `dtm.sites` from the beginning into a new
generation of the read models (fresh partitions) and switch over atomically, while the API keeps
answering from the current generation.

1. Create the partitions of generation N+1 (every read-model table is LIST-partitioned by `gen`).
2. Read both topics from offset 0 up to their end offsets at the start (a plain reader, no group):
   households are bulk-loaded (COPY of the version rows with their validity intervals, then the
   population deltas in one SQL statement); the few site-side events go through the same
   projection code as the live consumer. Versions not newer than the one held are skipped, as
   the consumer does.
3. Switch-over, in one transaction: take the generation lock exclusively (the live consumer holds
   it shared in each batch, so no batch is half-applied), apply to N+1 what the live consumer
   applied after the snapshot (up to its stored positions), then point `generation.current` at
   N+1. Readers see the old or the new generation, never a mix.
4. After a grace period, drop the old generation's partitions.

The live consumer keeps running throughout; after the switch it writes into N+1 (a replayed event
is harmless: handlers only apply newer versions).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from datetime import date
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from dtm_shared.db import create_engine
from dtm_shared.events import CloudEvent, EnvelopeError, EventPayload, parse_payload
from dtm_shared.events import registration as reg
from dtm_shared.logs import configure_logging
from reporting import handlers, repository
from reporting.handlers import TOPICS
from reporting.settings import ReportingSettings

log = structlog.get_logger("rebuild")

PARTITIONED = (
    "cells",
    "household_versions",
    "deltas",
    "checkpoints",
    "checkpoint_months",
    "sites",
    "assessments",
    "activities",
    "committees",
    "reports",
)
VERSION_COLUMNS = (
    "gen",
    "household_id",
    "version",
    "valid_from",
    "valid_to",
    "active",
    "status",
    "inactive_reason",
    "cell_id",
    "site_id",
    "location_pcode",
    "origin_pcode",
    "registration_date",
    "displacement_date",
    "return_date",
    "repatriation_date",
    "registered_by_org",
    "female",
    "dobs",
    "needs",
)
CELL_COLUMNS = (
    "gen",
    "cell_id",
    "admin1",
    "admin2",
    "admin3",
    "site_id",
    "site_key",
    "population_group",
    "displacement_reason",
    "origin_admin1",
    "country_of_asylum",
)


@dataclass
class RebuildResult:
    generation: int
    previous_generation: int
    events: int
    households: int
    household_versions: int
    other_events: int
    skipped: int
    caught_up: int
    seconds: float


@dataclass
class Replay:
    households: dict[uuid.UUID, list[dict[str, Any]]]
    others: list[EventPayload]
    events: int = 0
    skipped: int = 0


class TopicReader:
    """Reads the contract topics' partitions between two sets of offsets (no consumer group)."""

    def __init__(self, settings: ReportingSettings) -> None:
        self.settings = settings
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.kafka_bootstrap,
            enable_auto_commit=False,
            group_id=None,
            max_poll_records=5000,
            fetch_max_bytes=64 * 1024 * 1024,
            max_partition_fetch_bytes=16 * 1024 * 1024,
        )
        self.partitions: list[TopicPartition] = []

    async def start(self) -> None:
        await self.consumer.start()
        for base in TOPICS:
            topic = self.settings.topic(base)
            parts = self.consumer.partitions_for_topic(topic)
            if not parts:
                await self.consumer._client.force_metadata_update()
                parts = self.consumer.partitions_for_topic(topic) or set()
            self.partitions += [TopicPartition(topic, p) for p in sorted(parts)]
        self.consumer.assign(self.partitions)

    async def stop(self) -> None:
        await self.consumer.stop()

    async def end_offsets(self) -> dict[TopicPartition, int]:
        ends: dict[TopicPartition, int] = await self.consumer.end_offsets(self.partitions)
        return ends

    async def read(self, start: dict[TopicPartition, int], end: dict[TopicPartition, int]) -> AsyncIterator[Any]:
        """Records of each partition from `start` (default 0) up to, not including, `end`."""
        todo = {tp for tp in self.partitions if end.get(tp, 0) > start.get(tp, 0)}
        if not todo:
            return
        self.consumer.assign(sorted(todo, key=lambda tp: (tp.topic, tp.partition)))
        for tp in todo:
            self.consumer.seek(tp, start.get(tp, 0))
        while todo:
            batches = await self.consumer.getmany(*todo, timeout_ms=500, max_records=5000)
            for tp, records in batches.items():
                for record in records:
                    if record.offset < end[tp]:
                        yield record
                if records and records[-1].offset + 1 >= end[tp]:
                    todo.discard(tp)


def decode(record: Any) -> EventPayload | None:
    try:
        event = CloudEvent.from_record(record.headers, record.value)
        if event.type not in handlers.HANDLERS:
            return None
        return parse_payload(event.type, event.data)
    except (EnvelopeError, ValueError):
        return None  # the live consumer dead-lettered it


async def replay(reader: TopicReader, ends: dict[TopicPartition, int]) -> Replay:
    out = Replay(households={}, others=[])
    held: dict[uuid.UUID, int] = {}
    async for record in reader.read({}, ends):
        out.events += 1
        payload = decode(record)
        if payload is None:
            out.skipped += 1
            continue
        if isinstance(payload, reg.HouseholdSnapshotV1):
            hid = payload.aggregate_id
            if held.get(hid, 0) >= payload.version:
                out.skipped += 1
                continue
            try:
                params = handlers.household_params(payload)
            except handlers.UnknownLocation:
                out.skipped += 1
                continue
            held[hid] = payload.version
            out.households.setdefault(hid, []).append(params)
        else:
            out.others.append(payload)
    return out


@asynccontextmanager
async def _raw(engine: AsyncEngine) -> AsyncIterator[Any]:
    async with engine.connect() as conn:
        raw = await conn.get_raw_connection()
        yield raw.driver_connection


async def bulk_load(engine: AsyncEngine, gen: int, households: dict[uuid.UUID, list[dict[str, Any]]]) -> int:
    cells: dict[tuple[Any, ...], list[Any]] = {}
    versions: list[tuple[Any, ...]] = []
    for rows in households.values():
        # validity: version k runs from its effective date to the earliest later effective date
        later: date | None = None
        bounds: list[date | None] = []
        for p in reversed(rows):
            bounds.append(later)
            later = p["effective"] if later is None else min(later, p["effective"])
        bounds.reverse()
        for p, valid_to in zip(rows, bounds, strict=True):
            key = (
                p["location"],
                str(p["site"]) if p["site"] else "",
                p["grp"],
                p["reason"],
                p["origin_admin1"] or "",
                p["country"] or "",
            )
            cell = cells.get(key)
            if cell is None:
                cell = cells[key] = [None, p["admin1"], p["admin2"], p["site"]]
            versions.append((p, valid_to, cell))
    async with _raw(engine) as conn:
        ids = [
            r[0]
            for r in await conn.fetch("SELECT nextval('reporting.cell_ids') FROM generate_series(1, $1)", len(cells))
        ]
        cell_records = []
        for (key, cell), cell_id in zip(cells.items(), ids, strict=True):
            cell[0] = cell_id
            admin3, site_key, grp, reason, origin, country = key
            cell_records.append(
                (gen, cell_id, cell[1], cell[2], admin3, cell[3], site_key, grp, reason, origin, country)
            )
        await conn.copy_records_to_table(
            f"cells_g{gen}", schema_name="reporting", columns=CELL_COLUMNS, records=cell_records
        )
        await conn.copy_records_to_table(
            f"household_versions_g{gen}",
            schema_name="reporting",
            columns=VERSION_COLUMNS,
            records=(
                (
                    gen,
                    p["id"],
                    p["version"],
                    p["effective"],
                    valid_to,
                    p["status"] == "active",
                    p["status"],
                    p["inactive_reason"],
                    cell[0],
                    p["site"],
                    p["location"],
                    p["origin"],
                    p["registration_date"],
                    p["displacement_date"],
                    p["return_date"],
                    p["repatriation_date"],
                    p["org"],
                    p["female"],
                    p["dobs"],
                    p["needs"],
                )
                for p, valid_to, cell in versions
            ),
        )
    # the population deltas, in two halves of the cells on two connections (disjoint keys: the
    # group key includes the cell), each written in day order
    await asyncio.gather(*(_insert_deltas(engine, gen, half, 2) for half in range(2)))
    async with _raw(engine) as conn:
        for table in ("cells", "household_versions", "deltas"):
            await conn.execute(f"ANALYZE reporting.{table}_g{gen}")
    return len(versions)


async def _insert_deltas(engine: AsyncEngine, gen: int, part: int, parts: int) -> None:
    sums = ", ".join(f"sum(v.{c})" for c in repository.COUNT_COLUMNS)
    async with _raw(engine) as conn:
        await conn.execute(
            f"INSERT INTO reporting.deltas_g{gen} (gen, cell_id, day, {', '.join(repository.COUNT_COLUMNS)}) "
            f"SELECT {gen}, v.cell_id, v.day, {sums} "
            f"FROM reporting.household_versions_g{gen} hv, "
            "LATERAL reporting.version_deltas(hv.cell_id, hv.valid_from, hv.valid_to, hv.female, hv.dobs, 1) v "
            f"WHERE hv.active AND hv.cell_id % {parts} = {part} GROUP BY v.cell_id, v.day ORDER BY v.day"
        )


async def create_partitions(engine: AsyncEngine, gen: int) -> None:
    """One short transaction per table: each holds a single parent's lock, so it cannot deadlock
    with the API's read transactions."""
    await drop_partitions(engine, gen)  # leftovers of an interrupted rebuild
    for table in PARTITIONED:
        async with engine.begin() as conn:
            await conn.execute(text(f"CREATE TABLE {table}_g{gen} PARTITION OF {table} FOR VALUES IN ({gen})"))


async def drop_partitions(engine: AsyncEngine, gen: int) -> None:
    """Detach concurrently (waits for the readers of the partition, blocks nobody), then drop."""
    async with _raw(engine) as conn:
        for table in PARTITIONED:
            name = f"{table}_g{gen}"
            attached = await conn.fetchval(
                "SELECT 1 FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'reporting' AND c.relname = $1",
                name,
            )
            if attached:
                await conn.execute(f"ALTER TABLE reporting.{table} DETACH PARTITION reporting.{name} CONCURRENTLY")
            await conn.execute(f"DROP TABLE IF EXISTS reporting.{name}")


async def live_positions(session: AsyncSession, settings: ReportingSettings) -> dict[TopicPartition, int]:
    rows = await session.execute(
        text("SELECT topic, partition, next_offset FROM consumer_positions WHERE group_id = :g"),
        {"g": settings.topic(settings.consumer_group)},
    )
    return {TopicPartition(r[0], r[1]): int(r[2]) for r in rows}


async def rebuild(settings: ReportingSettings) -> RebuildResult:
    started = time.perf_counter()
    engine = create_engine(settings)
    sessions = async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)
    reader = TopicReader(settings)
    try:
        async with sessions() as session, session.begin():
            previous = await repository.current_generation(session)
            gen = int((await session.execute(text("SELECT coalesce(max(generation), 0) FROM rebuilds"))).scalar_one())
            gen = max(gen, previous) + 1
            months = [
                r[0]
                for r in await session.execute(
                    text("SELECT month FROM checkpoint_months WHERE gen = :g"), {"g": previous}
                )
            ]
            run_id = (
                await session.execute(text("INSERT INTO rebuilds (generation) VALUES (:g) RETURNING id"), {"g": gen})
            ).scalar_one()
        await create_partitions(engine, gen)
        log.info("rebuild_started", generation=gen, previous=previous)
        await reader.start()
        ends = await reader.end_offsets()
        data = await replay(reader, ends)
        versions = await bulk_load(engine, gen, data.households)
        async with sessions() as session, session.begin():
            for payload in data.others:
                try:
                    await handlers.project(session, payload, gen)
                except handlers.UnknownLocation:
                    data.skipped += 1
            for month in months:
                await repository.create_checkpoint(session, gen, month)
        # switch-over: everything the live consumer applied after our snapshot, then the pointer
        caught_up = 0
        async with sessions() as session, session.begin():
            await repository.lock_generation_exclusive(session)
            live = await live_positions(session, settings)
            targets = {tp: live[tp] for tp in ends if live.get(tp, 0) > ends[tp]}
            async for record in reader.read(dict(ends), targets):
                late = decode(record)
                caught_up += 1
                if late is not None:
                    try:
                        await handlers.project(session, late, gen)
                    except handlers.UnknownLocation:
                        continue
            await session.execute(text("UPDATE generation SET current = :g, switched_at = now()"), {"g": gen})
            # the live group resumes after what the new generation holds (a live consumer already
            # further on keeps its own position)
            for tp, offset in ends.items():
                await session.execute(
                    text(
                        "INSERT INTO consumer_positions "
                        "(group_id, topic, partition, next_offset, high_water, updated_at) "
                        "VALUES (:g, :t, :p, :o, :o, now()) ON CONFLICT (group_id, topic, partition) DO UPDATE "
                        "SET next_offset = greatest(consumer_positions.next_offset, EXCLUDED.next_offset)"
                    ),
                    {"g": settings.topic(settings.consumer_group), "t": tp.topic, "p": tp.partition, "o": offset},
                )
            seconds = time.perf_counter() - started
            await session.execute(
                text(
                    "UPDATE rebuilds SET finished_at = now(), events = :e, households = :h, skipped = :s, "
                    "seconds = :t WHERE id = :id"
                ),
                {
                    "e": data.events + caught_up,
                    "h": len(data.households),
                    "s": data.skipped,
                    "t": seconds,
                    "id": run_id,
                },
            )
        log.info("rebuild_switched", generation=gen, seconds=round(seconds, 2))
        await asyncio.sleep(settings.rebuild_grace_seconds)
        await drop_partitions(engine, previous)
        return RebuildResult(
            generation=gen,
            previous_generation=previous,
            events=data.events,
            households=len(data.households),
            household_versions=versions,
            other_events=len(data.others),
            skipped=data.skipped,
            caught_up=caught_up,
            seconds=round(time.perf_counter() - started, 3),
        )
    finally:
        await reader.stop()
        await engine.dispose()


def main() -> None:
    """Entry point for `dtm reporting rebuild` (settings from the environment); prints a JSON summary."""
    settings = ReportingSettings()
    configure_logging(f"{settings.service_name}-rebuild", settings.log_level, settings.log_json)
    result = asyncio.run(rebuild(settings))
    sys.stdout.write(json.dumps(asdict(result)) + "\n")
