"""Cheaper re-syncs: a fingerprint of what the provider last reported.

- ``instances.sync_hash``: a digest of the synced columns as last written by
  discovery. A sync skips the instances whose digest is unchanged; any other writer
  of a synced column (``set_status``) clears it so the next sync rewrites the row.
- ``ix_instances_cluster_provider_id`` becomes partial (only cluster members have a
  value), so the other rows cost it nothing on insert.
- PostgreSQL: fillfactor back to 90. 0001 left 30% of each page free so that every
  row's per-sync update could stay HOT; unchanged rows are no longer updated.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_MEMBERS = sa.text("cluster_provider_id IS NOT NULL")


def upgrade() -> None:
    op.add_column("instances", sa.Column("sync_hash", sa.String(32)))
    op.drop_index("ix_instances_cluster_provider_id", table_name="instances")
    op.create_index(
        "ix_instances_cluster_provider_id", "instances", ["cluster_provider_id"],
        postgresql_where=_MEMBERS, sqlite_where=_MEMBERS,
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE instances SET (fillfactor = 90)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE instances SET (fillfactor = 70)")
    op.drop_index("ix_instances_cluster_provider_id", table_name="instances")
    op.create_index("ix_instances_cluster_provider_id", "instances", ["cluster_provider_id"])
    with op.batch_alter_table("instances") as batch:
        batch.drop_column("sync_hash")
