"""Job queue: a row per background task run, and procrastinate's schema on PostgreSQL.

``sync_parts`` holds the parts of a sync split per region or project on the queue
until the last one arrives. ``job_runs`` keeps one row per run of a background task,
written by the in-process runner (the embedded SQLite default) and by queue workers
alike, so ``snoozeql jobs list`` and ``GET /api/v1/jobs`` show both in one shape.

On PostgreSQL the background work runs on procrastinate (``snoozeql worker``): its
tables, types and functions (``procrastinate_*``) are installed here, from the schema
file of the installed procrastinate package, unless they already exist (an operator
who installed them by hand keeps them). On SQLite there is no queue and nothing more.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from snoozeql.store.types import JSONType, UTCDateTime

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "job_runs",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("task", sa.String(64), nullable=False),
        sa.Column("args", JSONType, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("worker", sa.String(160), nullable=False),
        sa.Column("job_id", sa.BigInteger),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("finished_at", UTCDateTime()),
        sa.Column("error", sa.Text),
    )
    op.create_index("ix_job_runs_started", "job_runs", ["started_at"])
    op.create_index("ix_job_runs_job", "job_runs", ["job_id"])
    op.create_table(
        "sync_parts",
        sa.Column("account_id", sa.Uuid,
                  sa.ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("round", sa.String(64), primary_key=True),
        sa.Column("scope", sa.String(255), primary_key=True),
        sa.Column("items", JSONType, nullable=False),
        sa.Column("error", sa.Text),
        sa.Column("found_at", UTCDateTime(), nullable=False),
    )
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        install_queue_schema(bind)


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        drop_queue_schema(bind)
    op.drop_table("sync_parts")
    op.drop_index("ix_job_runs_job", "job_runs")
    op.drop_index("ix_job_runs_started", "job_runs")
    op.drop_table("job_runs")


def install_queue_schema(bind: sa.Connection) -> None:
    """procrastinate's schema, unless its jobs table exists already."""
    from procrastinate.schema import SchemaManager

    if bind.execute(sa.text("SELECT to_regclass('procrastinate_jobs')")).scalar():
        return
    _raw(bind, SchemaManager.get_schema())


def drop_queue_schema(bind: sa.Connection) -> None:
    """Everything procrastinate's schema made (its objects are all ``procrastinate_*``)."""
    _raw(bind, """
        DO $$
        DECLARE r record;
        BEGIN
            FOR r IN SELECT tablename FROM pg_tables
                     WHERE schemaname = current_schema() AND tablename LIKE 'procrastinate\\_%'
            LOOP EXECUTE format('DROP TABLE IF EXISTS %I CASCADE', r.tablename); END LOOP;
            FOR r IN SELECT p.oid::regprocedure AS sig FROM pg_proc p
                     JOIN pg_namespace n ON n.oid = p.pronamespace
                     WHERE n.nspname = current_schema() AND p.proname LIKE 'procrastinate\\_%'
            LOOP EXECUTE format('DROP ROUTINE IF EXISTS %s CASCADE', r.sig); END LOOP;
            FOR r IN SELECT t.typname FROM pg_type t
                     JOIN pg_namespace n ON n.oid = t.typnamespace
                     WHERE n.nspname = current_schema() AND t.typname LIKE 'procrastinate\\_%'
                       AND t.typtype IN ('e', 'c')
            LOOP EXECUTE format('DROP TYPE IF EXISTS %I CASCADE', r.typname); END LOOP;
        END $$;
    """)


def _raw(bind: sa.Connection, sql: str) -> None:
    """Run ``sql`` on the DBAPI cursor without parameters: its '%' stay as they are."""
    cursor = bind.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(sql)
    finally:
        cursor.close()
