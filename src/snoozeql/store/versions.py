"""Data versions: has the data a cached result was derived from changed since?

Writers call :func:`bump` inside the transaction that changes the data, so a reader
that sees the new data also sees the new version (and the other way round). Readers
compare :func:`read` with the versions they recorded when they computed.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from snoozeql.store.schema import metadata

# One counter per kind of data ("instances", "metrics"), bumped in the same transaction
# as every write to it. Derived results cached in a process (the fleet's
# recommendations) record the counters they were computed from, and are recomputed
# when the store's counters moved: the check is one small read, and it is right across
# processes and replicas.
data_versions = sa.Table(
    "data_versions",
    metadata,
    sa.Column("name", sa.String(32), primary_key=True),
    sa.Column("version", sa.BigInteger, nullable=False),
)

# Per-instance version of its metrics: the recommendations re-analyse only instances
# whose metrics changed since the last analysis (store/versions.py).
instance_data_versions = sa.Table(
    "instance_data_versions",
    metadata,
    sa.Column("instance_id", sa.Uuid, primary_key=True),
    sa.Column("version", sa.BigInteger, nullable=False),
    sa.Index("ix_instance_data_versions_version", "version"),
)


__all__ = [
    "ACCOUNTS",
    "INSTANCES",
    "METRICS",
    "PRUNED",
    "SCHEDULES",
    "STATUSES",
    "bump",
    "bump_metrics",
    "changed_since",
    "instance_versions",
    "read",
]

INSTANCES = "instances"
METRICS = "metrics"
SCHEDULES = "schedules"
"""Schedules and their assignments (any insert, update or delete of either)."""
ACCOUNTS = "accounts"
"""The set of accounts and their names (not their sync status)."""
STATUSES = "instance_status"
"""An instance's status set by an action (a sync's changes bump ``INSTANCES``)."""


def bump(conn: sa.Connection, name: str) -> None:
    """Record that ``name`` changed (one upsert; the row lock orders concurrent bumps)."""
    conn.execute(_BUMP, {"name": name})


_BUMP = sa.text(
    "INSERT INTO data_versions (name, version) VALUES (:name, 1) "
    "ON CONFLICT (name) DO UPDATE SET version = data_versions.version + 1"
)


def read(conn: sa.Connection) -> dict[str, int]:
    """Every version; a kind never written is absent (version 0)."""
    rows = conn.execute(sa.select(data_versions.c.name, data_versions.c.version))
    return {name: version for name, version in rows}


PRUNED = "metrics_pruned"
"""Bumped when old hours are removed (affects every instance, no per-instance bump)."""


def bump_metrics(conn: sa.Connection, instance_ids: Iterable[UUID]) -> int:
    """Record that these instances' metrics changed: bump ``METRICS`` and stamp each
    instance with the new version, so a reader that analysed up to version V finds the
    instances changed since with one indexed query (:func:`changed_since`). Returns the
    new version. The ``METRICS`` row lock orders concurrent writers."""
    bump(conn, METRICS)
    version = int(conn.execute(
        sa.select(data_versions.c.version).where(data_versions.c.name == METRICS)
    ).scalar_one())
    ids = sorted(set(instance_ids))  # a fixed order: concurrent bumps lock rows alike
    if not ids:
        return version
    dialect = conn.dialect.name
    insert: Any = postgresql.insert(instance_data_versions) if dialect == "postgresql" \
        else sqlite.insert(instance_data_versions)
    for n in range(0, len(ids), 500):
        stmt = insert.values([{"instance_id": i, "version": version} for i in ids[n : n + 500]])
        conn.execute(stmt.on_conflict_do_update(
            index_elements=[instance_data_versions.c.instance_id],
            set_={"version": stmt.excluded.version},
        ))
    return version


def instance_versions(conn: sa.Connection) -> dict[UUID, int]:
    """Every instance's metrics version (an instance never written is absent: 0)."""
    q = sa.select(instance_data_versions.c.instance_id, instance_data_versions.c.version)
    return dict(conn.execute(q).all())


def changed_since(conn: sa.Connection, version: int) -> dict[UUID, int]:
    """Instances whose metrics were written after ``version``, with their versions."""
    q = sa.select(instance_data_versions.c.instance_id, instance_data_versions.c.version).where(
        instance_data_versions.c.version > version
    )
    return dict(conn.execute(q).all())
