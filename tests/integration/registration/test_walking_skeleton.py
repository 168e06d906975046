"""Issue 2's walking skeleton, registration side: a site created in the sites service reaches the
registration replica through Kafka; a household registers there; the event reaches Kafka."""

from __future__ import annotations

import json

import pytest

from dtm_shared.db import create_engine, create_sessionmaker
from dtm_shared.messaging.relay import OutboxRelay
from registration.workers import sites_consumer
from tests.conftest import StackEnv, eventually, running
from tests.integration.registration.conftest import WRITE, household, read_topic

pytestmark = pytest.mark.integration


async def test_site_to_replica_to_registration_to_event(api, migrated: StackEnv, db) -> None:
    sites, reg = api("sites"), api("registration")
    site_headers = migrated.headers("IOM", "sites:write", "sites:read")
    headers = migrated.headers("DNDS", *WRITE)
    created = await sites.post(
        "/v1/sites",
        json={
            "code": "WS-REG-001",
            "name": "Site de Sénou",
            "site_type": "spontaneous_site",
            "location_pcode": "ML090106",
            "opened_on": "2024-01-10",
        },
        headers=site_headers,
    )
    assert created.status_code == 201, created.text
    site = created.json()

    reg_settings = migrated.settings("registration")
    engine = create_engine(reg_settings)
    consumer = sites_consumer(reg_settings, create_sessionmaker(engine))
    sites_relay = OutboxRelay(migrated.settings("sites"))
    reg_relay = OutboxRelay(reg_settings)
    try:
        async with (
            running(sites_relay.run(), sites_relay.stop),
            running(consumer.run(), consumer.stop),
            running(reg_relay.run(), reg_relay.stop),
        ):

            async def replicated() -> bool:
                return await db.fetchval("SELECT status FROM site_replica WHERE id = $1", site["id"]) == "open"

            await eventually(replicated)
            body = household(site_id=site["id"], location_pcode=None)
            r = await reg.post("/v1/households", json=body, headers=headers)
            assert r.status_code == 201, r.text
            hh = r.json()
            assert hh["site_id"] == site["id"]
            assert hh["location_pcode"] == "ML090106" and hh["admin2_pcode"] == "ML0901"

            def has_event(records: list) -> bool:
                return any(rec.key == hh["id"].encode() for rec in records)

            records = await read_topic(migrated, "dtm.registration", has_event)
            [event] = [rec for rec in records if rec.key == hh["id"].encode()]
            hs = {k: v.decode() for k, v in event.headers}
            assert hs["ce_type"] == "dtm.household.registered.v1" and hs["ce_subject"] == hh["id"]
            payload = json.loads(event.value)
            assert payload["site_id"] == site["id"] and payload["version"] == 1
            assert payload["registration_number"] == hh["registration_number"]

            # The site closes: the replica follows, registrations there are refused, naming the field.
            closed = await sites.post(
                f"/v1/sites/{site['id']}/close",
                json={"closed_on": "2024-05-01", "closure_reason": "moved to a planned site"},
                headers=site_headers,
            )
            assert closed.status_code == 200, closed.text

            async def replica_closed() -> bool:
                return await db.fetchval("SELECT status FROM site_replica WHERE id = $1", site["id"]) == "closed"

            await eventually(replica_closed)
            refused = await reg.post("/v1/households", json=household(site_id=site["id"]), headers=headers)
            assert refused.status_code == 422, refused.text
            assert refused.json()["errors"][0]["loc"] == ["body", "site_id"]
            assert "closed" in refused.json()["errors"][0]["msg"]
    finally:
        await engine.dispose()


async def test_replica_ignores_stale_and_repeated_versions(migrated: StackEnv, db) -> None:
    """The handler applies a site's state only when its version is newer."""
    import uuid
    from datetime import date

    from sqlmodel.ext.asyncio.session import AsyncSession

    from dtm_shared.events.envelope import CloudEvent
    from dtm_shared.events.sites import SiteClosedV1, SiteOpenedV1, SiteUpdatedV1
    from registration.handlers import HANDLERS

    settings = migrated.settings("registration")
    engine = create_engine(settings)
    site_id = uuid.uuid4()
    common = {
        "aggregate_id": site_id,
        "effective_date": date(2024, 1, 1),
        "code": "STALE-1",
        "name": "n",
        "site_type": "planned_site",
        "location_pcode": "ML090106",
        "opened_on": date(2024, 1, 1),
    }
    events = [
        SiteOpenedV1(version=1, status="open", **common),
        SiteClosedV1(version=3, status="closed", **common),
        SiteUpdatedV1(version=2, status="open", **{**common, "location_pcode": "ML090101"}),
        SiteClosedV1(version=3, status="closed", **common),
    ]
    try:
        async with create_sessionmaker(engine)() as session, session.begin():
            assert isinstance(session, AsyncSession)
            for e in events:
                ce = CloudEvent(type=e.event_type, source="sites", subject=str(site_id), data=e.model_dump(mode="json"))
                await HANDLERS[e.event_type](session, ce, e)
    finally:
        await engine.dispose()
    row = await db.fetchrow("SELECT status, version, location_pcode FROM site_replica WHERE id = $1", site_id)
    assert (row["status"], row["version"], row["location_pcode"]) == ("closed", 3, "ML090106")
