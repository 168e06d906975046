"""assessments, service activities, regional committees, activity reports and their reviews

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
    op.execute("CREATE INDEX sites_status_type ON sites (status, site_type)")
    op.execute(
        """
        CREATE TABLE assessments (
            id                      uuid PRIMARY KEY,
            site_id                 uuid NOT NULL REFERENCES sites (id),
            round_number            integer NOT NULL CHECK (round_number >= 1),
            assessed_on             date NOT NULL,
            households              integer NOT NULL CHECK (households >= 0),
            individuals             integer NOT NULL CHECK (individuals >= 0),
            individuals_by_sex_age  jsonb NOT NULL,
            individuals_by_reason   jsonb NOT NULL,
            coverage                jsonb NOT NULL,
            priority_needs          jsonb NOT NULL,
            risks                   jsonb NOT NULL,
            version                 integer NOT NULL DEFAULT 1,
            recorded_by_org         text NOT NULL,
            created_at              timestamptz NOT NULL DEFAULT now(),
            updated_at              timestamptz NOT NULL DEFAULT now(),
            CONSTRAINT assessments_one_per_round UNIQUE (site_id, round_number)
        )
        """
    )
    op.execute(
        """
        CREATE TABLE service_activities (
            id               uuid PRIMARY KEY,
            site_id          uuid NOT NULL REFERENCES sites (id),
            organization     text NOT NULL,
            sector           text NOT NULL,
            activity         text NOT NULL,
            start_date       date NOT NULL,
            end_date         date,
            status           text NOT NULL,
            version          integer NOT NULL DEFAULT 1,
            recorded_by_org  text NOT NULL,
            created_at       timestamptz NOT NULL DEFAULT now(),
            updated_at       timestamptz NOT NULL DEFAULT now(),
            CHECK (end_date IS NULL OR end_date >= start_date)
        )
        """
    )
    op.execute("CREATE INDEX service_activities_site ON service_activities (site_id, sector)")
    op.execute("CREATE INDEX service_activities_created ON service_activities (created_at, id)")
    op.execute(
        """
        CREATE TABLE committees (
            id                    uuid PRIMARY KEY,
            admin1_pcode          text NOT NULL UNIQUE,
            name                  text NOT NULL,
            member_organizations  jsonb NOT NULL,
            quorum                integer NOT NULL CHECK (quorum >= 1),
            version               integer NOT NULL DEFAULT 1,
            created_at            timestamptz NOT NULL DEFAULT now(),
            updated_at            timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute(
        """
        CREATE TABLE activity_reports (
            id                 uuid PRIMARY KEY,
            site_id            uuid NOT NULL REFERENCES sites (id),
            admin1_pcode       text NOT NULL,
            period             text NOT NULL CHECK (period ~ '^[0-9]{4}-(0[1-9]|1[0-2])$'),
            report_version     integer NOT NULL DEFAULT 1,
            status             text NOT NULL,
            submitted_by_org   text NOT NULL,
            submitted_at       timestamptz NOT NULL,
            key_figures        jsonb NOT NULL,
            narrative          text NOT NULL DEFAULT '',
            approvals          jsonb NOT NULL DEFAULT '[]'::jsonb,
            rejection_comment  text,
            decided_at         timestamptz,
            version            integer NOT NULL DEFAULT 1,
            created_at         timestamptz NOT NULL DEFAULT now(),
            updated_at         timestamptz NOT NULL DEFAULT now(),
            CONSTRAINT activity_reports_one_per_month UNIQUE (site_id, period)
        )
        """
    )
    op.execute("CREATE INDEX activity_reports_pending ON activity_reports (admin1_pcode, submitted_at) "
               "WHERE status = 'submitted'")
    op.execute(
        """
        CREATE TABLE report_reviews (
            id              uuid PRIMARY KEY,
            report_id       uuid NOT NULL REFERENCES activity_reports (id),
            report_version  integer NOT NULL,
            reviewer_org    text NOT NULL,
            reviewer_sub    text NOT NULL,
            decision        text NOT NULL CHECK (decision IN ('approve', 'reject')),
            comment         text,
            created_at      timestamptz NOT NULL DEFAULT now(),
            CONSTRAINT report_reviews_one_per_org UNIQUE (report_id, report_version, reviewer_org)
        )
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE report_reviews")
    op.execute("DROP TABLE activity_reports")
    op.execute("DROP TABLE committees")
    op.execute("DROP TABLE service_activities")
    op.execute("DROP TABLE assessments")
    op.execute("DROP INDEX sites_status_type")
