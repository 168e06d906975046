"""Events registration consumes -> use cases: the sites replica, from `dtm.sites`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncSession

from dtm_shared.events.base import EventPayload
from dtm_shared.events.envelope import CloudEvent
from dtm_shared.events.sites import SiteClosedV1, SiteOpenedV1, SiteReopenedV1, SiteSnapshotV1, SiteUpdatedV1
from registration.repository import RegistrationRepository

Handler = Callable[[AsyncSession, CloudEvent, EventPayload], Awaitable[None]]


async def apply_site(session: AsyncSession, event: CloudEvent, payload: EventPayload) -> None:
    """Upsert the replica only when the event's version is newer (replays are harmless)."""
    assert isinstance(payload, SiteSnapshotV1)
    await RegistrationRepository(session).upsert_site(  # type: ignore[arg-type]
        payload.aggregate_id, payload.code, payload.location_pcode, payload.status.value, payload.version
    )


HANDLERS: dict[str, Handler] = {
    SiteOpenedV1.event_type: apply_site,
    SiteUpdatedV1.event_type: apply_site,
    SiteClosedV1.event_type: apply_site,
    SiteReopenedV1.event_type: apply_site,
}

#: The topic these handlers read.
TOPICS = [SiteSnapshotV1.topic]
