"""Audit trail and schedule selectors.

- ``actions`` gains what an audit entry needs: the kind, id and name of the changed
  object and its state before and after (JSON, secrets redacted by the writer). Rows
  stay append-only (the triggers of 0001 still apply).
- ``schedules.priority``: which schedule wins when several match one instance.
- ``schedule_assignments.selector``: a rule tree assignment (kind ``selector``).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.add_column("actions", sa.Column("object_kind", sa.String(32)))
    op.add_column("actions", sa.Column("object_id", sa.String(64)))
    op.add_column("actions", sa.Column("object_name", sa.String(255)))
    op.add_column("actions", sa.Column("before", JSON))
    op.add_column("actions", sa.Column("after", JSON))
    op.create_index("ix_actions_object_kind", "actions", ["object_kind"])
    op.add_column(
        "schedules",
        sa.Column("priority", sa.Integer, nullable=False, server_default="0"),
    )
    op.add_column("schedule_assignments", sa.Column("selector", JSON))


def downgrade() -> None:
    op.drop_column("schedule_assignments", "selector")
    op.drop_column("schedules", "priority")
    op.drop_index("ix_actions_object_kind", table_name="actions")
    for column in ("after", "before", "object_name", "object_id", "object_kind"):
        op.drop_column("actions", column)
