"""The packed copy of the hourly aggregates the fleet analysis reads: ``metric_days``,
one row per (instance, UTC day) with the day's 24 hours of the five block columns as
float64 bytes and the mask of hours with a row (``store/metrics.py``). Built here
from the rows already stored; every write keeps it equal to them afterwards.

Revision ID: 0022
Revises: 0019
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0022"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "metric_days",
        sa.Column("instance_id", sa.Uuid, nullable=False),
        sa.Column("day", sa.Integer, nullable=False),
        sa.Column("present", sa.Integer, nullable=False),
        sa.Column("cells", sa.LargeBinary, nullable=False),
        sa.PrimaryKeyConstraint("instance_id", "day", name="pk_metric_days"),
        sa.ForeignKeyConstraint(
            ["instance_id"], ["instances.id"],
            name="fk_metric_days_instance_id_instances", ondelete="CASCADE",
        ),
    )
    op.create_index("ix_metric_days_day", "metric_days", ["day"])
    conn = op.get_bind()
    first, last = conn.execute(
        sa.text("SELECT min(epoch_hour), max(epoch_hour) FROM metric_hours")).one()
    if first is not None:
        # The store's own builder (the same code a bulk load runs), instance by
        # instance in chunks, so memory stays bounded at any fleet size.
        from snoozeql.store.metrics import rebuild_days

        rebuild_days(conn, int(first) // 24, int(last) // 24)


def downgrade() -> None:
    op.drop_index("ix_metric_days_day", "metric_days")
    op.drop_table("metric_days")
