"""Every query of the registration service.

New households go through one bulk path whatever their number (a single registration is a batch
of one): households by a multi-row `INSERT ... SELECT FROM unnest(...) ON CONFLICT DO NOTHING`
(so a concurrent duplicate `external_id` is answered `existing`, not an error), then members,
history and outbox rows by COPY, all on the session's connection and inside its transaction."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import asyncpg
from sqlalchemy import text
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from dtm_shared.messaging.outbox import OUTBOX_COLUMNS
from registration.models import DuplicateCandidate, Household, HouseholdHistory, Member, SiteReplica

SCHEMA = "registration"

MEMBER_COLUMNS = (
    "id",
    "household_id",
    "position",
    "given_name",
    "family_name",
    "sex",
    "date_of_birth",
    "date_of_birth_estimated",
    "relationship",
    "specific_needs",
    "phone",
    "id_document_type",
    "id_document_number",
)
HISTORY_COLUMNS = ("household_id", "version", "event_type", "effective_date", "snapshot")

#: Columns of a new household given to `insert_households`, in order; `head_name` is folded into
#: `head_name_key` by the database (`name_key()`: unaccent + lower).
NEW_HOUSEHOLD_COLUMNS = (
    ("id", "uuid"),
    ("external_id", "text"),
    ("registered_by_org", "text"),
    ("population_group", "text"),
    ("site_id", "uuid"),
    ("location_pcode", "text"),
    ("origin_pcode", "text"),
    ("displacement_reason", "text"),
    ("displacement_date", "date"),
    ("registration_date", "date"),
    ("return_date", "date"),
    ("country_of_asylum", "text"),
    ("repatriation_date", "date"),
    ("head_name", "text"),
    ("head_birth_date", "date"),
)

_INSERT_HOUSEHOLDS = (
    "INSERT INTO households (id, external_id, registered_by_org, population_group, site_id, location_pcode, "
    "origin_pcode, displacement_reason, displacement_date, registration_date, return_date, country_of_asylum, "
    "repatriation_date, head_name_key, head_birth_date) "
    "SELECT id, external_id, registered_by_org, population_group, site_id, location_pcode, origin_pcode, "
    "displacement_reason, displacement_date, registration_date, return_date, country_of_asylum, "
    "repatriation_date, name_key(head_name), head_birth_date FROM unnest("
    + ", ".join(f"${i}::{t}[]" for i, (_, t) in enumerate(NEW_HOUSEHOLD_COLUMNS, start=1))
    + ") AS t("
    + ", ".join(c for c, _ in NEW_HOUSEHOLD_COLUMNS)
    + ") ON CONFLICT (registered_by_org, external_id) WHERE external_id IS NOT NULL DO NOTHING "
    "RETURNING id, number"
)

# Candidates of the given households against every other active one. Every lookup is a LATERAL
# subquery that cannot be flattened (LIMIT / OFFSET 0) and every household a scalar subquery on the
# primary key: index probes whatever the statistics of freshly loaded tables say (a plan from stale
# statistics would scan whole tables for one registration). A phone shared by a whole community
# raises at most $4 pairs per member.
_FIND_DUPLICATES = """
WITH new AS MATERIALIZED (
    SELECT h.*
    FROM unnest($1::uuid[]) AS given(id)
    CROSS JOIN LATERAL (
        SELECT id, number, origin_pcode, head_birth_date, head_name_key FROM households WHERE id = given.id OFFSET 0
    ) h
),
new_members AS MATERIALIZED (
    SELECT n.id AS household_id, n.number, m.phone, m.id_document_type, m.id_document_number
    FROM new n
    CROSS JOIN LATERAL (
        SELECT phone, id_document_type, id_document_number FROM members
        WHERE household_id = n.id AND (phone IS NOT NULL OR id_document_number IS NOT NULL)
        OFFSET 0
    ) m
),
matches AS (
    SELECT n.id AS x, n.number AS xn, o.id AS y, o.number AS yn, 'name' AS reason, o.sim
    FROM new n
    CROSS JOIN LATERAL (
        SELECT h.id, h.number, similarity(n.head_name_key, h.head_name_key) AS sim
        FROM households h
        WHERE h.origin_pcode = n.origin_pcode
          AND h.head_birth_date BETWEEN n.head_birth_date - $2::int AND n.head_birth_date + $2::int
          AND h.id <> n.id AND h.status = 'active'
          AND similarity(n.head_name_key, h.head_name_key) >= $3::real
        ORDER BY sim DESC
        LIMIT $4::int
    ) o
    WHERE n.origin_pcode IS NOT NULL
    UNION ALL
    SELECT m.household_id, m.number, o.household_id,
           (SELECT h.number FROM households h WHERE h.id = o.household_id AND h.status = 'active'), 'phone', NULL
    FROM new_members m
    CROSS JOIN LATERAL (
        SELECT om.household_id FROM members om
        WHERE om.phone = m.phone AND om.household_id <> m.household_id
        LIMIT $4::int
    ) o
    WHERE m.phone IS NOT NULL
    UNION ALL
    SELECT m.household_id, m.number, o.household_id,
           (SELECT h.number FROM households h WHERE h.id = o.household_id AND h.status = 'active'), 'document', NULL
    FROM new_members m
    CROSS JOIN LATERAL (
        SELECT om.household_id FROM members om
        WHERE om.id_document_number = m.id_document_number
          AND om.id_document_type IS NOT DISTINCT FROM m.id_document_type
          AND om.household_id <> m.household_id
        LIMIT $4::int
    ) o
    WHERE m.id_document_number IS NOT NULL
),
ordered AS (
    SELECT CASE WHEN xn < yn THEN x ELSE y END AS a, CASE WHEN xn < yn THEN y ELSE x END AS b, reason, sim
    FROM matches
    WHERE yn IS NOT NULL
)
INSERT INTO duplicate_candidates (id, household_a, household_b, reasons, name_similarity)
SELECT gen_random_uuid(), a, b, array_agg(DISTINCT reason ORDER BY reason), max(sim)
FROM ordered GROUP BY a, b
ON CONFLICT (household_a, household_b) DO NOTHING
"""


async def driver_connection(session: AsyncSession) -> asyncpg.Connection:
    """The asyncpg connection under the session, inside the session's transaction."""
    conn = await session.connection()
    raw: asyncpg.Connection = (await conn.get_raw_connection()).driver_connection
    if not raw.is_in_transaction():
        await session.execute(text("SELECT 1"))  # the dialect begins its transaction lazily
    return raw


@dataclass(frozen=True)
class SiteInfo:
    location_pcode: str
    status: str


@dataclass(frozen=True)
class HouseholdFilter:
    population_group: str | None = None
    status: str | None = None
    site_id: uuid.UUID | None = None
    admin1_pcode: str | None = None
    admin2_pcode: str | None = None
    admin3_pcode: str | None = None
    registered_by_org: str | None = None
    registered_since: date | None = None
    registered_until: date | None = None


class RegistrationRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # -- sites replica ---------------------------------------------------------------------------

    async def sites(self, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, SiteInfo]:
        if not ids:
            return {}
        rows = await self.session.exec(select(SiteReplica).where(col(SiteReplica.id).in_(list(set(ids)))))
        return {s.id: SiteInfo(s.location_pcode, s.status) for s in rows}

    async def upsert_site(self, site_id: uuid.UUID, code: str, location_pcode: str, status: str, version: int) -> None:
        """Apply a site's state if its version is newer than the replica's."""
        await self.session.execute(
            text(
                "INSERT INTO site_replica (id, code, location_pcode, status, version, updated_at) "
                "VALUES (:id, :code, :loc, :status, :version, now()) "
                "ON CONFLICT (id) DO UPDATE SET code = EXCLUDED.code, location_pcode = EXCLUDED.location_pcode, "
                "status = EXCLUDED.status, version = EXCLUDED.version, updated_at = now() "
                "WHERE site_replica.version < EXCLUDED.version"
            ),
            {"id": site_id, "code": code, "loc": location_pcode, "status": status, "version": version},
        )

    # -- new households (bulk path) ----------------------------------------------------------------

    async def existing_by_external_id(self, org: str, external_ids: Sequence[str]) -> dict[str, tuple[uuid.UUID, int]]:
        if not external_ids:
            return {}
        conn = await driver_connection(self.session)
        rows = await conn.fetch(
            "SELECT external_id, id, number FROM households WHERE registered_by_org = $1 AND external_id = ANY($2)",
            org,
            list(external_ids),
        )
        return {r["external_id"]: (r["id"], r["number"]) for r in rows}

    async def insert_households(self, rows: Sequence[Sequence[Any]]) -> dict[uuid.UUID, int]:
        """Insert new households (tuples in `NEW_HOUSEHOLD_COLUMNS` order); returns the number of each
        one inserted. Rows whose `(registered_by_org, external_id)` exists are skipped."""
        conn = await driver_connection(self.session)
        # One order for every request (by external id): concurrent batches lock in the same order.
        rows = sorted(rows, key=lambda r: r[1] or "")
        columns = [list(c) for c in zip(*rows, strict=True)]
        inserted = await conn.fetch(_INSERT_HOUSEHOLDS, *columns)
        return {r["id"]: r["number"] for r in inserted}

    async def copy_members(self, records: Sequence[tuple[Any, ...]]) -> None:
        conn = await driver_connection(self.session)
        await conn.copy_records_to_table("members", records=records, columns=MEMBER_COLUMNS, schema_name=SCHEMA)

    async def copy_history(self, records: Sequence[tuple[Any, ...]]) -> None:
        conn = await driver_connection(self.session)
        await conn.copy_records_to_table(
            "household_history", records=records, columns=HISTORY_COLUMNS, schema_name=SCHEMA
        )

    async def copy_outbox(self, records: Sequence[tuple[Any, ...]], channel: str) -> None:
        conn = await driver_connection(self.session)
        await conn.copy_records_to_table("outbox", records=records, columns=OUTBOX_COLUMNS, schema_name=SCHEMA)
        await conn.execute("SELECT pg_notify($1, '')", channel)

    async def find_duplicates(
        self, household_ids: Sequence[uuid.UUID], birth_window_days: int, similarity: float, per_lookup: int = 20
    ) -> int:
        """Queue candidate pairs between these households and every other active one; pairs already
        queued (or resolved) are not raised again. Returns how many new pairs were queued."""
        if not household_ids:
            return 0
        conn = await driver_connection(self.session)
        # Estimates on freshly loaded tables can be far off; JIT compiling for them costs ~0.5 s.
        await conn.execute("SET LOCAL jit = off")
        status: str = await conn.execute(
            _FIND_DUPLICATES, list(household_ids), birth_window_days, similarity, per_lookup
        )
        return int(status.split()[-1])

    async def households_created_since(self, since: datetime, limit: int) -> list[tuple[uuid.UUID, datetime]]:
        conn = await driver_connection(self.session)
        rows = await conn.fetch(
            "SELECT id, created_at FROM households WHERE created_at >= $1 AND status = 'active' "
            "ORDER BY created_at, id LIMIT $2",
            since,
            limit,
        )
        return [(r["id"], r["created_at"]) for r in rows]

    # -- reads and single changes --------------------------------------------------------------------

    async def get(self, household_id: uuid.UUID, *, for_update: bool = False) -> Household | None:
        stmt = select(Household).where(Household.id == household_id)
        if for_update:
            stmt = stmt.with_for_update()
        return (await self.session.exec(stmt)).first()

    async def members_of(self, household_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, list[Member]]:
        out: dict[uuid.UUID, list[Member]] = {h: [] for h in household_ids}
        if not household_ids:
            return out
        rows = await self.session.exec(
            select(Member)
            .where(col(Member.household_id).in_(list(household_ids)))
            .order_by(col(Member.household_id), col(Member.position))
        )
        for m in rows:
            out[m.household_id].append(m)
        return out

    async def list_households(self, f: HouseholdFilter, after_number: int | None, limit: int) -> list[Household]:
        stmt = select(Household)
        if f.population_group:
            stmt = stmt.where(Household.population_group == f.population_group)
        if f.status:
            stmt = stmt.where(Household.status == f.status)
        if f.site_id:
            stmt = stmt.where(Household.site_id == f.site_id)
        for prefix in (f.admin3_pcode, f.admin2_pcode, f.admin1_pcode):
            if prefix:
                stmt = stmt.where(col(Household.location_pcode).startswith(prefix))
        if f.registered_by_org:
            stmt = stmt.where(Household.registered_by_org == f.registered_by_org)
        if f.registered_since:
            stmt = stmt.where(Household.registration_date >= f.registered_since)
        if f.registered_until:
            stmt = stmt.where(Household.registration_date <= f.registered_until)
        if after_number is not None:
            stmt = stmt.where(Household.number > after_number)
        stmt = stmt.order_by(col(Household.number)).limit(limit)
        return list(await self.session.exec(stmt))

    async def replace_members(self, household_id: uuid.UUID, members: Sequence[tuple[Any, ...]]) -> None:
        await self.session.execute(text("DELETE FROM members WHERE household_id = :h"), {"h": household_id})
        await self.session.flush()
        await self.copy_members(members)

    async def refresh_head(self, household_id: uuid.UUID, head_name: str, head_birth_date: date) -> None:
        await self.session.execute(
            text("UPDATE households SET head_name_key = name_key(:n), head_birth_date = :d WHERE id = :h"),
            {"n": head_name, "d": head_birth_date, "h": household_id},
        )

    def add_history(self, entry: HouseholdHistory) -> None:
        self.session.add(entry)

    async def history(self, household_id: uuid.UUID) -> list[HouseholdHistory]:
        rows = await self.session.exec(
            select(HouseholdHistory)
            .where(HouseholdHistory.household_id == household_id)
            .order_by(col(HouseholdHistory.version))
        )
        return list(rows)

    # -- duplicate candidates ----------------------------------------------------------------------

    async def candidates(
        self, status: str | None, after: tuple[datetime, uuid.UUID] | None, limit: int
    ) -> list[DuplicateCandidate]:
        stmt = select(DuplicateCandidate)
        if status:
            stmt = stmt.where(DuplicateCandidate.status == status)
        if after is not None:
            stmt = stmt.where(
                (col(DuplicateCandidate.created_at) > after[0])
                | ((col(DuplicateCandidate.created_at) == after[0]) & (col(DuplicateCandidate.id) > after[1]))
            )
        stmt = stmt.order_by(col(DuplicateCandidate.created_at), col(DuplicateCandidate.id)).limit(limit)
        return list(await self.session.exec(stmt))

    async def candidate(self, candidate_id: uuid.UUID, *, for_update: bool = False) -> DuplicateCandidate | None:
        stmt = select(DuplicateCandidate).where(DuplicateCandidate.id == candidate_id)
        if for_update:
            stmt = stmt.with_for_update()
        return (await self.session.exec(stmt)).first()

    async def households(self, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, Household]:
        if not ids:
            return {}
        rows = await self.session.exec(select(Household).where(col(Household.id).in_(list(set(ids)))))
        return {h.id: h for h in rows}

    async def heads(self, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, tuple[Member, int]]:
        """The head of each household and its number of members."""
        if not ids:
            return {}
        members = await self.members_of(list(set(ids)))
        out = {}
        for hid, ms in members.items():
            head = next((m for m in ms if m.relationship == "head"), ms[0] if ms else None)
            if head is not None:
                out[hid] = (head, len(ms))
        return out

    # -- idempotency keys --------------------------------------------------------------------------

    async def claim_idempotency_key(self, client: str, key: str, request_hash: str) -> tuple[str, int | None, Any]:
        """Claim the key for this request, or return what the first request with it stored: a row
        being written by a concurrent transaction is waited for (the unique index blocks)."""
        conn = await driver_connection(self.session)
        inserted = await conn.fetchval(
            "INSERT INTO idempotency_keys (client, key, request_hash) VALUES ($1, $2, $3) "
            "ON CONFLICT (client, key) DO NOTHING RETURNING true",
            client,
            key,
            request_hash,
        )
        if inserted:
            return request_hash, None, None
        row = await conn.fetchrow(
            "SELECT request_hash, status_code, response::text AS response FROM idempotency_keys "
            "WHERE client = $1 AND key = $2",
            client,
            key,
        )
        assert row is not None
        return row["request_hash"], row["status_code"], row["response"]

    async def store_idempotent_response(self, client: str, key: str, status_code: int, body: str) -> None:
        conn = await driver_connection(self.session)
        await conn.execute(
            "UPDATE idempotency_keys SET status_code = $3, response = $4::jsonb WHERE client = $1 AND key = $2",
            client,
            key,
            status_code,
            body,
        )

    async def purge_idempotency_keys(self, older_than_hours: int) -> int:
        conn = await driver_connection(self.session)
        status: str = await conn.execute(
            "DELETE FROM idempotency_keys WHERE created_at < now() - make_interval(hours => $1)", older_than_hours
        )
        return int(status.split()[-1])
