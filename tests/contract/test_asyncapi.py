"""The published AsyncAPI document is generated from the payload models and kept up to date."""

from __future__ import annotations

import json
from pathlib import Path

from dtm_shared.events.asyncapi import build_asyncapi
from dtm_shared.events.catalog import REGISTRY

DOC = Path(__file__).resolve().parents[2] / "docs" / "asyncapi.json"


def test_committed_asyncapi_matches_the_contracts() -> None:
    committed = json.loads(DOC.read_text(encoding="utf-8"))
    assert committed == build_asyncapi(), "run `uv run dtm asyncapi --output docs/asyncapi.json`"


def test_every_event_type_has_a_message_with_cloudevents_headers_and_a_resolvable_payload() -> None:
    doc = build_asyncapi()
    names = {m["name"] for m in doc["components"]["messages"].values()}
    assert names == set(REGISTRY)
    for message in doc["components"]["messages"].values():
        assert "ce_id" in message["headers"]["required"]
        ref = message["payload"]["$ref"].rsplit("/", 1)[-1]
        schema = doc["components"]["schemas"][ref]
        assert {"aggregate_id", "version", "effective_date"} <= set(schema["properties"])
    assert {c["address"] for c in doc["channels"].values()} == {"dtm.registration", "dtm.sites"}
    # No personal data in any contract.
    text = json.dumps(doc["components"]["schemas"])
    for pii in ("given_name", "family_name", "phone", "id_document_number"):
        assert pii not in text
