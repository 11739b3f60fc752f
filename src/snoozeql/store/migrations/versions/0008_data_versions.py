"""Data versions: a counter per kind of data, bumped with every write to it.

Lets a process tell cheaply whether something it derived from the store (the fleet's
recommendations) is still current. See ``store/versions.py``.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "data_versions",
        sa.Column("name", sa.String(32), nullable=False),
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_data_versions"),
    )


def downgrade() -> None:
    op.drop_table("data_versions")
