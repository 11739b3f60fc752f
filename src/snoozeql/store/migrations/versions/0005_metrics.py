"""Metrics: hourly aggregates with their minute masks, and recommendations.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from snoozeql.store.types import UTCDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "metric_hours",
        sa.Column("instance_id", sa.Uuid, nullable=False),
        sa.Column("metric", sa.String(16), nullable=False),
        sa.Column("hour", UTCDateTime, nullable=False),
        sa.Column("epoch_hour", sa.Integer, nullable=False),
        sa.Column("avg", sa.Float, nullable=False),
        sa.Column("min", sa.Float, nullable=False),
        sa.Column("max", sa.Float, nullable=False),
        sa.Column("count", sa.Integer, nullable=False),
        sa.Column("minutes", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("instance_id", "metric", "hour", name="pk_metric_hours"),
        sa.ForeignKeyConstraint(
            ["instance_id"], ["instances.id"],
            name="fk_metric_hours_instance_id_instances", ondelete="CASCADE",
        ),
    )
    op.create_index("ix_metric_hours_hour", "metric_hours", ["hour"])
    op.create_table(
        "recommendations",
        sa.Column("id", sa.Uuid, nullable=False),
        sa.Column("instance_id", sa.Uuid, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("body", JSON, nullable=False),
        sa.Column("computed_at", UTCDateTime, nullable=False),
        sa.Column("dismissed_at", UTCDateTime),
        sa.Column("dismissed_by", sa.String(128)),
        sa.PrimaryKeyConstraint("id", name="pk_recommendations"),
        sa.ForeignKeyConstraint(
            ["instance_id"], ["instances.id"],
            name="fk_recommendations_instance_id_instances", ondelete="CASCADE",
        ),
    )
    op.create_index("ix_recommendations_instance_id", "recommendations", ["instance_id"])


def downgrade() -> None:
    op.drop_index("ix_recommendations_instance_id", table_name="recommendations")
    op.drop_table("recommendations")
    op.drop_index("ix_metric_hours_hour", table_name="metric_hours")
    op.drop_table("metric_hours")
