"""Background processes of the registration service: the outbox relay and the sites consumer
(which also runs the housekeeping: the duplicate sweep and the purge of expired idempotency keys)."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta

import structlog
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from dtm_shared.db import create_engine, create_sessionmaker
from dtm_shared.logs import configure_logging
from dtm_shared.messaging.consumer import EventConsumer
from dtm_shared.messaging.relay import OutboxRelay
from dtm_shared.workers import run_until_signalled
from registration.handlers import HANDLERS, TOPICS
from registration.repository import RegistrationRepository
from registration.settings import RegistrationSettings

log = structlog.get_logger("registration-workers")


async def run_relay(settings: RegistrationSettings | None = None) -> None:
    settings = settings or RegistrationSettings()
    configure_logging(f"{settings.service_name}-relay", settings.log_level, settings.log_json)
    relay = OutboxRelay(settings)
    await run_until_signalled(relay.run(), relay.stop)


def sites_consumer(settings: RegistrationSettings, sessionmaker: async_sessionmaker[AsyncSession]) -> EventConsumer:
    """The consumer keeping `site_replica` up to date from `dtm.sites`."""
    return EventConsumer(
        settings,
        sessionmaker,  # type: ignore[arg-type]  # a SQLModel session is a SQLAlchemy session
        group=settings.sites_consumer_group,
        topics=TOPICS,
        handlers=HANDLERS,
    )


async def purge_idempotency_keys(settings: RegistrationSettings, sessionmaker: async_sessionmaker[AsyncSession]) -> int:
    """Delete idempotency keys older than the retention (at least 24 hours)."""
    async with sessionmaker() as session, session.begin():
        repo = RegistrationRepository(session)
        return await repo.purge_idempotency_keys(max(24, settings.idempotency_retention_hours))


async def recheck_duplicates(
    settings: RegistrationSettings, sessionmaker: async_sessionmaker[AsyncSession], since: datetime
) -> tuple[int, datetime]:
    """Look again for candidates of the households created since `since`.

    Registration looks for candidates in its own transaction, so two households registered at the
    same moment by concurrent requests do not see each other; this sweep (run by the consumer
    worker, with an overlap longer than any registration transaction) finds those pairs. Pairs
    already queued or resolved are left alone. Returns the pairs queued and where to resume."""
    queued, resume = 0, since
    while True:
        async with sessionmaker() as session, session.begin():
            repo = RegistrationRepository(session)
            rows = await repo.households_created_since(resume, 5000)
            if rows:
                queued += await repo.find_duplicates(
                    [r[0] for r in rows], settings.duplicate_birth_window_days, settings.duplicate_name_similarity
                )
        if len(rows) < 5000:
            return queued, max([resume, *(r[1] for r in rows)])
        last = rows[-1][1]
        # Rows of one instant are never more than a batch: past an instant full of them, move on.
        resume = last if last > resume else resume + timedelta(microseconds=1)


async def _housekeeping(settings: RegistrationSettings, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    """Every minute: the duplicate sweep; every hour: expired idempotency keys."""
    overlap = timedelta(minutes=2)
    since = datetime.now(UTC) - overlap
    last_purge = 0.0
    loop = asyncio.get_running_loop()
    while True:
        started = datetime.now(UTC)
        try:
            queued, _ = await recheck_duplicates(settings, sessionmaker, since)
            since = started - overlap
            if queued:
                log.info("duplicate_candidates_found_by_sweep", count=queued)
            if loop.time() - last_purge > 3600:
                purged = await purge_idempotency_keys(settings, sessionmaker)
                last_purge = loop.time()
                if purged:
                    log.info("idempotency_keys_purged", count=purged)
        except Exception as exc:  # retried at the next round
            log.warning("housekeeping_failed", error_class=type(exc).__name__)
        await asyncio.sleep(60)


async def run_consumer(settings: RegistrationSettings | None = None) -> None:
    settings = settings or RegistrationSettings()
    configure_logging(f"{settings.service_name}-consumer", settings.log_level, settings.log_json)
    engine = create_engine(settings)
    sessionmaker = create_sessionmaker(engine)
    purge = asyncio.create_task(_housekeeping(settings, sessionmaker))
    try:
        consumer = sites_consumer(settings, sessionmaker)
        await run_until_signalled(consumer.run(), consumer.stop)
    finally:
        purge.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await purge
        await engine.dispose()
