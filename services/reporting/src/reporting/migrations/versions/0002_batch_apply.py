"""apply_households(jsonb): apply a batch of household snapshots in order (the consumer's fast path)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE FUNCTION apply_households(p_gen integer, p_batch jsonb) RETURNS integer LANGUAGE plpgsql AS $$
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
    )


def downgrade() -> None:
    op.execute("DROP FUNCTION IF EXISTS apply_households(integer, jsonb)")
