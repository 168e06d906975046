"""Duplicate candidates: same phone, same document, similar head name (accents, typos) with a close
birth date and the same origin; the queue hides other organisations' personal data; resolutions."""

from __future__ import annotations

import json
import uuid

import pytest

from tests.conftest import StackEnv
from tests.integration.registration.conftest import WRITE, household, member

pytestmark = pytest.mark.integration


async def _register(api, env: StackEnv, org: str, **kw) -> dict:
    r = await api("registration").post("/v1/households", json=household(**kw), headers=env.headers(org, *WRITE))
    assert r.status_code == 201, r.text
    return r.json()


async def _pending_for(api, env: StackEnv, household_id: str, *scopes: str, org: str = "DNDS") -> list[dict]:
    out, cursor = [], None
    while True:
        params = {"limit": 100, **({"cursor": cursor} if cursor else {})}
        r = await api("registration").get(
            "/v1/duplicate-candidates", params=params, headers=env.headers(org, "households:read", *scopes)
        )
        assert r.status_code == 200, r.text
        page = r.json()
        out += [c for c in page["items"] if household_id in (c["older"]["id"], c["newer"]["id"])]
        cursor = page["next_cursor"]
        if not cursor:
            return out


async def test_similar_names_across_organisations_without_leaking_pii(api, migrated: StackEnv) -> None:
    origin = "ML050101"
    family = f"Diarra{uuid.uuid4().hex[:4]}"
    a = await _register(
        api,
        migrated,
        "DNDS",
        origin_pcode=origin,
        members=[member(given_name="Fatoumata", family_name=family, date_of_birth="1980-05-01")],
    )
    # Accent and a typo, birth date close, same origin, another organisation.
    b = await _register(
        api,
        migrated,
        "UNHCR",
        origin_pcode=origin,
        members=[member(given_name="Fatoumatà", family_name=family + "h", date_of_birth="1981-01-01")],
    )
    # Same name, but far birth date: not a candidate; same name, other origin: not a candidate.
    c = await _register(
        api,
        migrated,
        "DNDS",
        origin_pcode=origin,
        members=[member(given_name="Fatoumata", family_name=family, date_of_birth="1950-01-01")],
    )
    d = await _register(
        api,
        migrated,
        "DNDS",
        origin_pcode="ML040101",
        members=[member(given_name="Fatoumata", family_name=family, date_of_birth="1980-05-01")],
    )
    [cand] = await _pending_for(api, migrated, b["id"])
    assert cand["older"]["id"] == a["id"] and cand["newer"]["id"] == b["id"]
    assert cand["reasons"] == ["name"] and cand["name_similarity"] >= 0.55
    # DNDS sees its own household's head name, not UNHCR's.
    assert cand["older"]["head_name"] == f"Fatoumata {family}"
    assert cand["newer"]["head_name"] is None and cand["newer"]["registered_by_org"] == "UNHCR"
    assert json.dumps(cand).count("Fatoumat") == 1
    [seen_by_unhcr] = await _pending_for(api, migrated, b["id"], org="UNHCR")
    assert seen_by_unhcr["older"]["head_name"] is None and seen_by_unhcr["newer"]["head_name"] is not None
    [with_pii] = await _pending_for(api, migrated, b["id"], "households:pii", org="OCHA")
    assert with_pii["older"]["head_name"] and with_pii["newer"]["head_name"]
    assert await _pending_for(api, migrated, c["id"]) == []
    assert await _pending_for(api, migrated, d["id"]) == []


async def test_phone_and_document_then_resolve_duplicate(api, migrated: StackEnv, db) -> None:
    reg = api("registration")
    phone = f"+223 7{uuid.uuid4().int % 10**7:07d}"
    doc = f"NINA-{uuid.uuid4().hex[:8]}"
    a = await _register(
        api, migrated, "DNDS", members=[member(phone=phone, id_document_type="nina", id_document_number=doc)]
    )
    b = await _register(
        api,
        migrated,
        "NRC",
        members=[
            member(given_name="Other", family_name="Person"),
            member(relationship="spouse", phone=phone, id_document_type="nina", id_document_number=doc),
        ],
    )
    [cand] = await _pending_for(api, migrated, a["id"])
    assert cand["reasons"] == ["document", "phone"] and cand["newer"]["id"] == b["id"]

    url = f"/v1/duplicate-candidates/{cand['id']}/resolution"
    r = await reg.post(url, json={"decision": "duplicate"}, headers=migrated.headers("DNDS", "households:read"))
    assert r.status_code == 403  # needs duplicates:resolve
    r = await reg.post(url, json={"decision": "maybe"}, headers=migrated.headers("DNDS", "duplicates:resolve"))
    assert r.status_code == 422
    r = await reg.post(url, json={"decision": "duplicate"}, headers=migrated.headers("DNDS", "duplicates:resolve"))
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "duplicate" and r.json()["resolved_by_org"] == "DNDS"
    newer = (await reg.get(f"/v1/households/{b['id']}", headers=migrated.headers("NRC", "households:read"))).json()
    assert newer["status"] == "inactive" and newer["inactive_reason"] == "duplicate" and newer["version"] == 2
    older = (await reg.get(f"/v1/households/{a['id']}", headers=migrated.headers("NRC", "households:read"))).json()
    assert older["status"] == "active"
    events = await db.fetch("SELECT event_type FROM outbox WHERE key = $1 ORDER BY id", b["id"])
    assert [e["event_type"] for e in events] == ["dtm.household.registered.v1", "dtm.household.deactivated.v1"]
    again = await reg.post(url, json={"decision": "distinct"}, headers=migrated.headers("DNDS", "duplicates:resolve"))
    assert again.status_code == 409
    missing = await reg.post(
        f"/v1/duplicate-candidates/{uuid.uuid4()}/resolution",
        json={"decision": "distinct"},
        headers=migrated.headers("DNDS", "duplicates:resolve"),
    )
    assert missing.status_code == 404


async def test_distinct_is_never_raised_again(api, migrated: StackEnv) -> None:
    reg = api("registration")
    phone = f"+223 6{uuid.uuid4().int % 10**7:07d}"
    a = await _register(api, migrated, "DNDS", members=[member(phone=phone)])
    b = await _register(api, migrated, "DNDS", members=[member(given_name="Awa", family_name="Coulibaly", phone=phone)])
    [cand] = await _pending_for(api, migrated, b["id"])
    r = await reg.post(
        f"/v1/duplicate-candidates/{cand['id']}/resolution",
        json={"decision": "distinct"},
        headers=migrated.headers("DNDS", "duplicates:resolve"),
    )
    assert r.status_code == 200 and r.json()["status"] == "distinct"
    assert await _pending_for(api, migrated, b["id"]) == []
    # A change of b's members looks for candidates again: the pair resolved distinct stays out.
    r = await reg.patch(
        f"/v1/households/{b['id']}",
        json={"members": [member(given_name="Awa", family_name="Coulibaly", phone=phone)]},
        headers={**migrated.headers("DNDS", *WRITE), "If-Match": '"1"'},
    )
    assert r.status_code == 200, r.text
    assert await _pending_for(api, migrated, b["id"]) == []
    # Both still active.
    for h in (a, b):
        got = await reg.get(f"/v1/households/{h['id']}", headers=migrated.headers("DNDS", "households:read"))
        assert got.json()["status"] == "active"
    r = await reg.get(
        "/v1/duplicate-candidates", params={"status": "distinct"}, headers=migrated.headers("DNDS", "households:read")
    )
    assert any(c["id"] == cand["id"] for c in r.json()["items"])


async def test_batch_finds_candidates_within_the_batch(api, migrated: StackEnv) -> None:
    doc = f"P-{uuid.uuid4().hex[:8]}"
    items = [
        household(
            members=[
                member(given_name="Kadiatou", family_name=doc, id_document_type="passport", id_document_number=doc)
            ]
        ),
        household(
            members=[member(given_name="Zz", family_name="Yy", id_document_type="passport", id_document_number=doc)]
        ),
    ]
    r = await api("registration").post(
        "/v1/households/batch", json={"households": items}, headers=migrated.headers("IRC", *WRITE)
    )
    first, second = (i["household_id"] for i in r.json()["items"])
    [cand] = await _pending_for(api, migrated, first)
    assert (cand["older"]["id"], cand["newer"]["id"], cand["reasons"]) == (first, second, ["document"])


async def test_a_shared_phone_raises_a_bounded_number_of_pairs(api, migrated: StackEnv) -> None:
    """A phone shared by a whole community (a chief's, an NGO's) must not flood the queue."""
    phone = f"+223 9{uuid.uuid4().int % 10**7:07d}"
    items = [household(members=[member(phone=phone)]) for _ in range(30)]
    r = await api("registration").post(
        "/v1/households/batch", json={"households": items}, headers=migrated.headers("IRC", *WRITE)
    )
    assert r.json()["created"] == 30
    last = r.json()["items"][-1]["household_id"]
    pairs = await _pending_for(api, migrated, last)
    assert 1 <= len(pairs) <= 20


async def test_sweep_finds_pairs_that_concurrent_registrations_missed(api, migrated: StackEnv, db) -> None:
    """Two concurrent transactions do not see each other's households; the worker's sweep does."""
    from datetime import UTC, datetime, timedelta

    from dtm_shared.db import create_engine, create_sessionmaker
    from registration.workers import recheck_duplicates

    phone = f"+223 8{uuid.uuid4().int % 10**7:07d}"
    a = await _register(api, migrated, "DNDS", members=[member(phone=phone)])
    b = await _register(api, migrated, "NRC", members=[member(given_name="Bintou", family_name="Kanté", phone=phone)])
    # As if they had been registered at the same moment: no candidate yet.
    await db.execute("DELETE FROM duplicate_candidates WHERE household_b = $1", uuid.UUID(b["id"]))
    assert await _pending_for(api, migrated, b["id"]) == []
    settings = migrated.settings("registration")
    engine = create_engine(settings)
    try:
        queued, resume = await recheck_duplicates(
            settings, create_sessionmaker(engine), datetime.now(UTC) - timedelta(minutes=1)
        )
        again, _ = await recheck_duplicates(
            settings, create_sessionmaker(engine), datetime.now(UTC) - timedelta(minutes=1)
        )
    finally:
        await engine.dispose()
    assert queued >= 1 and again == 0 and resume <= datetime.now(UTC)
    [cand] = await _pending_for(api, migrated, b["id"])
    assert (cand["older"]["id"], cand["newer"]["id"], cand["reasons"]) == (a["id"], b["id"], ["phone"])
