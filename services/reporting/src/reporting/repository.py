"""All queries of the reporting service (read models in the `reporting` schema).

Every read-model table has a `gen` column (LIST partitions, one per generation); the API reads the
generation named by `generation.current`, the live consumer writes to it (`live_generation()`), a
rebuild fills a new one and switches the pointer (rebuild.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

COUNT_COLUMNS = ("h", "f0", "f1", "f2", "f3", "f4", "m0", "m1", "m2", "m3", "m4")
"""Households, then individuals by sex (f, m) and age bracket index (0_4, 5_11, 12_17, 18_59, 60_plus)."""

CELL_DIMENSIONS = {
    "admin1": "c.admin1",
    "admin2": "c.admin2",
    "admin3": "c.admin3",
    "site": "c.site_id",
    "population_group": "c.population_group",
    "displacement_reason": "c.displacement_reason",
    "origin_admin1": "nullif(c.origin_admin1, '')",
    "country_of_asylum": "nullif(c.country_of_asylum, '')",
}
"""Dimensions held by population cells; `sex` and `age_group` are columns of the counts."""

CELL_COLUMNS = (
    "admin1",
    "admin2",
    "admin3",
    "site_id",
    "population_group",
    "displacement_reason",
    "origin_admin1",
    "country_of_asylum",
)
GENERATION_LOCK = "hashtext('reporting.generation')"


@dataclass(frozen=True)
class CellRow:
    dims: tuple[Any, ...]
    counts: tuple[int, ...]


# -- generations ----------------------------------------------------------------------------------


async def current_generation(session: AsyncSession) -> int:
    return int((await session.execute(text("SELECT current FROM generation"))).scalar_one())


async def lock_generation_exclusive(session: AsyncSession) -> None:
    await session.execute(text(f"SELECT pg_advisory_xact_lock({GENERATION_LOCK})"))


# -- population -----------------------------------------------------------------------------------


def _filters_sql(filters: Mapping[str, Sequence[str]], params: dict[str, Any]) -> str:
    clauses = []
    for i, (dim, values) in enumerate(sorted(filters.items())):
        if dim not in CELL_DIMENSIONS or not values:
            continue
        params[f"f{i}"] = list(values)
        column = CELL_DIMENSIONS[dim]
        if dim == "site":
            clauses.append(f"{column}::text = ANY(CAST(:f{i} AS text[]))")
        else:
            clauses.append(f"{column} = ANY(CAST(:f{i} AS text[]))")
    return " AND ".join(clauses) if clauses else "true"


async def checkpoint_exists(session: AsyncSession, gen: int, month: date) -> bool:
    row = await session.execute(
        text("SELECT 1 FROM checkpoint_months WHERE gen = :g AND month = :m"), {"g": gen, "m": month}
    )
    return row.first() is not None


async def create_checkpoint(session: AsyncSession, gen: int, month: date) -> None:
    """The cumulative population of every cell before `month` (exclusive lock: no apply in flight)."""
    await lock_generation_exclusive(session)
    if await checkpoint_exists(session, gen, month):
        return
    sums = ", ".join(f"sum(d.{c})" for c in COUNT_COLUMNS)
    dims = ", ".join("min(c.site_id::text)::uuid" if c == "site_id" else f"min(c.{c})" for c in CELL_COLUMNS)
    await session.execute(
        text(
            f"INSERT INTO checkpoints (gen, month, cell_id, {', '.join(CELL_COLUMNS)}, {', '.join(COUNT_COLUMNS)}) "
            f"SELECT :g, :m, d.cell_id, {dims}, {sums} "
            "FROM deltas d JOIN cells c ON c.gen = d.gen AND c.cell_id = d.cell_id "
            "WHERE d.gen = :g AND d.day < :m GROUP BY d.cell_id"
        ),
        {"g": gen, "m": month},
    )
    await session.execute(text("INSERT INTO checkpoint_months (gen, month) VALUES (:g, :m)"), {"g": gen, "m": month})


def _dims_sql(dims: Sequence[str]) -> tuple[str, str]:
    select = "".join(f"{CELL_DIMENSIONS[d]} AS d{i}, " for i, d in enumerate(dims))
    group = f"GROUP BY {', '.join(CELL_DIMENSIONS[d] for d in dims)}" if dims else ""
    return select, group


def _cell_rows(rows: Sequence[Any], n: int) -> list[CellRow]:
    return [CellRow(tuple(r[:n]), tuple(int(v) for v in r[n:])) for r in rows]


async def deltas_part(
    session: AsyncSession,
    gen: int,
    start: date,
    end: date,
    dims: Sequence[str],
    filters: Mapping[str, Sequence[str]],
) -> list[CellRow]:
    """The sum of the deltas of the days `start`..`end` per combination of `dims`."""
    params: dict[str, Any] = {"g": gen, "s": start, "e": end}
    where = _filters_sql(filters, params)
    select, group = _dims_sql(dims)
    sums = ", ".join(f"coalesce(sum(x.{k}), 0)::bigint" for k in COUNT_COLUMNS)
    sql = (
        f"SELECT {select}{sums} FROM deltas x JOIN cells c ON c.gen = x.gen AND c.cell_id = x.cell_id "
        f"WHERE x.gen = :g AND x.day >= :s AND x.day <= :e AND {where} {group}"
    )
    return _cell_rows((await session.execute(text(sql), params)).all(), len(dims))


async def population_parts(
    session: AsyncSession,
    gen: int,
    month: date,
    end: date,
    dims: Sequence[str],
    filters: Mapping[str, Sequence[str]],
) -> tuple[list[CellRow], list[CellRow]] | None:
    """The population before `month` (its checkpoint, whose rows carry their cell's dimensions: no
    join) and the sum of the deltas of the days `month`..`end` (summed per cell first, then joined
    to the cells once per cell rather than once per day), per combination of `dims`, in one round
    trip; None when the checkpoint of `month` does not exist yet."""
    params: dict[str, Any] = {"g": gen, "m": month, "e": end}
    where = _filters_sql(filters, params)
    select, group = _dims_sql(dims)
    checkpoint_sums = ", ".join(f"coalesce(sum(c.{k}), 0)::bigint" for k in COUNT_COLUMNS)
    delta_sums = ", ".join(f"coalesce(sum(x.{k}), 0)::bigint" for k in COUNT_COLUMNS)
    per_cell = ", ".join(f"sum({k}) AS {k}" for k in COUNT_COLUMNS)
    missing = ", ".join(["NULL"] * len(dims) + ["0"] * len(COUNT_COLUMNS))
    sql = (
        f"SELECT 0 AS part, {select}{checkpoint_sums} FROM checkpoints c "
        f"WHERE c.gen = :g AND c.month = :m AND {where} {group} "
        f"UNION ALL SELECT 1, {select}{delta_sums} FROM (SELECT cell_id, {per_cell} FROM deltas "
        "WHERE gen = :g AND day >= :m AND day <= :e GROUP BY cell_id) x "
        f"JOIN cells c ON c.gen = :g AND c.cell_id = x.cell_id WHERE {where} {group} "
        f"UNION ALL SELECT 2, {missing} "
        "WHERE NOT EXISTS (SELECT 1 FROM checkpoint_months WHERE gen = :g AND month = :m)"
    )
    rows = (await session.execute(text(sql), params)).all()
    if any(r[0] == 2 for r in rows):
        return None
    n = len(dims)
    return (
        _cell_rows([r[1:] for r in rows if r[0] == 0], n),
        _cell_rows([r[1:] for r in rows if r[0] == 1], n),
    )


# -- sites and the rest -----------------------------------------------------------------------------


async def sites(session: AsyncSession, gen: int) -> list[dict[str, Any]]:
    rows = await session.execute(text("SELECT * FROM sites WHERE gen = :g ORDER BY code"), {"g": gen})
    return [dict(r._mapping) for r in rows]


OPEN_AT = (
    "s.opened_on <= :d AND (s.closed_on IS NULL OR s.closed_on > :d) "
    "AND NOT (s.status = 'closed' AND s.closed_on IS NULL)"
)


async def open_sites(session: AsyncSession, gen: int, as_of: date) -> list[dict[str, Any]]:
    rows = await session.execute(
        text(f"SELECT * FROM sites s WHERE gen = :g AND {OPEN_AT} ORDER BY code"), {"g": gen, "d": as_of}
    )
    return [dict(r._mapping) for r in rows]


async def latest_assessments(session: AsyncSession, gen: int, as_of: date) -> list[dict[str, Any]]:
    rows = await session.execute(
        text(
            "SELECT DISTINCT ON (site_id) * FROM assessments WHERE gen = :g AND assessed_on <= :d "
            "ORDER BY site_id, round_number DESC, assessed_on DESC"
        ),
        {"g": gen, "d": as_of},
    )
    return [dict(r._mapping) for r in rows]


async def latest_round(session: AsyncSession, gen: int, as_of: date) -> tuple[int | None, int]:
    row = (
        await session.execute(
            text(
                "WITH r AS (SELECT max(round_number) AS n FROM assessments WHERE gen = :g AND assessed_on <= :d) "
                "SELECT r.n, (SELECT count(DISTINCT site_id) FROM assessments a "
                "WHERE a.gen = :g AND a.round_number = r.n AND a.assessed_on <= :d) FROM r"
            ),
            {"g": gen, "d": as_of},
        )
    ).one()
    return (int(row[0]) if row[0] is not None else None), int(row[1] or 0)


ACTIVE_AT = (
    "a.status <> 'planned' AND a.start_date <= :d AND "
    "coalesce(a.end_date, CASE WHEN a.status = 'ended' THEN a.start_date - 1 ELSE 'infinity'::date END) >= :d"
)


async def active_activities(session: AsyncSession, gen: int, as_of: date) -> list[dict[str, Any]]:
    rows = await session.execute(
        text(f"SELECT * FROM activities a WHERE gen = :g AND {ACTIVE_AT}"), {"g": gen, "d": as_of}
    )
    return [dict(r._mapping) for r in rows]


async def overlapping_activities(session: AsyncSession, gen: int, as_of: date) -> list[dict[str, Any]]:
    """Pairs of activities of different organisations with the same site, sector and activity code
    whose periods overlap and whose overlap has started by `as_of`."""
    end = "coalesce({t}.end_date, 'infinity'::date)"
    rows = await session.execute(
        text(
            "SELECT a.site_id, a.sector, a.activity, "
            "a.organization AS organization_a, b.organization AS organization_b, "
            "a.activity_id AS activity_a, b.activity_id AS activity_b, "
            "greatest(a.start_date, b.start_date) AS overlap_from, "
            f"nullif(least({end.format(t='a')}, {end.format(t='b')}), 'infinity'::date) AS overlap_to "
            "FROM activities a JOIN activities b ON b.gen = a.gen AND b.site_id = a.site_id AND b.sector = a.sector "
            "AND b.activity = a.activity AND a.organization < b.organization "
            f"AND a.start_date <= {end.format(t='b')} AND b.start_date <= {end.format(t='a')} "
            "WHERE a.gen = :g AND a.status <> 'planned' AND b.status <> 'planned' "
            "AND greatest(a.start_date, b.start_date) <= :d "
            "ORDER BY a.site_id, a.sector, a.activity, a.organization, b.organization"
        ),
        {"g": gen, "d": as_of},
    )
    return [dict(r._mapping) for r in rows]


async def reports(session: AsyncSession, gen: int, periods: Sequence[str] | None = None) -> list[dict[str, Any]]:
    if periods is None:
        rows = await session.execute(text("SELECT * FROM reports WHERE gen = :g"), {"g": gen})
    else:
        rows = await session.execute(
            text("SELECT * FROM reports WHERE gen = :g AND period = ANY(CAST(:p AS text[]))"),
            {"g": gen, "p": list(periods)},
        )
    return [dict(r._mapping) for r in rows]


async def read_context(session: AsyncSession, group: str) -> dict[str, Any]:
    """In one round trip: the current generation, a data version that changes with every
    projection commit (the latest consumer position update of any group) and the live group's
    freshness."""
    row = (
        await session.execute(
            text(
                "SELECT g.current AS gen, g.switched_at, "
                "(SELECT max(updated_at) FROM consumer_positions) AS data_version, "
                "(SELECT version FROM checkpoint_state) AS checkpoint_version, f.* "
                "FROM generation g, LATERAL ("
                "SELECT max(last_event_at) AS last_event_at, max(updated_at) AS updated_at, "
                "coalesce(sum(greatest(coalesce(high_water, 0) - next_offset, 0)), 0) AS behind, now() AS now "
                "FROM consumer_positions WHERE group_id = :g) f"
            ),
            {"g": group},
        )
    ).one()
    return dict(row._mapping)


async def freshness(session: AsyncSession, group: str) -> dict[str, Any]:
    row = (
        await session.execute(
            text(
                "SELECT max(last_event_at) AS last_event_at, max(updated_at) AS updated_at, "
                "coalesce(sum(greatest(coalesce(high_water, 0) - next_offset, 0)), 0) AS behind, now() AS now "
                "FROM consumer_positions WHERE group_id = :g"
            ),
            {"g": group},
        )
    ).one()
    return dict(row._mapping)


# -- projection writes (the consumer and the rebuild) ----------------------------------------------------

APPLY_HOUSEHOLD = text(
    "SELECT apply_household(CAST(:gen AS integer), CAST(:id AS uuid), CAST(:version AS integer), "
    "CAST(:effective AS date), CAST(:status AS text), CAST(:inactive_reason AS text), CAST(:site AS uuid), "
    "CAST(:location AS text), CAST(:admin2 AS text), CAST(:admin1 AS text), CAST(:origin AS text), "
    "CAST(:origin_admin1 AS text), CAST(:grp AS text), CAST(:reason AS text), CAST(:country AS text), "
    "CAST(:registration_date AS date), CAST(:displacement_date AS date), CAST(:return_date AS date), "
    "CAST(:repatriation_date AS date), CAST(:org AS text), CAST(:female AS boolean[]), CAST(:dobs AS date[]), "
    "CAST(:needs AS text[]))"
)


async def apply_household(session: AsyncSession, params: Mapping[str, Any]) -> str:
    return str((await session.execute(APPLY_HOUSEHOLD, dict(params))).scalar_one())


def _upsert(table: str, key: str, columns: Sequence[str]) -> str:
    cols = ["gen", key, "version", *columns]
    values = ["coalesce(CAST(:gen AS integer), live_generation())", *(f":{c}" for c in cols[1:])]
    sets = ", ".join(f"{c} = excluded.{c}" for c in cols[2:])
    return (
        f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join(values)}) "
        f"ON CONFLICT (gen, {key}) DO UPDATE SET {sets} WHERE {table}.version < excluded.version"
    )


SITE_COLUMNS = (
    "code",
    "name",
    "site_type",
    "location_pcode",
    "admin1",
    "admin2",
    "latitude",
    "longitude",
    "capacity_households",
    "management_agency",
    "opened_on",
    "status",
    "closed_on",
)
ASSESSMENT_COLUMNS = (
    "site_id",
    "round_number",
    "assessed_on",
    "households",
    "individuals",
    "by_sex_age",
    "by_reason",
    "coverage",
    "priority_needs",
    "risks",
)
ACTIVITY_COLUMNS = ("site_id", "organization", "sector", "activity", "start_date", "end_date", "status")
COMMITTEE_COLUMNS = ("admin1_pcode", "name", "member_organizations", "quorum")
REPORT_COLUMNS = ("site_id", "period", "report_version", "status", "submitted_by_org", "submitted_at", "decided_at")

UPSERTS = {
    "sites": text(_upsert("sites", "site_id", SITE_COLUMNS)),
    "assessments": text(
        _upsert("assessments", "assessment_id", ASSESSMENT_COLUMNS)
        .replace(":by_sex_age", "CAST(:by_sex_age AS jsonb)")
        .replace(":by_reason", "CAST(:by_reason AS jsonb)")
        .replace(":coverage", "CAST(:coverage AS jsonb)")
    ),
    "activities": text(_upsert("activities", "activity_id", ACTIVITY_COLUMNS)),
    "committees": text(_upsert("committees", "committee_id", COMMITTEE_COLUMNS)),
    "reports": text(_upsert("reports", "report_id", REPORT_COLUMNS)),
}


async def upsert(session: AsyncSession, table: str, params: Mapping[str, Any]) -> None:
    await session.execute(UPSERTS[table], dict(params))
