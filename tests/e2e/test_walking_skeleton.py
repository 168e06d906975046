"""The walking skeleton through all three services, as real processes on real Postgres and Kafka:
createSite emits site.opened; registration's replica picks it up; registerHousehold succeeds at
that site (and is refused for unknown/closed sites and bad P-codes); reporting's getSummary then
counts the household's members."""

from __future__ import annotations

import time
from datetime import date
from typing import Any

import httpx
import pytest

from tests.conftest import ProcessGroup, StackEnv

pytestmark = [pytest.mark.e2e, pytest.mark.integration]


def wait_for(check: Any, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.2)
    raise AssertionError(f"not within {timeout}s")


def household(site_id: str | None = None, location: str | None = None, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "population_group": "idp",
        "origin_pcode": "ML060101",
        "displacement_reason": "armed_conflict",
        "displacement_date": "2023-11-02",
        "registration_date": "2024-02-01",
        "members": [
            {
                "given_name": "Aminata",
                "family_name": "Traoré",
                "sex": "female",
                "date_of_birth": "1990-05-01",
                "relationship": "head",
            },
            {
                "given_name": "Moussa",
                "family_name": "Traoré",
                "sex": "male",
                "date_of_birth": "2021-03-10",
                "relationship": "child",
            },
            {
                "given_name": "Awa",
                "family_name": "Traoré",
                "sex": "female",
                "date_of_birth": "2015-08-20",
                "relationship": "child",
            },
        ],
        **extra,
    }
    if site_id:
        body["site_id"] = site_id
    if location:
        body["location_pcode"] = location
    return body


@pytest.fixture(scope="module")
def system(processes: ProcessGroup) -> dict[str, str]:
    urls = {name: processes.serve(name).base_url for name in ("sites", "registration", "reporting")}
    processes.start("sites", "relay", "sites")
    processes.start("registration", "relay", "registration")
    processes.start("registration", "consume", "registration")
    processes.start("reporting", "consume", "reporting")
    return urls


def test_site_to_household_to_indicator(system: dict[str, str], isolated: StackEnv) -> None:
    token = isolated.token(
        "DNDS", "sites:write", "sites:read", "households:write", "households:read", "indicators:read"
    )
    h = {"Authorization": f"Bearer {token}"}
    with httpx.Client(headers=h, timeout=30) as client:
        site = client.post(
            f"{system['sites']}/v1/sites",
            json={
                "code": "E2E-FALADIE",
                "name": "Site de Faladié",
                "site_type": "spontaneous_site",
                "location_pcode": "ML090106",
                "opened_on": "2024-01-15",
                "capacity_households": 300,
            },
        )
        assert site.status_code == 201, site.text
        site_id = site.json()["id"]

        def registered() -> httpx.Response | None:
            r = client.post(f"{system['registration']}/v1/households", json=household(site_id))
            return r if r.status_code == 201 else None

        # The replica follows dtm.sites: until it has the site, registration answers 422.
        created = wait_for(registered)
        hh = created.json()
        assert hh["location_pcode"] == "ML090106"
        assert hh["site_id"] == site_id

        before = client.get(f"{system['reporting']}/v1/indicators/summary").json()

        def counted() -> dict[str, Any] | None:
            s = client.get(f"{system['reporting']}/v1/indicators/summary").json()
            return s if s["individuals"] >= 3 else None

        summary = wait_for(counted)
        assert summary["individuals"] - before.get("individuals", 0) in (0, 3)
        assert summary["individuals"] == 3
        assert summary["households"] == 1
        assert summary["open_sites"] == 1
        assert date.fromisoformat(summary["as_of"]) == date.today()
        idp = next(g for g in summary["population_groups"] if g["population_group"] == "idp")
        assert idp["individuals"] == 3

        # Refusals, each a 422 problem naming the field.
        for body, field in [
            (household("7b1e1d3c-1111-4222-8333-444455556666"), "site_id"),
            (household(location="ML99999999"), "location_pcode"),
            (household(location="ML0901"), "location_pcode"),  # a cercle, not a commune
        ]:
            r = client.post(f"{system['registration']}/v1/households", json=body)
            assert r.status_code == 422, r.text
            assert r.headers["content-type"].startswith("application/problem+json")
            assert any(field in e["loc"] for e in r.json()["errors"]), r.text

        # A closed site refuses new registrations once the replica has seen the closure.
        etag = client.get(f"{system['sites']}/v1/sites/{site_id}").headers["etag"]
        closed = client.post(
            f"{system['sites']}/v1/sites/{site_id}/close",
            json={"closed_on": "2024-06-01", "closure_reason": "relocated"},
            headers={"If-Match": etag},
        )
        assert closed.status_code == 200, closed.text

        def refused() -> httpx.Response | None:
            r = client.post(f"{system['registration']}/v1/households", json=household(site_id))
            return r if r.status_code == 422 else None

        r = wait_for(refused)
        assert any("site_id" in e["loc"] for e in r.json()["errors"])


def test_openapi_documents_are_served(system: dict[str, str]) -> None:
    for name, url in system.items():
        doc = httpx.get(f"{url}/openapi.json", timeout=10).json()
        assert doc["paths"], name
        assert httpx.get(f"{url}/metrics", timeout=10).status_code == 200
