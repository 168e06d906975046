"""Refusals found in review: bad input that must be a 4xx (never a 500, nothing lost), and
changes only the registering organisation (or the coordination) may make."""

from __future__ import annotations

import json

import pytest

from tests.conftest import StackEnv
from tests.integration.registration.conftest import household, member
from tests.integration.registration.test_households import WRITE, register

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("tag", ['"²"', '"¹"', '"1²"', '"99999999999999999999999"'])
async def test_if_match_with_non_ascii_or_huge_digits_is_a_400(api, migrated: StackEnv, tag: str) -> None:
    hh = await register(api, migrated)
    r = await api("registration").patch(
        f"/v1/households/{hh['id']}",
        json={"displacement_reason": "other"},
        headers={
            **migrated.headers("DNDS", *WRITE),
            "If-Match": tag.encode("latin-1"),
        },  # raw bytes, as a client may send
    )
    assert r.status_code == 400, r.text
    assert r.headers["content-type"].startswith("application/problem+json")


async def test_a_batch_item_with_an_unencodable_external_id_rejects_only_itself(api, migrated: StackEnv) -> None:
    good = household()
    unencodable = '{"external_id": "X\\ud800", "population_group": "idp"}'  # a lone surrogate
    body = '{"households": [' + unencodable + ", " + json.dumps(good) + "]}"
    r = await api("registration").post(
        "/v1/households/batch",
        content=body.encode(),
        headers={**migrated.headers("DNDS", *WRITE), "content-type": "application/json"},
    )
    assert r.status_code == 200, r.text
    items = r.json()["items"]
    assert [i["status"] for i in items] == ["rejected", "created"]
    assert items[0]["external_id"] is None


@pytest.mark.parametrize("field", ["displacement_reason", "registration_date"])
async def test_null_for_a_required_field_is_a_422(api, migrated: StackEnv, field: str) -> None:
    hh = await register(api, migrated)
    r = await api("registration").patch(
        f"/v1/households/{hh['id']}",
        json={field: None},
        headers={**migrated.headers("DNDS", *WRITE), "If-Match": '"1"'},
    )
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["loc"] == ["body", field]


async def test_an_age_change_replaces_the_known_date_of_birth(api, migrated: StackEnv) -> None:
    hh = await register(api, migrated)
    head = hh["members"][0]
    others = [{k: v for k, v in m.items() if k in member()} | {"id": m["id"]} for m in hh["members"][1:]]
    same = {k: v for k, v in head.items() if k in member()} | {"id": head["id"], "date_of_birth": None}
    for m in others:
        m.setdefault("date_of_birth", None)
    h = migrated.headers("DNDS", *WRITE, "households:pii")
    url = f"/v1/households/{hh['id']}"
    r = await api("registration").patch(
        url, json={"members": [same | {"age_years": 20}, *others]}, headers={**h, "If-Match": '"1"'}
    )
    assert r.status_code == 200, r.text
    changed = r.json()["members"][0]
    assert changed["date_of_birth"] != head["date_of_birth"]
    assert changed["date_of_birth_estimated"] is True
    registered = hh["registration_date"]
    assert int(registered[:4]) - int(changed["date_of_birth"][:4]) in (20, 21)


async def test_another_organisation_cannot_relocate_return_or_deactivate(api, migrated: StackEnv) -> None:
    hh = await register(api, migrated)
    url = f"/v1/households/{hh['id']}"
    other = migrated.headers("UNHCR", *WRITE)
    reg = api("registration")
    r = await reg.post(
        f"{url}/deactivation", json={"reason": "departed", "effective_date": "2024-05-01"}, headers=other
    )
    assert r.status_code == 403, r.text
    r = await reg.post(
        f"{url}/relocation", json={"location_pcode": "ML090101", "effective_date": "2024-05-01"}, headers=other
    )
    assert r.status_code == 403, r.text
    got = await reg.get(url, headers=migrated.headers("DNDS", "households:read"))
    assert got.json()["status"] == "active"
    assert got.json()["version"] == 1
    # The coordination (households:pii) may.
    r = await reg.post(
        f"{url}/deactivation",
        json={"reason": "departed", "effective_date": "2024-05-01"},
        headers=migrated.headers("DNDS-COORD", *WRITE, "households:pii"),
    )
    assert r.status_code == 200, r.text
