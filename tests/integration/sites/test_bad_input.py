"""Hostile and malformed input across the sites API: always a problem+json answer, never a 500."""

from __future__ import annotations

import uuid

import pytest

from tests.conftest import StackEnv
from tests.integration.sites.helpers import WRITE, assessment_body, create_site, site_body

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    ("method", "path", "kwargs"),
    [
        ("post", "/v1/sites", {"content": b'{"code": "X", "latitude": NaN}'}),
        ("post", "/v1/sites", {"content": b'{"code": "X", "latitude": Infinity}'}),
        ("post", "/v1/sites", {"json": [1, 2, 3]}),
        ("post", "/v1/sites", {"json": site_body(name="nul\x00byte")}),
        ("post", "/v1/sites", {"json": site_body(management_agency="nul\x00byte")}),
        ("post", "/v1/sites", {"json": site_body(capacity_households=10**30)}),
        ("post", "/v1/sites", {"json": site_body(opened_on="2024-02-30")}),
        ("post", "/v1/sites", {"json": site_body(location_pcode="ML09\x000106")}),
        ("get", "/v1/sites", {"params": {"q": "a\x00b"}}),
        ("get", "/v1/sites", {"params": {"admin1": "ML\x0009"}}),
        ("get", "/v1/sites", {"params": {"cursor": "\x00"}}),
        ("get", "/v1/admin-areas", {"params": {"q": "\x00", "parent": "\x00"}}),
        ("get", "/v1/service-activities", {"params": {"organization": "a\x00"}}),
        ("get", "/v1/activity-reports", {"params": {"site_id": "nope"}}),
        (
            "post",
            "/v1/committees",
            {"json": {"admin1_pcode": "ML01", "name": "a\x00", "member_organizations": ["A"], "quorum": 1}},
        ),
    ],
)
async def test_never_a_500(api, migrated: StackEnv, method: str, path: str, kwargs: dict) -> None:
    headers = {**migrated.headers("DNDS", *WRITE, "admin"), "content-type": "application/json"}
    r = await getattr(api("sites"), method)(path, headers=headers, **kwargs)
    assert 400 <= r.status_code < 500, r.text
    assert r.headers["content-type"].startswith("application/problem+json")


async def test_never_a_500_on_nested_resources(api, migrated: StackEnv) -> None:
    sites = api("sites")
    h = migrated.headers("DNDS", *WRITE, "reports:review")
    site = await create_site(sites, migrated)
    sid = site["id"]
    cases = [
        ("post", f"/v1/sites/{sid}/assessments", {"json": assessment_body(1, individuals=10**12)}),
        ("post", f"/v1/sites/{sid}/assessments", {"json": {**assessment_body(1), "individuals_by_sex_age": None}}),
        ("put", f"/v1/sites/{sid}/assessments/99999999999", {"json": assessment_body(1)}),
        (
            "post",
            f"/v1/sites/{sid}/service-activities",
            {"json": {"sector": "wash", "activity": "a", "start_date": "0000-01-01"}},
        ),
        ("post", f"/v1/sites/{sid}/activity-reports", {"json": {"period": "2024-03", "key_figures": {"a": 10**20}}}),
        (
            "post",
            f"/v1/sites/{sid}/activity-reports",
            {"json": {"period": "2024-03", "key_figures": {}, "narrative": "\x00"}},
        ),
        ("post", f"/v1/activity-reports/{uuid.uuid4()}/reviews", {"json": {"decision": "reject", "comment": "\x00"}}),
        ("post", f"/v1/sites/{sid}/close", {"json": {"closed_on": "2024-05-01", "closure_reason": "\x00"}}),
        ("post", f"/v1/sites/{sid}/reopen", {"content": b"[]"}),
        ("patch", f"/v1/sites/{sid}", {"json": {"name": "x"}, "headers": {"If-Match": '"' + "9" * 40 + '"'}}),
    ]
    for method, path, kwargs in cases:
        headers = {**h, "content-type": "application/json", **kwargs.pop("headers", {})}
        r = await getattr(sites, method)(path, headers=headers, **kwargs)
        assert 400 <= r.status_code < 500, (path, r.text)
        assert r.headers["content-type"].startswith("application/problem+json"), path
