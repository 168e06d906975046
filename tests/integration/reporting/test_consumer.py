"""The reporting consumer: idempotent (same event twice, an older version after a newer one) and
dead letters (a malformed event lands in `<topic>.dlq` and `dead_letters`; consumption goes on)."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import date

import pytest

from tests.integration.reporting.conftest import ReportingEnv, consume_all, publish, record, reporting_env, sql
from tests.integration.reporting.world import World

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def env(migrated) -> AsyncIterator[ReportingEnv]:
    async with reporting_env(migrated, "cs" + uuid.uuid4().hex[:6]) as e:
        yield e


async def population(env: ReportingEnv, at: str, **params: str) -> dict:
    r = await env.client.get(
        "/v1/indicators/population",
        params={"as_of": at, "group_by": "admin3", **params},
        headers=env.headers("indicators:read"),
    )
    assert r.status_code == 200, r.text
    return {i["admin3"]: (i["households"], i["individuals"]) for i in r.json()["items"]}


async def test_duplicates_and_older_versions_change_nothing(env: ReportingEnv) -> None:
    from dtm_shared.events import registration as reg

    w = World(seed=3)
    hh = w.register(date(2025, 1, 10), area="ML090101", members=w.members(3), population_group="idp")
    v2 = w.relocate(hh, date(2025, 5, 1), area="ML060105")
    v3 = w.change(hh, reg.HouseholdUpdatedV1, date(2025, 6, 1), members=w.members(5))
    first = record(hh)
    await publish(env, [first, record(v2), record(v3)])
    await consume_all(env)
    expected_may, expected_june = {"ML060105": (1, 3)}, {"ML060105": (1, 5)}
    assert await population(env, "2025-05-15") == expected_may
    assert await population(env, "2025-06-15") == expected_june
    # the same event again (same id), the same version under a new id, an older version after newer
    stats = None
    await publish(env, [first, record(v3), record(v2), record(hh)])
    stats = await consume_all(env)
    assert stats.skipped == 1 and stats.applied == 3 and stats.dead_lettered == 0 and stats.fallbacks == 0
    assert await population(env, "2025-05-15") == expected_may
    assert await population(env, "2025-06-15") == expected_june
    assert await population(env, "2025-02-01") == {"ML090101": (1, 3)}
    rows = await sql(
        env,
        "SELECT version, valid_from, valid_to FROM household_versions WHERE household_id = :h ORDER BY version",
        h=hh.aggregate_id,
    )
    assert [tuple(r) for r in rows] == [
        (1, date(2025, 1, 10), date(2025, 5, 1)),
        (2, date(2025, 5, 1), date(2025, 6, 1)),
        (3, date(2025, 6, 1), None),
    ]
    # a newer version of a site, then the older one again: the newer stays
    site = w.site("DUP", "ML090106", date(2025, 1, 1))
    from dtm_shared.events import sites as ev

    renamed = ev.SiteUpdatedV1(**{**site.model_dump(), "version": 2, "name": "Renamed"})
    await publish(env, [record(site), record(renamed), record(site)])
    await consume_all(env)
    assert (await sql(env, "SELECT name, version FROM sites WHERE code = 'DUP'"))[0] == ("Renamed", 2)


async def test_malformed_events_are_dead_lettered_and_consumption_continues(env: ReportingEnv) -> None:
    from aiokafka import AIOKafkaConsumer

    from dtm_shared.events import CloudEvent

    w = World(seed=5)
    good_before = w.register(date(2025, 2, 1), area="ML050101", members=w.members(2))
    bad_location = w.register(date(2025, 2, 1), area="ML050101", members=w.members(2))
    topic, key, value, headers = record(bad_location)
    data = json.loads(value)
    data["location_pcode"] = "ML999999"  # not in COD-AB: the handler refuses it
    bad_payload = (topic, key, json.dumps(data).encode(), headers)
    missing_field = dict(data)
    del missing_field["members"]
    event = CloudEvent(
        type="dtm.household.registered.v1", source="tests", subject=str(uuid.uuid4()), data=missing_field
    )
    invalid = (topic, key, event.value(), event.headers())
    not_json = (
        topic,
        key,
        b"{nope",
        CloudEvent(type="dtm.household.registered.v1", source="t", subject="x", data={}).headers(),
    )
    no_headers = (topic, key, b"{}", [("content-type", b"application/json")])
    good_after = w.register(date(2025, 2, 2), area="ML050101", members=w.members(4))
    await publish(env, [record(good_before), bad_payload, invalid, not_json, no_headers, record(good_after)])
    stats = await consume_all(env)
    assert stats.dead_lettered == 4, stats
    assert stats.fallbacks >= 1  # the batch fast path handed the batch to the per-event path
    assert await population(env, "2025-03-01", admin1="ML05") == {"ML050101": (2, 6)}
    rows = await sql(env, "SELECT topic, event_type, error, attempts FROM dead_letters ORDER BY id")
    assert len(rows) == 4 and all(r[0] == env.prefix + "dtm.registration" for r in rows)
    assert any("ML999999" in r[2] for r in rows) and any("invalid envelope" in r[2] for r in rows)
    consumer = AIOKafkaConsumer(
        env.prefix + "dtm.registration.dlq",
        bootstrap_servers=env.stack.kafka_bootstrap,
        auto_offset_reset="earliest",
        group_id=None,
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        got = []
        while len(got) < 4:
            batch = await consumer.getmany(timeout_ms=5000)
            if not batch:
                break
            got += [r for rs in batch.values() for r in rs]
    finally:
        await consumer.stop()
    assert len(got) == 4
    assert all(dict(r.headers).get("dtm_error") for r in got)
    assert {dict(r.headers)["dtm_original_topic"] for r in got} == {env.prefix.encode() + b"dtm.registration"}
