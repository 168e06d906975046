"""Site assessments: totals that must add up, one per site and round, corrections with If-Match."""

from __future__ import annotations

import uuid
from datetime import date, timedelta

import pytest

from tests.conftest import StackEnv
from tests.integration.sites.helpers import WRITE, assert_problem, assessment_body, create_site, outbox_events

pytestmark = pytest.mark.integration


async def test_record_list_and_correct(api, migrated: StackEnv) -> None:
    sites = api("sites")
    h = migrated.headers("IOM", *WRITE)
    site = await create_site(sites, migrated)
    base = f"/v1/sites/{site['id']}/assessments"
    r = await sites.post(base, json=assessment_body(1), headers=h)
    assert r.status_code == 201, r.text
    first = r.json()
    assert first["version"] == 1 and first["individuals"] == 100 and first["recorded_by_org"] == "IOM"
    assert first["individuals_by_reason"] == {
        "armed_conflict": 80,
        "community_tension": 15,
        "natural_disaster": 5,
        "other": 0,
    }
    assert r.headers["location"] == f"{base}/1" and r.headers["etag"] == '"1"'
    r2 = await sites.post(base, json=assessment_body(2, assessed_on="2024-09-10"), headers=h)
    assert r2.status_code == 201

    # a second assessment for the same round is refused, and says how to correct
    dup = await sites.post(base, json=assessment_body(1, households=25), headers=h)
    assert "If-Match" in assert_problem(dup, 409)["detail"]

    # a correction is a PUT with the current ETag
    correction = {k: v for k, v in assessment_body(1, households=25).items() if k != "round_number"}
    assert_problem(await sites.put(f"{base}/1", json=correction, headers=h), 428)
    assert_problem(await sites.put(f"{base}/1", json=correction, headers={**h, "If-Match": '"2"'}), 412)
    r = await sites.put(f"{base}/1", json=correction, headers={**h, "If-Match": '"1"'})
    assert r.status_code == 200, r.text
    assert r.json()["households"] == 25 and r.json()["version"] == 2 and r.json()["id"] == first["id"]
    assert_problem(await sites.put(f"{base}/1", json=correction, headers={**h, "If-Match": '"1"'}), 412)
    assert_problem(await sites.put(f"{base}/9", json=correction, headers={**h, "If-Match": '"1"'}), 404)

    listed = (await sites.get(base, headers=h)).json()
    assert [(a["round_number"], a["version"]) for a in listed["items"]] == [(1, 2), (2, 1)]
    page = (await sites.get(base, params={"limit": 1}, headers=h)).json()
    assert [a["round_number"] for a in page["items"]] == [1]
    page2 = (await sites.get(base, params={"limit": 1, "cursor": page["next_cursor"]}, headers=h)).json()
    assert [a["round_number"] for a in page2["items"]] == [2] and page2["next_cursor"] is None
    got = await sites.get(f"{base}/1", headers=migrated.headers("UNHCR", "sites:read"))
    assert got.json()["households"] == 25 and got.headers["etag"] == '"2"'

    events = await outbox_events(migrated, first["id"])
    assert [(t, p["version"], p["households"]) for t, p in events] == [
        ("dtm.site.assessed.v1", 1, 20),
        ("dtm.site.assessed.v1", 2, 25),
    ]
    payload = events[0][1]
    assert payload["site_id"] == site["id"] and payload["round_number"] == 1
    assert payload["individuals_by_sex_age"]["female_0_4"] == 10 and len(payload["individuals_by_sex_age"]) == 10
    assert payload["priority_needs"] == ["health", "wash", "food_security"]
    assert payload["coverage"]["health"] == "none" and payload["effective_date"] == "2024-06-10"


async def test_totals_must_add_up_and_the_answer_says_which(api, migrated: StackEnv) -> None:
    sites = api("sites")
    h = migrated.headers("IOM", *WRITE)
    site = await create_site(sites, migrated)
    base = f"/v1/sites/{site['id']}/assessments"
    body = assessment_body(1)
    body["individuals_by_sex_age"] = {**body["individuals_by_sex_age"], "male_60_plus": 16}  # 110, not 100
    doc = assert_problem(await sites.post(base, json=body, headers=h), 422, "individuals_by_sex_age")
    assert "110" in doc["detail"] and "100" in doc["detail"]
    assert all("individuals_by_reason" not in e["loc"] for e in doc["errors"])

    body = assessment_body(1, individuals_by_reason={"armed_conflict": 50})
    doc = assert_problem(await sites.post(base, json=body, headers=h), 422, "individuals_by_reason")
    assert "50" in doc["detail"]

    # several problems at once are all reported
    body = assessment_body(1, individuals=90, households=95)
    doc = assert_problem(
        await sites.post(base, json=body, headers=h),
        422,
        "individuals_by_sex_age",
        "individuals_by_reason",
        "households",
    )
    assert len(doc["errors"]) == 3
    # nothing was recorded
    assert (await sites.get(base, headers=h)).json()["items"] == []
    assert await outbox_events(migrated, site["id"]) == [("dtm.site.opened.v1", await _opened(migrated, site))]


async def _opened(env: StackEnv, site: dict) -> dict:
    return (await outbox_events(env, site["id"]))[0][1]


def _without_bracket() -> dict:
    body = assessment_body(1)
    del body["individuals_by_sex_age"]["male_0_4"]
    return body


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (assessment_body(1, households=0), "households"),
        (assessment_body(1, priority_needs=["wash", "wash"]), "priority_needs"),
        (assessment_body(1, priority_needs=["roads"]), "priority_needs"),
        (assessment_body(1, risks=["flood", "flood"]), "risks"),
        (assessment_body(1, risks=["aliens"]), "risks"),
        (assessment_body(1, coverage={"wash": "plenty"}), "coverage"),
        (assessment_body(1, individuals_by_reason={"boredom": 100}), "individuals_by_reason"),
        (assessment_body(1, individuals=-1), "individuals"),
        (assessment_body(0), "round_number"),
        (assessment_body(1, assessed_on="2023-01-01"), "assessed_on"),  # before the site opened
        (assessment_body(1, assessed_on=(date.today() + timedelta(days=5)).isoformat()), "assessed_on"),
        (_without_bracket(), "male_0_4"),
        (assessment_body(1, individuals_by_sex_age={"female": 100}), "individuals_by_sex_age"),
    ],
)
async def test_bad_assessments_are_422(api, migrated: StackEnv, body: dict, field: str) -> None:
    sites = api("sites")
    site = await create_site(sites, migrated)
    r = await sites.post(f"/v1/sites/{site['id']}/assessments", json=body, headers=migrated.headers("IOM", *WRITE))
    assert_problem(r, 422, field)


async def test_closed_site_and_unknown_site(api, migrated: StackEnv) -> None:
    sites = api("sites")
    h = migrated.headers("IOM", *WRITE)
    assert_problem(await sites.post(f"/v1/sites/{uuid.uuid4()}/assessments", json=assessment_body(), headers=h), 404)
    assert_problem(await sites.get(f"/v1/sites/{uuid.uuid4()}/assessments", headers=h), 404)
    site = await create_site(sites, migrated)
    r = await sites.post(
        f"/v1/sites/{site['id']}/close", json={"closed_on": "2024-08-01", "closure_reason": "relocated"}, headers=h
    )
    assert r.status_code == 200
    base = f"/v1/sites/{site['id']}/assessments"
    # a round done before the closure can still be recorded; one after it cannot
    assert (await sites.post(base, json=assessment_body(1, assessed_on="2024-06-10"), headers=h)).status_code == 201
    assert_problem(await sites.post(base, json=assessment_body(2, assessed_on="2024-09-10"), headers=h), 409)
    # scopes
    assert_problem(await sites.post(base, json=assessment_body(3), headers=migrated.headers("IOM", "sites:read")), 403)
