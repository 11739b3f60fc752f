"""Incremental analysis: per-instance metrics versions and each instance's last
analysis, so the recommendations re-analyse only the instances whose metrics changed
since. See ``store/versions.py`` and ``services/recommendations.py``.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "instance_data_versions",
        sa.Column("instance_id", sa.Uuid, nullable=False),
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("instance_id", name="pk_instance_data_versions"),
    )
    op.create_index(
        "ix_instance_data_versions_version", "instance_data_versions", ["version"]
    )
    op.create_table(
        "instance_analyses",
        sa.Column("instance_id", sa.Uuid, nullable=False),
        sa.Column("analysed_hour", sa.BigInteger, nullable=False),
        sa.Column("settings_key", sa.String(64), nullable=False),
        sa.Column("data_version", sa.BigInteger, nullable=False),
        sa.Column("instances_version", sa.BigInteger, nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("rec_id", sa.Uuid),
        sa.Column("body", JSON, nullable=False),
        sa.PrimaryKeyConstraint("instance_id", name="pk_instance_analyses"),
    )


def downgrade() -> None:
    op.drop_table("instance_analyses")
    op.drop_index("ix_instance_data_versions_version", "instance_data_versions")
    op.drop_table("instance_data_versions")
