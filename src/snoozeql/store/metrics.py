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
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any
from uuid import UUID

import numpy as np
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from snoozeql.domain.metrics import (
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
from snoozeql.store.metric_tables import metric_hours as t

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
    "series",
]

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


def _upsert(conn: sa.Connection, rows: list[dict[str, Any]]) -> int:
    """Merge delta rows in SQL; returns how many rows were inserted or merged."""
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
    ).returning(t.c.metric)  # rowcount of a multi-row upsert is not portable
    done = 0
    for n in range(0, len(rows), _CHUNK):
        done += len(conn.execute(stmt, rows[n : n + _CHUNK]).all())
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
                merged = _upsert(conn, rows)
                statements += math.ceil(len(rows) / _CHUNK)
                if merged:  # last: the lock on the version row is brief
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
            else:
                loaded.add(instance_id)
                batch.append({
                    "instance_id": instance_id, "metric": a.metric, "hour": a.hour,
                    "epoch_hour": epoch_hour(a.hour), "avg": a.avg, "min": a.min,
                    "max": a.max, "count": a.count, "minutes": minutes,
                })
            if len(batch) >= _LOAD_CHUNK:
                flush()
        if batch:
            flush()
    finally:
        if previous_cache is not None:
            conn.exec_driver_sql(f"PRAGMA cache_size={int(previous_cache)}")
    if done:  # every instance loaded is analysed again (per-instance versions)
        versions.bump_metrics(conn, id_text.keys() if sqlite_fast else loaded)
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
    *, by_rows: bool = False,
) -> SeriesBlock:
    """The ``hours`` hours from ``start`` of every instance with data in them (or of
    ``instance_ids``), as one :class:`SeriesBlock`: a row per instance with data.

    A fleet's lookback is millions of rows, so they never become Python objects one
    by one beyond what the driver must hand over. On PostgreSQL they come as one binary
    ``COPY`` (fixed-size rows of the exact float8 bits, parsed by NumPy: no Python
    object per value, only the message libpq hands over per row); on SQLite, whose
    driver can only give tuples, as batches of
    raw rows (instance id as text, metric code and hour offset in one integer computed
    in SQL, mean, max) turned into arrays. Either way the floats are the stored ones,
    bit for bit, scattered into the block in a few array operations. ``by_rows`` reads
    PostgreSQL row by row too (the benchmark's reference for the COPY).
    """
    start = floor_hour(start)
    base = epoch_hour(start)
    if conn.dialect.name == "postgresql" and not by_rows:
        keys, parts = _copy_parts(conn, base, hours, instance_ids)
    else:
        keys, parts = _row_parts(conn, base, hours, instance_ids)
    block = SeriesBlock.empty(start, hours, keys)
    flat = block.values.reshape(-1)
    plane = len(block) * hours
    for rows, codes, avgs, maxes in parts:
        metric, offset = codes >> 16, codes & 0xFFFF
        cell = rows * hours + offset
        for m, column in ((0, 0), (1, 2), (2, 3), (3, 4)):
            take = metric == m
            flat[column * plane + cell[take]] = avgs[take]
            if m == 0:
                flat[plane + cell[take]] = maxes[take]
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
    compiled = q.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True})
    raw = conn.connection.driver_connection
    assert raw is not None
    row_of: dict[bytes, int] = {}
    parts: _Parts = []

    def parse(buf: bytes | bytearray | memoryview) -> None:
        rows = np.frombuffer(buf, _COPY_ROW)
        for name, size in _COPY_LENGTHS.items():
            if not (rows[name] == size).all():
                raise RuntimeError(f"unexpected binary COPY row layout ({name})")
        uniq, inverse = np.unique(rows["id"], return_inverse=True)
        index = np.fromiter(
            (row_of.setdefault(u.tobytes(), len(row_of)) for u in uniq), np.int64, len(uniq))
        parts.append((
            index[inverse], rows["code"].astype(np.int64),
            rows["avg"].astype(np.float64), rows["max"].astype(np.float64),
        ))

    size = _COPY_ROW.itemsize
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
                parse(memoryview(pending)[:whole].tobytes())
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
        parse(bytes(pending[:-2]))
    return [UUID(bytes=k) for k in row_of], parts


def delete_before(conn: sa.Connection, cutoff: datetime) -> int:
    """Remove every hour before ``cutoff`` (the retention job)."""
    removed: int = conn.execute(t.delete().where(t.c.hour < cutoff)).rowcount
    if removed:
        versions.bump(conn, versions.PRUNED)
    return removed


def count_rows(conn: sa.Connection, instance_id: UUID | None = None) -> int:
    q = sa.select(sa.func.count()).select_from(t)
    if instance_id is not None:
        q = q.where(t.c.instance_id == instance_id)
    return int(conn.execute(q).scalar_one())


