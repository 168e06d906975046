"""The sites relay publishes every kind of sites event to Kafka as CloudEvents, keyed by aggregate id,
in per-aggregate order."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from aiokafka import AIOKafkaConsumer

from dtm_shared.messaging.relay import OutboxRelay
from tests.conftest import StackEnv, eventually, running
from tests.integration.sites.helpers import WRITE, assessment_body, create_site, outbox_events

pytestmark = pytest.mark.integration


async def _read_until(env: StackEnv, keys: dict[str, int], timeout: float = 30.0) -> list:
    """Records of `dtm.sites` until each key in `keys` has at least that many records."""
    consumer = AIOKafkaConsumer(
        env.topic_prefix + "dtm.sites",
        bootstrap_servers=env.kafka_bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        records: list = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=300)
            for recs in batch.values():
                records.extend(recs)
            counts = {k: sum(1 for r in records if r.key == k.encode()) for k in keys}
            if all(counts[k] >= n for k, n in keys.items()):
                return records
            await asyncio.sleep(0.05)
        raise AssertionError(f"not every event reached Kafka: {counts} < {keys}")
    finally:
        await consumer.stop()


async def test_relay_publishes_cloudevents_keyed_by_aggregate(api, migrated: StackEnv) -> None:
    sites = api("sites")
    h = migrated.headers("IOM", *WRITE)
    site = await create_site(sites, migrated, location_pcode="ML030101")
    sid = site["id"]
    assert (
        await sites.patch(f"/v1/sites/{sid}", json={"name": "Renommé"}, headers={**h, "If-Match": '"1"'})
    ).status_code == 200
    assessment = (await sites.post(f"/v1/sites/{sid}/assessments", json=assessment_body(1), headers=h)).json()
    activity = (
        await sites.post(
            f"/v1/sites/{sid}/service-activities",
            json={"sector": "shelter", "activity": "tents", "start_date": "2024-02-01"},
            headers=h,
        )
    ).json()
    committee = (
        await sites.post(
            "/v1/committees",
            json={
                "admin1_pcode": "ML03",
                "name": "Comité de Sikasso",
                "member_organizations": ["IOM", "UNHCR"],
                "quorum": 1,
            },
            headers=migrated.headers("DNDS", "admin"),
        )
    ).json()
    report = (
        await sites.post(
            f"/v1/sites/{sid}/activity-reports",
            json={"period": "2024-02", "key_figures": {"households_present": 5}},
            headers=h,
        )
    ).json()
    r = await sites.post(
        f"/v1/activity-reports/{report['id']}/reviews",
        json={"decision": "approve"},
        headers=migrated.headers("UNHCR", "reports:review"),  # not the submitting organisation
    )
    assert r.json()["status"] == "validated"
    r = await sites.post(
        f"/v1/sites/{sid}/close", json={"closed_on": "2024-03-01", "closure_reason": "empty"}, headers=h
    )
    assert r.status_code == 200

    expected = {
        sid: ["dtm.site.opened.v1", "dtm.site.updated.v1", "dtm.site.closed.v1"],
        assessment["id"]: ["dtm.site.assessed.v1"],
        activity["id"]: ["dtm.service_activity.recorded.v1"],
        committee["id"]: ["dtm.committee.updated.v1"],
        report["id"]: ["dtm.activity_report.submitted.v1", "dtm.activity_report.validated.v1"],
    }
    relay = OutboxRelay(migrated.settings("sites"))
    async with running(relay.run(), relay.stop):
        records = await _read_until(migrated, {k: len(v) for k, v in expected.items()})

        async def all_marked() -> bool:
            rows = [e for k in expected for e in await _published(migrated, k)]
            return all(rows)

        await eventually(all_marked)

    for key, types in expected.items():
        mine = [rec for rec in records if rec.key == key.encode()]
        assert len({rec.partition for rec in mine}) == 1  # one aggregate, one partition: its order holds
        mine.sort(key=lambda rec: rec.offset)
        headers = [{k: v.decode() for k, v in rec.headers} for rec in mine]
        assert [hs["ce_type"] for hs in headers] == types
        for hs, rec in zip(headers, mine, strict=True):
            assert hs["ce_specversion"] == "1.0" and hs["ce_source"] == "sites" and hs["ce_subject"] == key
            assert hs["content-type"] == "application/json" and hs["ce_id"] and hs["ce_time"]
            payload = json.loads(rec.value)
            assert payload["aggregate_id"] == key and "version" in payload and "effective_date" in payload
        versions = [json.loads(rec.value)["version"] for rec in mine]
        assert versions == sorted(versions)
    ids = [dict(rec.headers)["ce_id"] for rec in records]
    assert len(ids) == len(set(ids))
    closed = json.loads([rec for rec in records if rec.key == sid.encode()][-1].value)
    assert closed["status"] == "closed" and closed["name"] == "Renommé" and closed["version"] == 3


async def _published(env: StackEnv, key: str) -> list[bool]:
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(env.settings("sites").sqlalchemy_url)
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SET search_path TO sites"))
            rows = (
                await conn.execute(text("SELECT published_at IS NOT NULL FROM outbox WHERE key = :k"), {"k": key})
            ).all()
    finally:
        await engine.dispose()
    assert rows and len(rows) == len(await outbox_events(env, key))
    return [bool(r[0]) for r in rows]
