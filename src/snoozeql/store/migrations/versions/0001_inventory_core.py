"""Inventory core: accounts, instances, action log, API keys, price cache, jobs.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from snoozeql.store.types import UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("name", sa.String(63), nullable=False),
        sa.Column("provider", sa.String(16), nullable=False),
        sa.Column("config", JSON, nullable=False),
        sa.Column("status", sa.String(16), nullable=False, server_default="unknown"),
        sa.Column("last_sync_at", UTCDateTime),
        sa.Column("last_error", sa.Text),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_accounts"),
        sa.UniqueConstraint("name", name="uq_accounts_name"),
    )
    op.create_table(
        "instances",
        sa.Column("id", sa.Uuid, nullable=False),
        sa.Column("account_id", sa.Uuid),
        sa.Column("provider", sa.String(16), nullable=False),
        sa.Column("provider_id", sa.String(512), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("engine", sa.String(64), nullable=False),
        sa.Column("engine_version", sa.String(64)),
        sa.Column("instance_class", sa.String(64)),
        sa.Column("region", sa.String(64)),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("raw_status", sa.String(64)),
        sa.Column("tags", JSON, nullable=False),
        sa.Column("endpoint_host", sa.String(255)),
        sa.Column("endpoint_port", sa.Integer),
        sa.Column("multi_az", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("node_count", sa.Integer, nullable=False, server_default="1"),
        sa.Column("cluster_provider_id", sa.String(512)),
        sa.Column("hourly_cost_cents", sa.Numeric(14, 4)),
        sa.Column("extra", JSON, nullable=False),
        sa.Column("last_error", sa.Text),
        sa.Column("first_seen_at", UTCDateTime, nullable=False),
        sa.Column("last_seen_at", UTCDateTime, nullable=False),
        sa.Column("missing_since", UTCDateTime),
        sa.PrimaryKeyConstraint("id", name="pk_instances"),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name="fk_instances_account_id_accounts",
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint("provider", "provider_id", name="uq_instances_provider_provider_id"),
    )
    op.create_index("ix_instances_name_id", "instances", ["name", "id"])
    op.create_index("ix_instances_account_id", "instances", ["account_id"])
    op.create_index("ix_instances_cluster_provider_id", "instances", ["cluster_provider_id"])
    if op.get_bind().dialect.name == "postgresql":
        # Room on each page so a re-sync's updates are HOT (no index writes).
        op.execute("ALTER TABLE instances SET (fillfactor = 70)")

    op.create_table(
        "actions",
        sa.Column("id", sa.Uuid, nullable=False),
        sa.Column("at", UTCDateTime, nullable=False),
        sa.Column("finished_at", UTCDateTime),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("instance_id", sa.Uuid),
        sa.Column("instance_name", sa.String(255)),
        sa.Column("provider", sa.String(16)),
        sa.Column("reason", sa.String(255), nullable=False),
        sa.Column("result", sa.String(16), nullable=False),
        sa.Column("error", sa.Text),
        sa.Column("details", JSON, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_actions"),
    )
    op.create_index("ix_actions_at", "actions", ["at"])
    op.create_index("ix_actions_instance_id", "actions", ["instance_id"])

    op.create_table(
        "api_keys",
        sa.Column("id", sa.Uuid, nullable=False),
        sa.Column("name", sa.String(63), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("last_used_at", UTCDateTime),
        sa.Column("revoked_at", UTCDateTime),
        sa.PrimaryKeyConstraint("id", name="pk_api_keys"),
        sa.UniqueConstraint("name", name="uq_api_keys_name"),
        sa.UniqueConstraint("key_hash", name="uq_api_keys_key_hash"),
    )
    op.create_table(
        "price_cache",
        sa.Column("provider", sa.String(16), nullable=False),
        sa.Column("instance_class", sa.String(64), nullable=False),
        sa.Column("engine", sa.String(64), nullable=False),
        sa.Column("region", sa.String(64), nullable=False),
        sa.Column("deployment", sa.String(16), nullable=False),
        sa.Column("usd_per_hour", sa.Numeric(14, 6)),
        sa.Column("fetched_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint(
            "provider", "instance_class", "engine", "region", "deployment",
            name="pk_price_cache",
        ),
    )
    op.create_table(
        "jobs",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("next_run_at", UTCDateTime, nullable=False),
        sa.Column("locked_by", sa.String(128)),
        sa.Column("locked_until", UTCDateTime),
        sa.Column("last_started_at", UTCDateTime),
        sa.Column("last_finished_at", UTCDateTime),
        sa.Column("last_error", sa.Text),
        sa.PrimaryKeyConstraint("name", name="pk_jobs"),
    )

    # The action log is append-only: the database itself refuses edits.
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.execute(
            """
            CREATE FUNCTION snoozeql_actions_append_only() RETURNS trigger AS $$
            BEGIN
              RAISE EXCEPTION 'the action log is append-only';
            END;
            $$ LANGUAGE plpgsql
            """
        )
        op.execute(
            "CREATE TRIGGER actions_append_only BEFORE UPDATE OR DELETE ON actions "
            "FOR EACH ROW EXECUTE FUNCTION snoozeql_actions_append_only()"
        )
    else:
        for event in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER actions_no_{event.lower()} BEFORE {event} ON actions "
                "BEGIN SELECT RAISE(ABORT, 'the action log is append-only'); END"
            )


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS actions_append_only ON actions")
        op.execute("DROP FUNCTION IF EXISTS snoozeql_actions_append_only()")
    else:
        op.execute("DROP TRIGGER IF EXISTS actions_no_update")
        op.execute("DROP TRIGGER IF EXISTS actions_no_delete")
    op.drop_table("jobs")
    op.drop_table("price_cache")
    op.drop_table("api_keys")
    op.drop_index("ix_actions_instance_id", table_name="actions")
    op.drop_index("ix_actions_at", table_name="actions")
    op.drop_table("actions")
    for ix in (
        "ix_instances_cluster_provider_id",
        "ix_instances_account_id",
        "ix_instances_name_id",
    ):
        op.drop_index(ix, table_name="instances")
    op.drop_table("instances")
    op.drop_table("accounts")
