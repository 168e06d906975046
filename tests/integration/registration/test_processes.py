"""The registration entry points the CLI runs (`dtm serve|relay|consume registration`) work as real
processes: a site created in the sites service reaches registration's replica, a household
registers there and its event is published."""

from __future__ import annotations

import asyncio
import time

import asyncpg
import httpx
import pytest

from tests.integration.registration.conftest import WRITE, household, read_topic

pytestmark = pytest.mark.integration


def test_worker_processes(processes) -> None:
    env = processes.env
    sites = processes.serve("sites")
    reg = processes.serve("registration")
    processes.start("sites", "relay", "sites")
    processes.start("registration", "consume", "registration")
    processes.start("registration", "relay", "registration")

    site = httpx.post(
        sites.base_url + "/v1/sites",
        json={
            "code": "PROC-1",
            "name": "Site de Niamana",
            "site_type": "planned_site",
            "location_pcode": "ML090101",
            "opened_on": "2024-01-01",
        },
        headers=env.headers("IOM", "sites:write"),
        timeout=10,
    )
    assert site.status_code == 201, site.text
    site_id = site.json()["id"]
    body = household(site_id=site_id, location_pcode=None)
    deadline = time.monotonic() + 60
    while True:  # the replica catches up through Kafka
        r = httpx.post(reg.base_url + "/v1/households", json=body, headers=env.headers("DNDS", *WRITE), timeout=10)
        if r.status_code == 201 or time.monotonic() > deadline:
            break
        assert r.status_code == 422 and r.json()["errors"][0]["loc"] == ["body", "site_id"]
        time.sleep(0.3)
    assert r.status_code == 201, r.text
    hid = r.json()["id"]
    assert r.json()["location_pcode"] == "ML090101"
    records = asyncio.run(read_topic(env, "dtm.registration", lambda recs: any(x.key == hid.encode() for x in recs)))
    assert any(x.key == hid.encode() for x in records)

    async def replica() -> str | None:
        conn = await asyncpg.connect(env.settings("registration").asyncpg_url)
        try:
            return await conn.fetchval("SELECT status FROM registration.site_replica WHERE id = $1::uuid", site_id)
        finally:
            await conn.close()

    assert asyncio.run(replica()) == "open"
