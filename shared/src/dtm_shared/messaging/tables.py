"""DDL for the messaging tables, for the services' Alembic migrations.

Unqualified names: each service's migration runs with its own schema on the search path, so the
tables land in that schema. `outbox` for producers; `inbox`, `consumer_positions` and
`dead_letters` for consumers.
"""

from __future__ import annotations

from typing import Protocol


class _Op(Protocol):
    def execute(self, sql: str) -> object: ...


OUTBOX_DDL = [
    """
    CREATE TABLE outbox (
        id            bigserial PRIMARY KEY,
        event_id      uuid        NOT NULL UNIQUE,
        topic         text        NOT NULL,
        key           text        NOT NULL,
        event_type    text        NOT NULL,
        shard         smallint    NOT NULL,
        headers       jsonb       NOT NULL DEFAULT '{}'::jsonb,
        payload       jsonb       NOT NULL,
        occurred_at   timestamptz NOT NULL DEFAULT now(),
        published_at  timestamptz
    )
    """,
    "CREATE INDEX outbox_unpublished ON outbox (shard, id) WHERE published_at IS NULL",
    "CREATE INDEX outbox_published_at ON outbox (published_at) WHERE published_at IS NOT NULL",
]

CONSUMER_DDL = [
    """
    CREATE TABLE inbox (
        event_id      uuid PRIMARY KEY,
        event_type    text        NOT NULL,
        processed_at  timestamptz NOT NULL DEFAULT now()
    )
    """,
    """
    CREATE TABLE consumer_positions (
        group_id      text        NOT NULL,
        topic         text        NOT NULL,
        partition     integer     NOT NULL,
        next_offset   bigint      NOT NULL,
        high_water    bigint,
        last_event_at timestamptz,
        updated_at    timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (group_id, topic, partition)
    )
    """,
    """
    CREATE TABLE dead_letters (
        id            bigserial PRIMARY KEY,
        group_id      text        NOT NULL,
        topic         text        NOT NULL,
        partition     integer     NOT NULL,
        "offset"      bigint      NOT NULL,
        event_id      text,
        event_type    text,
        error         text        NOT NULL,
        attempts      integer     NOT NULL,
        failed_at     timestamptz NOT NULL DEFAULT now()
    )
    """,
]


def create_outbox(op: _Op) -> None:
    for sql in OUTBOX_DDL:
        op.execute(sql)


def drop_outbox(op: _Op) -> None:
    op.execute("DROP TABLE IF EXISTS outbox")


def create_consumer_tables(op: _Op) -> None:
    for sql in CONSUMER_DDL:
        op.execute(sql)


def drop_consumer_tables(op: _Op) -> None:
    for table in ("dead_letters", "consumer_positions", "inbox"):
        op.execute(f"DROP TABLE IF EXISTS {table}")
