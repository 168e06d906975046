"""Sites through the API: list filters and search, updates with If-Match, closing and reopening."""

from __future__ import annotations

import uuid
from datetime import date, timedelta

import pytest

from tests.conftest import StackEnv
from tests.integration.sites.helpers import WRITE, assert_problem, create_site, outbox_events, site_body

pytestmark = pytest.mark.integration


async def test_list_filters_search_ignoring_accents_and_paginates(api, migrated: StackEnv) -> None:
    sites = api("sites")
    h = migrated.headers("IOM", *WRITE)
    tag = uuid.uuid4().hex[:6]
    made = [
        await create_site(sites, migrated, code=f"L{tag}-1", name=f"Ségou Médine {tag}", location_pcode="ML040601"),
        await create_site(sites, migrated, code=f"L{tag}-2", name=f"Sénou {tag}", site_type="planned_site"),
        await create_site(sites, migrated, code=f"L{tag}-3", name=f"Niamana {tag}", location_pcode="ML090106"),
        await create_site(sites, migrated, code=f"L{tag}-4", name=f"Mopti Sévaré {tag}", location_pcode="ML050301"),
    ]
    # accents and case ignored, both ways
    r = await sites.get("/v1/sites", params={"q": f"SEGOU MEDINE {tag}"}, headers=h)
    assert r.status_code == 200, r.text
    assert [s["code"] for s in r.json()["items"]] == [f"L{tag}-1"]
    r = await sites.get("/v1/sites", params={"q": f"sévaré {tag}"}, headers=h)
    assert [s["code"] for s in r.json()["items"]] == [f"L{tag}-4"]
    r = await sites.get("/v1/sites", params={"code": f"L{tag}-3"}, headers=h)
    assert [s["name"] for s in r.json()["items"]] == [f"Niamana {tag}"]
    # LIKE wildcards in the query are literal
    r = await sites.get("/v1/sites", params={"q": f"%{tag}"}, headers=h)
    assert r.json()["items"] == []
    # filters
    r = await sites.get("/v1/sites", params={"q": tag, "admin1": "ML04"}, headers=h)
    assert [s["code"] for s in r.json()["items"]] == [f"L{tag}-1"]
    r = await sites.get("/v1/sites", params={"q": tag, "admin2": "ML0901", "site_type": "planned_site"}, headers=h)
    assert [s["code"] for s in r.json()["items"]] == [f"L{tag}-2"]
    r = await sites.get("/v1/sites", params={"q": tag, "admin3": "ML050301"}, headers=h)
    assert [s["code"] for s in r.json()["items"]] == [f"L{tag}-4"]
    # pagination: every site once, in code order
    seen, cursor = [], None
    while True:
        params = {"q": tag, "limit": 3, **({"cursor": cursor} if cursor else {})}
        page = (await sites.get("/v1/sites", params=params, headers=h)).json()
        assert len(page["items"]) <= 3
        seen += [s["code"] for s in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(s["code"] for s in made)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"admin1": "ML99"}, "admin1"),
        ({"admin2": "ML09"}, "admin2"),
        ({"admin3": "nope"}, "admin3"),
        ({"status": "burning"}, "status"),
        ({"site_type": "palace"}, "site_type"),
        ({"code": "has space"}, "code"),
        ({"limit": 0}, "limit"),
        ({"limit": 501}, "limit"),
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"cursor": "WyJhIiwiYiJd"}, "cursor"),  # a valid cursor of the wrong shape
    ],
)
async def test_list_rejects_bad_filters(api, migrated: StackEnv, params: dict, field: str) -> None:
    r = await api("sites").get("/v1/sites", params=params, headers=migrated.headers("IOM", "sites:read"))
    assert_problem(r, 422, field)


async def test_update_needs_current_etag(api, migrated: StackEnv) -> None:
    sites = api("sites")
    h = migrated.headers("DNDS", *WRITE)
    site = await create_site(sites, migrated)
    url = f"/v1/sites/{site['id']}"
    assert_problem(await sites.patch(url, json={"name": "Nouveau nom"}, headers=h), 428)
    assert_problem(await sites.patch(url, json={"name": "x"}, headers={**h, "If-Match": "garbage"}), 400)
    r = await sites.patch(
        url, json={"name": "Nouveau nom", "capacity_households": 350}, headers={**h, "If-Match": '"1"'}
    )
    assert r.status_code == 200, r.text
    assert r.json()["name"] == "Nouveau nom" and r.json()["version"] == 2 and r.headers["etag"] == '"2"'
    stale = await sites.patch(url, json={"name": "Perdu"}, headers={**h, "If-Match": '"1"'})
    doc = assert_problem(stale, 412)
    assert stale.headers["etag"] == '"2"' and "2" in doc["detail"]
    # clearing an optional field with null; a weak ETag matches too
    r = await sites.patch(url, json={"management_agency": None}, headers={**h, "If-Match": 'W/"2"'})
    assert r.status_code == 200 and r.json()["management_agency"] is None and r.json()["version"] == 3
    # nothing changes: no new version, no event
    r = await sites.patch(url, json={"name": "Nouveau nom"}, headers={**h, "If-Match": '"3"'})
    assert r.status_code == 200 and r.json()["version"] == 3
    got = (await sites.get(url, headers=h)).json()
    assert got["name"] == "Nouveau nom" and got["capacity_households"] == 350
    events = await outbox_events(migrated, site["id"])
    assert [(t, p["version"]) for t, p in events] == [
        ("dtm.site.opened.v1", 1),
        ("dtm.site.updated.v1", 2),
        ("dtm.site.updated.v1", 3),
    ]
    assert events[1][1]["name"] == "Nouveau nom" and events[1][1]["code"] == site["code"]


@pytest.mark.parametrize(
    ("patch", "status", "field"),
    [
        ({"location_pcode": "ML0901"}, 422, "location_pcode"),
        ({"latitude": 12.6}, 422, "latitude"),  # without longitude
        ({"latitude": 48.8, "longitude": 2.3}, 422, "latitude"),
        ({"name": None}, 422, "name"),
        ({"opened_on": (date.today() + timedelta(days=3)).isoformat()}, 422, "opened_on"),
        ({"status": "closed"}, 422, "status"),  # status changes only through close/reopen
        ({"capacity_households": -1}, 422, "capacity_households"),
    ],
)
async def test_update_rejects_bad_input(api, migrated: StackEnv, patch: dict, status: int, field: str) -> None:
    sites = api("sites")
    site = await create_site(sites, migrated)
    h = {**migrated.headers("DNDS", *WRITE), "If-Match": '"1"'}
    assert_problem(await sites.patch(f"/v1/sites/{site['id']}", json=patch, headers=h), status, field)


async def test_update_to_a_taken_code_is_a_conflict(api, migrated: StackEnv) -> None:
    sites = api("sites")
    a, b = await create_site(sites, migrated), await create_site(sites, migrated)
    h = {**migrated.headers("DNDS", *WRITE), "If-Match": '"1"'}
    assert_problem(await sites.patch(f"/v1/sites/{b['id']}", json={"code": a["code"]}, headers=h), 409)
    assert_problem(await sites.post("/v1/sites", json=site_body(code=a["code"]), headers=h), 409)


async def test_close_and_reopen(api, migrated: StackEnv) -> None:
    sites = api("sites")
    h = migrated.headers("DNDS", *WRITE)
    site = await create_site(sites, migrated, opened_on="2024-01-15")
    url = f"/v1/sites/{site['id']}"
    # refusals before anything changes
    assert_problem(await sites.post(f"{url}/reopen", headers=h), 409)
    assert_problem(
        await sites.post(f"{url}/close", json={"closed_on": "2023-12-31", "closure_reason": "x"}, headers=h),
        422,
        "closed_on",
    )
    future = (date.today() + timedelta(days=2)).isoformat()
    assert_problem(
        await sites.post(f"{url}/close", json={"closed_on": future, "closure_reason": "x"}, headers=h), 422, "closed_on"
    )
    assert_problem(await sites.post(f"{url}/close", json={"closed_on": "2024-05-01"}, headers=h), 422, "closure_reason")
    stale = {**h, "If-Match": '"7"'}
    assert_problem(
        await sites.post(f"{url}/close", json={"closed_on": "2024-05-01", "closure_reason": "x"}, headers=stale), 412
    )

    r = await sites.post(
        f"{url}/close",
        json={"closed_on": "2024-05-01", "closure_reason": "relocated"},
        headers={**h, "If-Match": '"1"'},
    )
    assert r.status_code == 200, r.text
    closed = r.json()
    assert closed["status"] == "closed" and closed["closed_on"] == "2024-05-01" and closed["version"] == 2
    # a closed site stays readable, listed, and cannot be closed twice
    assert (await sites.get(url, headers=migrated.headers("UNHCR", "sites:read"))).json()["status"] == "closed"
    listed = (await sites.get("/v1/sites", params={"q": site["code"], "status": "closed"}, headers=h)).json()
    assert [s["id"] for s in listed["items"]] == [site["id"]]
    assert_problem(
        await sites.post(f"{url}/close", json={"closed_on": "2024-05-02", "closure_reason": "x"}, headers=h), 409
    )
    # reopening before the closure is refused
    assert_problem(await sites.post(f"{url}/reopen", json={"reopened_on": "2024-04-01"}, headers=h), 422, "reopened_on")

    r = await sites.post(f"{url}/reopen", json={"reopened_on": "2024-07-01"}, headers=h)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "open" and r.json()["closed_on"] is None and r.json()["version"] == 3

    events = await outbox_events(migrated, site["id"])
    assert [t for t, _ in events] == ["dtm.site.opened.v1", "dtm.site.closed.v1", "dtm.site.reopened.v1"]
    _, closed_event = events[1]
    assert closed_event["status"] == "closed" and closed_event["effective_date"] == "2024-05-01"
    assert closed_event["closure_reason"] == "relocated" and closed_event["version"] == 2
    assert events[2][1]["effective_date"] == "2024-07-01" and events[2][1]["status"] == "open"


async def test_not_found_and_bad_ids(api, migrated: StackEnv) -> None:
    sites = api("sites")
    h = migrated.headers("DNDS", *WRITE)
    assert_problem(await sites.get(f"/v1/sites/{uuid.uuid4()}", headers=h), 404)
    assert_problem(await sites.get("/v1/sites/not-a-uuid", headers=h), 422, "site_id")
    assert_problem(
        await sites.patch(f"/v1/sites/{uuid.uuid4()}", json={"name": "x"}, headers={**h, "If-Match": '"1"'}), 404
    )
    assert_problem(
        await sites.post(
            f"/v1/sites/{uuid.uuid4()}/close", json={"closed_on": "2024-01-01", "closure_reason": "x"}, headers=h
        ),
        404,
    )
    r = await sites.post("/v1/sites", content=b"{not json", headers={**h, "content-type": "application/json"})
    assert_problem(r, 400)
    assert_problem(await sites.post("/v1/sites", json={**site_body(), "extra": 1}, headers=h), 422, "extra")


async def test_scopes(api, migrated: StackEnv) -> None:
    sites = api("sites")
    site = await create_site(sites, migrated)
    reader = migrated.headers("UNHCR", "sites:read")
    writer_only = migrated.headers("UNHCR", "sites:write")
    assert_problem(await sites.get("/v1/sites", headers=writer_only), 403)
    assert_problem(
        await sites.patch(f"/v1/sites/{site['id']}", json={"name": "x"}, headers={**reader, "If-Match": '"1"'}), 403
    )
    assert_problem(
        await sites.post(
            f"/v1/sites/{site['id']}/close", json={"closed_on": "2024-02-01", "closure_reason": "x"}, headers=reader
        ),
        403,
    )
    assert_problem(await sites.get("/v1/sites", headers={"Authorization": "Bearer nope"}), 401)
    admin = migrated.headers("OCHA", "admin")
    assert (await sites.get(f"/v1/sites/{site['id']}", headers=admin)).status_code == 200


async def test_openapi_names_every_operation(api) -> None:
    doc = (await api("sites").get("/openapi.json")).json()
    ops = {
        op["operationId"]: op
        for path in doc["paths"].values()
        for method, op in path.items()
        if method in {"get", "post", "put", "patch", "delete"}
    }
    expected = {
        "createSite", "getSite", "listSites", "updateSite", "closeSite", "reopenSite", "listAdminAreas",
        "recordSiteAssessment", "listSiteAssessments", "getSiteAssessment", "correctSiteAssessment",
        "recordServiceActivity", "listServiceActivities", "getServiceActivity", "updateServiceActivity",
        "endServiceActivity", "createCommittee", "listCommittees", "getCommittee", "updateCommittee",
        "listPendingReports", "submitActivityReport", "listActivityReports", "getActivityReport",
        "resubmitActivityReport", "reviewActivityReport",
    }  # fmt: skip
    assert expected <= set(ops)
    for op_id in expected:
        assert ops[op_id]["tags"], op_id
    schemas = doc["components"]["schemas"]
    for name in ("SiteCreate", "SiteUpdate", "SiteList", "AssessmentCreate", "ActivityReportReview", "ProblemDetail"):
        assert name in schemas
    assert "428" in doc["paths"]["/v1/sites/{site_id}"]["patch"]["responses"]
