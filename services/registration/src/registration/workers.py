"""Background processes of the registration service: the outbox relay and the sites consumer
(which also purges expired idempotency keys)."""

from __future__ import annotations

import asyncio
import contextlib

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


async def _purge_forever(settings: RegistrationSettings, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    while True:
        try:
            purged = await purge_idempotency_keys(settings, sessionmaker)
            if purged:
                log.info("idempotency_keys_purged", count=purged)
        except Exception as exc:  # a failed purge is retried at the next round
            log.warning("idempotency_purge_failed", error_class=type(exc).__name__)
        await asyncio.sleep(3600)


async def run_consumer(settings: RegistrationSettings | None = None) -> None:
    settings = settings or RegistrationSettings()
    configure_logging(f"{settings.service_name}-consumer", settings.log_level, settings.log_json)
    engine = create_engine(settings)
    sessionmaker = create_sessionmaker(engine)
    purge = asyncio.create_task(_purge_forever(settings, sessionmaker))
    try:
        consumer = sites_consumer(settings, sessionmaker)
        await run_until_signalled(consumer.run(), consumer.stop)
    finally:
        purge.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await purge
        await engine.dispose()
