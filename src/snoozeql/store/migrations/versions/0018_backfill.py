"""Day-one history: when an account's metric history was read after its first sync.

``accounts.history_read_at`` is set when the automatic backfill of the account is
claimed (once, after its first successful sync), so a restart or another replica does
not read it again. Accounts synced before this revision are not new: they are marked
read at their last sync, and only accounts never synced get the backfill.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from snoozeql.store.types import UTCDateTime

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("accounts") as batch:
        batch.add_column(sa.Column("history_read_at", UTCDateTime(), nullable=True))
    op.execute(
        "UPDATE accounts SET history_read_at = last_sync_at WHERE last_sync_at IS NOT NULL"
    )


def downgrade() -> None:
    with op.batch_alter_table("accounts") as batch:
        batch.drop_column("history_read_at")
