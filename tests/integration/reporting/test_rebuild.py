"""Rebuild: replay both topics into a fresh generation and switch over while the live consumer
runs, events keep arriving and the API keeps answering."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from datetime import date

import pytest

from tests.conftest import eventually, running
from tests.integration.reporting.conftest import ReportingEnv, caught_up, publish, record, reporting_env, sql
from tests.integration.reporting.test_indicators import build_world, check_population

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def env(migrated) -> AsyncIterator[ReportingEnv]:
    import uuid

    async with reporting_env(migrated, "rb" + uuid.uuid4().hex[:6]) as e:
        yield e


async def test_rebuild_switches_over_atomically_while_serving(env: ReportingEnv) -> None:
    from reporting.rebuild import rebuild

    w, _ = build_world()
    await publish(env, [record(p) for p in w.events])
    consumer = env.consumer()
    try:
        async with running(consumer.run(), consumer.stop):
            await eventually(lambda: caught_up(env), timeout=60)
            # queries create checkpoints in generation 1 (they must be re-created in generation 2)
            for at in (date(2025, 3, 10), date(2025, 9, 15)):
                await check_population(env, w, at, ["admin1", "population_group"])
            stop = asyncio.Event()
            answers: list[int] = []

            async def keep_asking() -> None:
                h = env.headers("indicators:read")
                while not stop.is_set():
                    r = await env.client.get("/v1/indicators/population", params={"as_of": "2025-06-30"}, headers=h)
                    answers.append(r.status_code)
                    await asyncio.sleep(0.01)

            async def keep_publishing() -> None:
                from dtm_shared.events import registration as reg

                for i in range(3):
                    await asyncio.sleep(0.3)
                    hh = w.register(date(2025, 6, 1 + i), area="ML060105")
                    w.change(hh, reg.HouseholdRelocatedV1, date(2025, 6, 10 + i), location_pcode="ML090101")
                    await publish(env, [record(v) for v in w.versions[hh.aggregate_id]])

            asker = asyncio.create_task(keep_asking())
            publisher = asyncio.create_task(keep_publishing())
            result = await rebuild(env.settings)
            await publisher
            await eventually(lambda: caught_up(env), timeout=60)
            stop.set()
            await asker
    finally:
        await consumer._engine.dispose()

    assert result.generation == 2 and result.previous_generation == 1
    assert result.households <= len(w.versions) and result.events >= len(w.events) - 6
    assert answers and all(code == 200 for code in answers), set(answers)
    assert (await sql(env, "SELECT current FROM generation"))[0][0] == 2
    partitions = {r[0] for r in await sql(env, "SELECT tablename FROM pg_tables WHERE schemaname = 'reporting'")}
    assert "deltas_g2" in partitions and "deltas_g1" not in partitions
    for at, dims in itertools.product(
        (date(2025, 3, 10), date(2025, 6, 5), date(2025, 6, 30), date(2025, 9, 15), date(2026, 2, 1)),
        (["admin1", "population_group"], ["admin3", "site"], ["sex", "age_group"], ["displacement_reason"]),
    ):
        await check_population(env, w, at, dims)
    # the sites side was rebuilt too
    r = await env.client.get(
        "/v1/indicators/sites", params={"as_of": "2025-10-15"}, headers=env.headers("indicators:read")
    )
    assert {i["code"] for i in r.json()["items"]} == {"S1", "S2", "S3"}
    r = await env.client.get(
        "/v1/indicators/service-gaps", params={"as_of": "2025-05-01"}, headers=env.headers("indicators:read")
    )
    assert len(r.json()["overlaps"]) == 1

    # a second rebuild, without a live consumer, gives the same figures
    again = await rebuild(env.settings)
    assert again.generation == 3 and again.caught_up == 0
    await check_population(env, w, date(2025, 12, 31), ["admin2", "population_group", "sex"])
