"""Background processes of the registration service: the outbox relay and the sites consumer."""

from __future__ import annotations

from dtm_shared.db import create_engine, create_sessionmaker
from dtm_shared.logs import configure_logging
from dtm_shared.messaging.consumer import EventConsumer
from dtm_shared.messaging.relay import OutboxRelay
from dtm_shared.workers import run_until_signalled
from registration.handlers import HANDLERS, TOPICS
from registration.settings import RegistrationSettings


async def run_relay(settings: RegistrationSettings | None = None) -> None:
    settings = settings or RegistrationSettings()
    configure_logging(f"{settings.service_name}-relay", settings.log_level, settings.log_json)
    relay = OutboxRelay(settings)
    await run_until_signalled(relay.run(), relay.stop)


def sites_consumer(settings: RegistrationSettings, sessionmaker: object) -> EventConsumer:
    """The consumer keeping `site_replica` up to date from `dtm.sites`."""
    return EventConsumer(
        settings,
        sessionmaker,  # type: ignore[arg-type]
        group=settings.sites_consumer_group,
        topics=TOPICS,
        handlers=HANDLERS,
    )


async def run_consumer(settings: RegistrationSettings | None = None) -> None:
    settings = settings or RegistrationSettings()
    configure_logging(f"{settings.service_name}-consumer", settings.log_level, settings.log_json)
    engine = create_engine(settings)
    try:
        consumer = sites_consumer(settings, create_sessionmaker(engine))
        await run_until_signalled(consumer.run(), consumer.stop)
    finally:
        await engine.dispose()
