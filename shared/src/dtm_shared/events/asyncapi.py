"""AsyncAPI 3.0 document of the event contracts, generated from the payload models."""

from __future__ import annotations

from typing import Any

from pydantic.json_schema import models_json_schema

from dtm_shared.events.base import EventPayload

CE_HEADERS = {
    "type": "object",
    "required": ["ce_specversion", "ce_id", "ce_source", "ce_type", "ce_time", "ce_subject", "content-type"],
    "properties": {
        "ce_specversion": {"type": "string", "const": "1.0"},
        "ce_id": {"type": "string", "format": "uuid", "description": "Unique per event"},
        "ce_source": {"type": "string", "description": "The emitting service"},
        "ce_type": {"type": "string"},
        "ce_time": {"type": "string", "format": "date-time"},
        "ce_subject": {"type": "string", "format": "uuid", "description": "The aggregate id (also the record key)"},
        "content-type": {"type": "string", "const": "application/json"},
        "traceparent": {"type": "string", "description": "W3C trace context"},
    },
}


def _message_name(event_type: str) -> str:
    # dtm.household.registered.v1 -> householdRegisteredV1
    parts = event_type.removeprefix("dtm.").replace("_", ".").split(".")
    return parts[0] + "".join(p[:1].upper() + p[1:] for p in parts[1:])


def build_asyncapi(version: str = "1.0.0") -> dict[str, Any]:
    from dtm_shared.events.catalog import REGISTRY

    classes: list[type[EventPayload]] = [REGISTRY[t] for t in sorted(REGISTRY)]
    _, top = models_json_schema([(cls, "validation") for cls in classes], ref_template="#/components/schemas/{model}")
    schemas: dict[str, Any] = dict(top.get("$defs", {}))
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for event_type in sorted(REGISTRY):
        cls = REGISTRY[event_type]
        name = _message_name(event_type)
        channel = cls.topic.removeprefix("dtm.")
        messages[name] = {
            "name": event_type,
            "title": cls.__name__,
            "summary": (cls.__doc__ or cls.__mro__[1].__doc__ or "").strip().split("\n")[0],
            "contentType": "application/json",
            "headers": CE_HEADERS,
            "payload": {"$ref": f"#/components/schemas/{cls.__name__}"},
            "bindings": {"kafka": {"key": {"type": "string", "format": "uuid"}, "bindingVersion": "0.5.0"}},
        }
        ch = channels.setdefault(
            channel,
            {
                "address": cls.topic,
                "description": f"Events of the {channel} service; key = aggregate id; DLQ `{cls.topic}.dlq`.",
                "messages": {},
            },
        )
        ch["messages"][name] = {"$ref": f"#/components/messages/{name}"}
    for channel, ch in channels.items():
        operations[f"publish{channel.capitalize()}Events"] = {
            "action": "send",
            "channel": {"$ref": f"#/channels/{channel}"},
            "messages": [{"$ref": f"#/channels/{channel}/messages/{m}"} for m in ch["messages"]],
        }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "dtm-platform events",
            "version": version,
            "description": "Domain events (CloudEvents 1.0, Kafka binary mode) carrying each aggregate's full "
            "non-PII state after a change. Apply an event only if its `version` is newer than the one held.",
        },
        "defaultContentType": "application/json",
        "servers": {"local": {"host": "127.0.0.1:9092", "protocol": "kafka", "description": "make up"}},
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": schemas},
    }
