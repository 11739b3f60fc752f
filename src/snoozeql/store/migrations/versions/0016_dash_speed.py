"""An index on schedule_assignments.instance_id: the instances table resolves the
schedules of one page from that page's own assignments plus the rule-based ones
(account, tag, selector: instance_id NULL), instead of reading every assignment; and
deleting an instance no longer scans the assignments for its cascade.

Revision ID: 0016
Revises: 0013
Create Date: 2026-12-02
"""

from __future__ import annotations

from alembic import op

revision = "0016"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_schedule_assignments_instance_id", "schedule_assignments", ["instance_id"]
    )


def downgrade() -> None:
    op.drop_index("ix_schedule_assignments_instance_id", "schedule_assignments")
