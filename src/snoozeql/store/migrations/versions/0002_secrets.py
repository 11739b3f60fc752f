"""Encrypted secrets table.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from snoozeql.store.types import UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "secrets",
        sa.Column("id", sa.Uuid, nullable=False),
        sa.Column("scope", sa.String(32), nullable=False),
        sa.Column("owner_id", sa.Uuid, nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("ciphertext", sa.Text, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_secrets"),
        sa.UniqueConstraint("scope", "owner_id", "name", name="uq_secrets_scope_owner_id_name"),
    )


def downgrade() -> None:
    op.drop_table("secrets")
