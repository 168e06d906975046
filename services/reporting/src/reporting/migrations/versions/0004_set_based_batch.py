"""apply_households: new households of a batch in a few set-based statements

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22

A household the generation does not hold yet and that appears once in the batch (the common
case: a registration) is inserted together with the others of its kind; every other snapshot goes
through apply_household one by one, in order (same result as applying them all one by one).
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

COUNTS = ("h", "f0", "f1", "f2", "f3", "f4", "m0", "m1", "m2", "m3", "m4")
SUMS = ", ".join(f"sum(v.{c})" for c in COUNTS)
SUMS_AS = ", ".join(f"sum(v.{c}) AS {c}" for c in COUNTS)
ADD = ", ".join(f"{c} = {{t}}.{c} + excluded.{c}" for c in COUNTS)

FUNCTION = f"""
CREATE OR REPLACE FUNCTION apply_households(p_gen integer, p_batch jsonb) RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    g integer := p_gen;
    e jsonb;
    applied integer := 0;
    n_simple integer;
BEGIN
    IF g IS NULL THEN
        g := live_generation();
    END IF;
    IF to_regclass('pg_temp.batch_households') IS NULL THEN
    CREATE TEMP TABLE batch_households (
        n bigint, id uuid, version integer, effective date, status text, inactive_reason text, site uuid,
        location text, admin2 text, admin1 text, origin text, origin_admin1 text, grp text, reason text,
        country text, registration_date date, displacement_date date, return_date date, repatriation_date date,
        org text, female boolean[], dobs date[], needs text[], simple boolean, cell_id integer
    ) ON COMMIT DELETE ROWS;
    END IF;
    DELETE FROM batch_households;
    INSERT INTO batch_households
    SELECT t.n, (t.e->>'id')::uuid, (t.e->>'version')::integer, (t.e->>'effective')::date, t.e->>'status',
        t.e->>'inactive_reason', (t.e->>'site')::uuid, t.e->>'location', t.e->>'admin2', t.e->>'admin1',
        t.e->>'origin', t.e->>'origin_admin1', t.e->>'grp', t.e->>'reason', t.e->>'country',
        (t.e->>'registration_date')::date, (t.e->>'displacement_date')::date, (t.e->>'return_date')::date,
        (t.e->>'repatriation_date')::date, t.e->>'org',
        ARRAY(SELECT x::boolean FROM jsonb_array_elements_text(t.e->'female') WITH ORDINALITY AS a(x, i) ORDER BY i),
        ARRAY(SELECT x::date FROM jsonb_array_elements_text(t.e->'dobs') WITH ORDINALITY AS a(x, i) ORDER BY i),
        ARRAY(SELECT jsonb_array_elements_text(t.e->'needs')),
        false, NULL
    FROM jsonb_array_elements(p_batch) WITH ORDINALITY AS t(e, n);
    UPDATE batch_households b SET simple = true
    WHERE NOT EXISTS (SELECT 1 FROM household_versions hv WHERE hv.gen = g AND hv.household_id = b.id)
      AND (SELECT count(*) FROM batch_households o WHERE o.id = b.id) = 1;
    -- cells of the simple ones
    INSERT INTO cells (gen, cell_id, admin1, admin2, admin3, site_id, site_key, population_group,
                       displacement_reason, origin_admin1, country_of_asylum)
    SELECT g, nextval('cell_ids'), k.admin1, k.admin2, k.location, k.site, coalesce(k.site::text, ''), k.grp, k.reason,
           coalesce(k.origin_admin1, ''), coalesce(k.country, '')
    FROM (SELECT DISTINCT admin1, admin2, location, site, grp, reason, origin_admin1, country
          FROM batch_households WHERE simple) k
    WHERE NOT EXISTS (
        SELECT 1 FROM cells c WHERE c.gen = g AND c.admin3 = k.location AND c.site_key = coalesce(k.site::text, '')
          AND c.population_group = k.grp AND c.displacement_reason = k.reason
          AND c.origin_admin1 = coalesce(k.origin_admin1, '') AND c.country_of_asylum = coalesce(k.country, ''))
    ON CONFLICT DO NOTHING;
    UPDATE batch_households b SET cell_id = c.cell_id FROM cells c
    WHERE b.simple AND c.gen = g AND c.admin3 = b.location AND c.site_key = coalesce(b.site::text, '')
      AND c.population_group = b.grp AND c.displacement_reason = b.reason
      AND c.origin_admin1 = coalesce(b.origin_admin1, '') AND c.country_of_asylum = coalesce(b.country, '');
    WITH d AS (
        SELECT v.cell_id, v.day, {SUMS_AS}
        FROM batch_households b, LATERAL version_deltas(b.cell_id, b.effective, NULL, b.female, b.dobs, 1) v
        WHERE b.simple AND b.status = 'active'
        GROUP BY v.cell_id, v.day
    ),
    ins AS (
        INSERT INTO deltas (gen, cell_id, day, {", ".join(COUNTS)})
        SELECT g, d.* FROM d
        ON CONFLICT (gen, cell_id, day) DO UPDATE SET {ADD.format(t="deltas")}
    )
    INSERT INTO checkpoints (gen, month, cell_id, admin1, admin2, admin3, site_id, population_group,
                             displacement_reason, origin_admin1, country_of_asylum, {", ".join(COUNTS)})
    SELECT g, cm.month, v.cell_id, min(c.admin1), min(c.admin2), min(c.admin3), min(c.site_id::text)::uuid,
           min(c.population_group), min(c.displacement_reason), min(c.origin_admin1), min(c.country_of_asylum), {SUMS}
    FROM d v JOIN checkpoint_months cm ON cm.gen = g AND cm.month > v.day
    JOIN cells c ON c.gen = g AND c.cell_id = v.cell_id
    GROUP BY cm.month, v.cell_id
    ON CONFLICT (gen, month, cell_id) DO UPDATE SET {ADD.format(t="checkpoints")};
    INSERT INTO household_versions (gen, household_id, version, valid_from, valid_to, active, status,
        inactive_reason, cell_id, site_id, location_pcode, origin_pcode, registration_date, displacement_date,
        return_date, repatriation_date, registered_by_org, female, dobs, needs)
    SELECT g, id, version, effective, NULL, status = 'active', status, inactive_reason, cell_id, site, location,
        origin, registration_date, displacement_date, return_date, repatriation_date, org, female, dobs, needs
    FROM batch_households WHERE simple;
    GET DIAGNOSTICS n_simple = ROW_COUNT;
    applied := n_simple;
    FOR e IN SELECT to_jsonb(b) FROM batch_households b WHERE NOT b.simple ORDER BY b.n LOOP
        IF apply_household(
            g, (e->>'id')::uuid, (e->>'version')::integer, (e->>'effective')::date, e->>'status',
            e->>'inactive_reason', (e->>'site')::uuid, e->>'location', e->>'admin2', e->>'admin1',
            e->>'origin', e->>'origin_admin1', e->>'grp', e->>'reason', e->>'country',
            (e->>'registration_date')::date, (e->>'displacement_date')::date, (e->>'return_date')::date,
            (e->>'repatriation_date')::date, e->>'org',
            ARRAY(SELECT x::boolean FROM jsonb_array_elements_text(e->'female') WITH ORDINALITY AS a(x, i) ORDER BY i),
            ARRAY(SELECT x::date FROM jsonb_array_elements_text(e->'dobs') WITH ORDINALITY AS a(x, i) ORDER BY i),
            ARRAY(SELECT jsonb_array_elements_text(e->'needs'))
        ) = 'applied' THEN
            applied := applied + 1;
        END IF;
    END LOOP;
    RETURN applied;
END
$$
"""

PREVIOUS = """
CREATE OR REPLACE FUNCTION apply_households(p_gen integer, p_batch jsonb) RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    e jsonb;
    applied integer := 0;
BEGIN
    FOR e IN SELECT value FROM jsonb_array_elements(p_batch) WITH ORDINALITY ORDER BY ordinality LOOP
        IF apply_household(
            p_gen, (e->>'id')::uuid, (e->>'version')::integer, (e->>'effective')::date, e->>'status',
            e->>'inactive_reason', (e->>'site')::uuid, e->>'location', e->>'admin2', e->>'admin1',
            e->>'origin', e->>'origin_admin1', e->>'grp', e->>'reason', e->>'country',
            (e->>'registration_date')::date, (e->>'displacement_date')::date, (e->>'return_date')::date,
            (e->>'repatriation_date')::date, e->>'org',
            ARRAY(SELECT x::boolean FROM jsonb_array_elements_text(e->'female') WITH ORDINALITY AS a(x, i) ORDER BY i),
            ARRAY(SELECT x::date FROM jsonb_array_elements_text(e->'dobs') WITH ORDINALITY AS a(x, i) ORDER BY i),
            ARRAY(SELECT jsonb_array_elements_text(e->'needs'))
        ) = 'applied' THEN
            applied := applied + 1;
        END IF;
    END LOOP;
    RETURN applied;
END
$$
"""


def upgrade() -> None:
    op.execute(FUNCTION)


def downgrade() -> None:
    op.execute(PREVIOUS)
