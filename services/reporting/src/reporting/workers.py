"""Background process of the reporting service: the event consumer (no outbox, no relay)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from dtm_shared.db import create_engine
from dtm_shared.logs import configure_logging
from dtm_shared.workers import run_until_signalled
from reporting.consumer import ReportingConsumer
from reporting.handlers import HANDLERS, TOPICS
from reporting.settings import ReportingSettings


def build_consumer(settings: ReportingSettings, engine: AsyncEngine) -> ReportingConsumer:
    return ReportingConsumer(
        settings,
        async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False),
        group=settings.consumer_group,
        topics=TOPICS,
        handlers=HANDLERS,
    )


async def run_consumer(settings: ReportingSettings | None = None) -> None:
    settings = settings or ReportingSettings()
    configure_logging(f"{settings.service_name}-consumer", settings.log_level, settings.log_json)
    engine = create_engine(settings)
    try:
        consumer = build_consumer(settings, engine)
        await run_until_signalled(consumer.run(), consumer.stop)
    finally:
        await engine.dispose()
