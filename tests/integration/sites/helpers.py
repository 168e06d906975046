"""Helpers of the sites integration tests: request bodies, tokens and the outbox."""

from __future__ import annotations

import json
import uuid
from datetime import date, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from tests.conftest import StackEnv

WRITE = ("sites:read", "sites:write")


def unique(prefix: str = "T") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def site_body(**over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "code": unique("S"),
        "name": "Site de Faladié",
        "site_type": "spontaneous_site",
        "location_pcode": "ML090106",
        "opened_on": "2024-01-15",
        "capacity_households": 300,
        "management_agency": "DNDS",
    }
    body.update(over)
    return body


def assessment_body(round_number: int = 1, **over: Any) -> dict[str, Any]:
    """100 individuals in 20 households; every total adds up."""
    body: dict[str, Any] = {
        "round_number": round_number,
        "assessed_on": "2024-06-10",
        "households": 20,
        "individuals": 100,
        "individuals_by_sex_age": {
            "female_0_4": 10,
            "female_5_11": 8,
            "female_12_17": 7,
            "female_18_59": 22,
            "female_60_plus": 3,
            "male_0_4": 9,
            "male_5_11": 9,
            "male_12_17": 6,
            "male_18_59": 20,
            "male_60_plus": 6,
        },
        "individuals_by_reason": {"armed_conflict": 80, "community_tension": 15, "natural_disaster": 5},
        "coverage": {"wash": "partial", "health": "none", "shelter": "adequate"},
        "priority_needs": ["health", "wash", "food_security"],
        "risks": ["flood", "insecurity"],
    }
    body.update(over)
    return body


def last_month() -> str:
    d = date.today().replace(day=1) - timedelta(days=1)
    return f"{d.year:04d}-{d.month:02d}"


async def create_site(client: Any, env: StackEnv, **over: Any) -> dict[str, Any]:
    r = await client.post("/v1/sites", json=site_body(**over), headers=env.headers("DNDS", *WRITE))
    assert r.status_code == 201, r.text
    return dict(r.json())


async def outbox_events(env: StackEnv, key: str) -> list[tuple[str, dict[str, Any]]]:
    """(event type, payload) of the outbox rows of one aggregate, in staging order."""
    engine = create_async_engine(env.settings("sites").sqlalchemy_url)
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SET search_path TO sites"))
            rows = (
                await conn.execute(
                    text("SELECT event_type, payload FROM outbox WHERE key = :k ORDER BY id"), {"k": key}
                )
            ).all()
    finally:
        await engine.dispose()
    return [(r[0], r[1] if isinstance(r[1], dict) else json.loads(r[1])) for r in rows]


def assert_problem(r: Any, status: int, *fields: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json"), r.headers
    doc = dict(r.json())
    assert doc["status"] == status and doc["title"] and doc["type"]
    for field in fields:
        assert any(field in e["loc"] for e in doc.get("errors", [])), doc
    return doc
