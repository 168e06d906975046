"""`dtm verify` against the real registration and sites services: households registered through
registration's API and sites created through sites' API reach reporting through the outbox relays
and Kafka; verify agrees, then reports a difference while events are held back."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.conftest import StackEnv, eventually, running
from tests.integration.reporting.conftest import ReportingEnv, caught_up, reporting_env

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def env(migrated: StackEnv) -> AsyncIterator[ReportingEnv]:
    """Reporting in its own database, but reading the session's topics (what registration and
    sites publish) with its own consumer group."""
    async with reporting_env(migrated, "vf" + uuid.uuid4().hex[:6]) as e:
        e.settings = e.settings.model_copy(
            update={"topic_prefix": migrated.topic_prefix, "consumer_group": "reporting-verify-" + uuid.uuid4().hex[:6]}
        )
        e.prefix = migrated.topic_prefix
        yield e


def household(n: int, group: str = "idp") -> dict[str, Any]:
    body: dict[str, Any] = {
        "external_id": f"verify-{uuid.uuid4().hex}",
        "population_group": group,
        "location_pcode": "ML060105",
        "origin_pcode": "ML0501",
        "displacement_reason": "armed_conflict",
        "registration_date": "2025-06-01",
        "members": [
            {
                "given_name": "Awa",
                "family_name": "Traoré",
                "sex": "female",
                "date_of_birth": "1990-01-01",
                "relationship": "head" if i == 0 else "child",
            }
            for i in range(n)
        ],
    }
    if group == "repatriate":
        body |= {"country_of_asylum": "BFA", "repatriation_date": "2025-05-20"}
    return body


async def relay_all(migrated: StackEnv, service: str) -> None:
    from dtm_shared.messaging.relay import OutboxRelay

    relay = OutboxRelay(migrated.settings(service))
    async with running(relay.run(), relay.stop):
        from sqlalchemy import text
        from sqlalchemy.ext.asyncio import create_async_engine

        engine = create_async_engine(migrated.settings(service).sqlalchemy_url)

        async def drained() -> bool:
            async with engine.connect() as conn:
                n = (
                    await conn.execute(text(f"SELECT count(*) FROM {service}.outbox WHERE published_at IS NULL"))
                ).scalar()
            return n == 0

        try:
            await eventually(drained, timeout=30)
        finally:
            await engine.dispose()


async def test_verify_agrees_then_reports_a_difference(api, migrated: StackEnv, env: ReportingEnv) -> None:
    from reporting.verify import verify

    reg = api("registration")
    sites = api("sites")
    reg.headers.update(migrated.headers("DNDS", "households:read", "households:write", "sites:read"))
    sites.headers.update(migrated.headers("DNDS", "sites:read", "sites:write"))
    r = await sites.post(
        "/v1/sites",
        json={
            "code": f"VF-{uuid.uuid4().hex[:6]}",
            "name": "Site verify",
            "site_type": "planned_site",
            "location_pcode": "ML060105",
            "opened_on": "2025-01-01",
        },
    )
    assert r.status_code == 201, r.text
    for n, group in ((3, "idp"), (2, "idp"), (4, "repatriate")):
        r = await reg.post("/v1/households", json=household(n, group))
        assert r.status_code in (200, 201), r.text
    await relay_all(migrated, "registration")
    await relay_all(migrated, "sites")
    consumer = env.consumer()
    clients = {"registration": reg, "sites": sites}
    try:
        async with running(consumer.run(), consumer.stop):
            await eventually(lambda: caught_up(env, env.settings.topic(env.settings.consumer_group)), timeout=60)
            result = await verify(env.settings, clients, attempts=1)
            assert all(c.ok for c in result), [c for c in result if not c.ok]
            figures = {c.figure: c.reporting for c in result}
            assert figures["individuals.repatriate"] >= 4 and figures["sites.total"] >= 1
            # one more household, its event not relayed yet: verify sees the difference
            r = await reg.post("/v1/households", json=household(5))
            assert r.status_code in (200, 201), r.text
            result = await verify(env.settings, clients, attempts=2, pause=0.1)
            bad = {c.figure: (c.reporting, c.source) for c in result if not c.ok}
            assert set(bad) == {"households.idp", "individuals.idp"}
            assert bad["individuals.idp"][1] - bad["individuals.idp"][0] == 5
            await relay_all(migrated, "registration")
            await eventually(lambda: caught_up(env, env.settings.topic(env.settings.consumer_group)), timeout=60)
            assert all(c.ok for c in await verify(env.settings, clients, attempts=3, pause=0.5))
    finally:
        await consumer._engine.dispose()


async def test_verify_main_exits_2_when_a_source_is_down(env: ReportingEnv, monkeypatch) -> None:
    from reporting import verify as mod

    monkeypatch.setenv("DTM_DATABASE_URL", env.settings.database_url)
    monkeypatch.setenv("DTM_REGISTRATION_API_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("DTM_SITES_API_URL", "http://127.0.0.1:9")
    with pytest.raises(SystemExit) as exc:
        await __import__("asyncio").to_thread(mod.main)
    assert exc.value.code == 2
