"""Store identity: one row with the store's id, made once when the store is created.

Files a store keeps outside the database (the local-database directory) carry this id
in a marker, so two stores never share them by accident (services/datadir.py).

Revision ID: 0011
Revises: 0009
Create Date: 2026-12-01
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from snoozeql.store.types import UTCDateTime

revision = "0011"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    table = op.create_table(
        "store_identity",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_store_identity"),
    )
    op.bulk_insert(table, [{"id": str(uuid.uuid4()),
                            "created_at": datetime.now(UTC)}])


def downgrade() -> None:
    op.drop_table("store_identity")
