"""households, members, their dated history, duplicate candidates, idempotency keys, the sites
replica, the outbox and the consumer tables

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from alembic import op

from dtm_shared.messaging.tables import (
    create_consumer_tables,
    create_outbox,
    drop_consumer_tables,
    drop_outbox,
)

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Accent- and case-insensitive name key (unaccent is STABLE; this wrapper pins the dictionary,
    # which makes it safe to declare IMMUTABLE and to use in indexes).
    op.execute(
        """
        CREATE FUNCTION name_key(text) RETURNS text
        LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
        RETURN lower(extensions.unaccent('extensions.unaccent'::regdictionary, $1))
        """
    )
    op.execute("CREATE SEQUENCE household_number_seq")
    op.execute(
        """
        CREATE TABLE site_replica (
            id              uuid PRIMARY KEY,
            code            text NOT NULL,
            location_pcode  text NOT NULL,
            status          text NOT NULL,
            version         integer NOT NULL,
            updated_at      timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute(
        """
        CREATE TABLE households (
            id                  uuid PRIMARY KEY,
            number              bigint NOT NULL UNIQUE DEFAULT nextval('household_number_seq'),
            external_id         text,
            registered_by_org   text NOT NULL,
            population_group    text NOT NULL,
            status              text NOT NULL DEFAULT 'active',
            inactive_reason     text,
            inactive_date       date,
            site_id             uuid,
            location_pcode      text NOT NULL,
            origin_pcode        text,
            displacement_reason text NOT NULL,
            displacement_date   date,
            registration_date   date NOT NULL,
            return_date         date,
            country_of_asylum   text,
            repatriation_date   date,
            head_name_key       text NOT NULL,
            head_birth_date     date NOT NULL,
            version             integer NOT NULL DEFAULT 1,
            created_at          timestamptz NOT NULL DEFAULT now(),
            updated_at          timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute(
        "CREATE UNIQUE INDEX households_org_external ON households (registered_by_org, external_id) "
        "WHERE external_id IS NOT NULL"
    )
    op.execute("CREATE INDEX households_origin_birth ON households (origin_pcode, head_birth_date)")
    op.execute("CREATE INDEX households_site ON households (site_id) WHERE site_id IS NOT NULL")
    op.execute(
        """
        CREATE TABLE members (
            id                       uuid PRIMARY KEY,
            household_id             uuid NOT NULL REFERENCES households (id) ON DELETE CASCADE,
            position                 smallint NOT NULL,
            given_name               text NOT NULL,
            family_name              text NOT NULL,
            sex                      text NOT NULL,
            date_of_birth            date NOT NULL,
            date_of_birth_estimated  boolean NOT NULL DEFAULT false,
            relationship             text NOT NULL,
            specific_needs           text[] NOT NULL DEFAULT '{}',
            phone                    text,
            id_document_type         text,
            id_document_number       text
        )
        """
    )
    op.execute("CREATE INDEX members_household ON members (household_id)")
    op.execute("CREATE INDEX members_phone ON members (phone) WHERE phone IS NOT NULL")
    op.execute(
        "CREATE INDEX members_document ON members (id_document_number, id_document_type) "
        "WHERE id_document_number IS NOT NULL"
    )
    op.execute(
        """
        CREATE TABLE household_history (
            household_id    uuid NOT NULL REFERENCES households (id) ON DELETE CASCADE,
            version         integer NOT NULL,
            event_type      text NOT NULL,
            effective_date  date NOT NULL,
            recorded_at     timestamptz NOT NULL DEFAULT now(),
            snapshot        jsonb NOT NULL,
            PRIMARY KEY (household_id, version)
        )
        """
    )
    op.execute(
        """
        CREATE TABLE duplicate_candidates (
            id              uuid PRIMARY KEY,
            household_a     uuid NOT NULL REFERENCES households (id) ON DELETE CASCADE,
            household_b     uuid NOT NULL REFERENCES households (id) ON DELETE CASCADE,
            reasons         text[] NOT NULL,
            name_similarity real,
            status          text NOT NULL DEFAULT 'pending',
            resolved_by_org text,
            resolved_by     text,
            resolved_at     timestamptz,
            created_at      timestamptz NOT NULL DEFAULT now(),
            CONSTRAINT duplicate_pair_ordered CHECK (household_a <> household_b),
            CONSTRAINT duplicate_pair_once UNIQUE (household_a, household_b)
        )
        """
    )
    op.execute("CREATE INDEX duplicate_candidates_pending ON duplicate_candidates (created_at, id) WHERE status = 'pending'")
    op.execute("CREATE INDEX duplicate_candidates_b ON duplicate_candidates (household_b)")
    op.execute(
        """
        CREATE TABLE idempotency_keys (
            client          text NOT NULL,
            key             text NOT NULL,
            request_hash    text NOT NULL,
            status_code     integer,
            response        jsonb,
            created_at      timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (client, key)
        )
        """
    )
    op.execute("CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at)")
    create_outbox(op)
    create_consumer_tables(op)


def downgrade() -> None:
    drop_consumer_tables(op)
    drop_outbox(op)
    for table in (
        "idempotency_keys",
        "duplicate_candidates",
        "household_history",
        "members",
        "households",
        "site_replica",
    ):
        op.execute(f"DROP TABLE IF EXISTS {table}")
    op.execute("DROP SEQUENCE IF EXISTS household_number_seq")
    op.execute("DROP FUNCTION IF EXISTS name_key(text)")
