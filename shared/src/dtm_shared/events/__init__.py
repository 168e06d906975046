"""Event contracts (versioned payloads) and the CloudEvents envelope."""

from dtm_shared.events.base import REGISTRY, EventPayload, parse_payload
from dtm_shared.events.envelope import CloudEvent, EnvelopeError

__all__ = ["REGISTRY", "CloudEvent", "EnvelopeError", "EventPayload", "parse_payload"]
