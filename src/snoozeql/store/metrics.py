"""Queries on the hourly metric aggregates (``metric_hours``).

Writes are batched and safe against concurrent writers (the collector job on one
replica, the push API on another):

1. the stored buckets the samples touch are read in one query per batch of instances;
2. per (instance, metric, hour) only the samples of minutes the bucket does not hold
   yet are kept (the domain's first-value-per-minute rule) and aggregated into a
   *delta*;
3. all deltas go out in one ``INSERT .. ON CONFLICT DO UPDATE`` per chunk, whose update
   merges the delta into the stored row in SQL with the exact weighted mean, guarded by
   ``stored.minutes & delta.minutes = 0``. If another writer counted one of those
   minutes in between, the guard skips that row and the whole batch is re-applied
   (the rows that did land are then no-ops, because their minutes are in the mask).

So collecting the same window twice changes nothing, and no concurrent write is lost.
(On SQLite a transaction whose snapshot went stale cannot write: "database is locked"
comes at once, and the batch is simply re-applied too.)

Every write also keeps ``metric_days``, the packed copy the fleet read uses (one row
per instance and UTC day: the 24 hours of the five block columns as float64 bytes and
the mask of hours with a row), equal to the rows, in the same transaction: the upserts
patch the days from the values the database returns (``RETURNING``: the merged values
exactly as stored), a bulk load rebuilds the days it touched from the rows, and the
retention cleanup drops whole days and clears the pruned hours' bits of the boundary
day. On PostgreSQL the touched day rows are created (``ON CONFLICT DO NOTHING``) and
then locked (``FOR UPDATE``), both in key order, before they are patched, so concurrent
writers of the same day serialise instead of losing each other's hours.

The tables (defined here, on the one ``metadata`` of :mod:`snoozeql.store.schema`):

- ``metric_hours`` holds one row per (instance, metric, UTC hour): the exact hourly
  aggregate (avg, min, max, count) plus ``minutes``, the 60-bit mask of the minutes
  already counted (:class:`snoozeql.domain.metrics.HourBucket`). The mask is what
  makes collection idempotent: re-reading a window skips minutes already in it. It
  fits a signed 64-bit integer.
- ``epoch_hour`` (hours since 1970-01-01 UTC) repeats ``hour`` as an integer so the
  fleet analysis can place each row in its column without building a datetime per row
  (the costliest part of reading 13 million aggregates), the same way on both stores.
- The primary key (instance, metric, hour) is the upsert key of the batched writes; the
  index on ``hour`` serves the retention cleanup (``DELETE ... WHERE hour < cutoff``).
- ``metric_days`` is a packed copy of ``metric_hours`` for the fleet analysis: one row
  per (instance, UTC day) holding the day's 24 hours of the five columns the analysis
  reads (connections avg and max, cpu, read and write IOPS avg) as 120 little-endian
  float64 (NaN: no row of that metric), and ``present``, the 24-bit mask of the hours
  with any row. A cell counts only if its hour's bit is set. Every write of
  ``metric_hours`` keeps it equal to the rows in the same transaction
  (``store/metrics.py``), so the cold read of a fleet's lookback is one small row per
  instance and day instead of one per instance, metric and hour.
"""

from __future__ import annotations

import math
import mmap
import sys
import time
from array import array
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any
from uuid import UUID

import numpy as np
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from snoozeql.domain.metrics import (
    BLOCK_COLUMNS,
    CONNECTIONS,
    CPU,
    FULL_HOUR,
    READ_IOPS,
    WRITE_IOPS,
    BucketKey,
    HourBucket,
    HourlyAggregate,
    Sample,
    SeriesBlock,
    absorb,
    absorb_hour,
    floor_hour,
)
from snoozeql.store import versions
from snoozeql.store.schema import metadata
from snoozeql.store.types import UTCDateTime

__all__ = [
    "FULL_HOUR",
    "apply_hours",
    "apply_samples",
    "count_rows",
    "delete_before",
    "epoch_hour",
    "fleet_series",
    "load_hours",
    "read_buckets",
    "rebuild_days",
    "series",
]

metric_hours = sa.Table(
    "metric_hours",
    metadata,
    sa.Column(
        "instance_id", sa.Uuid, sa.ForeignKey("instances.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("metric", sa.String(16), primary_key=True),
    sa.Column("hour", UTCDateTime, primary_key=True),
    sa.Column("epoch_hour", sa.Integer, nullable=False),
    sa.Column("avg", sa.Float, nullable=False),
    sa.Column("min", sa.Float, nullable=False),
    sa.Column("max", sa.Float, nullable=False),
    sa.Column("count", sa.Integer, nullable=False),
    sa.Column("minutes", sa.BigInteger, nullable=False),
    sa.Index("ix_metric_hours_hour", "hour"),
)

metric_days = sa.Table(
    "metric_days",
    metadata,
    sa.Column(
        "instance_id", sa.Uuid, sa.ForeignKey("instances.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("day", sa.Integer, primary_key=True),  # epoch_hour // 24
    sa.Column("present", sa.Integer, nullable=False),
    sa.Column("cells", sa.LargeBinary, nullable=False),
    sa.Index("ix_metric_days_day", "day"),
)

# Short names for the queries below.
t, md = metric_hours, metric_days

_CHUNK = 1000  # rows per INSERT: 10 columns x 1000 stays under both stores' bind limits
_ID_CHUNK = 500  # instance ids per read
_MAX_ATTEMPTS = 20


def epoch_hour(hour: datetime) -> int:
    """Hours since 1970-01-01 00:00 UTC."""
    return int(hour.timestamp()) // 3600


def _bucket(r: Any) -> HourBucket:
    return HourBucket(
        HourlyAggregate(r.metric, r.hour, r.avg, r.min, r.max, r.count), int(r.minutes)
    )


def read_buckets(
    conn: sa.Connection, keys: Mapping[UUID, Iterable[BucketKey]]
) -> dict[tuple[UUID, str, datetime], HourBucket]:
    """The stored buckets among ``keys`` (instance -> (metric, hour) keys)."""
    wanted = {(i, m, h) for i, ks in keys.items() for m, h in ks}
    if not wanted:
        return {}
    hours = [h for _, _, h in wanted]
    lo, hi = min(hours), max(hours)
    ids = sorted({i for i, _, _ in wanted}, key=str)
    out: dict[tuple[UUID, str, datetime], HourBucket] = {}
    for n in range(0, len(ids), _ID_CHUNK):
        q = sa.select(t).where(
            t.c.instance_id.in_(ids[n : n + _ID_CHUNK]), t.c.hour >= lo, t.c.hour <= hi
        )
        for r in conn.execute(q):
            key = (r.instance_id, r.metric, r.hour)
            if key in wanted:
                out[key] = _bucket(r)
    return out


def _deltas(
    existing: Mapping[tuple[UUID, str, datetime], HourBucket],
    samples: Mapping[UUID, Sequence[Sample]],
) -> list[dict[str, Any]]:
    """One row per touched bucket that gains minutes: the aggregate of the new ones."""
    groups: dict[tuple[UUID, str, datetime], list[Sample]] = {}
    for instance_id, batch in samples.items():
        for s in batch:
            groups.setdefault((instance_id, s.metric, s.hour), []).append(s)
    rows: list[dict[str, Any]] = []
    for key, group in groups.items():
        instance_id, metric, hour = key
        stored = existing.get(key)
        skip = stored.minutes if stored is not None else 0
        fresh = [s for s in group if not skip >> s.ts.minute & 1]
        if not fresh:
            continue
        delta = absorb(None, (metric, hour), fresh)
        a = delta.aggregate
        rows.append({
            "instance_id": instance_id, "metric": metric, "hour": hour,
            "epoch_hour": epoch_hour(hour), "avg": a.avg, "min": a.min, "max": a.max,
            "count": a.count, "minutes": delta.minutes,
        })
    return rows


def _upsert(conn: sa.Connection, rows: list[dict[str, Any]]) -> list[Any]:
    """Merge delta rows in SQL; returns the rows inserted or merged, as now stored
    (instance, metric, epoch hour, avg, max)."""
    dialect = conn.dialect.name
    if dialect == "postgresql":
        insert: Any = postgresql.insert(t)
        least: Any = sa.func.least
        greatest: Any = sa.func.greatest
    elif dialect == "sqlite":
        insert = sqlite.insert(t)
        least, greatest = sa.func.min, sa.func.max  # SQLite's scalar two-argument forms
    else:  # pragma: no cover - only the two supported stores reach here
        raise NotImplementedError(f"unsupported database dialect {dialect}")
    # One statement with bound parameters, run as an executemany: SQLAlchemy sends it
    # as multi-row INSERTs (``insertmanyvalues``) without compiling 10,000 literal
    # parameters per chunk, which made a large write (a history) 7 times slower.
    ins = insert
    ex = ins.excluded
    total = t.c.count + ex.count
    stmt = ins.on_conflict_do_update(
        index_elements=[t.c.instance_id, t.c.metric, t.c.hour],
        set_={
            "avg": (t.c.avg * t.c.count + ex.avg * ex.count) / total,
            "min": least(t.c.min, ex.min),
            "max": greatest(t.c.max, ex.max),
            "count": total,
            "minutes": t.c.minutes.op("|")(ex.minutes),
        },
        where=t.c.minutes.op("&")(ex.minutes) == 0,
    ).returning(t.c.instance_id, t.c.metric, t.c.epoch_hour, t.c.avg, t.c.max)
    done: list[Any] = []
    for n in range(0, len(rows), _CHUNK):
        done += conn.execute(stmt, rows[n : n + _CHUNK]).all()
    return done


def apply_samples(
    engine: sa.Engine, samples: Mapping[UUID, Sequence[Sample]]
) -> tuple[int, int]:
    """Fold samples (per instance) into the stored hours; (buckets changed, statements).

    Each attempt runs in its own transaction. Raises RuntimeError if concurrent writers
    keep colliding after a few attempts (they would have to write the same minutes of
    the same hours in a tight loop).
    """
    keys = {i: {(s.metric, s.hour) for s in batch} for i, batch in samples.items()}
    return _apply(engine, keys, lambda existing: _deltas(existing, samples))


def _hour_deltas(
    existing: Mapping[tuple[UUID, str, datetime], HourBucket],
    hours: Mapping[UUID, Sequence[HourlyAggregate]],
) -> list[dict[str, Any]]:
    """One row per history hour that gains minutes: its value for the free minutes."""
    rows: list[dict[str, Any]] = []
    for instance_id, batch in hours.items():
        for a in batch:
            stored = existing.get((instance_id, a.metric, a.hour))
            taken = stored.minutes if stored is not None else 0
            if taken == FULL_HOUR:
                continue
            delta = absorb_hour(None, a)
            free = delta.minutes & ~taken
            rows.append({
                "instance_id": instance_id, "metric": a.metric, "hour": a.hour,
                "epoch_hour": epoch_hour(a.hour), "avg": a.avg, "min": a.min, "max": a.max,
                "count": free.bit_count(), "minutes": free,
            })
    return rows


def apply_hours(
    engine: sa.Engine, hours: Mapping[UUID, Sequence[HourlyAggregate]]
) -> tuple[int, int]:
    """Fold whole hours read from a provider's history (per instance) into the stored
    hours; (buckets changed, statements).

    Each history hour counts for the minutes its stored hour does not count yet
    (:func:`snoozeql.domain.metrics.absorb_hour`), through the same guarded upsert as
    samples: an hour complete already is not touched, a partly collected one gets the
    rest, and reading the same history twice changes nothing.
    """
    keys = {i: {(a.metric, a.hour) for a in batch} for i, batch in hours.items()}
    return _apply(engine, keys, lambda existing: _hour_deltas(existing, hours))


def _apply(
    engine: sa.Engine,
    keys: Mapping[UUID, Iterable[BucketKey]],
    deltas: Any,
) -> tuple[int, int]:
    statements = 0
    for attempt in range(_MAX_ATTEMPTS):
        try:
            with engine.begin() as conn:
                existing = read_buckets(conn, keys)
                rows = deltas(existing)
                if not rows:
                    return 0, statements
                stored = _upsert(conn, rows)
                merged = len(stored)
                statements += math.ceil(len(rows) / _CHUNK)
                if merged:  # last: the lock on the version row is brief
                    _patch_days(conn, stored)
                    versions.bump_metrics(conn, {r["instance_id"] for r in rows})
        except sa.exc.OperationalError as exc:
            # SQLite: a transaction that read before another writer committed cannot
            # write any more ("database is locked" at once, no busy wait): start over.
            if engine.dialect.name != "sqlite" or "locked" not in str(exc.orig):
                raise
            time.sleep(0.01 * (attempt + 1))
            continue
        if merged == len(rows):
            return len(rows), statements
    raise RuntimeError("metric writes kept colliding with another writer; try again")


_LOAD_CHUNK = 20_000
_LOAD_CACHE_KIB = -131_072  # 128 MiB page cache while loading (negative: KiB)


def load_hours(
    conn: sa.Connection, rows: Iterable[tuple[UUID, HourlyAggregate]], minutes: int = FULL_HOUR
) -> int:
    """Insert finished hours as they are (a history import; the demo's seed), in batches.

    Rows whose (instance, metric, hour) is already stored are left alone: this is for
    hours nobody has collected yet, not a merge. ``minutes`` is the mask every row gets
    (default all 60 minutes, so a later collection of the same hour adds nothing).
    Returns how many rows were offered.

    On SQLite the rows go to the driver's ``executemany`` already in the column types'
    stored form (UUID as 32 hex digits, naive UTC text), which is several times faster
    than per-row bind processing; a test reads them back through :func:`series`.
    """
    sqlite_fast = conn.dialect.name == "sqlite"
    if sqlite_fast:
        stmt: Any = (
            "INSERT OR IGNORE INTO metric_hours (instance_id, metric, hour, epoch_hour, "
            "avg, min, max, count, minutes) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
        )
    else:
        stmt = postgresql.insert(t).on_conflict_do_nothing(
            index_elements=[t.c.instance_id, t.c.metric, t.c.hour]
        )
    done = 0
    batch: list[Any] = []
    hour_text: dict[datetime, tuple[str, int]] = {}
    id_text: dict[UUID, str] = {}
    loaded: set[UUID] = set()
    first_hour, last_hour = sys.maxsize, -sys.maxsize  # epoch hours loaded

    def flush() -> None:
        nonlocal done, batch
        if sqlite_fast:
            conn.exec_driver_sql(stmt, batch)
        else:
            conn.execute(stmt, batch)
        done += len(batch)
        batch = []

    previous_cache = None
    if sqlite_fast:
        # Rows come instance by instance, so each lands at a scattered place of the
        # hour index: a larger page cache for the load (then the old one) saves a
        # quarter of the time on a big history.
        previous_cache = conn.exec_driver_sql("PRAGMA cache_size").scalar()
        conn.exec_driver_sql(f"PRAGMA cache_size={_LOAD_CACHE_KIB}")
    try:
        for instance_id, a in rows:
            if sqlite_fast:
                known = hour_text.get(a.hour)
                if known is None:
                    naive = a.hour.astimezone(UTC).replace(tzinfo=None)
                    known = hour_text[a.hour] = (
                        naive.isoformat(sep=" ", timespec="microseconds"), epoch_hour(a.hour)
                    )
                hexed = id_text.get(instance_id)
                if hexed is None:
                    hexed = id_text[instance_id] = instance_id.hex
                batch.append((hexed, a.metric, known[0], known[1], a.avg, a.min, a.max,
                              a.count, minutes))
                number = known[1]
            else:
                loaded.add(instance_id)
                number = epoch_hour(a.hour)
                batch.append({
                    "instance_id": instance_id, "metric": a.metric, "hour": a.hour,
                    "epoch_hour": number, "avg": a.avg, "min": a.min,
                    "max": a.max, "count": a.count, "minutes": minutes,
                })
            if number < first_hour:
                first_hour = number
            if number > last_hour:
                last_hour = number
            if len(batch) >= _LOAD_CHUNK:
                flush()
        if batch:
            flush()
    finally:
        if previous_cache is not None:
            conn.exec_driver_sql(f"PRAGMA cache_size={int(previous_cache)}")
    if done:  # every instance loaded is analysed again (per-instance versions)
        ids = list(id_text.keys() if sqlite_fast else loaded)
        # Rows already stored were left alone: the packed days come from the rows.
        rebuild_days(conn, first_hour // 24, last_hour // 24, ids)
        versions.bump_metrics(conn, ids)
    return done


def series(
    conn: sa.Connection,
    instance_id: UUID,
    start: datetime,
    end: datetime,
    metrics: Sequence[str] | None = None,
) -> list[HourlyAggregate]:
    """The instance's hourly aggregates with ``start <= hour < end``, by metric, hour."""
    q = (
        sa.select(t.c.metric, t.c.hour, t.c.avg, t.c.min, t.c.max, t.c.count)
        .where(t.c.instance_id == instance_id, t.c.hour >= start, t.c.hour < end)
        .order_by(t.c.metric, t.c.hour)
    )
    if metrics:
        q = q.where(t.c.metric.in_(list(metrics)))
    return [HourlyAggregate._make(r) for r in conn.execute(q)]


# Column of the SeriesBlock each metric's (avg, max) go to; a row's metric is sent as
# its code times 2**16 plus its hour offset, so a row is three numbers and a text id.
_BLOCK_CODES = {CONNECTIONS: 0, CPU: 1, READ_IOPS: 2, WRITE_IOPS: 3}
_READ_BATCH = 100_000  # rows fetched at a time: bounded memory at any fleet size
_FIRST, _SECOND, _THIRD, _FOURTH = (itemgetter(k) for k in range(4))


def _raw_batches(conn: sa.Connection, query: sa.Select[Any]) -> Iterator[list[Any]]:
    """The rows of ``query`` as the driver gives them (tuples, no result processing),
    ``_READ_BATCH`` at a time; on PostgreSQL through a server-side cursor, so a fleet's
    lookback is never held whole in the client."""
    compiled = query.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
    params: Any = compiled.params
    if conn.dialect.positional:
        params = tuple(compiled.params[k] for k in compiled.positiontup or ())
    raw = conn.connection.driver_connection
    assert raw is not None
    cursor = raw.cursor(name="snoozeql_fleet") if conn.dialect.name == "postgresql" \
        else raw.cursor()
    try:
        cursor.execute(str(compiled), params)
        while batch := cursor.fetchmany(_READ_BATCH):
            yield batch
    finally:
        cursor.close()


def fleet_series(
    conn: sa.Connection, start: datetime, hours: int, instance_ids: Sequence[UUID] | None = None,
    *, read: str = "packed",
) -> SeriesBlock:
    """The ``hours`` hours from ``start`` of every instance with data in them (or of
    ``instance_ids``), as one :class:`SeriesBlock`: a row per instance with data.

    A fleet's lookback is millions of rows, so they never become Python objects one
    by one. ``read`` says from where:

    - ``"packed"`` (what the analysis uses): the packed copy ``metric_days``, one row
      per instance and day (24 hours x 5 columns of float64 bytes and the mask of hours
      with a row), decoded by NumPy: about 30 times fewer rows than the hours;
    - ``"rows"``: the hourly rows themselves; on PostgreSQL as one binary ``COPY``
      (fixed-size rows of the exact float8 bits, parsed by NumPy), on SQLite as batches
      of raw rows (instance id as text, metric code and hour offset in one integer
      computed in SQL, mean, max) turned into arrays;
    - ``"row-by-row"``: the raw rows on PostgreSQL too (the COPY's reference).

    Every way gives the stored floats, bit for bit, scattered into the block in a few
    array operations.
    """
    start = floor_hour(start)
    base = epoch_hour(start)
    if read == "packed":
        return _packed_block(conn, start, base, hours, instance_ids)
    if read not in ("rows", "row-by-row"):
        raise ValueError(f"read: {read!r} is not packed, rows or row-by-row")
    block, _ = _rows_block(conn, start, base, hours, instance_ids,
                           by_rows=read == "row-by-row")
    return block


def _rows_block(conn: sa.Connection, start: datetime, base: int, hours: int,
                instance_ids: Sequence[UUID] | None,
                by_rows: bool = False) -> tuple[SeriesBlock, np.ndarray]:
    """The block read from the hourly rows, and which of its hours have any row (a
    metric outside the block's columns included): ``present[r, i]``."""
    if conn.dialect.name == "postgresql" and not by_rows:
        keys, parts = _copy_parts(conn, base, hours, instance_ids)
    else:
        keys, parts = _row_parts(conn, base, hours, instance_ids)
    block = SeriesBlock.empty(start, hours, keys)
    present = np.zeros((len(keys), hours), dtype=bool)
    flat = block.values.reshape(-1)
    seen = present.reshape(-1)
    plane = len(block) * hours
    for rows, codes, avgs, maxes in parts:
        metric, offset = codes >> 16, codes & 0xFFFF
        cell = rows * hours + offset
        seen[cell] = True
        for m, column in ((0, 0), (1, 2), (2, 3), (3, 4)):
            take = metric == m
            flat[column * plane + cell[take]] = avgs[take]
            if m == 0:
                flat[plane + cell[take]] = maxes[take]
    return block, present


# --- the packed copy (metric_days) --------------------------------------------------

_DAY = 24
_COLUMNS = 5  # the SeriesBlock's columns, in its order
_PLANE_OF = {CONNECTIONS: 0, CPU: 2, READ_IOPS: 3, WRITE_IOPS: 4}  # avg; max of conns: 1
_CELL = np.dtype("<f8")
_EMPTY_DAY = np.full(_COLUMNS * _DAY, np.nan, dtype=_CELL).tobytes()
_NATIVE_LITTLE = sys.byteorder == "little"
_HOUR_BITS = np.arange(_DAY, dtype=np.int64)


def _cells_of(raw: bytes | memoryview) -> array[float]:
    cells = array("d", bytes(raw))
    if not _NATIVE_LITTLE:  # pragma: no cover - stored little-endian on every machine
        cells.byteswap()
    return cells


def _cells_bytes(cells: array[float]) -> bytes:
    if not _NATIVE_LITTLE:  # pragma: no cover
        cells = array("d", cells)
        cells.byteswap()
    return cells.tobytes()


def _patch_days(conn: sa.Connection, stored: Sequence[Any]) -> None:
    """Put rows just written (instance, metric, epoch hour, avg, max: as stored) into
    their packed days. An hour whose bit was clear (never written, or pruned) starts
    from empty cells, so nothing of a pruned hour comes back."""
    by_day: dict[tuple[UUID, int], list[Any]] = {}
    for r in stored:
        by_day.setdefault((r[0], r[2] // _DAY), []).append(r)
    keys = sorted(by_day, key=lambda k: (k[0].bytes, k[1]))  # the lock order
    dialect = conn.dialect.name
    insert: Any = postgresql.insert(md) if dialect == "postgresql" else sqlite.insert(md)
    conn.execute(
        insert.on_conflict_do_nothing(index_elements=[md.c.instance_id, md.c.day]),
        [{"instance_id": i, "day": d, "present": 0, "cells": _EMPTY_DAY} for i, d in keys],
    )
    updates: list[dict[str, Any]] = []
    for n in range(0, len(keys), _ID_CHUNK):
        q = (
            sa.select(md.c.instance_id, md.c.day, md.c.present, md.c.cells)
            .where(sa.tuple_(md.c.instance_id, md.c.day).in_(keys[n : n + _ID_CHUNK]))
            .order_by(md.c.instance_id, md.c.day)
            .with_for_update()
        )
        for instance_id, day, present, raw in conn.execute(q).all():
            cells = _cells_of(raw)
            first = day * _DAY
            for _, metric, number, avg, top in by_day[(instance_id, day)]:
                h = number - first
                bit = 1 << h
                if not present & bit:
                    present |= bit
                    for c in range(_COLUMNS):
                        cells[c * _DAY + h] = math.nan
                column = _PLANE_OF.get(metric)
                if column is not None:
                    cells[column * _DAY + h] = avg
                    if column == 0:
                        cells[_DAY + h] = top
            updates.append({"k_id": instance_id, "k_day": day, "present": present,
                            "cells": _cells_bytes(cells)})
    if updates:
        conn.execute(
            md.update()
            .where(md.c.instance_id == sa.bindparam("k_id"), md.c.day == sa.bindparam("k_day"))
            .values(present=sa.bindparam("present"), cells=sa.bindparam("cells")),
            updates,
        )


def rebuild_days(conn: sa.Connection, first_day: int, last_day: int,
                 instance_ids: Sequence[UUID] | None = None) -> int:
    """Build the packed days ``first_day..last_day`` (epoch days) of ``instance_ids``
    (default: every instance) from the hourly rows, replacing what was packed; returns
    how many day rows were written. Used after a bulk load and by the migration that
    introduced the packed copy."""
    if last_day < first_day:
        return 0
    if instance_ids is None:
        instance_ids = list(conn.execute(
            sa.select(t.c.instance_id).distinct()
            .where(t.c.epoch_hour >= first_day * _DAY, t.c.epoch_hour < (last_day + 1) * _DAY)
        ).scalars())
        conn.execute(md.delete().where(md.c.day >= first_day, md.c.day <= last_day))
    ids = list(instance_ids)
    written = 0
    for n in range(0, len(ids), _ID_CHUNK):
        chunk = ids[n : n + _ID_CHUNK]
        conn.execute(md.delete().where(md.c.day >= first_day, md.c.day <= last_day,
                                       md.c.instance_id.in_(chunk)))
        # At most _REBUILD_DAYS days at a time: bounded memory, and hour offsets that
        # fit the row read's 16 bits.
        for lo in range(first_day, last_day + 1, _REBUILD_DAYS):
            written += _rebuild_span(conn, chunk, lo, min(last_day, lo + _REBUILD_DAYS - 1))
    return written


_REBUILD_DAYS = 64


def _rebuild_span(conn: sa.Connection, ids: list[UUID], first_day: int, last_day: int) -> int:
    days = last_day - first_day + 1
    start = datetime.fromtimestamp(first_day * _DAY * 3600, UTC)
    block, present = _rows_block(conn, start, first_day * _DAY, days * _DAY, ids,
                                 by_rows=True)
    if not len(block):
        return 0
    # [row, day, column, hour] and [row, day, hour]
    cells = block.values.reshape(_COLUMNS, len(block), days, _DAY).transpose(1, 2, 0, 3)
    bits = present.reshape(len(block), days, _DAY)
    masks = (bits.astype(np.int64) << _HOUR_BITS).sum(axis=2)
    rows = []
    for r, key in enumerate(block.keys):
        for d in np.flatnonzero(masks[r]).tolist():
            rows.append({"instance_id": key, "day": first_day + d,
                         "present": int(masks[r, d]),
                         "cells": np.ascontiguousarray(cells[r, d], dtype=_CELL).tobytes()})
    for n in range(0, len(rows), _CHUNK):
        conn.execute(md.insert(), rows[n : n + _CHUNK])
    return len(rows)


# A packed day in PostgreSQL's binary COPY of (uuid, int4, int4, bytea), none NULL.
_COPY_DAY = np.dtype([
    ("fields", ">i2"), ("n_id", ">i4"), ("id", "V16"), ("n_day", ">i4"), ("day", ">i4"),
    ("n_present", ">i4"), ("present", ">i4"), ("n_cells", ">i4"),
    ("cells", _CELL, (_COLUMNS, _DAY)),
])
_COPY_DAY_LENGTHS = {"fields": 4, "n_id": 16, "n_day": 4, "n_present": 4,
                     "n_cells": _COLUMNS * _DAY * 8}


_OWN_MEMORY = 1 << 24  # bytes from which a block gets memory of its own


def _empty_block(start: datetime, hours: int, keys: Sequence[UUID]) -> SeriesBlock:
    """``SeriesBlock.empty``, a large one in anonymous memory of its own (``mmap``).

    NumPy asks the kernel for transparent huge pages for large arrays
    (``madvise``); where the kernel then compacts memory on the first touch (THP
    ``defrag`` set to ``madvise``, a common default) filling a fleet's block (134 MB at
    10,000 instances x 14 days) took 0.8 s on the benchmark machine instead of 0.1 s."""
    size = len(BLOCK_COLUMNS) * len(keys) * hours * 8
    if size < _OWN_MEMORY or not size:
        return SeriesBlock.empty(start, hours, keys)
    values = np.frombuffer(mmap.mmap(-1, size), np.float64).reshape(
        len(BLOCK_COLUMNS), len(keys), hours)
    values.fill(np.nan)
    return SeriesBlock(floor_hour(start), tuple(keys), values)


def _packed_block(conn: sa.Connection, start: datetime, base: int, hours: int,
                  instance_ids: Sequence[UUID] | None) -> SeriesBlock:
    lo, hi = base // _DAY, (base + hours - 1) // _DAY
    pg = conn.dialect.name == "postgresql"
    day: Any = md.c.day
    if not pg and instance_ids is None:
        # When the window starts at the oldest day kept (the retention is the lookback,
        # by default), nearly every row is read: a scan of the table in its own order
        # is about twice as fast as following the day index to every row (SQLite's
        # planner takes the index; a unary + on the column keeps it from doing so).
        oldest = conn.execute(sa.select(sa.func.min(md.c.day))).scalar()
        if oldest is not None and oldest >= lo - 2:
            day = sa.literal_column("+metric_days.day", sa.Integer)
    q = sa.select(md.c.instance_id if pg else sa.cast(md.c.instance_id, sa.String),
                  md.c.day, md.c.present, md.c.cells) \
        .where(day >= lo, day <= hi, md.c.present != 0)
    row_of: dict[Any, int] = {}
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []

    def place(names: Sequence[Any], days: np.ndarray, masks: np.ndarray,
              cells: np.ndarray) -> None:
        where = (days * _DAY - base)[:, None] + _HOUR_BITS  # each cell's hour in the block
        valid = ((masks[:, None] >> _HOUR_BITS) & 1).astype(bool) \
            & (where >= 0) & (where < hours)
        kept = valid.any(axis=1)
        if kept.all():  # the usual case: no copy of the cells
            keys = list(names)
        else:
            keep = np.flatnonzero(kept)
            if not len(keep):
                return
            keys = [names[j] for j in keep.tolist()]
            where, valid, cells = where[keep], valid[keep], cells[keep]
        for k in keys:
            if k not in row_of:
                row_of[k] = len(row_of)
        rows = np.fromiter(map(row_of.__getitem__, keys), np.int64, len(keys))
        parts.append((rows, where, valid, cells))

    if pg:
        # One binary COPY of fixed-size rows: the cells are the stored bytes as they are.
        if instance_ids is not None:
            q = q.where(md.c.instance_id.in_(list(instance_ids)))

        def parse(recs: np.ndarray) -> None:
            place([bytes(v) for v in recs["id"]], recs["day"].astype(np.int64),
                  recs["present"].astype(np.int64), recs["cells"])

        _copy_binary(conn, q, _COPY_DAY, _COPY_DAY_LENGTHS, parse)
        keys = [UUID(bytes=k) for k in row_of]
    else:
        queries = [q]
        if instance_ids is not None:
            to_db = md.c.instance_id.type.bind_processor(conn.dialect)
            ids = [to_db(i) if to_db else i for i in instance_ids]
            kind = sa.String() if to_db else md.c.instance_id.type
            queries = [
                q.where(md.c.instance_id.in_(
                    sa.bindparam("ids", ids[n : n + _ID_CHUNK], expanding=True, type_=kind)))
                for n in range(0, len(ids), _ID_CHUNK)
            ]
        for query in queries:
            for batch in _raw_batches(conn, query):
                n = len(batch)
                place(list(map(_FIRST, batch)), np.fromiter(map(_SECOND, batch), np.int64, n),
                      np.fromiter(map(_THIRD, batch), np.int64, n),
                      np.frombuffer(b"".join(map(_FOURTH, batch)), _CELL).reshape(
                          n, _COLUMNS, _DAY))
        keys = [UUID(k) for k in row_of]
    block = _empty_block(start, hours, keys)
    for rows, where, valid, cells in parts:
        if valid.all():  # whole days inside the window: no mask to apply
            cell = (rows[:, None] * hours + where).reshape(-1)
            for c in range(_COLUMNS):
                block.values[c].reshape(-1)[cell] = cells[:, c, :].reshape(-1)
            continue
        cell = (rows[:, None] * hours + where)[valid]
        for c in range(_COLUMNS):
            block.values[c].reshape(-1)[cell] = cells[:, c, :][valid]
    return block


_Parts = list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]


def _block_query(base: int, hours: int) -> sa.Select[Any]:
    code = sa.case(_BLOCK_CODES, value=t.c.metric, else_=len(_BLOCK_CODES))
    return sa.select(
        t.c.instance_id,
        sa.cast(code * 65536 + (t.c.epoch_hour - base), sa.Integer),
        t.c.avg,
        t.c.max,
    ).where(t.c.epoch_hour >= base, t.c.epoch_hour < base + hours)


def _row_parts(conn: sa.Connection, base: int, hours: int,
               instance_ids: Sequence[UUID] | None) -> tuple[list[UUID], _Parts]:
    q = _block_query(base, hours)
    q = q.with_only_columns(sa.cast(t.c.instance_id, sa.String), *q.selected_columns[1:])
    queries = [q]
    if instance_ids is not None:
        # Ids as the driver stores them (the raw read below skips SQLAlchemy's
        # processing of parameters as well as of rows).
        to_db = t.c.instance_id.type.bind_processor(conn.dialect)
        ids = [to_db(i) if to_db else i for i in instance_ids]
        kind = sa.String() if to_db else t.c.instance_id.type
        queries = [
            q.where(t.c.instance_id.in_(
                sa.bindparam("ids", ids[n : n + _ID_CHUNK], expanding=True, type_=kind)))
            for n in range(0, len(ids), _ID_CHUNK)
        ]
    row_of: dict[str, int] = {}
    parts: _Parts = []
    for query in queries:
        for batch in _raw_batches(conn, query):
            n = len(batch)
            keys = list(map(_FIRST, batch))
            for k in dict.fromkeys(keys):  # a few new instances per batch
                if k not in row_of:
                    row_of[k] = len(row_of)
            parts.append((
                np.fromiter(map(row_of.__getitem__, keys), np.int64, n),
                np.fromiter(map(_SECOND, batch), np.int64, n),
                np.fromiter(map(_THIRD, batch), np.float64, n),
                np.fromiter(map(_FOURTH, batch), np.float64, n),
            ))
    return [UUID(k) for k in row_of], parts


# A row of PostgreSQL's binary COPY of (uuid, int4, float8, float8), none NULL: the
# field count, then each field's length and its big-endian bytes.
_COPY_ROW = np.dtype([
    ("fields", ">i2"), ("n_id", ">i4"), ("id", "V16"), ("n_code", ">i4"), ("code", ">i4"),
    ("n_avg", ">i4"), ("avg", ">f8"), ("n_max", ">i4"), ("max", ">f8"),
])
_COPY_LENGTHS = {"fields": 4, "n_id": 16, "n_code": 4, "n_avg": 8, "n_max": 8}
_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00"
_COPY_CHUNK = 1 << 23  # bytes parsed at a time (about 155,000 rows)


def _copy_parts(conn: sa.Connection, base: int, hours: int,
                instance_ids: Sequence[UUID] | None) -> tuple[list[UUID], _Parts]:
    q = _block_query(base, hours)
    if instance_ids is not None:
        q = q.where(t.c.instance_id.in_(list(instance_ids)))
    row_of: dict[bytes, int] = {}
    parts: _Parts = []

    def parse(rows: np.ndarray) -> None:
        uniq, inverse = np.unique(rows["id"], return_inverse=True)
        index = np.fromiter(
            (row_of.setdefault(u.tobytes(), len(row_of)) for u in uniq), np.int64, len(uniq))
        parts.append((
            index[inverse], rows["code"].astype(np.int64),
            rows["avg"].astype(np.float64), rows["max"].astype(np.float64),
        ))

    _copy_binary(conn, q, _COPY_ROW, _COPY_LENGTHS, parse)
    return [UUID(bytes=k) for k in row_of], parts


def _copy_binary(conn: sa.Connection, query: sa.Select[Any], row: np.dtype,
                 lengths: Mapping[str, int], parse: Any) -> None:
    """Run ``query`` as a binary ``COPY .. TO STDOUT`` on PostgreSQL and hand its rows
    to ``parse`` as NumPy records of ``row`` (a fixed-size row: every field of a fixed
    length, none NULL; ``lengths`` are the field lengths checked), a chunk of about
    8 MB at a time, so memory stays bounded."""
    compiled = query.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True})
    raw = conn.connection.driver_connection
    assert raw is not None

    def records(buf: bytes) -> None:
        rows = np.frombuffer(buf, row)
        for name, size in lengths.items():
            if not (rows[name] == size).all():
                raise RuntimeError(f"unexpected binary COPY row layout ({name})")
        parse(rows)

    size = row.itemsize
    pending = bytearray()
    header = True

    def take() -> None:
        nonlocal header
        if header and len(pending) >= 19:
            if bytes(pending[:11]) != _COPY_HEADER:
                raise RuntimeError("unexpected binary COPY header")
            extension = int.from_bytes(pending[15:19], "big")
            del pending[: 19 + extension]
            header = False
        if not header:
            whole = len(pending) // size * size
            if whole:
                records(memoryview(pending)[:whole].tobytes())
                del pending[:whole]

    # PostgreSQL sends a CopyData message per row. Going through ``Copy.read`` for each
    # costs a generator and a wait per row, most of the read's time; so the messages
    # libpq already holds are taken straight from it (``PGconn.get_copy_data`` without
    # blocking), and ``Copy.read`` is used only to wait for more, and for the end: the
    # binary trailer comes as a message of its own (with the header if no row came),
    # after which psycopg reads the end of the COPY and its result itself.
    pgconn = raw.pgconn
    with raw.cursor() as cursor, cursor.copy(
            f"COPY ({compiled}) TO STDOUT (FORMAT BINARY)") as copy:
        first = True
        while True:
            nbytes, data = pgconn.get_copy_data(1)
            if nbytes <= 0:  # nothing held yet, or an error: psycopg waits, or raises
                data = copy.read()
                nbytes = len(data)
                if not nbytes:
                    break
            pending += data
            # The trailer alone, or with the header when there is no row at all.
            end = 2 + (19 + int.from_bytes(data[15:19], "big") if first else 0)
            first = False
            if nbytes == end and bytes(data[-2:]) == b"\xff\xff":
                while rest := copy.read():  # only the end is left
                    pending += rest
                break
            if len(pending) >= _COPY_CHUNK:
                take()
    take()
    if pending[-2:] != b"\xff\xff" or (len(pending) - 2) % size:
        raise RuntimeError("unexpected binary COPY trailer")
    if len(pending) > 2:
        records(bytes(pending[:-2]))


def delete_before(conn: sa.Connection, cutoff: datetime) -> int:
    """Remove every hour before ``cutoff`` (the retention job), from the packed days
    too: the days before it go, and the boundary day loses the bits of its pruned hours
    (a later write to such an hour starts from empty cells)."""
    removed: int = conn.execute(t.delete().where(t.c.hour < cutoff)).rowcount
    kept = -(-int(cutoff.timestamp()) // 3600)  # the first epoch hour kept
    day, hour = divmod(kept, _DAY)
    conn.execute(md.delete().where(md.c.day < day))
    if hour:
        keep_bits = ((1 << _DAY) - 1) & ~((1 << hour) - 1)
        conn.execute(md.update().where(md.c.day == day)
                     .values(present=md.c.present.op("&")(keep_bits)))
        conn.execute(md.delete().where(md.c.day == day, md.c.present == 0))
    if removed:
        versions.bump(conn, versions.PRUNED)
    return removed


def count_rows(conn: sa.Connection, instance_id: UUID | None = None) -> int:
    q = sa.select(sa.func.count()).select_from(t)
    if instance_id is not None:
        q = q.where(t.c.instance_id == instance_id)
    return int(conn.execute(q).scalar_one())


