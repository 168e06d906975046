from __future__ import annotations

import uuid
from datetime import date

import pytest

from dtm_shared.events import CloudEvent, EnvelopeError, parse_payload
from dtm_shared.events.catalog import REGISTRY
from dtm_shared.events.sites import SiteOpenedV1
from dtm_shared.messaging.outbox import shard_of


def test_cloudevent_binary_mode_round_trip() -> None:
    event = CloudEvent(
        type="dtm.site.opened.v1",
        source="sites",
        subject="abc",
        data={"a": 1},
        traceparent="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    )
    headers = dict(event.headers())
    assert headers["ce_specversion"] == b"1.0"
    assert headers["content-type"] == b"application/json"
    assert headers["traceparent"].startswith(b"00-")
    back = CloudEvent.from_record(event.headers(), event.value())
    assert back.id == event.id
    assert back.type == event.type
    assert back.subject == "abc"
    assert back.data == {"a": 1}
    assert back.time == event.time


@pytest.mark.parametrize(
    ("headers", "value"),
    [
        ([("ce_id", b"x")], b"{}"),
        (
            [
                ("ce_specversion", b"0.3"),
                ("ce_id", str(uuid.uuid4()).encode()),
                ("ce_type", b"t"),
                ("ce_source", b"s"),
                ("ce_subject", b"k"),
            ],
            b"{}",
        ),
        (
            [
                ("ce_specversion", b"1.0"),
                ("ce_id", b"not-a-uuid"),
                ("ce_type", b"t"),
                ("ce_source", b"s"),
                ("ce_subject", b"k"),
            ],
            b"{}",
        ),
        (
            [
                ("ce_specversion", b"1.0"),
                ("ce_id", str(uuid.uuid4()).encode()),
                ("ce_type", b"t"),
                ("ce_source", b"s"),
                ("ce_subject", b"k"),
            ],
            b"[1, 2]",
        ),
        (
            [
                ("ce_specversion", b"1.0"),
                ("ce_id", str(uuid.uuid4()).encode()),
                ("ce_type", b"t"),
                ("ce_source", b"s"),
                ("ce_subject", b"k"),
            ],
            b"{not json",
        ),
    ],
)
def test_invalid_envelopes_are_rejected(headers: list[tuple[str, bytes]], value: bytes) -> None:
    with pytest.raises(EnvelopeError):
        CloudEvent.from_record(headers, value)


def test_every_contract_is_versioned_and_registered() -> None:
    assert len(REGISTRY) >= 17
    for event_type, cls in REGISTRY.items():
        assert event_type.startswith("dtm.")
        assert event_type.rsplit(".", 1)[-1].startswith("v")
        assert cls.topic in {"dtm.registration", "dtm.sites"}
        assert "aggregate_id" in cls.model_fields
        assert "version" in cls.model_fields


def test_unknown_fields_are_ignored_and_unknown_types_return_none() -> None:
    data = {
        "aggregate_id": str(uuid.uuid4()),
        "version": 2,
        "effective_date": "2024-02-01",
        "code": "S1",
        "name": "n",
        "site_type": "planned_site",
        "location_pcode": "ML090101",
        "opened_on": "2024-01-01",
        "status": "open",
        "a_field_from_the_future": 1,
    }
    payload = parse_payload("dtm.site.opened.v1", data)
    assert isinstance(payload, SiteOpenedV1)
    assert payload.effective_date == date(2024, 2, 1)
    assert parse_payload("dtm.something.else.v9", data) is None


def test_shard_is_stable_and_spread() -> None:
    keys = [str(uuid.uuid4()) for _ in range(2000)]
    assert all(shard_of(k, 8) == shard_of(k, 8) for k in keys)
    counts = [sum(1 for k in keys if shard_of(k, 8) == s) for s in range(8)]
    assert min(counts) > 150
