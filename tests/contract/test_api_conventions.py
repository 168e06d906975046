"""Conventions every service's API keeps (DESIGN §4): stable camelCase operation ids and tags,
named models, problem+json errors, authentication on everything but health/metrics/OpenAPI."""

from __future__ import annotations

import re
import uuid

import pytest

from tests.conftest import StackEnv

pytestmark = pytest.mark.integration

OPEN = {"/health/live", "/health/ready", "/metrics", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc", "/"}
SERVICES = ("registration", "sites", "reporting")


def concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", str(uuid.uuid4()), path)


@pytest.mark.parametrize("service", SERVICES)
async def test_openapi_operations_are_named_and_tagged(api, service: str) -> None:
    try:
        client = api(service)
    except KeyError:
        pytest.skip(f"{service} not built")
    doc = (await client.get("/openapi.json")).json()
    seen = set()
    for path, item in doc["paths"].items():
        for method, op in item.items():
            oid = op.get("operationId", "")
            assert re.fullmatch(r"[a-z][A-Za-z0-9]+", oid), f"{method} {path}: operationId {oid!r}"
            assert oid not in seen, f"duplicate operationId {oid}"
            seen.add(oid)
            assert op.get("tags"), f"{oid} has no tag"
            if path.startswith("/v1/"):
                assert op.get("security"), f"{oid} declares no security"
    for name in doc.get("components", {}).get("schemas", {}):
        assert not name.startswith("Body_"), f"unnamed request model {name}"


@pytest.mark.parametrize("service", SERVICES)
async def test_every_v1_endpoint_needs_a_token_and_its_scope(api, migrated: StackEnv, service: str) -> None:
    try:
        client = api(service)
    except KeyError:
        pytest.skip(f"{service} not built")
    checked = 0
    doc = (await client.get("/openapi.json")).json()
    for path, item in doc["paths"].items():
        if path in OPEN or not path.startswith("/v1/"):
            continue
        for method in item:
            url = concrete(path)
            r = await client.request(method, url)
            assert r.status_code == 401, f"{method} {path}: {r.status_code}"
            assert r.headers["content-type"].startswith("application/problem+json")
            assert r.headers.get("www-authenticate") == "Bearer"
            r = await client.request(method, url, headers={"Authorization": "Bearer not-a-token"})
            assert r.status_code == 401, f"{method} {path} with a bad token: {r.status_code}"
            # A valid token without any scope is authenticated but forbidden.
            r = await client.request(method, url, headers=migrated.headers("NOBODY"))
            assert r.status_code == 403, f"{method} {path} without scope: {r.status_code}"
            checked += 1
    assert checked > 0


@pytest.mark.parametrize("service", SERVICES)
async def test_health_metrics_and_problem_for_unknown_paths(api, service: str) -> None:
    try:
        client = api(service)
    except KeyError:
        pytest.skip(f"{service} not built")
    assert (await client.get("/health/live")).json() == {"status": "ok"}
    ready = await client.get("/health/ready")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"database": "ok", "kafka": "ok"}
    await client.get("/health/live")
    metrics = (await client.get("/metrics")).text
    assert "http_request_duration_seconds_bucket" in metrics
    missing = await client.get("/v1/no-such-thing")
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("application/problem+json")
    assert missing.json()["status"] == 404


async def test_oversized_body_is_413_problem(api, migrated: StackEnv) -> None:
    client = api("sites")
    big = b'{"name": "' + b"x" * (21 * 1024 * 1024) + b'"}'
    r = await client.post(
        "/v1/sites",
        content=big,
        headers={**migrated.headers("DNDS", "sites:write"), "content-type": "application/json"},
    )
    assert r.status_code == 413
    assert r.headers["content-type"].startswith("application/problem+json")


async def test_malformed_json_is_a_400_problem(api, migrated: StackEnv) -> None:
    r = await api("sites").post(
        "/v1/sites",
        content=b"{not json",
        headers={**migrated.headers("DNDS", "sites:write"), "content-type": "application/json"},
    )
    assert r.status_code == 400
    assert r.json()["title"] == "Malformed JSON body"


async def test_outbox_backlog_metric_reads_the_database(api) -> None:
    metrics = (await api("sites").get("/metrics")).text
    assert "outbox_backlog" in metrics
    assert "outbox_oldest_unpublished_age_seconds" in metrics
