"""reporting read models: generations, household versions, population cells/deltas/checkpoints,
sites, assessments, activities, committees, reports; consumer tables

Revision ID: 0001
Revises:
Create Date: 2026-11-22

Every read-model table is LIST-partitioned by `gen` (generation). The live generation is named by
`generation.current`; a rebuild fills the partitions of a new generation (fresh tables) and flips
the pointer in one transaction (see reporting/rebuild.py).
"""

from alembic import op

from dtm_shared.messaging.tables import create_consumer_tables, drop_consumer_tables

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

COUNTS = "h integer NOT NULL DEFAULT 0, " + ", ".join(
    f"{s}{k} integer NOT NULL DEFAULT 0" for s in ("f", "m") for k in range(5)
)

TABLES = [
    f"""
    CREATE TABLE cells (
        gen                 integer NOT NULL,
        cell_id             integer NOT NULL,
        admin1              text NOT NULL,
        admin2              text NOT NULL,
        admin3              text NOT NULL,
        site_id             uuid,
        site_key            text NOT NULL,
        population_group    text NOT NULL,
        displacement_reason text NOT NULL,
        origin_admin1       text NOT NULL,
        country_of_asylum   text NOT NULL,
        PRIMARY KEY (gen, cell_id),
        UNIQUE (gen, admin3, site_key, population_group, displacement_reason, origin_admin1, country_of_asylum)
    ) PARTITION BY LIST (gen)
    """,
    """
    CREATE TABLE household_versions (
        gen                 integer NOT NULL,
        household_id        uuid NOT NULL,
        version             integer NOT NULL,
        valid_from          date NOT NULL,
        valid_to            date,
        active              boolean NOT NULL,
        status              text NOT NULL,
        inactive_reason     text,
        cell_id             integer NOT NULL,
        site_id             uuid,
        location_pcode      text NOT NULL,
        origin_pcode        text,
        registration_date   date,
        displacement_date   date,
        return_date         date,
        repatriation_date   date,
        registered_by_org   text NOT NULL,
        female              boolean[] NOT NULL,
        dobs                date[] NOT NULL,
        needs               text[] NOT NULL DEFAULT '{}',
        applied_at          timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (gen, household_id, version)
    ) PARTITION BY LIST (gen)
    """,
    f"""
    CREATE TABLE deltas (
        gen     integer NOT NULL,
        cell_id integer NOT NULL,
        day     date NOT NULL,
        {COUNTS},
        PRIMARY KEY (gen, cell_id, day)
    ) PARTITION BY LIST (gen)
    """,
    "CREATE INDEX deltas_day ON deltas (gen, day)",
    f"""
    CREATE TABLE checkpoints (
        gen     integer NOT NULL,
        month   date NOT NULL,
        cell_id integer NOT NULL,
        {COUNTS},
        PRIMARY KEY (gen, month, cell_id)
    ) PARTITION BY LIST (gen)
    """,
    """
    CREATE TABLE checkpoint_months (
        gen   integer NOT NULL,
        month date NOT NULL,
        PRIMARY KEY (gen, month)
    ) PARTITION BY LIST (gen)
    """,
    """
    CREATE TABLE sites (
        gen                 integer NOT NULL,
        site_id             uuid NOT NULL,
        version             integer NOT NULL,
        code                text NOT NULL,
        name                text NOT NULL,
        site_type           text NOT NULL,
        location_pcode      text NOT NULL,
        admin1              text NOT NULL,
        admin2              text NOT NULL,
        latitude            double precision,
        longitude           double precision,
        capacity_households integer,
        management_agency   text,
        opened_on           date NOT NULL,
        status              text NOT NULL,
        closed_on           date,
        PRIMARY KEY (gen, site_id)
    ) PARTITION BY LIST (gen)
    """,
    """
    CREATE TABLE assessments (
        gen             integer NOT NULL,
        assessment_id   uuid NOT NULL,
        version         integer NOT NULL,
        site_id         uuid NOT NULL,
        round_number    integer NOT NULL,
        assessed_on     date NOT NULL,
        households      integer NOT NULL,
        individuals     integer NOT NULL,
        by_sex_age      jsonb NOT NULL,
        by_reason       jsonb NOT NULL,
        coverage        jsonb NOT NULL,
        priority_needs  text[] NOT NULL,
        risks           text[] NOT NULL,
        PRIMARY KEY (gen, assessment_id)
    ) PARTITION BY LIST (gen)
    """,
    """
    CREATE TABLE activities (
        gen           integer NOT NULL,
        activity_id   uuid NOT NULL,
        version       integer NOT NULL,
        site_id       uuid NOT NULL,
        organization  text NOT NULL,
        sector        text NOT NULL,
        activity      text NOT NULL,
        start_date    date NOT NULL,
        end_date      date,
        status        text NOT NULL,
        PRIMARY KEY (gen, activity_id)
    ) PARTITION BY LIST (gen)
    """,
    """
    CREATE TABLE committees (
        gen                  integer NOT NULL,
        committee_id         uuid NOT NULL,
        version              integer NOT NULL,
        admin1_pcode         text NOT NULL,
        name                 text NOT NULL,
        member_organizations text[] NOT NULL,
        quorum               integer NOT NULL,
        PRIMARY KEY (gen, committee_id)
    ) PARTITION BY LIST (gen)
    """,
    """
    CREATE TABLE reports (
        gen              integer NOT NULL,
        report_id        uuid NOT NULL,
        version          integer NOT NULL,
        site_id          uuid NOT NULL,
        period           text NOT NULL,
        report_version   integer NOT NULL,
        status           text NOT NULL,
        submitted_by_org text NOT NULL,
        submitted_at     timestamptz NOT NULL,
        decided_at       timestamptz,
        PRIMARY KEY (gen, report_id)
    ) PARTITION BY LIST (gen)
    """,
]

FUNCTIONS = [
    # The first date at which someone born on `dob` has completed `years` years (29 Feb -> 1 Mar).
    """
    CREATE FUNCTION age_boundary(dob date, years integer) RETURNS date
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
        SELECT (dob + make_interval(years => years))::date
             + CASE WHEN extract(day FROM dob + make_interval(years => years)) <> extract(day FROM dob)
                    THEN 1 ELSE 0 END
    $$
    """,
    # Age bracket 0..4 (0_4, 5_11, 12_17, 18_59, 60_plus) at date d.
    """
    CREATE FUNCTION age_bracket(dob date, d date) RETURNS integer
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
        SELECT (age_boundary(dob, 5) <= d)::int + (age_boundary(dob, 12) <= d)::int
             + (age_boundary(dob, 18) <= d)::int + (age_boundary(dob, 60) <= d)::int
    $$
    """,
    # The population deltas of one household version over [p_from, p_to): +1 household and +1 per
    # member (in the member's bracket at p_from) at p_from, bracket moves on each birthday that
    # crosses a boundary in (p_from, p_to], and the reverse at p_to. Columns: h, f0..f4, m0..m4.
    """
    CREATE FUNCTION version_deltas(p_cell integer, p_from date, p_to date, p_female boolean[], p_dobs date[],
                                   p_sign integer)
    RETURNS TABLE (cell_id integer, day date, h integer, f0 integer, f1 integer, f2 integer, f3 integer,
                   f4 integer, m0 integer, m1 integer, m2 integer, m3 integer, m4 integer)
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
        WITH m AS (
            SELECT u.f, u.dob FROM unnest(p_female, p_dobs) AS u(f, dob)
            WHERE p_to IS NULL OR p_to > p_from
        ),
        raw(day, col, n) AS (
            SELECT p_from, 0, 1 WHERE p_to IS NULL OR p_to > p_from
            UNION ALL SELECT p_to, 0, -1 WHERE p_to > p_from
            UNION ALL SELECT p_from, (NOT m.f)::int * 5 + 1 + age_bracket(m.dob, p_from), 1 FROM m
            UNION ALL SELECT p_to, (NOT m.f)::int * 5 + 1 + age_bracket(m.dob, p_to), -1 FROM m WHERE p_to IS NOT NULL
            UNION ALL
            SELECT b.d, (NOT m.f)::int * 5 + 1 + b.k + s.shift, s.n
            FROM m
            CROSS JOIN LATERAL (
                SELECT v.k, age_boundary(m.dob, v.years) AS d FROM (VALUES (1, 5), (2, 12), (3, 18), (4, 60)) v(k, years)
            ) b
            CROSS JOIN (VALUES (-1, -1), (0, 1)) s(shift, n)
            WHERE b.d > p_from AND (p_to IS NULL OR b.d <= p_to)
        )
        SELECT p_cell, raw.day,
            coalesce(sum(n) FILTER (WHERE col = 0), 0)::int * p_sign,
            coalesce(sum(n) FILTER (WHERE col = 1), 0)::int * p_sign,
            coalesce(sum(n) FILTER (WHERE col = 2), 0)::int * p_sign,
            coalesce(sum(n) FILTER (WHERE col = 3), 0)::int * p_sign,
            coalesce(sum(n) FILTER (WHERE col = 4), 0)::int * p_sign,
            coalesce(sum(n) FILTER (WHERE col = 5), 0)::int * p_sign,
            coalesce(sum(n) FILTER (WHERE col = 6), 0)::int * p_sign,
            coalesce(sum(n) FILTER (WHERE col = 7), 0)::int * p_sign,
            coalesce(sum(n) FILTER (WHERE col = 8), 0)::int * p_sign,
            coalesce(sum(n) FILTER (WHERE col = 9), 0)::int * p_sign,
            coalesce(sum(n) FILTER (WHERE col = 10), 0)::int * p_sign
        FROM raw GROUP BY raw.day
    $$
    """,
    # The generation the live consumer writes to; holds a shared lock so a switch-over (which takes
    # the exclusive lock) waits for transactions in flight and is atomic for the consumer.
    """
    CREATE FUNCTION live_generation() RETURNS integer LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM pg_advisory_xact_lock_shared(hashtext('reporting.generation'));
        RETURN (SELECT current FROM generation);
    END
    $$
    """,
    # Applies one household snapshot (event-carried state) to generation p_gen (NULL = live):
    # ignored unless its version is newer than the one held; clips the validity of earlier versions
    # at its effective date and moves their population deltas accordingly. Returns 'applied'/'stale'.
    """
    CREATE FUNCTION apply_household(
        p_gen integer, p_id uuid, p_version integer, p_effective date, p_status text, p_inactive_reason text,
        p_site uuid, p_location text, p_admin2 text, p_admin1 text, p_origin text, p_origin_admin1 text,
        p_group text, p_reason text, p_country text, p_registration_date date, p_displacement_date date,
        p_return_date date, p_repatriation_date date, p_org text, p_female boolean[], p_dobs date[], p_needs text[]
    ) RETURNS text LANGUAGE plpgsql AS $$
    DECLARE
        g integer := p_gen;
        held integer;
        c integer;
    BEGIN
        IF g IS NULL THEN
            g := live_generation();
        END IF;
        SELECT max(version) INTO held FROM household_versions WHERE gen = g AND household_id = p_id;
        IF held IS NOT NULL AND held >= p_version THEN
            RETURN 'stale';
        END IF;
        SELECT cell_id INTO c FROM cells
        WHERE gen = g AND admin3 = p_location AND site_key = coalesce(p_site::text, '')
          AND population_group = p_group AND displacement_reason = p_reason
          AND origin_admin1 = coalesce(p_origin_admin1, '') AND country_of_asylum = coalesce(p_country, '');
        IF c IS NULL THEN
            INSERT INTO cells (gen, cell_id, admin1, admin2, admin3, site_id, site_key, population_group,
                               displacement_reason, origin_admin1, country_of_asylum)
            VALUES (g, nextval('cell_ids'), p_admin1, p_admin2, p_location, p_site, coalesce(p_site::text, ''),
                    p_group, p_reason, coalesce(p_origin_admin1, ''), coalesce(p_country, ''))
            ON CONFLICT DO NOTHING
            RETURNING cell_id INTO c;
            IF c IS NULL THEN
                SELECT cell_id INTO c FROM cells
                WHERE gen = g AND admin3 = p_location AND site_key = coalesce(p_site::text, '')
                  AND population_group = p_group AND displacement_reason = p_reason
                  AND origin_admin1 = coalesce(p_origin_admin1, '') AND country_of_asylum = coalesce(p_country, '');
            END IF;
        END IF;
        WITH d AS (
            SELECT x.cell_id, x.day, sum(x.h) h, sum(x.f0) f0, sum(x.f1) f1, sum(x.f2) f2, sum(x.f3) f3,
                   sum(x.f4) f4, sum(x.m0) m0, sum(x.m1) m1, sum(x.m2) m2, sum(x.m3) m3, sum(x.m4) m4
            FROM (
                SELECT v.* FROM household_versions r,
                    LATERAL version_deltas(r.cell_id, r.valid_from, r.valid_to, r.female, r.dobs, -1) v
                WHERE r.gen = g AND r.household_id = p_id AND r.active
                  AND (r.valid_to IS NULL OR r.valid_to > p_effective)
                UNION ALL
                SELECT v.* FROM household_versions r,
                    LATERAL version_deltas(r.cell_id, r.valid_from, p_effective, r.female, r.dobs, 1) v
                WHERE r.gen = g AND r.household_id = p_id AND r.active
                  AND (r.valid_to IS NULL OR r.valid_to > p_effective)
                UNION ALL
                SELECT v.* FROM version_deltas(c, p_effective, NULL, p_female, p_dobs, 1) v
                WHERE p_status = 'active'
            ) x
            GROUP BY x.cell_id, x.day
            HAVING sum(abs(x.h)) + sum(abs(x.f0)) + sum(abs(x.f1)) + sum(abs(x.f2)) + sum(abs(x.f3))
                 + sum(abs(x.f4)) + sum(abs(x.m0)) + sum(abs(x.m1)) + sum(abs(x.m2)) + sum(abs(x.m3))
                 + sum(abs(x.m4)) > 0
        ),
        ins AS (
            INSERT INTO deltas (gen, cell_id, day, h, f0, f1, f2, f3, f4, m0, m1, m2, m3, m4)
            SELECT g, d.* FROM d
            ON CONFLICT (gen, cell_id, day) DO UPDATE SET
                h = deltas.h + excluded.h, f0 = deltas.f0 + excluded.f0, f1 = deltas.f1 + excluded.f1,
                f2 = deltas.f2 + excluded.f2, f3 = deltas.f3 + excluded.f3, f4 = deltas.f4 + excluded.f4,
                m0 = deltas.m0 + excluded.m0, m1 = deltas.m1 + excluded.m1, m2 = deltas.m2 + excluded.m2,
                m3 = deltas.m3 + excluded.m3, m4 = deltas.m4 + excluded.m4
        )
        INSERT INTO checkpoints (gen, month, cell_id, h, f0, f1, f2, f3, f4, m0, m1, m2, m3, m4)
        SELECT g, cm.month, d.cell_id, sum(d.h), sum(d.f0), sum(d.f1), sum(d.f2), sum(d.f3), sum(d.f4),
               sum(d.m0), sum(d.m1), sum(d.m2), sum(d.m3), sum(d.m4)
        FROM d JOIN checkpoint_months cm ON cm.gen = g AND cm.month > d.day
        GROUP BY cm.month, d.cell_id
        ON CONFLICT (gen, month, cell_id) DO UPDATE SET
            h = checkpoints.h + excluded.h, f0 = checkpoints.f0 + excluded.f0, f1 = checkpoints.f1 + excluded.f1,
            f2 = checkpoints.f2 + excluded.f2, f3 = checkpoints.f3 + excluded.f3, f4 = checkpoints.f4 + excluded.f4,
            m0 = checkpoints.m0 + excluded.m0, m1 = checkpoints.m1 + excluded.m1, m2 = checkpoints.m2 + excluded.m2,
            m3 = checkpoints.m3 + excluded.m3, m4 = checkpoints.m4 + excluded.m4;
        UPDATE household_versions SET valid_to = p_effective
        WHERE gen = g AND household_id = p_id AND (valid_to IS NULL OR valid_to > p_effective);
        INSERT INTO household_versions (gen, household_id, version, valid_from, valid_to, active, status,
            inactive_reason, cell_id, site_id, location_pcode, origin_pcode, registration_date, displacement_date,
            return_date, repatriation_date, registered_by_org, female, dobs, needs)
        VALUES (g, p_id, p_version, p_effective, NULL, p_status = 'active', p_status, p_inactive_reason, c, p_site,
            p_location, p_origin, p_registration_date, p_displacement_date, p_return_date, p_repatriation_date,
            p_org, p_female, p_dobs, p_needs);
        RETURN 'applied';
    END
    $$
    """,
]

PARTITIONED = [
    "cells",
    "household_versions",
    "deltas",
    "checkpoints",
    "checkpoint_months",
    "sites",
    "assessments",
    "activities",
    "committees",
    "reports",
]


def upgrade() -> None:
    create_consumer_tables(op)
    op.execute("CREATE SEQUENCE cell_ids")
    op.execute(
        """
        CREATE TABLE generation (
            singleton   boolean PRIMARY KEY DEFAULT true CHECK (singleton),
            current     integer NOT NULL,
            switched_at timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute("INSERT INTO generation (current) VALUES (1)")
    op.execute(
        """
        CREATE TABLE rebuilds (
            id           bigserial PRIMARY KEY,
            generation   integer NOT NULL,
            started_at   timestamptz NOT NULL DEFAULT now(),
            finished_at  timestamptz,
            events       bigint,
            households   bigint,
            skipped      bigint,
            seconds      double precision
        )
        """
    )
    for sql in TABLES:
        op.execute(sql)
    for table in PARTITIONED:
        op.execute(f"CREATE TABLE {table}_g1 PARTITION OF {table} FOR VALUES IN (1)")
    op.execute("CREATE INDEX household_versions_open ON household_versions (gen, household_id) WHERE valid_to IS NULL")
    for sql in FUNCTIONS:
        op.execute(sql)


def downgrade() -> None:
    for fn in (
        "apply_household(integer, uuid, integer, date, text, text, uuid, text, text, text, text, text, text, text, "
        "text, date, date, date, date, text, boolean[], date[], text[])",
        "live_generation()",
        "version_deltas(integer, date, date, boolean[], date[], integer)",
        "age_bracket(date, date)",
        "age_boundary(date, integer)",
    ):
        op.execute(f"DROP FUNCTION IF EXISTS {fn}")
    for table in reversed(PARTITIONED):
        op.execute(f"DROP TABLE IF EXISTS {table} CASCADE")
    op.execute("DROP TABLE IF EXISTS rebuilds")
    op.execute("DROP TABLE IF EXISTS generation")
    op.execute("DROP SEQUENCE IF EXISTS cell_ids")
    drop_consumer_tables(op)
