from __future__ import annotations

import json

import pytest
from sqlalchemy import text

from tests.conftest import StackEnv

pytestmark = pytest.mark.integration


async def test_create_site_writes_row_and_outbox_event(api, migrated: StackEnv) -> None:
    sites = api("sites")
    h = migrated.headers("DNDS", "sites:write", "sites:read")
    body = {
        "code": "SKEL-001",
        "name": "Site de Faladié",
        "site_type": "spontaneous_site",
        "location_pcode": "ML090106",
        "opened_on": "2024-01-15",
        "capacity_households": 300,
    }
    r = await sites.post("/v1/sites", json=body, headers=h)
    assert r.status_code == 201, r.text
    site = r.json()
    assert site["admin1_pcode"] == "ML09" and site["version"] == 1
    assert r.headers["etag"] == '"1"'
    got = await sites.get(f"/v1/sites/{site['id']}", headers=h)
    assert got.json()["code"] == "SKEL-001"
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(migrated.settings("sites").sqlalchemy_url)
    async with engine.connect() as conn:
        await conn.execute(text("SET search_path TO sites"))
        rows = (
            await conn.execute(text("SELECT event_type, key, payload FROM outbox WHERE key = :k"), {"k": site["id"]})
        ).all()
    await engine.dispose()
    assert [r[0] for r in rows] == ["dtm.site.opened.v1"]
    payload = rows[0][2] if isinstance(rows[0][2], dict) else json.loads(rows[0][2])
    assert payload["code"] == "SKEL-001" and payload["version"] == 1


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"location_pcode": "ML0901"}, "location_pcode"),
        ({"location_pcode": "XX999999"}, "location_pcode"),
        ({"site_type": "palace"}, "site_type"),
        ({"latitude": 48.8, "longitude": 2.3}, "latitude"),
    ],
)
async def test_create_site_rejects_bad_input(api, migrated: StackEnv, patch: dict, field: str) -> None:
    body = {
        "code": f"BAD-{field}",
        "name": "x",
        "site_type": "planned_site",
        "location_pcode": "ML090106",
        "opened_on": "2024-01-15",
        **patch,
    }
    r = await api("sites").post("/v1/sites", json=body, headers=migrated.headers("DNDS", "sites:write"))
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert any(field in e["loc"] for e in r.json()["errors"])


async def test_auth_401_and_403(api, migrated: StackEnv) -> None:
    sites = api("sites")
    assert (await sites.get("/v1/sites/00000000-0000-0000-0000-000000000000")).status_code == 401
    r = await sites.post("/v1/sites", json={}, headers=migrated.headers("DNDS", "sites:read"))
    assert r.status_code == 403
    assert r.headers["content-type"].startswith("application/problem+json")
