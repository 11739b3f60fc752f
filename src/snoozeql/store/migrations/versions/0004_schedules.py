"""Schedules: schedules, assignments, overrides, reconcile claims, stop intervals.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from snoozeql.store.types import UTCDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "schedules",
        sa.Column("id", sa.Uuid, nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("definition", JSON, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_schedules"),
        sa.UniqueConstraint("name", name="uq_schedules_name"),
    )
    op.create_table(
        "schedule_assignments",
        sa.Column("id", sa.Uuid, nullable=False),
        sa.Column("schedule_id", sa.Uuid, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("target", sa.String(600), nullable=False),
        sa.Column("instance_id", sa.Uuid),
        sa.Column("account_id", sa.Uuid),
        sa.Column("tag_key", sa.String(255)),
        sa.Column("tag_value", sa.String(255)),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_schedule_assignments"),
        sa.ForeignKeyConstraint(
            ["schedule_id"], ["schedules.id"],
            name="fk_schedule_assignments_schedule_id_schedules", ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["instance_id"], ["instances.id"],
            name="fk_schedule_assignments_instance_id_instances", ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"],
            name="fk_schedule_assignments_account_id_accounts", ondelete="CASCADE",
        ),
        sa.UniqueConstraint(
            "schedule_id", "target", name="uq_schedule_assignments_schedule_id_target"
        ),
    )
    op.create_table(
        "instance_overrides",
        sa.Column("instance_id", sa.Uuid, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("until", UTCDateTime, nullable=False),
        sa.Column("reason", sa.String(255), nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("instance_id", name="pk_instance_overrides"),
        sa.ForeignKeyConstraint(
            ["instance_id"], ["instances.id"],
            name="fk_instance_overrides_instance_id_instances", ondelete="CASCADE",
        ),
    )
    op.create_table(
        "reconcile_claims",
        sa.Column("instance_id", sa.Uuid, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("at", UTCDateTime, nullable=False),
        sa.Column("schedule_id", sa.Uuid),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("result", sa.String(16)),
        sa.Column("owner", sa.String(128), nullable=False),
        sa.Column("claimed_at", UTCDateTime, nullable=False),
        sa.Column("lease_until", UTCDateTime, nullable=False),
        sa.Column("finished_at", UTCDateTime),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="1"),
        sa.PrimaryKeyConstraint("instance_id", "kind", "at", name="pk_reconcile_claims"),
    )
    op.create_index("ix_reconcile_claims_claimed_at", "reconcile_claims", ["claimed_at"])
    op.create_table(
        "stop_intervals",
        sa.Column("id", sa.Uuid, nullable=False),
        sa.Column("instance_id", sa.Uuid, nullable=False),
        sa.Column("instance_name", sa.String(255), nullable=False),
        sa.Column("account_id", sa.Uuid),
        sa.Column("schedule_id", sa.Uuid),
        sa.Column("schedule_name", sa.String(128)),
        sa.Column("stopped_at", UTCDateTime, nullable=False),
        sa.Column("started_at", UTCDateTime),
        sa.Column("hourly_cost_cents", sa.Numeric(14, 4)),
        sa.Column("node_count", sa.Integer, nullable=False, server_default="1"),
        sa.Column("details", JSON, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_stop_intervals"),
        sa.ForeignKeyConstraint(
            ["instance_id"], ["instances.id"],
            name="fk_stop_intervals_instance_id_instances", ondelete="CASCADE",
        ),
    )
    op.create_index("ix_stop_intervals_instance_id", "stop_intervals", ["instance_id"])
    op.create_index("ix_stop_intervals_stopped_at", "stop_intervals", ["stopped_at"])


def downgrade() -> None:
    op.drop_index("ix_stop_intervals_stopped_at", table_name="stop_intervals")
    op.drop_index("ix_stop_intervals_instance_id", table_name="stop_intervals")
    op.drop_table("stop_intervals")
    op.drop_index("ix_reconcile_claims_claimed_at", table_name="reconcile_claims")
    op.drop_table("reconcile_claims")
    op.drop_table("instance_overrides")
    op.drop_table("schedule_assignments")
    op.drop_table("schedules")
