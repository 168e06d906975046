"""Background processes of the sites service: the outbox relay."""

from __future__ import annotations

from dtm_shared.logs import configure_logging
from dtm_shared.messaging.relay import OutboxRelay
from dtm_shared.workers import run_until_signalled
from sites.settings import SitesSettings


async def run_relay(settings: SitesSettings | None = None) -> None:
    settings = settings or SitesSettings()
    configure_logging(f"{settings.service_name}-relay", settings.log_level, settings.log_json)
    relay = OutboxRelay(settings)
    await run_until_signalled(relay.run(), relay.stop)
