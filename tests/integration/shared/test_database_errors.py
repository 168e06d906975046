"""Database refusals become problems by SQLSTATE, never a 500, and never echo the values."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from sqlalchemy import text

from dtm_shared.db import create_engine
from dtm_shared.problems import install_problem_handlers
from tests.conftest import StackEnv

pytestmark = pytest.mark.integration


@pytest.fixture
async def client(migrated: StackEnv):
    import httpx

    engine = create_engine(migrated.settings("sites"))
    app = FastAPI()
    install_problem_handlers(app)

    @app.get("/run/{case}")
    async def run(case: str) -> dict[str, str]:
        statements = {
            "nul": ("SELECT CAST(:v AS text)", {"v": "secret\x00value"}),
            "range": ("SELECT CAST(:v AS smallint)", {"v": 10**9}),
            "unique": ("CREATE TEMP TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1), (1)", {}),
        }
        sql, params = statements[case]
        async with engine.connect() as conn:
            for part in sql.split("; "):
                await conn.execute(text(part), params if ":v" in part else {})
        return {"ok": case}

    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, raise_app_exceptions=False), base_url="http://t"
    ) as c:
        yield c
    await engine.dispose()


@pytest.mark.parametrize(("case", "status"), [("nul", 422), ("range", 422), ("unique", 409)])
async def test_database_refusals_map_to_problems(client, case: str, status: int) -> None:
    r = await client.get(f"/run/{case}")
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert "secret" not in r.text
    assert "INSERT" not in r.text
