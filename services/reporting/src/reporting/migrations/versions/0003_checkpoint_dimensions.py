"""checkpoints carry the cell's dimensions (no join on the hot query path)

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22

Checkpoints are derived data (recreated on demand), so the table is recreated empty.
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

COUNTS = "h integer NOT NULL DEFAULT 0, " + ", ".join(
    f"{s}{k} integer NOT NULL DEFAULT 0" for s in ("f", "m") for k in range(5)
)

APPLY_HOUSEHOLD = """
    CREATE OR REPLACE FUNCTION apply_household(
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
        INSERT INTO checkpoints (gen, month, cell_id, admin1, admin2, admin3, site_id, population_group,
                                 displacement_reason, origin_admin1, country_of_asylum,
                                 h, f0, f1, f2, f3, f4, m0, m1, m2, m3, m4)
        SELECT g, cm.month, d.cell_id, min(c.admin1), min(c.admin2), min(c.admin3), min(c.site_id::text)::uuid,
               min(c.population_group), min(c.displacement_reason), min(c.origin_admin1), min(c.country_of_asylum),
               sum(d.h), sum(d.f0), sum(d.f1), sum(d.f2), sum(d.f3), sum(d.f4),
               sum(d.m0), sum(d.m1), sum(d.m2), sum(d.m3), sum(d.m4)
        FROM d JOIN checkpoint_months cm ON cm.gen = g AND cm.month > d.day
        JOIN cells c ON c.gen = g AND c.cell_id = d.cell_id
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
"""


ORIGINAL_APPLY_HOUSEHOLD = """
    CREATE OR REPLACE FUNCTION apply_household(
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
"""


def _recreate(with_dims: bool) -> None:
    dims = (
        "admin1 text NOT NULL, admin2 text NOT NULL, admin3 text NOT NULL, site_id uuid, population_group text NOT NULL, "
        "displacement_reason text NOT NULL, origin_admin1 text NOT NULL, country_of_asylum text NOT NULL, "
        if with_dims
        else ""
    )
    op.execute("DROP TABLE checkpoints CASCADE")
    op.execute("DELETE FROM checkpoint_months")
    op.execute(
        f"CREATE TABLE checkpoints (gen integer NOT NULL, month date NOT NULL, cell_id integer NOT NULL, {dims}"
        f"{COUNTS}, PRIMARY KEY (gen, month, cell_id)) PARTITION BY LIST (gen)"
    )
    op.execute(
        """
        DO $$
        DECLARE g integer;
        BEGIN
            FOR g IN SELECT DISTINCT gen FROM cells UNION SELECT current FROM generation LOOP
                EXECUTE format('CREATE TABLE checkpoints_g%s PARTITION OF checkpoints FOR VALUES IN (%s)', g, g);
            END LOOP;
        END
        $$
        """
    )


def upgrade() -> None:
    _recreate(with_dims=True)
    op.execute(APPLY_HOUSEHOLD)


def downgrade() -> None:
    _recreate(with_dims=False)
    op.execute(ORIGINAL_APPLY_HOUSEHOLD)
