"""The P-code reference served by listAdminAreas."""

from __future__ import annotations

import pytest

from tests.conftest import StackEnv
from tests.integration.sites.helpers import assert_problem

pytestmark = pytest.mark.integration


async def test_levels_parents_and_accent_insensitive_search(api, migrated: StackEnv) -> None:
    sites = api("sites")
    h = migrated.headers("PARTNER", "indicators:read")  # any valid token may look codes up
    regions = (await sites.get("/v1/admin-areas", params={"level": 1}, headers=h)).json()
    codes = [a["pcode"] for a in regions["items"]]
    assert "ML09" in codes and all(a["level"] == 1 and a["parent_pcode"] is None for a in regions["items"])
    assert codes == sorted(codes)

    cercles = (await sites.get("/v1/admin-areas", params={"parent": "ML04"}, headers=h)).json()["items"]
    assert cercles and all(a["parent_pcode"] == "ML04" and a["level"] == 2 for a in cercles)

    found = (await sites.get("/v1/admin-areas", params={"q": "SEGOU", "level": 1}, headers=h)).json()["items"]
    assert [(a["pcode"], a["name"]) for a in found] == [("ML04", "Ségou")]
    communes = (await sites.get("/v1/admin-areas", params={"q": "ML0901", "level": 3}, headers=h)).json()["items"]
    assert communes and all(a["pcode"].startswith("ML0901") and a["admin2_pcode"] == "ML0901" for a in communes)
    assert all(a["admin1_pcode"] == "ML09" for a in communes)


async def test_pagination_covers_every_area_once(api, migrated: StackEnv) -> None:
    sites = api("sites")
    h = migrated.headers("PARTNER", "sites:read")
    all_areas = (await sites.get("/v1/admin-areas", params={"limit": 1000}, headers=h)).json()
    assert all_areas["next_cursor"] is None
    seen, cursor = [], None
    while True:
        params = {"limit": 250, **({"cursor": cursor} if cursor else {})}
        page = (await sites.get("/v1/admin-areas", params=params, headers=h)).json()
        seen += [a["pcode"] for a in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [a["pcode"] for a in all_areas["items"]]
    assert len(seen) == len(set(seen)) > 700


@pytest.mark.parametrize(
    ("params", "field"),
    [({"level": 4}, "level"), ({"parent": "ML99"}, "parent"), ({"cursor": "@@"}, "cursor"), ({"limit": 0}, "limit")],
)
async def test_bad_queries(api, migrated: StackEnv, params: dict, field: str) -> None:
    r = await api("sites").get("/v1/admin-areas", params=params, headers=migrated.headers("X", "sites:read"))
    assert_problem(r, 422, field)


async def test_needs_a_token_with_a_scope(api, migrated: StackEnv) -> None:
    assert_problem(await api("sites").get("/v1/admin-areas"), 401)
    assert_problem(await api("sites").get("/v1/admin-areas", headers=migrated.headers("NOBODY")), 403)
    r = await api("sites").get(
        "/v1/admin-areas", params={"level": 1}, headers=migrated.headers("DNDS", "households:write")
    )
    assert r.status_code == 200
