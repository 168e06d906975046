"""Base class and registry of versioned event payloads (event-carried state)."""

from __future__ import annotations

from datetime import date
from typing import ClassVar
from uuid import UUID

from pydantic import BaseModel, ConfigDict


class EventPayload(BaseModel):
    """The aggregate's full non-PII snapshot after a change.

    `event_type` is the CloudEvents `ce_type` (e.g. `dtm.household.registered.v1`): a breaking
    change is a new `.vN` class; old ones stay here so old events remain readable. Unknown fields
    are ignored when reading, so adding an optional field is compatible.
    """

    model_config = ConfigDict(extra="ignore", frozen=True)

    event_type: ClassVar[str]
    topic: ClassVar[str]

    aggregate_id: UUID
    version: int
    effective_date: date


REGISTRY: dict[str, type[EventPayload]] = {}


def register(*classes: type[EventPayload]) -> None:
    for cls in classes:
        REGISTRY[cls.event_type] = cls


def parse_payload(event_type: str, data: dict[str, object]) -> EventPayload | None:
    """Validate a payload by its type; None for a type this build does not know."""
    from dtm_shared.events import catalog  # noqa: F401  (fills REGISTRY)

    cls = REGISTRY.get(event_type)
    return cls.model_validate(data) if cls else None
