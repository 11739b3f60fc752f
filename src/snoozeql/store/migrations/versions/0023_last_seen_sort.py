"""Indexes for sorting the instance listing by ``last_seen_at``.

``last_seen_at`` is derived when read: a row that is not missing reads as seen at its
account's ``last_sync_at`` when that is later than the stored value (a re-sync does
not rewrite the rows it found unchanged). The listing merges a few index walks,
per account, instead of sorting every row (``store/instances.py``, ``_by_last_seen``):

- ``(account_id, id)``: an account's rows that read as seen at its last sync, in id
  order (the order of a tie). It replaces the plain ``(account_id)`` index, whose
  lookups it serves as well;
- ``(account_id, last_seen_at, id)`` of the rows that are not missing: an account's
  rows whose stored value is the one read (stored later than the account's last sync,
  or an account never synced);
- ``(last_seen_at, id)`` of the missing rows and the rows without an account, which
  read as stored.

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-02
"""

from __future__ import annotations

from alembic import op

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_instances_account_id_id", "instances", ["account_id", "id"])
    op.drop_index("ix_instances_account_id", table_name="instances")
    op.execute("CREATE INDEX ix_instances_seen_by_account ON instances "
               "(account_id, last_seen_at, id) WHERE missing_since IS NULL")
    op.execute("CREATE INDEX ix_instances_seen_stored ON instances (last_seen_at, id) "
               "WHERE missing_since IS NOT NULL OR account_id IS NULL")


def downgrade() -> None:
    op.drop_index("ix_instances_seen_stored", table_name="instances")
    op.drop_index("ix_instances_seen_by_account", table_name="instances")
    op.create_index("ix_instances_account_id", "instances", ["account_id"])
    op.drop_index("ix_instances_account_id_id", table_name="instances")
