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

from snoozeql.store.tables import data_versions as t
from snoozeql.store.tables import instance_data_versions as per_instance

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
    conn.execute(
        sa.text(
            "INSERT INTO data_versions (name, version) VALUES (:name, 1) "
            "ON CONFLICT (name) DO UPDATE SET version = data_versions.version + 1"
        ),
        {"name": name},
    )


def read(conn: sa.Connection) -> dict[str, int]:
    """Every version; a kind never written is absent (version 0)."""
    return {name: version for name, version in conn.execute(sa.select(t.c.name, t.c.version))}


PRUNED = "metrics_pruned"
"""Bumped when old hours are removed (affects every instance, no per-instance bump)."""


def bump_metrics(conn: sa.Connection, instance_ids: Iterable[UUID]) -> int:
    """Record that these instances' metrics changed: bump ``METRICS`` and stamp each
    instance with the new version, so a reader that analysed up to version V finds the
    instances changed since with one indexed query (:func:`changed_since`). Returns the
    new version. The ``METRICS`` row lock orders concurrent writers."""
    bump(conn, METRICS)
    version = int(conn.execute(sa.select(t.c.version).where(t.c.name == METRICS)).scalar_one())
    ids = sorted(set(instance_ids))  # a fixed order: concurrent bumps lock rows alike
    if not ids:
        return version
    dialect = conn.dialect.name
    insert: Any = postgresql.insert(per_instance) if dialect == "postgresql" \
        else sqlite.insert(per_instance)
    for n in range(0, len(ids), 500):
        stmt = insert.values([{"instance_id": i, "version": version} for i in ids[n : n + 500]])
        conn.execute(stmt.on_conflict_do_update(
            index_elements=[per_instance.c.instance_id],
            set_={"version": stmt.excluded.version},
        ))
    return version


def instance_versions(conn: sa.Connection) -> dict[UUID, int]:
    """Every instance's metrics version (an instance never written is absent: 0)."""
    return dict(conn.execute(sa.select(per_instance.c.instance_id, per_instance.c.version)).all())


def changed_since(conn: sa.Connection, version: int) -> dict[UUID, int]:
    """Instances whose metrics were written after ``version``, with their versions."""
    q = sa.select(per_instance.c.instance_id, per_instance.c.version).where(
        per_instance.c.version > version
    )
    return dict(conn.execute(q).all())
