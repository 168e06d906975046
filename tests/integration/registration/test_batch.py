"""registerHouseholdsBatch: an answer per item, valid items accepted, re-sent batches answer
`existing`, 413 above the limit."""

from __future__ import annotations

import json
import uuid

import pytest

from tests.conftest import StackEnv
from tests.integration.registration.conftest import WRITE, household, member

pytestmark = pytest.mark.integration


async def test_mixed_batch_then_resent(api, migrated: StackEnv, db) -> None:
    reg = api("registration")
    h = migrated.headers("NRC", *WRITE)
    tag = uuid.uuid4().hex[:6]
    items = [
        household(external_id=f"{tag}-0"),
        household(external_id=f"{tag}-1", location_pcode="ML999999"),  # unknown P-code
        household(external_id=f"{tag}-2", population_group="martian"),  # unknown enum
        household(external_id=f"{tag}-3", members=[member(relationship="child")]),  # no head
        household(external_id=f"{tag}-4"),
        {"not": "a household"},
        household(external_id=f"{tag}-0"),  # repeated in the same batch
        household(external_id=None),
        "not even an object",
        None,
    ]
    r = await reg.post("/v1/households/batch", json={"households": items}, headers=h)
    assert r.status_code == 200, r.text
    result = r.json()
    statuses = [i["status"] for i in result["items"]]
    assert statuses == [
        "created",
        "rejected",
        "rejected",
        "rejected",
        "created",
        "rejected",
        "existing",
        "created",
        "rejected",
        "rejected",
    ]
    assert (result["created"], result["existing"], result["rejected"]) == (3, 1, 6)
    assert [i["index"] for i in result["items"]] == list(range(10))
    assert result["items"][8]["errors"][0]["loc"] == ["body", "households", 8]
    by_index = result["items"]
    assert by_index[1]["errors"][0]["loc"] == ["body", "households", 1, "location_pcode"]
    assert by_index[2]["errors"][0]["loc"] == ["body", "households", 2, "population_group"]
    assert by_index[3]["errors"][0]["loc"] == ["body", "households", 3, "members"]
    assert by_index[6]["household_id"] == by_index[0]["household_id"]
    assert all(i["registration_number"].startswith("MLI-HH-") for i in by_index if i["status"] == "created")
    created_ids = [i["household_id"] for i in by_index if i["status"] == "created"]
    n = await db.fetchval("SELECT count(*) FROM households WHERE id = ANY($1::uuid[])", created_ids)
    assert n == 3
    members = await db.fetchval("SELECT count(*) FROM members WHERE household_id = ANY($1::uuid[])", created_ids)
    assert members == 6
    events = await db.fetch(
        "SELECT key, event_type, payload::text AS payload FROM outbox WHERE key = ANY($1::text[])", created_ids
    )
    assert sorted(e["key"] for e in events) == sorted(created_ids)
    assert {e["event_type"] for e in events} == {"dtm.household.registered.v1"}
    from dtm_shared.events.registration import HouseholdRegisteredV1

    # The bulk path builds its events without validating them again: they must parse as the contract.
    for e in events:
        parsed = HouseholdRegisteredV1.model_validate_json(e["payload"])
        assert parsed.version == 1 and parsed.admin1_pcode == "ML09" and len(parsed.members) == 2
        assert [m.date_of_birth_estimated for m in parsed.members] == [False, True]
        assert parsed.model_dump(mode="json") == {**json.loads(e["payload"])}
    history = await db.fetchval(
        "SELECT count(*) FROM household_history WHERE household_id = ANY($1::uuid[])", created_ids
    )
    assert history == 3

    # The same batch again: nothing new, the items with an external id answer `existing`.
    again = (await reg.post("/v1/households/batch", json={"households": items[:5]}, headers=h)).json()
    assert [i["status"] for i in again["items"]] == ["existing", "rejected", "rejected", "rejected", "existing"]
    assert again["items"][0]["household_id"] == by_index[0]["household_id"]
    assert await db.fetchval("SELECT count(*) FROM households WHERE external_id LIKE $1", f"{tag}-%") == 2


async def test_batch_limits(api, migrated: StackEnv) -> None:
    reg = api("registration")
    h = migrated.headers("NRC", *WRITE)
    too_many = {"households": [{"x": i} for i in range(5001)]}
    r = await reg.post("/v1/households/batch", json=too_many, headers=h)
    assert r.status_code == 413 and r.headers["content-type"].startswith("application/problem+json")
    r = await reg.post("/v1/households/batch", json={"households": []}, headers=h)
    assert r.status_code == 200 and r.json()["items"] == []
    r = await reg.post("/v1/households/batch", json={"households": "nope"}, headers=h)
    assert r.status_code == 422
    r = await reg.post("/v1/households/batch", json=[household()], headers=h)
    assert r.status_code == 422
    r = await reg.post(
        "/v1/households/batch", json={"households": [household()]}, headers=migrated.headers("NRC", "households:read")
    )
    assert r.status_code == 403


async def test_full_size_batch(api, migrated: StackEnv, db) -> None:
    reg = api("registration")
    tag = uuid.uuid4().hex[:6]
    items = [household(external_id=f"{tag}-{i}") for i in range(5000)]
    r = await reg.post("/v1/households/batch", json={"households": items}, headers=migrated.headers("IRC", *WRITE))
    assert r.status_code == 200, r.text[:500]
    assert r.json()["created"] == 5000
    assert await db.fetchval("SELECT count(*) FROM households WHERE registered_by_org = 'IRC'") == 5000
    numbers = await db.fetchval("SELECT count(DISTINCT number) FROM households WHERE registered_by_org = 'IRC'")
    assert numbers == 5000


async def test_batch_with_idempotency_key(api, migrated: StackEnv) -> None:
    reg = api("registration")
    h = {**migrated.headers("NRC", *WRITE), "Idempotency-Key": str(uuid.uuid4())}
    body = {"households": [household(), household()]}
    first = await reg.post("/v1/households/batch", json=body, headers=h)
    again = await reg.post("/v1/households/batch", json=body, headers=h)
    assert first.json() == again.json() and first.json()["created"] == 2
    other = await reg.post("/v1/households/batch", json={"households": [household()]}, headers=h)
    assert other.status_code == 422


async def test_hostile_items_are_rejected_not_a_500(api, migrated: StackEnv) -> None:
    items = [
        household(members=[member(given_name="\x00")]),
        household(registration_date="0001-01-01", displacement_date=None),
        household(
            members=[member(date_of_birth=None, age_years=5)], registration_date="1899-12-31", displacement_date=None
        ),
        household(),
    ]
    r = await api("registration").post(
        "/v1/households/batch", json={"households": items}, headers=migrated.headers("NRC", *WRITE)
    )
    assert r.status_code == 200, r.text
    assert [i["status"] for i in r.json()["items"]] == ["rejected", "rejected", "rejected", "created"]


async def test_expired_idempotency_keys_are_purged(migrated: StackEnv, db) -> None:
    from dtm_shared.db import create_engine, create_sessionmaker
    from registration.workers import purge_idempotency_keys

    old, new = f"old-{uuid.uuid4()}", f"new-{uuid.uuid4()}"
    await db.execute(
        "INSERT INTO idempotency_keys (client, key, request_hash, created_at) VALUES "
        "('c', $1, 'h', now() - interval '3 days'), ('c', $2, 'h', now() - interval '23 hours')",
        old,
        new,
    )
    settings = migrated.settings("registration")
    engine = create_engine(settings)
    try:
        assert await purge_idempotency_keys(settings, create_sessionmaker(engine)) >= 1
    finally:
        await engine.dispose()
    kept = await db.fetch("SELECT key FROM idempotency_keys WHERE key = ANY($1::text[])", [old, new])
    assert [r["key"] for r in kept] == [new]


async def test_concurrent_batches_with_the_same_external_ids(api, migrated: StackEnv, db) -> None:
    """Two partners' systems (or one retrying) send the same batch at once: one household each."""
    import asyncio

    tag = uuid.uuid4().hex[:6]
    body = {"households": [household(external_id=f"{tag}-{i}") for i in range(200)]}
    h = migrated.headers("WFP", *WRITE)
    first, second = await asyncio.gather(
        api("registration").post("/v1/households/batch", json=body, headers=h),
        api("registration").post("/v1/households/batch", json=body, headers=h),
    )
    assert first.status_code == 200 and second.status_code == 200, (first.text[:300], second.text[:300])
    statuses = [i["status"] for i in first.json()["items"]] + [i["status"] for i in second.json()["items"]]
    assert statuses.count("created") == 200 and statuses.count("existing") == 200
    ids_first = [i["household_id"] for i in first.json()["items"]]
    assert ids_first == [i["household_id"] for i in second.json()["items"]]
    assert await db.fetchval("SELECT count(*) FROM households WHERE external_id LIKE $1", f"{tag}-%") == 200
