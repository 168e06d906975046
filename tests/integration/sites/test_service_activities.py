"""Who does what where: record, update and end service activities."""

from __future__ import annotations

import uuid
from datetime import date, timedelta

import pytest

from tests.conftest import StackEnv
from tests.integration.sites.helpers import WRITE, assert_problem, create_site, outbox_events

pytestmark = pytest.mark.integration


def activity(**over) -> dict:
    return {"sector": "wash", "activity": "water_trucking", "start_date": "2024-03-01", **over}


async def test_record_update_end(api, migrated: StackEnv) -> None:
    sites = api("sites")
    h = migrated.headers("OXFAM", *WRITE)
    site = await create_site(sites, migrated)
    r = await sites.post(f"/v1/sites/{site['id']}/service-activities", json=activity(), headers=h)
    assert r.status_code == 201, r.text
    a = r.json()
    assert a["organization"] == "OXFAM" and a["status"] == "ongoing" and a["version"] == 1
    url = f"/v1/service-activities/{a['id']}"
    assert r.headers["location"] == url

    # another organisation may record on a partner's behalf; the same activity by another partner is allowed
    other = await sites.post(
        f"/v1/sites/{site['id']}/service-activities",
        json=activity(organization="NRC"),
        headers=migrated.headers("CCCM", *WRITE),
    )
    assert (
        other.status_code == 201 and other.json()["organization"] == "NRC" and other.json()["recorded_by_org"] == "CCCM"
    )
    # the same partner's same activity over an overlapping period is a duplicate
    dup = await sites.post(
        f"/v1/sites/{site['id']}/service-activities", json=activity(start_date="2024-05-01"), headers=h
    )
    assert_problem(dup, 409)
    # a future activity is planned
    future = (date.today() + timedelta(days=30)).isoformat()
    planned = await sites.post(
        f"/v1/sites/{site['id']}/service-activities",
        json=activity(sector="health", activity="mobile_clinic", start_date=future),
        headers=h,
    )
    assert planned.json()["status"] == "planned"

    # update with If-Match
    assert_problem(await sites.patch(url, json={"activity": "water_points"}, headers=h), 428)
    r = await sites.patch(url, json={"activity": "water_points"}, headers={**h, "If-Match": '"1"'})
    assert r.status_code == 200 and r.json()["activity"] == "water_points" and r.json()["version"] == 2
    assert_problem(await sites.patch(url, json={"activity": "x"}, headers={**h, "If-Match": '"1"'}), 412)
    assert_problem(
        await sites.patch(url, json={"end_date": "2024-01-01"}, headers={**h, "If-Match": '"2"'}), 422, "end_date"
    )

    # end
    assert_problem(await sites.post(f"{url}/end", json={"end_date": "2024-02-01"}, headers=h), 422, "end_date")
    assert_problem(await sites.post(f"{url}/end", json={"end_date": future}, headers=h), 422, "end_date")
    r = await sites.post(f"{url}/end", json={"end_date": "2024-10-31"}, headers=h)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "ended" and r.json()["end_date"] == "2024-10-31" and r.json()["version"] == 3
    assert_problem(await sites.post(f"{url}/end", headers=h), 409)
    assert_problem(await sites.patch(url, json={"activity": "again"}, headers={**h, "If-Match": '"3"'}), 409)
    # after it ended, the partner may start the same activity again
    again = await sites.post(
        f"/v1/sites/{site['id']}/service-activities",
        json=activity(activity="water_points", start_date="2024-11-01"),
        headers=h,
    )
    assert again.status_code == 201, again.text

    events = await outbox_events(migrated, a["id"])
    assert [(t, p["version"], p["status"]) for t, p in events] == [
        ("dtm.service_activity.recorded.v1", 1, "ongoing"),
        ("dtm.service_activity.updated.v1", 2, "ongoing"),
        ("dtm.service_activity.ended.v1", 3, "ended"),
    ]
    assert events[2][1]["effective_date"] == "2024-10-31" and events[2][1]["site_id"] == site["id"]

    # listing with filters
    reader = migrated.headers("UNHCR", "sites:read")
    listed = (await sites.get("/v1/service-activities", params={"site_id": site["id"]}, headers=reader)).json()
    assert {x["organization"] for x in listed["items"]} == {"OXFAM", "NRC"} and len(listed["items"]) == 4
    wash = (
        await sites.get(
            "/v1/service-activities",
            params={"site_id": site["id"], "sector": "wash", "status": "ongoing"},
            headers=reader,
        )
    ).json()["items"]
    assert sorted(x["organization"] for x in wash) == ["NRC", "OXFAM"]
    by_org = (
        await sites.get(
            "/v1/service-activities",
            params={"organization": "NRC", "admin3": site["location_pcode"], "site_id": site["id"]},
            headers=reader,
        )
    ).json()["items"]
    assert [x["id"] for x in by_org] == [other.json()["id"]]
    seen, cursor = [], None
    while True:
        params = {"site_id": site["id"], "limit": 1, **({"cursor": cursor} if cursor else {})}
        page = (await sites.get("/v1/service-activities", params=params, headers=reader)).json()
        seen += [x["id"] for x in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert sorted(seen) == sorted(x["id"] for x in listed["items"])
    assert (await sites.get(url, headers=reader)).json()["status"] == "ended"

    # setting a past end through an update ends the activity (an `ended` event)
    planned_id = planned.json()["id"]
    r = await sites.patch(
        f"/v1/service-activities/{planned_id}",
        json={"start_date": "2024-04-01", "end_date": "2024-04-30"},
        headers={**h, "If-Match": '"1"'},
    )
    assert r.status_code == 200 and r.json()["status"] == "ended"
    assert [t for t, _ in await outbox_events(migrated, planned_id)] == [
        "dtm.service_activity.recorded.v1",
        "dtm.service_activity.ended.v1",
    ]


async def test_refusals(api, migrated: StackEnv) -> None:
    sites = api("sites")
    h = migrated.headers("OXFAM", *WRITE)
    site = await create_site(sites, migrated)
    base = f"/v1/sites/{site['id']}/service-activities"
    assert_problem(await sites.post(base, json=activity(sector="roads"), headers=h), 422, "sector")
    assert_problem(await sites.post(base, json=activity(activity="Has Spaces"), headers=h), 422, "activity")
    assert_problem(await sites.post(base, json=activity(end_date="2024-01-01"), headers=h), 422, "end_date")
    assert_problem(await sites.post(base, json=activity(organization=""), headers=h), 422, "organization")
    assert_problem(await sites.post(f"/v1/sites/{uuid.uuid4()}/service-activities", json=activity(), headers=h), 404)
    assert_problem(await sites.get(f"/v1/service-activities/{uuid.uuid4()}", headers=h), 404)
    assert_problem(await sites.get("/v1/service-activities", params={"admin1": "XX"}, headers=h), 422, "admin1")
    assert_problem(await sites.get("/v1/service-activities", params={"cursor": "WzEsMl0"}, headers=h), 422, "cursor")
    assert_problem(await sites.post(base, json=activity(), headers=migrated.headers("OXFAM", "sites:read")), 403)
    r = await sites.post(
        f"/v1/sites/{site['id']}/close", json={"closed_on": "2024-06-01", "closure_reason": "flooded"}, headers=h
    )
    assert r.status_code == 200
    assert_problem(await sites.post(base, json=activity(), headers=h), 409)
