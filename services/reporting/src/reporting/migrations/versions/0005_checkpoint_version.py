"""checkpoint_state.version: bumped whenever an apply changes an existing monthly checkpoint

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22

The API caches the checkpoint part of a population answer under (generation, checkpoint
version, month, dimensions, filters); only a change effective before a materialised month
touches checkpoints, so in steady state (registrations effective today) the cached part stays
valid and each answer only sums the current month's deltas.
"""

import importlib.util
from pathlib import Path

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

HERE = Path(__file__).resolve().parent


def _load(name: str) -> object:
    spec = importlib.util.spec_from_file_location(f"reporting_migration_{name}", HERE / name)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


APPLY_ONE = _load("0003_checkpoint_dimensions.py").APPLY_HOUSEHOLD  # type: ignore[attr-defined]
APPLY_MANY = _load("0004_set_based_batch.py").FUNCTION  # type: ignore[attr-defined]

ONE_ANCHOR = "            m3 = checkpoints.m3 + excluded.m3, m4 = checkpoints.m4 + excluded.m4;\n"
MANY_ANCHOR = "ON CONFLICT (gen, month, cell_id) DO UPDATE SET {ADD.format(t=\"checkpoints\")};"
BUMP = (
    "        GET DIAGNOSTICS touched = ROW_COUNT;\n"
    "        IF touched > 0 THEN UPDATE checkpoint_state SET version = version + 1; END IF;\n"
)


def _with_bump(sql: str, anchor: str) -> str:
    assert anchor in sql, anchor
    sql = sql.replace(anchor, anchor + BUMP, 1)
    return sql.replace("DECLARE\n", "DECLARE\n    touched bigint;\n", 1)


def upgrade() -> None:
    op.execute("CREATE TABLE checkpoint_state (singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton), "
               "version bigint NOT NULL DEFAULT 0)")
    op.execute("INSERT INTO checkpoint_state DEFAULT VALUES")
    op.execute(_with_bump(APPLY_ONE, ONE_ANCHOR))
    many_anchor = "ON CONFLICT (gen, month, cell_id) DO UPDATE SET " + ", ".join(
        f"{c} = checkpoints.{c} + excluded.{c}" for c in ("h", "f0", "f1", "f2", "f3", "f4", "m0", "m1", "m2", "m3", "m4")
    ) + ";\n"
    op.execute(_with_bump(APPLY_MANY, many_anchor))


def downgrade() -> None:
    op.execute(APPLY_ONE)
    op.execute(APPLY_MANY)
    op.execute("DROP TABLE checkpoint_state")
