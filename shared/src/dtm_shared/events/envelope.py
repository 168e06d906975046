"""CloudEvents 1.0 in Kafka binary mode (DESIGN §3).

Headers `ce_specversion`, `ce_id`, `ce_source`, `ce_type`, `ce_time`, `ce_subject`,
`content-type: application/json` and `traceparent`; the record value is the JSON payload and the
record key is the aggregate id (per-aggregate order).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

SPECVERSION = "1.0"


class EnvelopeError(ValueError):
    """A record that is not a valid CloudEvent."""


@dataclass(frozen=True)
class CloudEvent:
    type: str
    source: str
    subject: str
    data: dict[str, Any]
    id: uuid.UUID = field(default_factory=uuid.uuid4)
    time: datetime = field(default_factory=lambda: datetime.now(UTC))
    traceparent: str | None = None

    def headers(self) -> list[tuple[str, bytes]]:
        hs = [
            ("ce_specversion", SPECVERSION.encode()),
            ("ce_id", str(self.id).encode()),
            ("ce_source", self.source.encode()),
            ("ce_type", self.type.encode()),
            ("ce_time", self.time.isoformat().encode()),
            ("ce_subject", self.subject.encode()),
            ("content-type", b"application/json"),
        ]
        if self.traceparent:
            hs.append(("traceparent", self.traceparent.encode()))
        return hs

    def value(self) -> bytes:
        return json.dumps(self.data, separators=(",", ":"), default=str).encode()

    @classmethod
    def from_record(cls, headers: Any, value: bytes | None) -> CloudEvent:
        hs: dict[str, str] = {}
        for k, v in headers or ():
            hs[k] = v.decode() if isinstance(v, bytes | bytearray) else str(v)
        missing = [h for h in ("ce_specversion", "ce_id", "ce_type", "ce_source", "ce_subject") if h not in hs]
        if missing:
            raise EnvelopeError(f"missing CloudEvents headers: {', '.join(missing)}")
        if hs["ce_specversion"] != SPECVERSION:
            raise EnvelopeError(f"unsupported specversion {hs['ce_specversion']}")
        try:
            data = json.loads(value or b"null")
            event_id = uuid.UUID(hs["ce_id"])
            time = datetime.fromisoformat(hs["ce_time"]) if "ce_time" in hs else datetime.now(UTC)
        except ValueError as exc:
            raise EnvelopeError(str(exc)) from exc
        if not isinstance(data, dict):
            raise EnvelopeError("the payload is not a JSON object")
        return cls(
            type=hs["ce_type"],
            source=hs["ce_source"],
            subject=hs["ce_subject"],
            data=data,
            id=event_id,
            time=time,
            traceparent=hs.get("traceparent"),
        )
