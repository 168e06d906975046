"""registerHousehold, getHousehold, listHouseholds, updateHousehold, relocate, return, deactivate:
good inputs and bad ones, against the real database."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta

import pytest

from tests.conftest import StackEnv
from tests.integration.registration.conftest import WRITE, household, member

pytestmark = pytest.mark.integration

TOMORROW = (datetime.now(UTC).date() + timedelta(days=1)).isoformat()


async def register(api, env: StackEnv, org: str = "DNDS", **kw) -> dict:
    r = await api("registration").post("/v1/households", json=household(**kw), headers=env.headers(org, *WRITE))
    assert r.status_code == 201, r.text
    return r.json()


async def test_register_in_host_community_then_read(api, migrated: StackEnv, db) -> None:
    reg = api("registration")
    body = household(external_id=f"ext-{uuid.uuid4().hex[:6]}")
    r = await reg.post("/v1/households", json=body, headers=migrated.headers("DNDS", *WRITE))
    assert r.status_code == 201, r.text
    assert r.headers["etag"] == '"1"' and r.headers["location"] == f"/v1/households/{r.json()['id']}"
    hh = r.json()
    assert hh["registration_number"].startswith("MLI-HH-") and len(hh["registration_number"]) >= 13
    assert (hh["admin1_pcode"], hh["admin2_pcode"], hh["admin3_pcode"]) == ("ML09", "ML0901", "ML090106")
    assert hh["registered_by_org"] == "DNDS" and hh["status"] == "active" and hh["version"] == 1
    head, child = hh["members"]
    assert head["given_name"] == body["members"][0]["given_name"] and not hh["pii_redacted"]
    # An age alone gives an estimated date of birth: 7 completed years on the registration date.
    dob = date.fromisoformat(child["date_of_birth"])
    assert child["date_of_birth_estimated"] is True
    reg_date = date(2024, 2, 1)
    age = reg_date.year - dob.year - ((reg_date.month, reg_date.day) < (dob.month, dob.day))
    assert age == 7

    got = await reg.get(f"/v1/households/{hh['id']}", headers=migrated.headers("DNDS", "households:read"))
    assert got.status_code == 200 and got.json() == hh and got.headers["etag"] == '"1"'
    rows = await db.fetch("SELECT event_type, payload::text FROM outbox WHERE key = $1", hh["id"])
    assert [r["event_type"] for r in rows] == ["dtm.household.registered.v1"]
    history = await reg.get(f"/v1/households/{hh['id']}/history", headers=migrated.headers("X", "households:read"))
    assert [(e["version"], e["event_type"], e["effective_date"]) for e in history.json()] == [
        (1, "dtm.household.registered.v1", "2024-02-01")
    ]


async def test_personal_data_redacted_for_other_organisations(api, migrated: StackEnv) -> None:
    reg = api("registration")
    hh = await register(
        api, migrated, members=[member(phone="+223 70 11 22 33", id_document_type="nina", id_document_number="N-1")]
    )
    other = (await reg.get(f"/v1/households/{hh['id']}", headers=migrated.headers("UNHCR", "households:read"))).json()
    assert other["pii_redacted"] is True
    [m] = other["members"]
    assert m["given_name"] is None and m["family_name"] is None and m["phone"] is None
    assert m["id_document_number"] is None and m["sex"] == "female" and m["date_of_birth"] == "1985-03-02"
    allowed = await reg.get(
        f"/v1/households/{hh['id']}", headers=migrated.headers("UNHCR", "households:read", "households:pii")
    )
    assert allowed.json()["members"][0]["phone"] == "+223 70 11 22 33"
    assert allowed.json()["pii_redacted"] is False


async def test_register_repatriate_and_returnee(api, migrated: StackEnv) -> None:
    rep = await register(
        api,
        migrated,
        population_group="repatriate",
        country_of_asylum="BFA",
        repatriation_date="2024-01-05",
    )
    assert rep["population_group"] == "repatriate" and rep["country_of_asylum"] == "BFA"
    ret = await register(api, migrated, population_group="idp_returnee", return_date="2024-01-20")
    assert ret["return_date"] == "2024-01-20"


def _bad(patch: dict) -> dict:
    return household(**patch)


TWO_HEADS = [member(), member(given_name="Oumar", sex="male")]
NO_HEAD = [member(relationship="spouse")]


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        (_bad({"location_pcode": "ML999999"}), ["body", "location_pcode"]),
        (_bad({"location_pcode": "ML0901"}), ["body", "location_pcode"]),  # admin2, not admin3
        (_bad({"location_pcode": None}), ["body", "location_pcode"]),
        (_bad({"origin_pcode": "ML09"}), ["body", "origin_pcode"]),  # admin1
        (_bad({"origin_pcode": "ML777777"}), ["body", "origin_pcode"]),
        (_bad({"site_id": str(uuid.uuid4()), "location_pcode": None}), ["body", "site_id"]),
        (_bad({"members": TWO_HEADS}), ["body", "members"]),
        (_bad({"members": NO_HEAD}), ["body", "members"]),
        (_bad({"members": []}), ["body", "members"]),
        (_bad({"members": [member()] + [member(relationship="child")] * 50}), ["body", "members"]),
        (_bad({"registration_date": TOMORROW}), ["body", "registration_date"]),
        (_bad({"displacement_date": "2024-03-01"}), ["body", "displacement_date"]),  # after registration
        (
            _bad({"population_group": "idp_returnee", "return_date": "2023-01-01"}),
            ["body", "return_date"],
        ),  # before displacement
        (_bad({"population_group": "idp_returnee"}), ["body", "return_date"]),
        (_bad({"members": [member(date_of_birth="2024-05-01")]}), ["body", "members", 0, "date_of_birth"]),
        (_bad({"members": [member(date_of_birth=TOMORROW)]}), ["body", "members", 0, "date_of_birth"]),
        (_bad({"members": [member(date_of_birth=None)]}), ["body", "members", 0, "date_of_birth"]),
        (_bad({"population_group": "repatriate", "repatriation_date": "2024-01-01"}), ["body", "country_of_asylum"]),
        (_bad({"population_group": "repatriate", "country_of_asylum": "BFA"}), ["body", "repatriation_date"]),
        (
            _bad({"population_group": "repatriate", "country_of_asylum": "XYZ", "repatriation_date": "2024-01-01"}),
            ["body", "country_of_asylum"],
        ),
        (_bad({"population_group": "refugee"}), ["body", "population_group"]),
        (_bad({"displacement_reason": "boredom"}), ["body", "displacement_reason"]),
        (_bad({"members": [member(sex="x")]}), ["body", "members", 0, "sex"]),
        (_bad({"members": [member(specific_needs=["wings"])]}), ["body", "members", 0, "specific_needs", 0]),
        (_bad({"members": [member(relationship="cousin")]}), ["body", "members", 0, "relationship"]),
        (_bad({"registration_date": "2024-02-31"}), ["body", "registration_date"]),
        (_bad({"unexpected": 1}), ["body", "unexpected"]),
        # Hostile or absurd input: a 422 naming the field, never a 500.
        (_bad({"members": [member(given_name="A\x00B")]}), ["body", "members", 0, "given_name"]),
        (_bad({"external_id": "x\x00"}), ["body", "external_id"]),
        (_bad({"members": [member(id_document_type="nina", id_document_number="1\n2")]}), ["body", "members", 0]),
        (_bad({"registration_date": "0001-01-01", "displacement_date": None}), ["body", "registration_date"]),
        (_bad({"members": [member(date_of_birth="1700-01-01")]}), ["body", "members", 0, "date_of_birth"]),
        (_bad({"members": [member(date_of_birth=None, age_years=10**12)]}), ["body", "members", 0, "age_years"]),
        (_bad({"members": [member(phone="call me maybe")]}), ["body", "members", 0, "phone"]),
        (_bad({"site_id": "not-a-uuid"}), ["body", "site_id"]),
        (_bad({"members": [member(given_name="x" * 101)]}), ["body", "members", 0, "given_name"]),
        (_bad({"members": "everyone"}), ["body", "members"]),
    ],
)
async def test_register_rejects_bad_input_naming_the_field(api, migrated: StackEnv, db, body: dict, loc: list) -> None:
    before = await db.fetchval("SELECT count(*) FROM households")
    r = await api("registration").post("/v1/households", json=body, headers=migrated.headers("DNDS", *WRITE))
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    problem = r.json()
    assert problem["status"] == 422 and problem["title"]
    assert any(e["loc"][: len(loc)] == loc for e in problem["errors"]), problem["errors"]
    assert await db.fetchval("SELECT count(*) FROM households") == before


async def test_hostile_query_parameters(api, migrated: StackEnv) -> None:
    reg = api("registration")
    h = migrated.headers("DNDS", "households:read")
    for params in (
        {"registered_by_org": "A\x00B"},
        {"admin1_pcode": "ML\x00"},
        {"cursor": "bjpcAA"},
        {"registered_since": "2024-13-01"},
        {"site_id": "x"},
    ):
        r = await reg.get("/v1/households", params=params, headers=h)
        assert r.status_code in (200, 422), (params, r.status_code, r.text)
        assert r.status_code != 500


async def test_closed_site_and_site_location_mismatch(api, migrated: StackEnv, replica_site) -> None:
    reg = api("registration")
    h = migrated.headers("DNDS", *WRITE)
    closed = await replica_site(status="closed")
    r = await reg.post("/v1/households", json=household(site_id=str(closed), location_pcode=None), headers=h)
    assert r.status_code == 422 and r.json()["errors"][0]["loc"] == ["body", "site_id"]
    site = await replica_site(location_pcode="ML090101")
    r = await reg.post("/v1/households", json=household(site_id=str(site), location_pcode="ML090106"), headers=h)
    assert r.status_code == 422 and r.json()["errors"][0]["loc"] == ["body", "location_pcode"]
    r = await reg.post("/v1/households", json=household(site_id=str(site), location_pcode=None), headers=h)
    assert r.status_code == 201 and r.json()["location_pcode"] == "ML090101"


async def test_malformed_json_and_auth(api, migrated: StackEnv) -> None:
    reg = api("registration")
    r = await reg.post(
        "/v1/households",
        content=b"{not json",
        headers={**migrated.headers("DNDS", *WRITE), "content-type": "application/json"},
    )
    assert r.status_code in (400, 422) and r.headers["content-type"].startswith("application/problem+json")
    assert (await reg.post("/v1/households", json=household())).status_code == 401
    r = await reg.post("/v1/households", json=household(), headers=migrated.headers("DNDS", "households:read"))
    assert r.status_code == 403
    r = await reg.get(f"/v1/households/{uuid.uuid4()}", headers=migrated.headers("DNDS", "households:read"))
    assert r.status_code == 404 and r.headers["content-type"].startswith("application/problem+json")
    r = await reg.get("/v1/households/not-a-uuid", headers=migrated.headers("DNDS", "households:read"))
    assert r.status_code == 422


async def test_same_external_id_is_existing_not_a_second_household(api, migrated: StackEnv, db) -> None:
    reg = api("registration")
    ext = f"dup-{uuid.uuid4().hex[:6]}"
    first = await reg.post("/v1/households", json=household(external_id=ext), headers=migrated.headers("NRC", *WRITE))
    again = await reg.post("/v1/households", json=household(external_id=ext), headers=migrated.headers("NRC", *WRITE))
    assert first.status_code == 201 and again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    # Another organisation's identical external id is its own household.
    other = await reg.post("/v1/households", json=household(external_id=ext), headers=migrated.headers("DRC", *WRITE))
    assert other.status_code == 201 and other.json()["id"] != first.json()["id"]
    assert await db.fetchval("SELECT count(*) FROM households WHERE external_id = $1", ext) == 2


async def test_idempotency_key(api, migrated: StackEnv, db) -> None:
    reg = api("registration")
    h = migrated.headers("DNDS", *WRITE)
    key = f"key-{uuid.uuid4()}"
    body = household()
    first = await reg.post("/v1/households", json=body, headers={**h, "Idempotency-Key": key})
    again = await reg.post("/v1/households", json=body, headers={**h, "Idempotency-Key": key})
    assert first.status_code == 201 and again.status_code == 201
    assert again.json() == first.json() and again.headers.get("idempotent-replayed") == "true"
    head = body["members"][0]["family_name"]
    count = await db.fetchval("SELECT count(*) FROM members WHERE family_name = $1 AND relationship = 'head'", head)
    assert count == 1
    other = await reg.post("/v1/households", json=household(), headers={**h, "Idempotency-Key": key})
    assert other.status_code == 422
    assert other.json()["errors"][0]["loc"] == ["header", "Idempotency-Key"]
    # Keys are scoped per client: another client may use the same key.
    mine = await reg.post(
        "/v1/households", json=household(), headers={**migrated.headers("UNHCR", *WRITE), "Idempotency-Key": key}
    )
    assert mine.status_code == 201 and mine.json()["id"] != first.json()["id"]
    # A rejected request leaves the key free: the corrected retry runs.
    bad_key = f"key-{uuid.uuid4()}"
    bad = await reg.post(
        "/v1/households", json=household(location_pcode="ML0"), headers={**h, "Idempotency-Key": bad_key}
    )
    assert bad.status_code == 422
    assert await db.fetchval("SELECT count(*) FROM idempotency_keys WHERE key = $1", bad_key) == 0


async def test_list_filters_and_cursor_pagination(api, migrated: StackEnv, replica_site) -> None:
    reg = api("registration")
    org = f"ORG{uuid.uuid4().hex[:6]}"
    site = await replica_site(location_pcode="ML090101")
    made = [
        await register(api, migrated, org=org),
        await register(api, migrated, org=org, site_id=str(site), location_pcode=None),
        await register(api, migrated, org=org, location_pcode="ML010101", registration_date="2024-03-01"),
        await register(api, migrated, org=org, population_group="idp_returnee", return_date="2024-01-01"),
        await register(api, migrated, org=org, location_pcode="ML010101", registration_date="2024-04-01"),
    ]
    h = migrated.headers("READER", "households:read")

    async def ids(**params) -> list[str]:
        out, cursor = [], None
        while True:
            q = {**params, "registered_by_org": org, "limit": 2, **({"cursor": cursor} if cursor else {})}
            r = await reg.get("/v1/households", params=q, headers=h)
            assert r.status_code == 200, r.text
            page = r.json()
            assert len(page["items"]) <= 2
            out += [i["id"] for i in page["items"]]
            cursor = page["next_cursor"]
            if not cursor:
                return out

    assert await ids() == [m["id"] for m in made]  # stable order: registration number
    assert await ids(site_id=str(site)) == [made[1]["id"]]
    assert await ids(admin1_pcode="ML01") == [made[2]["id"], made[4]["id"]]
    assert await ids(admin2_pcode="ML0901") == [made[0]["id"], made[1]["id"], made[3]["id"]]
    assert await ids(admin3_pcode="ML090101") == [made[1]["id"]]
    assert await ids(population_group="idp_returnee") == [made[3]["id"]]
    assert await ids(registered_since="2024-02-15", registered_until="2024-03-15") == [made[2]["id"]]
    assert await ids(status="inactive") == []
    r = await reg.get("/v1/households", params={"cursor": "garbage!"}, headers=h)
    assert r.status_code == 422
    r = await reg.get("/v1/households", params={"population_group": "tourist"}, headers=h)
    assert r.status_code == 422
    r = await reg.get("/v1/households", params={"limit": 100000}, headers=h)
    assert r.status_code == 422
    page = (await reg.get("/v1/households", params={"registered_by_org": org}, headers=h)).json()
    assert all(i["pii_redacted"] for i in page["items"])


async def test_update_with_if_match(api, migrated: StackEnv, db) -> None:
    reg = api("registration")
    h = migrated.headers("DNDS", *WRITE)
    hh = await register(api, migrated)
    url = f"/v1/households/{hh['id']}"
    patch = {"displacement_reason": "natural_disaster"}
    assert (await reg.patch(url, json=patch, headers=h)).status_code == 428
    assert (await reg.patch(url, json=patch, headers={**h, "If-Match": '"7"'})).status_code == 412
    r = await reg.patch(url, json=patch, headers={**h, "If-Match": '"1"'})
    assert r.status_code == 200, r.text
    assert r.json()["displacement_reason"] == "natural_disaster" and r.json()["version"] == 2
    assert r.headers["etag"] == '"2"'
    # Members: keep the head by id, change the child, add one; ids are kept for known members.
    head, child = hh["members"]
    members = [
        {**member(given_name="Aminata", family_name="Keïta"), "id": head["id"]},
        member(given_name="Moussa", sex="male", date_of_birth="2015-01-01", relationship="child"),
    ]
    r = await reg.patch(url, json={"members": members}, headers={**h, "If-Match": '"2"'})
    assert r.status_code == 200, r.text
    assert r.json()["members"][0]["id"] == head["id"] and r.json()["members"][1]["id"] != child["id"]
    assert r.json()["members"][0]["family_name"] == "Keïta" and r.json()["version"] == 3
    # Bad updates: stale, a rule broken, an unknown member id, another organisation.
    assert (await reg.patch(url, json=patch, headers={**h, "If-Match": '"2"'})).status_code == 412
    bad = await reg.patch(url, json={"displacement_date": TOMORROW}, headers={**h, "If-Match": '"3"'})
    assert bad.status_code == 422 and bad.json()["errors"][0]["loc"] == ["body", "displacement_date"]
    bad = await reg.patch(
        url, json={"members": [{**member(), "id": str(uuid.uuid4())}]}, headers={**h, "If-Match": '"3"'}
    )
    assert bad.status_code == 422 and bad.json()["errors"][0]["loc"] == ["body", "members", 0, "id"]
    bad = await reg.patch(url, json={"members": [member(relationship="child")]}, headers={**h, "If-Match": '"3"'})
    assert bad.status_code == 422
    other = await reg.patch(url, json=patch, headers={**migrated.headers("NRC", *WRITE), "If-Match": '"3"'})
    assert other.status_code == 403
    events = await db.fetch("SELECT event_type FROM outbox WHERE key = $1 ORDER BY id", hh["id"])
    assert [e["event_type"] for e in events] == [
        "dtm.household.registered.v1",
        "dtm.household.updated.v1",
        "dtm.household.updated.v1",
    ]


async def test_relocate_return_deactivate(api, migrated: StackEnv, db, replica_site) -> None:
    reg = api("registration")
    h = migrated.headers("DNDS", *WRITE)
    hh = await register(api, migrated)
    url = f"/v1/households/{hh['id']}"
    site = await replica_site(location_pcode="ML090101")
    closed = await replica_site(status="closed")

    r = await reg.post(f"{url}/relocation", json={"site_id": str(closed), "effective_date": "2024-03-01"}, headers=h)
    assert r.status_code == 422 and r.json()["errors"][0]["loc"] == ["body", "site_id"]
    r = await reg.post(f"{url}/relocation", json={"site_id": str(site), "effective_date": TOMORROW}, headers=h)
    assert r.status_code == 422 and r.json()["errors"][0]["loc"] == ["body", "effective_date"]
    r = await reg.post(f"{url}/relocation", json={"site_id": str(site), "effective_date": "2024-01-01"}, headers=h)
    assert r.status_code == 422  # before registration
    r = await reg.post(
        f"{url}/relocation",
        json={"site_id": str(site), "effective_date": "2024-03-01"},
        headers={**h, "If-Match": '"9"'},
    )
    assert r.status_code == 412
    r = await reg.post(f"{url}/relocation", json={"site_id": str(site), "effective_date": "2024-03-01"}, headers=h)
    assert r.status_code == 200, r.text
    assert r.json()["site_id"] == str(site) and r.json()["location_pcode"] == "ML090101" and r.json()["version"] == 2

    r = await reg.post(f"{url}/return", json={"location_pcode": "ML0601", "return_date": "2024-04-01"}, headers=h)
    assert r.status_code == 422 and r.json()["errors"][0]["loc"] == ["body", "location_pcode"]
    r = await reg.post(f"{url}/return", json={"location_pcode": "ML060101", "return_date": "2024-04-01"}, headers=h)
    assert r.status_code == 200, r.text
    back = r.json()
    assert back["population_group"] == "idp_returnee" and back["return_date"] == "2024-04-01"
    assert back["site_id"] is None and back["admin1_pcode"] == "ML06" and back["version"] == 3
    r = await reg.post(f"{url}/return", json={"location_pcode": "ML060101", "return_date": "2024-04-02"}, headers=h)
    assert r.status_code == 409  # only an idp returns

    r = await reg.post(f"{url}/deactivation", json={"reason": "bored", "effective_date": "2024-05-01"}, headers=h)
    assert r.status_code == 422
    r = await reg.post(f"{url}/deactivation", json={"reason": "departed", "effective_date": "2024-05-01"}, headers=h)
    assert r.status_code == 200 and r.json()["status"] == "inactive" and r.json()["inactive_reason"] == "departed"
    r = await reg.post(f"{url}/deactivation", json={"reason": "departed", "effective_date": "2024-05-01"}, headers=h)
    assert r.status_code == 409
    r = await reg.patch(url, json={"displacement_reason": "other"}, headers={**h, "If-Match": '"4"'})
    assert r.status_code == 409
    r = await reg.post(
        f"/v1/households/{uuid.uuid4()}/deactivation",
        json={"reason": "departed", "effective_date": "2024-05-01"},
        headers=h,
    )
    assert r.status_code == 404

    rows = await db.fetch("SELECT event_type, payload FROM outbox WHERE key = $1 ORDER BY id", hh["id"])
    import json

    payloads = [json.loads(p["payload"]) for p in rows]
    assert [r["event_type"] for r in rows] == [
        "dtm.household.registered.v1",
        "dtm.household.relocated.v1",
        "dtm.household.returned.v1",
        "dtm.household.deactivated.v1",
    ]
    assert [p["version"] for p in payloads] == [1, 2, 3, 4]
    assert [p["effective_date"] for p in payloads] == ["2024-02-01", "2024-03-01", "2024-04-01", "2024-05-01"]
    assert payloads[-1]["status"] == "inactive" and payloads[-1]["inactive_date"] == "2024-05-01"
    history = await reg.get(f"{url}/history", headers=migrated.headers("X", "households:read"))
    assert [e["version"] for e in history.json()] == [1, 2, 3, 4]
    assert history.json()[1]["snapshot"]["site_id"] == str(site)
