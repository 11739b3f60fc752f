"""Queries on ``recommendations``: the recommendations last shown, and dismissals.

A recommendation's id is a fingerprint of what it says (instance, kind, zone, windows),
so listing twice keeps the same ids and a dismissal sticks until the recommendation
itself changes.

The tables (defined here, on the one ``metadata`` of :mod:`snoozeql.store.schema`):

- ``recommendations`` keeps the recommendations last shown, keyed by a fingerprint
  id (the same windows for the same instance give the same id), so a dismissal refers
  to exactly what the user saw and a changed pattern comes back as a new one.
- ``instance_analyses`` keeps the last analysis of each instance.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, NamedTuple
from uuid import UUID

import sqlalchemy as sa

from snoozeql.domain.analysis import AnalysisEntry
from snoozeql.store.schema import metadata
from snoozeql.store.types import JSONType, UTCDateTime

__all__ = [
    "StoredAnalysis",
    "analyses",
    "confirm_analyses",
    "dismiss",
    "dismissed_ids",
    "forget_analyses",
    "get",
    "replace_current",
    "save_analyses",
    "stored",
]

recommendations = sa.Table(
    "recommendations",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column(
        "instance_id", sa.Uuid, sa.ForeignKey("instances.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("body", JSONType, nullable=False),
    sa.Column("computed_at", UTCDateTime, nullable=False),
    sa.Column("dismissed_at", UTCDateTime),
    sa.Column("dismissed_by", sa.String(128)),
    sa.Index("ix_recommendations_instance_id", "instance_id"),
)

# The last analysis of each instance, so a new process (or a listing after a few new
# samples) analyses only the instances whose metrics changed (services/recommendations).
instance_analyses = sa.Table(
    "instance_analyses",
    metadata,
    sa.Column("instance_id", sa.Uuid, primary_key=True),
    sa.Column("analysed_hour", sa.BigInteger, nullable=False),
    sa.Column("settings_key", sa.String(64), nullable=False),
    sa.Column("data_version", sa.BigInteger, nullable=False),
    sa.Column("instances_version", sa.BigInteger, nullable=False),
    sa.Column("fingerprint", sa.String(64), nullable=False),
    sa.Column("rec_id", sa.Uuid),
    sa.Column("body", JSONType, nullable=False),
)

# Short names for the queries below.
t, a = recommendations, instance_analyses


def stored(conn: sa.Connection, instance_ids: Sequence[UUID] | None = None) -> dict[UUID, Any]:
    """Stored rows by id (optionally only those of ``instance_ids``)."""
    q = sa.select(t)
    out: dict[UUID, Any] = {}
    if instance_ids is None:
        return {r.id: r for r in conn.execute(q)}
    ids = list(instance_ids)
    for n in range(0, len(ids), 500):
        for r in conn.execute(q.where(t.c.instance_id.in_(ids[n : n + 500]))):
            out[r.id] = r
    return out


def dismissed_ids(conn: sa.Connection) -> set[UUID]:
    """Ids of every dismissed recommendation (a small set: only dismissals are read)."""
    return set(conn.execute(sa.select(t.c.id).where(t.c.dismissed_at.is_not(None))).scalars())


def replace_current(
    conn: sa.Connection,
    entries: Sequence[AnalysisEntry],
    at: datetime,
    instance_ids: Sequence[UUID] | None = None,
) -> None:
    """Make the recommendations of ``entries`` (those with one) the current ones of
    ``instance_ids`` (default: the instances of ``entries``). A recommendation is kept
    as its listed entry.

    New ids are inserted (one statement), known ones refreshed; rows of those instances
    that are no longer current are removed unless dismissed (a dismissal is kept so the
    same recommendation coming back stays dismissed).
    """
    rows: list[dict[str, Any]] = [
        {"id": e.rec_id, "instance_id": e.instance_id, "kind": e.body["kind"],
         "body": e.listed()} for e in entries if e.rec_id is not None]
    ids = list(instance_ids) if instance_ids is not None else [e.instance_id for e in entries]
    if not ids:
        return
    known = stored(conn, ids)
    fresh = [r for r in rows if r["id"] not in known]
    if fresh:
        _insert_recommendations(conn, fresh, at)
    again = [r["id"] for r in rows if r["id"] in known]
    for n in range(0, len(again), 500):
        conn.execute(t.update().where(t.c.id.in_(again[n : n + 500])).values(computed_at=at))
    current = {r["id"] for r in rows}
    stale = [i for i, r in known.items() if i not in current and r.dismissed_at is None]
    for n in range(0, len(stale), 500):
        conn.execute(t.delete().where(t.c.id.in_(stale[n : n + 500])))


def _insert_recommendations(conn: sa.Connection, rows: Sequence[dict[str, Any]],
                            at: datetime) -> None:
    """Insert new recommendations through the driver (a fleet's first analysis makes
    thousands): one ``COPY`` on PostgreSQL, one ``executemany`` on SQLite, the body
    serialised as the JSON column does (``json.dumps``), the time as ``UTCDateTime``
    stores it on SQLite (naive UTC)."""
    names = "id, instance_id, kind, body, computed_at"
    if conn.dialect.name == "postgresql":
        raw = conn.connection.driver_connection
        assert raw is not None
        with raw.cursor() as cursor, cursor.copy(
                f"COPY recommendations ({names}) FROM STDIN") as copy:
            for r in rows:
                copy.write_row((r["id"], r["instance_id"], r["kind"], json.dumps(r["body"]),
                                at))
        return
    if conn.dialect.name != "sqlite":  # pragma: no cover - only the two stores
        conn.execute(t.insert(), [dict(r, computed_at=at) for r in rows])
        return
    when = at.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")
    conn.exec_driver_sql(
        f"INSERT INTO recommendations ({names}) VALUES (?, ?, ?, ?, ?)",
        [(r["id"].hex, r["instance_id"].hex, r["kind"], json.dumps(r["body"]), when)
         for r in rows],
    )


def get(conn: sa.Connection, rec_id: UUID) -> dict[str, Any] | None:
    """The recommendation's listed entry as stored (None: unknown id)."""
    body = conn.execute(sa.select(t.c.body).where(t.c.id == rec_id)).scalar()
    return None if body is None else dict(body)


def dismiss(conn: sa.Connection, rec_id: UUID, at: datetime, by: str) -> int:
    return conn.execute(
        t.update().where(t.c.id == rec_id).values(dismissed_at=at, dismissed_by=by)
    ).rowcount


# -- each instance's last analysis (incremental analysis) --------------------------------


class StoredAnalysis(NamedTuple):
    """An analysis as stored, and the inventory version it was last checked against."""

    entry: AnalysisEntry
    instances_version: int


def analyses(conn: sa.Connection, analysed_hour: int, settings_key: str
             ) -> list[StoredAnalysis]:
    """Stored analyses made for this hour and these settings."""
    q = sa.select(
        a.c.instance_id, a.c.data_version, a.c.instances_version, a.c.fingerprint, a.c.rec_id,
        a.c.body,
    ).where(a.c.analysed_hour == analysed_hour, a.c.settings_key == settings_key)
    return [StoredAnalysis(AnalysisEntry(r.instance_id, r.body, r.rec_id, r.data_version,
                                         r.fingerprint), r.instances_version)
            for r in conn.execute(q)]


def confirm_analyses(
    conn: sa.Connection, analysed_hour: int, settings_key: str, instances_version: int
) -> None:
    """Mark every stored analysis of this hour and settings as checked against the
    inventory at ``instances_version`` (a later process may then trust them as they are)."""
    conn.execute(
        a.update()
        .where(a.c.analysed_hour == analysed_hour, a.c.settings_key == settings_key)
        .values(instances_version=instances_version)
    )


_ANALYSIS_COLUMNS = ("instance_id", "analysed_hour", "settings_key", "data_version",
                     "instances_version", "fingerprint", "rec_id", "body")


def save_analyses(conn: sa.Connection, entries: Sequence[AnalysisEntry], *,
                  analysed_hour: int, settings_key: str, instances_version: int) -> None:
    """Replace the stored analyses of these instances (made for this hour and these
    settings, checked against the inventory at ``instances_version``): delete, then
    insert them through the driver (a whole fleet's first analysis stores 10,000 at
    once): one ``COPY`` on PostgreSQL, one ``executemany`` on SQLite, each body
    serialised once, as the JSON column stores it (``json.dumps``; read back through
    the column type as usual)."""
    rows: list[dict[str, Any]] = [
        {"instance_id": e.instance_id, "analysed_hour": analysed_hour,
         "settings_key": settings_key, "data_version": e.data_version,
         "instances_version": instances_version, "fingerprint": e.fingerprint,
         "rec_id": e.rec_id, "body": e.body} for e in entries]
    ids = [r["instance_id"] for r in rows]
    forget_analyses(conn, ids)
    if not rows:
        return
    names = ", ".join(_ANALYSIS_COLUMNS)
    if conn.dialect.name == "postgresql":
        raw = conn.connection.driver_connection
        assert raw is not None
        with raw.cursor() as cursor, cursor.copy(
                f"COPY instance_analyses ({names}) FROM STDIN") as copy:
            for r in rows:
                copy.write_row((r["instance_id"], r["analysed_hour"], r["settings_key"],
                                r["data_version"], r["instances_version"], r["fingerprint"],
                                r["rec_id"], json.dumps(r["body"])))
        return
    if conn.dialect.name != "sqlite":  # pragma: no cover - only the two stores
        for n in range(0, len(rows), 500):
            conn.execute(a.insert(), list(rows[n : n + 500]))
        return
    # SQLite stores a UUID as its 32 hex digits (SQLAlchemy's Uuid without native type).
    conn.exec_driver_sql(
        f"INSERT INTO instance_analyses ({names}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [(r["instance_id"].hex, r["analysed_hour"], r["settings_key"], r["data_version"],
          r["instances_version"], r["fingerprint"],
          None if r["rec_id"] is None else r["rec_id"].hex, json.dumps(r["body"]))
         for r in rows],
    )


def forget_analyses(conn: sa.Connection, instance_ids: Sequence[UUID]) -> None:
    ids = list(instance_ids)
    for n in range(0, len(ids), 500):
        conn.execute(a.delete().where(a.c.instance_id.in_(ids[n : n + 500])))
