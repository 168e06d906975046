"""Personal data (names, phones, document numbers) never leaves through events, logs, metrics or
error messages: collect all of them while registering and changing households, and look for every
personal value used."""

from __future__ import annotations

import io
import json
import sys
import uuid

import pytest

from dtm_shared.logs import configure_logging
from dtm_shared.messaging.relay import OutboxRelay
from tests.conftest import StackEnv, running
from tests.integration.registration.conftest import WRITE, household, member, read_topic

pytestmark = pytest.mark.integration


def _person(tag: str, i: int, **kw) -> dict:
    return member(
        given_name=f"Zéphyrine{tag}{i}",
        family_name=f"Ouologuem{tag}{i}",
        phone=f"+223 7{uuid.uuid4().int % 10**7:07d}",
        id_document_type="nina",
        id_document_number=f"NINA{tag}{i}",
        **kw,
    )


async def test_no_personal_data_in_events_logs_metrics_or_errors(api, migrated: StackEnv, db, monkeypatch) -> None:
    reg = api("registration")
    h = migrated.headers("DNDS", *WRITE)
    tag = uuid.uuid4().hex[:6]
    people = [_person(tag, i) for i in range(6)]
    people[1]["relationship"] = "spouse"
    people[3]["relationship"] = "child"
    secrets: list[str] = []
    for p in people:
        secrets += [p["given_name"], p["family_name"], p["phone"], p["phone"].replace(" ", ""), p["id_document_number"]]

    log = io.StringIO()
    monkeypatch.setattr(sys, "stdout", log)
    configure_logging("registration", "DEBUG", True)
    relay = OutboxRelay(migrated.settings("registration", log_level="DEBUG"))
    bodies: list[str] = []
    try:
        async with running(relay.run(), relay.stop):
            one = await reg.post(
                "/v1/households",
                json=household(members=[people[0], people[1]]),
                headers={**h, "Idempotency-Key": tag},
            )
            assert one.status_code == 201
            assert (
                await reg.post(
                    "/v1/households",
                    json=household(members=[people[0], people[1]]),
                    headers={**h, "Idempotency-Key": tag},
                )
            ).status_code == 422  # same key, another body (another random origin)
            batch = await reg.post(
                "/v1/households/batch",
                json={
                    "households": [
                        household(members=[people[2], people[3]]),
                        household(members=[people[4]]),
                        # Rejected items and requests carry personal data too.
                        household(members=[{**people[5], "date_of_birth": "2999-01-01"}]),
                        household(members=[{**people[5], "sex": "unknown"}]),
                    ]
                },
                headers=migrated.headers("NRC", *WRITE),
            )
            assert [i["status"] for i in batch.json()["items"]] == ["created", "created", "rejected", "rejected"]
            bodies.append(batch.text)
            for bad in (
                household(members=[{**people[5], "phone": "not a phone " + people[5]["phone"]}]),
                household(members=[{**people[5], "given_name": people[5]["given_name"] * 30}]),
                household(members=[people[5], {**people[5], "relationship": "head"}]),
                household(members=[people[5]], site_id=str(uuid.uuid4())),
            ):
                r = await reg.post("/v1/households", json=bad, headers=h)
                assert r.status_code == 422
                bodies.append(r.text)
            hid = one.json()["id"]
            upd = await reg.patch(
                f"/v1/households/{hid}",
                json={"members": [people[0], {**people[5], "relationship": "spouse"}]},
                headers={**h, "If-Match": '"1"'},
            )
            assert upd.status_code == 200
            # A duplicate candidate (same phone) seen by another organisation: names hidden.
            dup = household(members=[{**_person(tag, 9), "phone": people[4]["phone"]}])
            assert (await reg.post("/v1/households", json=dup, headers=h)).status_code == 201
            queue = await reg.get("/v1/duplicate-candidates", headers=migrated.headers("UNHCR", "households:read"))
            bodies.append(queue.text)
            other_view = await reg.get(f"/v1/households/{hid}", headers=migrated.headers("UNHCR", "households:read"))
            bodies.append(other_view.text)
            metrics = await reg.get("/metrics")
            bodies.append(metrics.text)

            ids = {hid, *(i["household_id"] for i in batch.json()["items"][:2])}

            def complete(records: list) -> bool:
                keys = [r.key.decode() for r in records]
                return ids <= set(keys) and keys.count(hid) >= 2

            records = await read_topic(migrated, "dtm.registration", complete)
    finally:
        monkeypatch.undo()
        configure_logging("registration", "WARNING", True)

    events = "\n".join(
        (r.value or b"").decode() + " " + " ".join(v.decode(errors="replace") for _, v in r.headers) for r in records
    )
    outbox = "\n".join(await db.fetchval("SELECT array_agg(payload::text) FROM outbox"))
    history = "\n".join(await db.fetchval("SELECT array_agg(snapshot::text) FROM household_history"))
    logs = log.getvalue()
    assert '"event": "request"' in logs and "/v1/households" in logs  # the capture works
    assert len(records) >= 4 and "dtm.household.updated.v1" in events
    for where, text in (("events", events), ("outbox", outbox), ("history", history), ("logs", logs)):
        leaked = [s for s in secrets if s in text]
        assert not leaked, f"personal data in {where}: {len(leaked)} values"
    for text in bodies:
        leaked = [s for s in secrets if s in text]
        assert not leaked, f"personal data in an answer: {text[:300]}"
    # ... while the registering organisation does see its people.
    own = await reg.get(f"/v1/households/{one.json()['id']}", headers=h)
    assert people[5]["given_name"] in own.text and people[5]["phone"] in own.text
    payload = json.loads(next(r.value for r in records if r.key.decode() == hid))
    assert set(payload["members"][0]) == {
        "member_id",
        "sex",
        "date_of_birth",
        "date_of_birth_estimated",
        "relationship",
        "specific_needs",
    }
