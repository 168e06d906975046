"""Regional committees and the validation workflow of monthly activity reports.

Committees are one per region and the session's database is shared by every test, so each test
uses its own region: ML02 and ML06 (committees), ML05 (the workflow), ML10 (no committee), ML07."""

from __future__ import annotations

import uuid
from datetime import date, timedelta

import pytest

from tests.conftest import StackEnv
from tests.integration.sites.helpers import WRITE, assert_problem, create_site, last_month, outbox_events

pytestmark = pytest.mark.integration

REVIEW = ("sites:read", "reports:review")


async def _committee(sites, env: StackEnv, admin1: str, members: list[str], quorum: int) -> dict:
    r = await sites.get("/v1/committees", headers=env.headers("OCHA", "sites:read"))
    for c in r.json()["items"]:
        if c["admin1_pcode"] == admin1:
            return c
    body = {
        "admin1_pcode": admin1,
        "name": f"Comité régional {admin1}",
        "member_organizations": members,
        "quorum": quorum,
    }
    r = await sites.post("/v1/committees", json=body, headers=env.headers("OCHA", "admin"))
    assert r.status_code == 201, r.text
    return dict(r.json())


async def test_committee_create_update_and_refusals(api, migrated: StackEnv) -> None:
    sites = api("sites")
    h = migrated.headers("OCHA", "admin")  # committee membership is an administrative act
    body = {"admin1_pcode": "ML06", "name": "Comité de Tombouctou", "member_organizations": ["CRS", "IRC"], "quorum": 2}
    for bad, field in [
        ({"admin1_pcode": "ML0601"}, "admin1_pcode"),
        ({"admin1_pcode": "ML99"}, "admin1_pcode"),
        ({"quorum": 3}, "quorum"),
        ({"quorum": 0}, "quorum"),
        ({"member_organizations": []}, "member_organizations"),
        ({"member_organizations": ["CRS", "CRS"], "quorum": 1}, "member_organizations"),
        ({"member_organizations": ["bad org!"]}, "member_organizations"),
    ]:
        assert_problem(await sites.post("/v1/committees", json={**body, **bad}, headers=h), 422, field)
    assert_problem(await sites.post("/v1/committees", json=body, headers=migrated.headers("OCHA", "sites:read")), 403)
    # A partner that may write sites may not make itself a committee member.
    assert_problem(await sites.post("/v1/committees", json=body, headers=migrated.headers("CRS", *WRITE)), 403)

    r = await sites.post("/v1/committees", json=body, headers=h)
    assert r.status_code == 201, r.text
    c = r.json()
    assert c["admin1_name"] == "Tombouctou" and c["version"] == 1
    assert_problem(await sites.post("/v1/committees", json=body, headers=h), 409)  # one per region

    url = f"/v1/committees/{c['id']}"
    assert_problem(await sites.patch(url, json={"quorum": 1}, headers=h), 428)
    writer = {**migrated.headers("CRS", *WRITE), "If-Match": '"1"'}
    assert_problem(await sites.patch(url, json={"member_organizations": ["CRS"], "quorum": 1}, headers=writer), 403)
    assert_problem(await sites.patch(url, json={"quorum": 5}, headers={**h, "If-Match": '"1"'}), 422, "quorum")
    assert_problem(
        await sites.patch(url, json={"member_organizations": ["CRS"]}, headers={**h, "If-Match": '"1"'}), 422, "quorum"
    )
    r = await sites.patch(
        url, json={"member_organizations": ["CRS", "IRC", "NRC"], "quorum": 2}, headers={**h, "If-Match": '"1"'}
    )
    assert (
        r.status_code == 200 and r.json()["member_organizations"] == ["CRS", "IRC", "NRC"] and r.json()["version"] == 2
    )
    assert_problem(await sites.patch(url, json={"name": "x"}, headers={**h, "If-Match": '"1"'}), 412)
    assert_problem(await sites.get(f"/v1/committees/{uuid.uuid4()}", headers=h), 404)
    got = await sites.get(url, headers=migrated.headers("X", "sites:read"))
    assert got.json()["quorum"] == 2 and got.headers["etag"] == '"2"'

    events = await outbox_events(migrated, c["id"])
    assert [(t, p["version"], p["member_organizations"]) for t, p in events] == [
        ("dtm.committee.updated.v1", 1, ["CRS", "IRC"]),
        ("dtm.committee.updated.v1", 2, ["CRS", "IRC", "NRC"]),
    ]
    assert events[1][1]["admin1_pcode"] == "ML06" and events[1][1]["quorum"] == 2


async def test_quorum_of_approvals_validates_and_locks(api, migrated: StackEnv) -> None:
    sites = api("sites")
    committee = await _committee(sites, migrated, "ML05", ["CRS", "IRC", "NRC"], 2)
    site = await create_site(sites, migrated, location_pcode="ML050101", opened_on="2024-01-10")
    writer = migrated.headers("DRC", *WRITE)
    period = last_month()
    body = {"period": period, "key_figures": {"households_present": 412, "new_arrivals": 37}, "narrative": "Calme."}
    r = await sites.post(f"/v1/sites/{site['id']}/activity-reports", json=body, headers=writer)
    assert r.status_code == 201, r.text
    report = r.json()
    assert report["status"] == "submitted" and report["report_version"] == 1 and report["quorum"] == 2
    assert report["admin1_pcode"] == "ML05" and report["approvals"] == []
    url = f"/v1/activity-reports/{report['id']}"
    assert_problem(await sites.post(f"/v1/sites/{site['id']}/activity-reports", json=body, headers=writer), 409)

    pending = (await sites.get(f"/v1/committees/{committee['id']}/pending-reports", headers=writer)).json()
    assert report["id"] in [p["id"] for p in pending["items"]]

    approve = {"decision": "approve"}
    # outsiders, and members without the review scope, are refused
    assert_problem(await sites.post(f"{url}/reviews", json=approve, headers=migrated.headers("WFP", *REVIEW)), 403)
    assert_problem(await sites.post(f"{url}/reviews", json=approve, headers=migrated.headers("CRS", *WRITE)), 403)
    # a stale If-Match
    stale = {**migrated.headers("CRS", *REVIEW), "If-Match": '"9"'}
    assert_problem(await sites.post(f"{url}/reviews", json=approve, headers=stale), 412)

    r = await sites.post(f"{url}/reviews", json=approve, headers=migrated.headers("CRS", *REVIEW))
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "submitted" and r.json()["approvals"] == ["CRS"]
    # a second approval from the same organisation (another person) is a conflict
    r = await sites.post(f"{url}/reviews", json=approve, headers=migrated.headers("CRS", *REVIEW))
    assert "already approved" in assert_problem(r, 409)["detail"]
    # a rejection needs a comment
    irc = migrated.headers("IRC", *REVIEW)
    assert_problem(await sites.post(f"{url}/reviews", json={"decision": "reject"}, headers=irc), 422, "comment")
    assert_problem(
        await sites.post(f"{url}/reviews", json={"decision": "reject", "comment": "   "}, headers=irc), 422, "comment"
    )
    assert_problem(await sites.post(f"{url}/reviews", json={"decision": "maybe"}, headers=irc), 422, "decision")

    r = await sites.post(f"{url}/reviews", json=approve, headers=irc)
    assert r.status_code == 200, r.text
    validated = r.json()
    assert validated["status"] == "validated" and validated["approvals"] == ["CRS", "IRC"] and validated["decided_at"]

    # validated = locked
    etag = (await sites.get(url, headers=writer)).headers["etag"]
    assert_problem(await sites.put(url, json={"key_figures": {"x": 1}}, headers={**writer, "If-Match": etag}), 409)
    assert_problem(await sites.post(f"{url}/reviews", json=approve, headers=migrated.headers("NRC", *REVIEW)), 409)
    assert_problem(await sites.post(f"/v1/sites/{site['id']}/activity-reports", json=body, headers=writer), 409)
    pending = (await sites.get(f"/v1/committees/{committee['id']}/pending-reports", headers=writer)).json()
    assert report["id"] not in [p["id"] for p in pending["items"]]

    got = (await sites.get(url, headers=migrated.headers("X", "sites:read"))).json()
    assert [(v["reviewer_org"], v["decision"]) for v in got["reviews"]] == [("CRS", "approve"), ("IRC", "approve")]
    listed = (
        await sites.get("/v1/activity-reports", params={"site_id": site["id"], "status": "validated"}, headers=writer)
    ).json()
    assert [x["id"] for x in listed["items"]] == [report["id"]]

    events = await outbox_events(migrated, report["id"])
    assert [(t, p["status"], p["approvals"]) for t, p in events] == [
        ("dtm.activity_report.submitted.v1", "submitted", []),
        ("dtm.activity_report.validated.v1", "validated", ["CRS", "IRC"]),
    ]
    assert events[1][1]["version"] > events[0][1]["version"] and events[1][1]["key_figures"]["new_arrivals"] == 37
    assert "narrative" not in events[1][1]


async def test_rejection_and_resubmission_start_a_new_version(api, migrated: StackEnv) -> None:
    sites = api("sites")
    await _committee(sites, migrated, "ML05", ["CRS", "IRC", "NRC"], 2)
    site = await create_site(sites, migrated, location_pcode="ML050101", opened_on="2024-01-10")
    writer = migrated.headers("DRC", *WRITE)
    r = await sites.post(
        f"/v1/sites/{site['id']}/activity-reports",
        json={"period": "2024-03", "key_figures": {"households_present": 400}},
        headers=writer,
    )
    assert r.status_code == 201, r.text
    url = f"/v1/activity-reports/{r.json()['id']}"
    crs, nrc = migrated.headers("CRS", *REVIEW), migrated.headers("NRC", *REVIEW)
    assert (await sites.post(f"{url}/reviews", json={"decision": "approve"}, headers=crs)).status_code == 200
    r = await sites.post(f"{url}/reviews", json={"decision": "reject", "comment": "Chiffres incohérents"}, headers=nrc)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "rejected" and r.json()["rejection_comment"] == "Chiffres incohérents"
    assert_problem(
        await sites.post(f"{url}/reviews", json={"decision": "approve"}, headers=migrated.headers("IRC", *REVIEW)), 409
    )

    current = await sites.get(url, headers=writer)
    assert_problem(await sites.put(url, json={"key_figures": {"households_present": 380}}, headers=writer), 428)
    r = await sites.put(
        url,
        json={"key_figures": {"households_present": 380}, "narrative": "Corrigé"},
        headers={**writer, "If-Match": current.headers["etag"]},
    )
    assert r.status_code == 200, r.text
    v2 = r.json()
    assert v2["report_version"] == 2 and v2["status"] == "submitted" and v2["approvals"] == []
    assert v2["rejection_comment"] is None and v2["key_figures"] == {"households_present": 380}
    # the new version is reviewed afresh: the same organisations may decide again
    assert (await sites.post(f"{url}/reviews", json={"decision": "approve"}, headers=crs)).json()["approvals"] == [
        "CRS"
    ]
    r = await sites.post(f"{url}/reviews", json={"decision": "approve"}, headers=nrc)
    assert r.json()["status"] == "validated"
    reviews = (await sites.get(url, headers=writer)).json()["reviews"]
    assert [(v["report_version"], v["reviewer_org"], v["decision"]) for v in reviews] == [
        (1, "CRS", "approve"),
        (1, "NRC", "reject"),
        (2, "CRS", "approve"),
        (2, "NRC", "approve"),
    ]
    events = await outbox_events(migrated, v2["id"])
    assert [(t.rsplit(".", 2)[-2], p["report_version"]) for t, p in events] == [
        ("submitted", 1),
        ("rejected", 1),
        ("submitted", 2),
        ("validated", 2),
    ]
    assert events[1][1]["rejection_comment"] == "Chiffres incohérents"
    versions = [p["version"] for _, p in events]
    assert versions == sorted(versions) and len(set(versions)) == 4


async def test_report_refusals(api, migrated: StackEnv) -> None:
    sites = api("sites")
    writer = migrated.headers("DRC", *WRITE)
    site = await create_site(sites, migrated, location_pcode="ML100101", opened_on="2024-02-10")  # ML10: no committee
    base = f"/v1/sites/{site['id']}/activity-reports"
    next_month = (date.today().replace(day=28) + timedelta(days=5)).strftime("%Y-%m")
    for body, field in [
        ({"period": "2024-13", "key_figures": {}}, "period"),
        ({"period": "24-01", "key_figures": {}}, "period"),
        ({"period": next_month, "key_figures": {}}, "period"),
        ({"period": "2024-01", "key_figures": {}}, "period"),  # before the site opened
        ({"period": "2024-03", "key_figures": {"households": -1}}, "households"),
        ({"period": "2024-03", "key_figures": {"Bad Key": 1}}, "key_figures"),
        ({"period": "2024-03"}, "key_figures"),
    ]:
        assert_problem(await sites.post(base, json=body, headers=writer), 422, field)
    assert_problem(
        await sites.post(
            f"/v1/sites/{uuid.uuid4()}/activity-reports", json={"period": "2024-03", "key_figures": {}}, headers=writer
        ),
        404,
    )
    r = await sites.post(base, json={"period": "2024-03", "key_figures": {"households_present": 10}}, headers=writer)
    assert r.status_code == 201, r.text
    url = f"/v1/activity-reports/{r.json()['id']}"
    assert r.json()["quorum"] is None
    # nobody reviews a region without a committee
    doc = assert_problem(
        await sites.post(f"{url}/reviews", json={"decision": "approve"}, headers=migrated.headers("CRS", *REVIEW)), 403
    )
    assert "ML10" in doc["detail"]
    assert_problem(
        await sites.post(
            f"/v1/activity-reports/{uuid.uuid4()}/reviews",
            json={"decision": "approve"},
            headers=migrated.headers("CRS", *REVIEW),
        ),
        404,
    )
    assert_problem(await sites.get("/v1/activity-reports", params={"period": "2024-3"}, headers=writer), 422, "period")
    # a closed site takes no report for a month after its closure
    await sites.post(
        f"/v1/sites/{site['id']}/close", json={"closed_on": "2024-04-15", "closure_reason": "x"}, headers=writer
    )
    assert (await sites.post(base, json={"period": "2024-04", "key_figures": {}}, headers=writer)).status_code == 201
    assert_problem(await sites.post(base, json={"period": "2024-05", "key_figures": {}}, headers=writer), 409)


async def test_moving_a_site_moves_its_reports_to_the_new_committee(api, migrated: StackEnv) -> None:
    sites = api("sites")
    committee = await _committee(sites, migrated, "ML05", ["CRS", "IRC", "NRC"], 2)
    writer = migrated.headers("DRC", *WRITE)
    site = await create_site(sites, migrated, location_pcode="ML070101", opened_on="2024-01-10")
    r = await sites.post(
        f"/v1/sites/{site['id']}/activity-reports", json={"period": "2024-02", "key_figures": {}}, headers=writer
    )
    report_id = r.json()["id"]
    r = await sites.patch(
        f"/v1/sites/{site['id']}", json={"location_pcode": "ML050101"}, headers={**writer, "If-Match": '"1"'}
    )
    assert r.status_code == 200 and r.json()["admin1_pcode"] == "ML05"
    pending = (
        await sites.get(f"/v1/committees/{committee['id']}/pending-reports", params={"limit": 500}, headers=writer)
    ).json()
    assert report_id in [p["id"] for p in pending["items"]]
    r = await sites.post(
        f"/v1/activity-reports/{report_id}/reviews",
        json={"decision": "approve"},
        headers=migrated.headers("IRC", *REVIEW),
    )
    assert r.status_code == 200 and r.json()["admin1_pcode"] == "ML05"


async def test_reviewers_read_their_queue_without_sites_read(api, migrated: StackEnv) -> None:
    sites = api("sites")
    committee = await _committee(sites, migrated, "ML05", ["CRS", "IRC", "NRC"], 2)
    site = await create_site(sites, migrated, location_pcode="ML050101", opened_on="2024-01-10")
    r = await sites.post(
        f"/v1/sites/{site['id']}/activity-reports",
        json={"period": "2024-06", "key_figures": {"households_present": 3}},
        headers=migrated.headers("DRC", *WRITE),
    )
    report_id = r.json()["id"]
    reviewer = migrated.headers("IRC", "reports:review")
    queue = await sites.get(
        f"/v1/committees/{committee['id']}/pending-reports", params={"limit": 500}, headers=reviewer
    )
    assert queue.status_code == 200 and report_id in [p["id"] for p in queue.json()["items"]]
    assert all(p["status"] == "submitted" and p["admin1_pcode"] == "ML05" for p in queue.json()["items"])
    assert (await sites.get(f"/v1/activity-reports/{report_id}", headers=reviewer)).status_code == 200
    nobody = migrated.headers("IRC", "indicators:read")
    assert_problem(await sites.get(f"/v1/activity-reports/{report_id}", headers=nobody), 403)
    assert_problem(await sites.get(f"/v1/committees/{committee['id']}/pending-reports", headers=nobody), 403)
    assert_problem(await sites.get(f"/v1/committees/{uuid.uuid4()}/pending-reports", headers=reviewer), 404)


async def test_concurrent_reviews_are_serialised(api, migrated: StackEnv) -> None:
    """Two members approving at once validate the report exactly once; the same organisation
    approving twice at once gets one success and one 409."""
    import asyncio

    sites = api("sites")
    await _committee(sites, migrated, "ML05", ["CRS", "IRC", "NRC"], 2)
    site = await create_site(sites, migrated, location_pcode="ML050101", opened_on="2024-01-10")
    writer = migrated.headers("DRC", *WRITE)
    ids = []
    for period in ("2024-07", "2024-08"):
        r = await sites.post(
            f"/v1/sites/{site['id']}/activity-reports", json={"period": period, "key_figures": {"a": 1}}, headers=writer
        )
        ids.append(r.json()["id"])
    approve = {"decision": "approve"}
    first, second = await asyncio.gather(
        sites.post(f"/v1/activity-reports/{ids[0]}/reviews", json=approve, headers=migrated.headers("CRS", *REVIEW)),
        sites.post(f"/v1/activity-reports/{ids[0]}/reviews", json=approve, headers=migrated.headers("NRC", *REVIEW)),
    )
    assert {first.status_code, second.status_code} == {200}
    assert sorted(r.json()["status"] for r in (first, second)) == ["submitted", "validated"]
    types = [t for t, _ in await outbox_events(migrated, ids[0])]
    assert types == ["dtm.activity_report.submitted.v1", "dtm.activity_report.validated.v1"]

    same = await asyncio.gather(
        *[
            sites.post(f"/v1/activity-reports/{ids[1]}/reviews", json=approve, headers=migrated.headers("IRC", *REVIEW))
            for _ in range(3)
        ]
    )
    assert sorted(r.status_code for r in same) == [200, 409, 409]
    got = (await sites.get(f"/v1/activity-reports/{ids[1]}", headers=writer)).json()
    assert got["approvals"] == ["IRC"] and got["status"] == "submitted" and len(got["reviews"]) == 1


async def test_no_self_approval_no_takeover_and_activities_changed_by_their_owners(api, migrated: StackEnv) -> None:
    """An organisation cannot validate its own report, resubmit another's, or change another
    organisation's activity (region ML08 is this test's own)."""
    sites = api("sites")
    committee = await _committee(sites, migrated, "ML08", ["ACF", "WHH"], 1)
    site = await create_site(sites, migrated, location_pcode="ML080101")
    acf = migrated.headers("ACF", *WRITE, "reports:review")
    r = await sites.post(
        f"/v1/sites/{site['id']}/activity-reports", json={"period": last_month(), "key_figures": {"x": 1}}, headers=acf
    )
    assert r.status_code == 201, r.text
    report = r.json()
    url = f"/v1/activity-reports/{report['id']}"
    assert_problem(await sites.post(f"{url}/reviews", json={"decision": "approve"}, headers=acf), 403)
    whh = migrated.headers("WHH", *WRITE, "reports:review")
    takeover = await sites.put(url, json={"key_figures": {"x": 2}}, headers={**whh, "If-Match": '"1"'})
    assert_problem(takeover, 403)
    r = await sites.post(f"{url}/reviews", json={"decision": "approve"}, headers=whh)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "validated"
    assert r.json()["submitted_by_org"] == "ACF"
    assert committee["quorum"] == 1

    activity = (
        await sites.post(
            f"/v1/sites/{site['id']}/service-activities",
            json={"sector": "wash", "activity": "water_trucking", "start_date": "2024-02-01"},
            headers=acf,
        )
    ).json()
    a_url = f"/v1/service-activities/{activity['id']}"
    assert_problem(await sites.post(f"{a_url}/end", json={}, headers=whh), 403)
    assert_problem(await sites.patch(a_url, json={"activity": "hygiene_kits"}, headers={**whh, "If-Match": '"1"'}), 403)
    r = await sites.post(f"{a_url}/end", json={}, headers=acf)
    assert r.status_code == 200, r.text
