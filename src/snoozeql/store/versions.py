"""Data versions: has the data a cached result was derived from changed since?

Writers call :func:`bump` inside the transaction that changes the data, so a reader
that sees the new data also sees the new version (and the other way round). Readers
compare :func:`read` with the versions they recorded when they computed.
"""

from __future__ import annotations

import sqlalchemy as sa

from snoozeql.store.tables import data_versions as t

__all__ = ["INSTANCES", "METRICS", "bump", "read"]

INSTANCES = "instances"
METRICS = "metrics"


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
