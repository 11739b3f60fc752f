"""Stacks: user templates, stacks, service instances, overrides, applied state.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from snoozeql.store.types import UTCDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
LIVE = sa.text("deleted_at IS NULL")


def upgrade() -> None:
    op.create_table(
        "stack_templates",
        sa.Column("id", sa.Uuid, nullable=False),
        sa.Column("name", sa.String(63), nullable=False),
        sa.Column("definition", JSON, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_stack_templates"),
        sa.UniqueConstraint("name", name="uq_stack_templates_name"),
    )
    op.create_table(
        "stacks",
        sa.Column("id", sa.Uuid, nullable=False),
        sa.Column("name", sa.String(63), nullable=False),
        sa.Column("description", sa.Text, nullable=False, server_default=""),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.Column("deleted_at", UTCDateTime),
        sa.PrimaryKeyConstraint("id", name="pk_stacks"),
    )
    op.create_index(
        "ux_stacks_live_name", "stacks", ["name"], unique=True,
        sqlite_where=LIVE, postgresql_where=LIVE,
    )
    op.create_table(
        "stack_instances",
        sa.Column("id", sa.Uuid, nullable=False),
        sa.Column("stack_id", sa.Uuid, nullable=False),
        sa.Column("name", sa.String(63), nullable=False),
        sa.Column("template", sa.String(63), nullable=False),
        sa.Column("description", sa.Text, nullable=False, server_default=""),
        sa.Column("enabled", sa.Boolean, nullable=False, server_default=sa.true()),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.Column("deleted_at", UTCDateTime),
        sa.PrimaryKeyConstraint("id", name="pk_stack_instances"),
        sa.ForeignKeyConstraint(
            ["stack_id"], ["stacks.id"], name="fk_stack_instances_stack_id_stacks",
            ondelete="CASCADE",
        ),
    )
    op.create_index(
        "ux_stack_instances_live_name", "stack_instances", ["stack_id", "name"], unique=True,
        sqlite_where=LIVE, postgresql_where=LIVE,
    )
    op.create_index("ix_stack_instances_stack_id_seq", "stack_instances", ["stack_id", "seq"])
    op.create_table(
        "stack_overrides",
        sa.Column("id", sa.Uuid, nullable=False),
        sa.Column("instance_id", sa.Uuid, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("mode", sa.String(8), nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_stack_overrides"),
        sa.ForeignKeyConstraint(
            ["instance_id"], ["stack_instances.id"],
            name="fk_stack_overrides_instance_id_stack_instances", ondelete="CASCADE",
        ),
        sa.UniqueConstraint("instance_id", "kind", name="uq_stack_overrides_instance_id_kind"),
    )
    op.create_table(
        "stack_override_entries",
        sa.Column("override_id", sa.Uuid, nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("data", JSON, nullable=False),
        sa.PrimaryKeyConstraint("override_id", "position", name="pk_stack_override_entries"),
        sa.ForeignKeyConstraint(
            ["override_id"], ["stack_overrides.id"],
            name="fk_stack_override_entries_override_id_stack_overrides", ondelete="CASCADE",
        ),
    )
    op.create_table(
        "stack_applied",
        sa.Column("id", sa.Uuid, nullable=False),
        sa.Column("stack_id", sa.Uuid, nullable=False),
        sa.Column("instance_id", sa.Uuid, nullable=False),
        sa.Column("instance_name", sa.String(63), nullable=False),
        sa.Column("runtime_name", sa.String(63), nullable=False),
        sa.Column("runtime", sa.String(16), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("summary", JSON, nullable=False),
        sa.Column("applied_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_stack_applied"),
        sa.ForeignKeyConstraint(
            ["stack_id"], ["stacks.id"], name="fk_stack_applied_stack_id_stacks",
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint(
            "stack_id", "runtime_name", name="uq_stack_applied_stack_id_runtime_name"
        ),
    )


def downgrade() -> None:
    op.drop_table("stack_applied")
    op.drop_table("stack_override_entries")
    op.drop_table("stack_overrides")
    op.drop_index("ix_stack_instances_stack_id_seq", table_name="stack_instances")
    op.drop_index("ux_stack_instances_live_name", table_name="stack_instances")
    op.drop_table("stack_instances")
    op.drop_index("ux_stacks_live_name", table_name="stacks")
    op.drop_table("stacks")
    op.drop_table("stack_templates")
