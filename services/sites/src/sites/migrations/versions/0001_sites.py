"""sites and the outbox

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from alembic import op

from dtm_shared.messaging.tables import create_outbox, drop_outbox

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE sites (
            id                  uuid PRIMARY KEY,
            code                text NOT NULL UNIQUE,
            name                text NOT NULL,
            site_type           text NOT NULL,
            location_pcode      text NOT NULL,
            latitude            double precision,
            longitude           double precision,
            capacity_households integer,
            management_agency   text,
            opened_on           date NOT NULL,
            status              text NOT NULL DEFAULT 'open',
            closed_on           date,
            closure_reason      text,
            version             integer NOT NULL DEFAULT 1,
            created_by_org      text NOT NULL,
            created_at          timestamptz NOT NULL DEFAULT now(),
            updated_at          timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute("CREATE INDEX sites_location ON sites (location_pcode)")
    create_outbox(op)


def downgrade() -> None:
    drop_outbox(op)
    op.execute("DROP TABLE sites")
