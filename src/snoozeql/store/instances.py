"""Queries on the instance inventory.

Discovery writes through :func:`sync_account`, which writes only what changed (see
"discovery writes" below); listings use keyset pagination so the order is stable while
rows change.
"""

from __future__ import annotations

import base64
import functools
import gc
import hashlib
import json
import operator
import os
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from snoozeql.domain.errors import ConflictError, NotFoundError, ValidationError
from snoozeql.domain.types import (
    DiscoveredInstance,
    Instance,
    InstanceKind,
    InstanceStatus,
    ProviderKind,
)
from snoozeql.store import versions
from snoozeql.store.accounts import accounts as accounts_t
from snoozeql.store.schema import metadata
from snoozeql.store.types import LIKE_ESCAPE, JSONType, UTCDateTime, contains_pattern

instances = sa.Table(
    "instances",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("account_id", sa.Uuid, sa.ForeignKey("accounts.id", ondelete="CASCADE")),
    sa.Column("provider", sa.String(16), nullable=False),
    sa.Column("provider_id", sa.String(512), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("engine", sa.String(64), nullable=False),
    sa.Column("engine_version", sa.String(64)),
    sa.Column("instance_class", sa.String(64)),
    sa.Column("region", sa.String(64)),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("raw_status", sa.String(64)),
    sa.Column("tags", JSONType, nullable=False),
    sa.Column("endpoint_host", sa.String(255)),
    sa.Column("endpoint_port", sa.Integer),
    sa.Column("multi_az", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("node_count", sa.Integer, nullable=False, server_default="1"),
    sa.Column("cluster_provider_id", sa.String(512)),
    sa.Column("hourly_cost_cents", sa.Numeric(14, 4)),
    sa.Column("extra", JSONType, nullable=False),
    sa.Column("last_error", sa.Text),
    sa.Column("first_seen_at", UTCDateTime, nullable=False),
    sa.Column("last_seen_at", UTCDateTime, nullable=False),
    sa.Column("missing_since", UTCDateTime),
    # Digest of the synced columns as discovery last wrote them (store/instances.py);
    # NULL after any other write to those columns, so the next sync rewrites the row.
    sa.Column("sync_hash", sa.String(32)),
    sa.UniqueConstraint("provider", "provider_id"),
    sa.Index("ix_instances_name_id", "name", "id"),
    # sort=last_seen_at (migration 0023, _by_last_seen below): an account's rows in id
    # order, its rows by stored last_seen_at, and the missing rows and the rows without
    # an account by it.
    sa.Index("ix_instances_account_id_id", "account_id", "id"),
    sa.Index(
        "ix_instances_seen_by_account", "account_id", "last_seen_at", "id",
        postgresql_where=sa.text("missing_since IS NULL"),
        sqlite_where=sa.text("missing_since IS NULL"),
    ),
    sa.Index(
        "ix_instances_seen_stored", "last_seen_at", "id",
        postgresql_where=sa.text("missing_since IS NOT NULL OR account_id IS NULL"),
        sqlite_where=sa.text("missing_since IS NOT NULL OR account_id IS NULL"),
    ),
    sa.Index(
        "ix_instances_cluster_provider_id", "cluster_provider_id",
        postgresql_where=sa.text("cluster_provider_id IS NOT NULL"),
        sqlite_where=sa.text("cluster_provider_id IS NOT NULL"),
    ),
)

# The columns an Instance is made of, in the dataclass's order.
_INSTANCE_COLUMNS = (
    "id", "account_id", "provider", "provider_id", "kind", "name", "engine",
    "engine_version", "instance_class", "region", "status", "raw_status", "tags",
    "endpoint_host", "endpoint_port", "multi_az", "node_count", "cluster_provider_id",
    "hourly_cost_cents", "first_seen_at", "last_seen_at", "missing_since", "last_error",
    "extra",
)

_PROVIDERS = {k.value: k for k in ProviderKind}
_KINDS = {k.value: k for k in InstanceKind}
_STATUSES = {s.value: s for s in InstanceStatus}


@functools.lru_cache(maxsize=64)
def _reader(keys: tuple[str, ...]) -> Callable[[Any], Instance]:
    """Rows with these column names -> Instance, by position.

    Reading a row's values by name costs about a microsecond each, and an instance has
    24 of them: a 100-row page spent more time here than in the query. The positions
    are looked up once per result shape.
    """
    get = operator.itemgetter(*(keys.index(c) for c in _INSTANCE_COLUMNS))

    def read(r: Any) -> Instance:
        (id_, account_id, provider, provider_id, kind, name, engine, engine_version,
         instance_class, region, status, raw_status, tags, endpoint_host, endpoint_port,
         multi_az, node_count, cluster_provider_id, hourly_cost_cents, first_seen_at,
         last_seen_at, missing_since, last_error, extra) = get(r)
        return Instance(
            id=id_, account_id=account_id, provider=_PROVIDERS[provider],
            provider_id=provider_id, kind=_KINDS[kind], name=name, engine=engine,
            engine_version=engine_version, instance_class=instance_class, region=region,
            status=_STATUSES[status], raw_status=raw_status, tags=dict(tags or {}),
            endpoint_host=endpoint_host, endpoint_port=endpoint_port,
            multi_az=bool(multi_az), node_count=node_count,
            cluster_provider_id=cluster_provider_id, hourly_cost_cents=hourly_cost_cents,
            first_seen_at=first_seen_at, last_seen_at=last_seen_at,
            missing_since=missing_since, last_error=last_error, extra=dict(extra or {}),
        )

    return read


def row_to_instance(r: Any) -> Instance:
    return _reader(tuple(r._fields))(r)


def _instances(result: sa.CursorResult[Any] | Sequence[Any], keys: Iterable[str]
               ) -> list[Instance]:
    read = _reader(tuple(keys))
    return [read(r) for r in result]


def _insert_for(conn: sa.Connection) -> Any:
    if conn.dialect.name == "postgresql":
        return postgresql.insert(instances)
    if conn.dialect.name == "sqlite":
        return sqlite.insert(instances)
    raise NotImplementedError(f"unsupported database dialect {conn.dialect.name}")


# --- discovery writes ----------------------------------------------------------------
#
# A sync reads the account's (provider, provider_id, id, sync_hash) once, encodes each
# discovered instance once, and splits them into new, changed and unchanged by the
# digest of that encoding. Unchanged rows are not written at all: their last_seen_at is
# the account's last_sync_at, which the read path below derives (_LAST_SEEN). New rows
# are streamed into the table with COPY on PostgreSQL; changed ones go through a
# temporary table and one INSERT .. ON CONFLICT DO UPDATE. SQLite runs one prepared
# INSERT .. ON CONFLICT over new and changed rows.


@dataclass(frozen=True)
class SyncWrite:
    """What writing one sync's result did to the store."""

    new: int = 0
    changed: int = 0
    unchanged: int = 0
    missing: int = 0


# A discovered instance to write, with its COPY line body and digest (None: not encoded
# yet; only new rows on PostgreSQL, encoded as they are copied).
_Line = tuple[DiscoveredInstance, str | None, str | None]


@dataclass(frozen=True)
class _Known:
    id: UUID
    sync_hash: str | None
    missing: bool


# Synced columns in COPY order; each discovered instance is encoded as one line of
# them (PostgreSQL COPY text format), and the line's digest is its sync_hash.
_BODY = (
    "provider", "provider_id", "kind", "name", "engine", "engine_version",
    "instance_class", "region", "status", "raw_status", "tags", "endpoint_host",
    "endpoint_port", "multi_az", "node_count", "cluster_provider_id", "hourly_cost_cents",
    "extra",
)
_LINE_COLUMNS = ("id", "account_id", *_BODY, "sync_hash", "first_seen_at", "last_seen_at")
_SYNCED = (*_BODY[2:], "account_id", "sync_hash", "last_seen_at", "missing_since")
_NULL = "\\N"
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
_PG_STAGE = "snoozeql_sync_instances"
_COPY_CHUNK = 2_000  # lines per write, so the server parses while we encode
_SQLITE_CHUNK = 10_000
_ID_CHUNK = 500


def _text(v: str | None) -> str:
    return _NULL if v is None else v.translate(_COPY_ESCAPES)


def _plain(v: str | None) -> str:
    return _NULL if v is None else v


def _encode(d: DiscoveredInstance, cost: Decimal | None) -> str:
    """One instance as COPY text of the _BODY columns (escaped where needed)."""
    tags = orjson.dumps(d.tags, option=orjson.OPT_SORT_KEYS).decode()
    extra = orjson.dumps(d.extra, option=orjson.OPT_SORT_KEYS).decode()
    # Provider-controlled strings rarely hold a tab, newline or backslash; check them
    # all at once and escape field by field only when one does.
    probe = "".join((
        d.provider_id, d.name, d.engine, d.engine_version or "", d.instance_class or "",
        d.region or "", d.raw_status or "", d.endpoint_host or "",
        d.cluster_provider_id or "", tags, extra,
    ))
    esc = _text if any(c in probe for c in "\\\t\n\r") else _plain
    port = d.endpoint_port
    # The enums are StrEnums: joined as their values.
    return "\t".join((
        d.provider, esc(d.provider_id), d.kind, esc(d.name), esc(d.engine),
        esc(d.engine_version), esc(d.instance_class), esc(d.region), d.status,
        esc(d.raw_status), esc(tags), esc(d.endpoint_host),
        _NULL if port is None else str(int(port)), "t" if d.multi_az else "f",
        str(int(d.node_count)), esc(d.cluster_provider_id),
        _NULL if cost is None else str(Decimal(cost)), esc(extra),
    ))


def _digest(body: str) -> str:
    return hashlib.blake2b(body.encode(), digest_size=16).hexdigest()


def sync_account(
    conn: sa.Connection,
    account_id: UUID,
    items: Sequence[DiscoveredInstance],
    seen_at: datetime,
    costs: dict[str, Decimal | None],
) -> SyncWrite:
    """Write one successful sync of an account: everything it saw, and what it did not.

    Instances the sync did not see get ``missing_since`` (never deleted); ones that
    reappear have it cleared. The account row is locked for the transaction, so it
    cannot be deleted half way. The caller must record ``seen_at`` as the account's
    ``last_sync_at`` in the same transaction: the instances this sync found unchanged
    are not rewritten, and their ``last_seen_at`` is derived from it.
    """
    locked = conn.execute(
        sa.select(accounts_t.c.last_sync_at)
        .where(accounts_t.c.id == account_id)
        .with_for_update(key_share=True)
    ).first()
    if locked is None:
        raise NotFoundError(f"account {account_id} no longer exists")
    with _gc_paused():
        result, unseen = _write(conn, items, account_id, seen_at, costs)
    previous: datetime | None = locked.last_sync_at
    if unseen:
        versions.bump(conn, versions.INSTANCES)
    for i in range(0, len(unseen), _ID_CHUNK):
        # Their last sighting was the previous sync (its time is derived until now).
        last_seen = (
            sa.case((instances.c.last_seen_at < previous, previous), else_=instances.c.last_seen_at)
            if previous is not None else instances.c.last_seen_at
        )
        conn.execute(
            instances.update()
            .where(instances.c.id.in_(unseen[i : i + _ID_CHUNK]))
            .values(missing_since=seen_at, last_seen_at=last_seen)
        )
    return SyncWrite(result.new, result.changed, result.unchanged, len(unseen))


def upsert_discovered(
    conn: sa.Connection,
    items: Sequence[DiscoveredInstance],
    account_id: UUID | None,
    seen_at: datetime,
    costs: dict[str, Decimal | None],
) -> SyncWrite:
    """Insert or update instances keyed on (provider, provider_id); nothing is marked
    missing. Discovery uses :func:`sync_account`."""
    with _gc_paused():
        return _write(conn, items, account_id, seen_at, costs)[0]


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Hold off the cyclic garbage collector during a batch write.

    A large sync allocates a few objects per instance, none of them in cycles; that
    is enough to trigger full collections of the whole process heap, which measured
    as a third of a 10,000-instance re-sync. Reference counting still frees
    everything; the collector runs again right after.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _write(
    conn: sa.Connection,
    items: Sequence[DiscoveredInstance],
    account_id: UUID | None,
    seen_at: datetime,
    costs: dict[str, Decimal | None],
) -> tuple[SyncWrite, list[UUID]]:
    """Write new and changed instances; return the counts and the ids of the
    account's instances that ``items`` did not mention (and are not missing yet)."""
    owner = instances.c.account_id == account_id if account_id else instances.c.account_id.is_(None)
    rows = conn.execute(
        sa.select(instances.c.provider, instances.c.provider_id, instances.c.id,
                  instances.c.sync_hash, instances.c.missing_since.is_not(None)).where(owner)
    ).all()
    known = {(p, pid): _Known(i, h, bool(m)) for p, pid, i, h, m in rows}
    latest = {(d.provider, d.provider_id): d for d in items}  # last report wins
    new: list[_Line] = []
    changed: list[_Line] = []
    unchanged = 0
    pg = conn.dialect.name == "postgresql"
    for key, d in latest.items():
        k = known.pop(key, None)
        if k is None and pg:
            # Encoded chunk by chunk while the server writes the previous chunk
            # (_copy_lines): a first sync's Python work overlaps the COPY.
            new.append((d, None, None))
            continue
        body = _encode(d, costs.get(d.provider_id))
        digest = _digest(body)
        if k is None:
            new.append((d, body, digest))
        elif k.sync_hash != digest or k.missing:
            changed.append((d, body, digest))
        else:
            unchanged += 1
    if pg:
        _write_pg(conn, new, changed, account_id, seen_at, costs)
    elif conn.dialect.name == "sqlite":
        _write_sqlite(conn, new, changed, account_id, seen_at, costs)
    else:  # pragma: no cover - only the two supported stores reach here
        raise NotImplementedError(f"unsupported database dialect {conn.dialect.name}")
    if new or changed:
        versions.bump(conn, versions.INSTANCES)
    unseen = [k.id for k in known.values() if not k.missing]
    return SyncWrite(len(new), len(changed), unchanged), unseen


def _uuid4_hex(n: int) -> list[str]:
    """n random (version 4) UUIDs as 32 hex digits, without building UUID objects."""
    h = os.urandom(16 * n).hex()
    return [f"{h[i:i + 12]}4{h[i + 13:i + 16]}{_VARIANT[h[i + 16]]}{h[i + 17:i + 32]}"
            for i in range(0, 32 * n, 32)]


def _uuid4_texts(n: int) -> list[str]:
    """:func:`_uuid4_hex` in the usual 8-4-4-4-12 form."""
    return [f"{s[:8]}-{s[8:12]}-{s[12:16]}-{s[16:20]}-{s[20:]}" for s in _uuid4_hex(n)]


_VARIANT = {c: "89ab"[int(c, 16) & 3] for c in "0123456789abcdef"}


def _copy_lines(
    conn: Any, table: str, rows: list[_Line], account_id: UUID | None, seen_at: datetime,
    costs: dict[str, Decimal | None],
) -> None:
    """COPY the rows, chunk by chunk: each chunk's ids (and lines not encoded yet) are
    made while the server parses and indexes the previous one."""
    account = _NULL if account_id is None else str(account_id)
    seen = seen_at.astimezone(UTC).isoformat()
    with conn.cursor() as cur, cur.copy(
        f"COPY {table} ({', '.join(_LINE_COLUMNS)}) FROM STDIN"
    ) as copy:
        for i in range(0, len(rows), _COPY_CHUNK):
            chunk = rows[i : i + _COPY_CHUNK]
            lines = []
            for row_id, (d, body, digest) in zip(_uuid4_texts(len(chunk)), chunk,
                                                 strict=True):
                if body is None or digest is None:
                    body = _encode(d, costs.get(d.provider_id))
                    digest = _digest(body)
                lines.append(f"{row_id}\t{account}\t{body}\t{digest}\t{seen}\t{seen}\n")
            copy.write("".join(lines))


def _write_pg(
    conn: sa.Connection,
    new: list[_Line],
    changed: list[_Line],
    account_id: UUID | None,
    seen_at: datetime,
    costs: dict[str, Decimal | None],
) -> None:
    if not new and not changed:
        return
    import psycopg  # the PostgreSQL driver: not imported by SQLite stores (CLI start-up)

    raw = conn.connection.driver_connection
    assert raw is not None
    # Losing the last sync in a crash is harmless (the next sync redoes it), so the
    # sync's transaction does not wait for its WAL flush.
    conn.exec_driver_sql("SET LOCAL synchronous_commit = off")
    if new:
        # Straight into the table. A row can only collide if another account (or a
        # sync racing this one) holds the same provider_id: then merge instead.
        try:
            with raw.transaction():  # a savepoint inside the sync's transaction
                _copy_lines(raw, "instances", new, account_id, seen_at, costs)
        except psycopg.errors.UniqueViolation:
            changed = new + changed
    if changed:
        cols = ", ".join(_LINE_COLUMNS)
        with raw.cursor() as cur:
            cur.execute(
                f"CREATE TEMP TABLE IF NOT EXISTS {_PG_STAGE} ON COMMIT DELETE ROWS "
                f"AS SELECT {cols} FROM instances WITH NO DATA"
            )
            cur.execute(f"TRUNCATE {_PG_STAGE}")
        _copy_lines(raw, _PG_STAGE, changed, account_id, seen_at, costs)
        with raw.cursor() as cur:
            cur.execute(
                f"INSERT INTO instances ({cols}) SELECT {cols} FROM {_PG_STAGE} "
                f"ON CONFLICT (provider, provider_id) DO UPDATE SET {_UPDATE_SET}"
            )


_UPDATE_SET = ", ".join(
    "missing_since = NULL" if c == "missing_since" else f"{c} = excluded.{c}"
    for c in _SYNCED
)


def _write_sqlite(
    conn: sa.Connection,
    new: list[_Line],
    changed: list[_Line],
    account_id: UUID | None,
    seen_at: datetime,
    costs: dict[str, Decimal | None],
) -> None:
    # The values as SQLAlchemy's types would bind them on SQLite (UUIDs as 32 hex
    # digits, JSON as text, naive UTC timestamps, costs as float).
    dialect = conn.dialect
    bind = {c: instances.c[c].type._cached_bind_processor(dialect) or (lambda v: v)
            for c in ("account_id", "hourly_cost_cents", "last_seen_at")}
    account, seen = bind["account_id"](account_id), bind["last_seen_at"](seen_at)
    cost, dumps, sort = bind["hourly_cost_cents"], orjson.dumps, orjson.OPT_SORT_KEYS

    def values(rows: list[_Line]) -> list[tuple[Any, ...]]:
        return [
            (
                row_id, account, d.provider, d.provider_id, d.kind, d.name, d.engine,
                d.engine_version, d.instance_class, d.region, d.status, d.raw_status,
                dumps(d.tags, option=sort).decode(), d.endpoint_host, d.endpoint_port,
                d.multi_az, d.node_count, d.cluster_provider_id,
                cost(costs.get(d.provider_id)), dumps(d.extra, option=sort).decode(),
                digest, seen, seen,
            )
            for row_id, (d, _, digest) in zip(_uuid4_hex(len(rows)), rows, strict=True)
        ]

    insert = (f"INSERT INTO instances ({', '.join(_LINE_COLUMNS)}) "
              f"VALUES ({', '.join('?' for _ in _LINE_COLUMNS)})")
    upsert = f"{insert} ON CONFLICT (provider, provider_id) DO UPDATE SET {_UPDATE_SET}"
    if new:
        # A plain INSERT: SQLite's upsert costs more per row even when nothing
        # conflicts. A row can only collide if another account (or a sync racing this
        # one) holds the same provider_id: then merge instead.
        try:
            with conn.begin_nested():  # a savepoint inside the sync's transaction
                fresh = values(new)
                for i in range(0, len(fresh), _SQLITE_CHUNK):
                    conn.exec_driver_sql(insert, fresh[i : i + _SQLITE_CHUNK])
        except sa.exc.IntegrityError:
            changed = new + changed
    rows = values(changed)
    for i in range(0, len(rows), _SQLITE_CHUNK):
        conn.exec_driver_sql(upsert, rows[i : i + _SQLITE_CHUNK])


# --- reads -----------------------------------------------------------------------------

# A synced instance that is not missing was seen by its account's last successful
# sync; rows a sync found unchanged keep an older stored last_seen_at, so it is derived.
_LAST_SEEN = sa.case(
    (
        sa.and_(instances.c.missing_since.is_(None),
                accounts_t.c.last_sync_at > instances.c.last_seen_at),
        accounts_t.c.last_sync_at,
    ),
    else_=instances.c.last_seen_at,
)


def select_full(*extra: Any) -> sa.Select[Any]:
    """The select every full instance read uses (as :func:`get` and :func:`row_to_instance`
    expect it), with ``extra`` columns after the instance's."""
    return sa.select(
        *(c for c in instances.c if c.name != "last_seen_at"), _LAST_SEEN.label("last_seen_at"),
        *extra,
    ).select_from(instances.outerjoin(accounts_t, accounts_t.c.id == instances.c.account_id))


# Statements an action runs for each instance, built once: a statement made per call
# costs more of SQLAlchemy's CPU (construction, cache key) than SQLite takes to run it.
_GET = select_full().where(instances.c.id == sa.bindparam("b_id"))


def get(conn: sa.Connection, instance_id: UUID) -> Instance | None:
    r = conn.execute(_GET, {"b_id": instance_id}).first()
    return row_to_instance(r) if r else None


def get_many(conn: sa.Connection, instance_ids: Sequence[UUID]) -> dict[UUID, Instance]:
    """The instances with these ids (a page of a list: one query), by id."""
    if not instance_ids:
        return {}
    rows = conn.execute(select_full().where(instances.c.id.in_(list(instance_ids))))
    return {i.id: i for i in (row_to_instance(r) for r in rows)}


def find(conn: sa.Connection, *, name: str | None = None, provider_id: str | None = None
         ) -> list[Instance]:
    result = conn.execute(find_query(name=name, provider_id=provider_id))
    return _instances(result, result.keys())


def find_query(*, name: str | None = None, provider_id: str | None = None) -> Any:
    """The statement of :func:`find`."""
    q = select_full().order_by(instances.c.name, instances.c.id)
    if name is not None:
        q = q.where(instances.c.name == name)
    if provider_id is not None:
        # Every provider named: the unique (provider, provider_id) index answers with a
        # probe per provider (provider_id alone read the whole table: 40-80 ms at
        # 100,000 instances).
        q = q.where(instances.c.provider.in_([p.value for p in ProviderKind]),
                    instances.c.provider_id == provider_id)
    return q


def find_by_id_prefix(conn: sa.Connection, prefix: str, limit: int = 10) -> list[Instance]:
    """Instances whose id (32 lower-case hex digits, no dashes) starts with ``prefix``.

    The ids starting with a prefix are one range of the primary key, from the prefix
    padded with ``0`` to it padded with ``f``, on both stores (PostgreSQL orders
    ``uuid`` by its bytes, SQLite holds it as 32 lower-case hex digits): an index range
    scan, where comparing the id as text read every row.
    """
    return [row_to_instance(r) for r in conn.execute(id_prefix_query(prefix, limit))]


def id_prefix_query(prefix: str, limit: int) -> Any:
    """The statement of :func:`find_by_id_prefix`."""
    digits = prefix.lower()
    return (select_full().where(instances.c.id.between(UUID(digits.ljust(32, "0")),
                                                       UUID(digits.ljust(32, "f"))))
            .order_by(instances.c.name, instances.c.id).limit(limit))


def cluster_members(conn: sa.Connection, cluster_provider_id: str) -> list[Instance]:
    q = (select_full().where(instances.c.cluster_provider_id == cluster_provider_id)
         .order_by(instances.c.name))
    return [row_to_instance(r) for r in conn.execute(q)]


def set_status(
    conn: sa.Connection,
    instance_id: UUID,
    status: InstanceStatus,
    raw_status: str | None,
    last_error: str | None = None,
) -> None:
    conn.execute(_SET_STATUS, {"b_id": instance_id, "status": status.value,
                               "raw_status": raw_status, "last_error": last_error})
    versions.bump(conn, versions.STATUSES)


# sync_hash cleared: the next sync rewrites what the provider then reports.
_SET_STATUS = (instances.update().where(instances.c.id == sa.bindparam("b_id"))
               .values(sync_hash=None))


def add(conn: sa.Connection, i: Instance) -> None:
    """Add an instance that no sync reports (registered by hand); ConflictError when its
    (provider, provider_id) is in the inventory already."""
    row = {c: getattr(i, c) for c in _INSTANCE_COLUMNS}
    row.update(provider=i.provider.value, kind=i.kind.value, status=i.status.value)
    try:
        conn.execute(instances.insert().values(**row))
    except sa.exc.IntegrityError:
        raise ConflictError(f"{i.provider.value} database {i.provider_id!r} is already in "
                            "the inventory") from None
    versions.bump(conn, versions.INSTANCES)


def delete(conn: sa.Connection, instance_id: UUID) -> int:
    removed: int = conn.execute(instances.delete().where(instances.c.id == instance_id)).rowcount
    if removed:
        versions.bump(conn, versions.INSTANCES)
    return removed


# --- listing -------------------------------------------------------------------------

_EMPTY: sa.ColumnClause[Any] = sa.literal_column("''")

# Each sort key is a non-NULL expression so keyset comparisons are total.
_SORTS: dict[str, tuple[Any, str]] = {
    "name": (instances.c.name, "str"),
    "engine": (instances.c.engine, "str"),
    "provider": (instances.c.provider, "str"),
    "status": (instances.c.status, "str"),
    # Constants as literals, not parameters: these are the indexed expressions (0017).
    "region": (sa.func.coalesce(instances.c.region, _EMPTY), "str"),
    "instance_class": (sa.func.coalesce(instances.c.instance_class, _EMPTY), "str"),
    "hourly_cost": (sa.func.coalesce(instances.c.hourly_cost_cents, sa.literal_column("-1")),
                    "decimal"),
    "first_seen_at": (instances.c.first_seen_at, "datetime"),
    "last_seen_at": (_LAST_SEEN, "datetime"),
}
SORT_KEYS = tuple(sorted(_SORTS))


@dataclass
class InstanceFilter:
    provider: str | None = None
    account_id: UUID | None = None
    region: str | None = None
    engine: str | None = None
    status: str | None = None
    kind: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    text: str | None = None
    missing: bool | None = None


def _where(f: InstanceFilter, conn: sa.Connection) -> list[Any]:
    return _conditions(f, conn)[0]


def _conditions(f: InstanceFilter, conn: sa.Connection) -> tuple[list[Any], bool]:
    """The filter's predicates, and whether an index lookup already bounded the matches
    to at most SELECTIVE_ROWS candidates (SQLite's search and tag lookups)."""
    w: list[Any] = []
    bounded = False
    if f.provider:
        w.append(instances.c.provider == f.provider)
    if f.account_id:
        w.append(instances.c.account_id == f.account_id)
    if f.region:
        w.append(instances.c.region == f.region)
    if f.engine:
        w.append(instances.c.engine == f.engine)
    if f.status:
        w.append(instances.c.status == f.status)
    if f.kind:
        w.append(instances.c.kind == f.kind)
    for key, value in f.tags.items():
        tag, few = _tag_match(key, value, conn)
        w.append(tag)
        bounded |= few
    if f.text:
        text, few = _text_match(f.text, conn)
        w.extend(text)
        bounded |= few
    if f.missing is True:
        w.append(instances.c.missing_since.is_not(None))
    elif f.missing is False:
        w.append(instances.c.missing_since.is_(None))
    return w, bounded


# Searches and tag filters use the indexes of migration 0017 (store/search.py names
# them): trigram GIN indexes and a JSONB GIN index on PostgreSQL, an FTS5 trigram
# table and a tag table on SQLite. The answers are those of the plain predicates.

_tags_t = sa.table("instance_tags", sa.column("instance_id"), sa.column("key"),
                   sa.column("value"))


# How many rows an index lookup may return before a filter counts as common. Below
# it, the matching rows are fetched and the page is sorted from them (at most this
# many). Above it, the page is read along the sort order's index, checking each row:
# with at least this many matches, about (rows / matches) x limit rows are read.
SELECTIVE_ROWS = 2_000


def _tag_match(key: str, value: str, conn: sa.Connection) -> tuple[Any, bool]:
    if conn.dialect.name == "postgresql":
        doc = sa.cast(sa.literal(json.dumps({key: value})), postgresql.JSONB)
        return instances.c.tags.op("@>")(doc), False
    if conn.dialect.name == "sqlite":
        ids = conn.execute(
            sa.select(_tags_t.c.instance_id)
            .where(_tags_t.c.key == key, _tags_t.c.value == value)
            .limit(SELECTIVE_ROWS + 1)
        ).scalars().all()
        if len(ids) <= SELECTIVE_ROWS:
            return sa.literal_column("instances.id").in_(ids), True
        return sa.exists().where(
            _tags_t.c.instance_id == sa.literal_column("instances.id"),
            _tags_t.c.key == key, _tags_t.c.value == value,
        ), False
    return instances.c.tags[key].as_string() == value, False  # pragma: no cover - others


def search_columns() -> list[Any]:
    """The lowered columns a search compares; PostgreSQL's trigram indexes are on
    exactly these expressions."""
    return [
        sa.func.lower(instances.c.name), sa.func.lower(instances.c.provider_id),
        sa.func.lower(instances.c.engine),
        sa.func.lower(sa.func.coalesce(instances.c.endpoint_host, _EMPTY)),
    ]


def plain_text_match(text: str, pattern: Any = None) -> Any:
    """Case-insensitive literal substring over name, provider id, engine, endpoint
    (``pattern``: a parameter standing for ``contains_pattern(text)``)."""
    like = contains_pattern(text) if pattern is None else pattern
    return sa.or_(*(c.like(like, escape=LIKE_ESCAPE) for c in search_columns()))


_FTS_READY: weakref.WeakKeyDictionary[sa.Engine, bool] = weakref.WeakKeyDictionary()


def _has_fts(conn: sa.Connection) -> bool:
    """Whether migration 0017 made the FTS5 table (SQLite 3.34+); remembered once seen."""
    if _FTS_READY.get(conn.engine):
        return True
    found = conn.exec_driver_sql(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'instances_search'"
    ).first() is not None
    if found:
        _FTS_READY[conn.engine] = True
    return found


def _text_match(text: str, conn: sa.Connection) -> tuple[list[Any], bool]:
    plain = plain_text_match(text)
    needle = text.lower()
    if conn.dialect.name != "sqlite" or len(needle) < 3 or not _has_fts(conn):
        # PostgreSQL plans the trigram indexes for this predicate itself. On SQLite
        # fewer than 3 characters have no trigram: the table is scanned.
        return [plain], False
    # FTS5 finds the rows holding the text as a phrase of trigrams (case folded, a
    # superset of the plain match); the plain predicate then keeps exactly its answers.
    # A common text (more than SELECTIVE_ROWS candidates) is checked along the sort
    # order instead, which finds a page of matches after reading few rows.
    phrase = '"' + needle.replace('"', '""') + '"'
    rowids = conn.exec_driver_sql(
        "SELECT rowid FROM instances_search WHERE instances_search MATCH ? LIMIT ?",
        (phrase, SELECTIVE_ROWS + 1),
    ).scalars().all()
    if len(rowids) > SELECTIVE_ROWS:
        return [plain], False
    return [sa.literal_column("instances.rowid").in_(rowids), plain], True


def _encode_cursor(sort: str, value: Any, row_id: UUID) -> str:
    if isinstance(value, datetime):
        value = value.isoformat()
    elif isinstance(value, Decimal):
        value = str(value)
    raw = json.dumps([sort, value, str(row_id)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str, sort: str) -> tuple[Any, UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        key, value, row_id = json.loads(raw)
        if key != sort:
            raise ValueError("cursor belongs to another sort order")
        kind = _SORTS[sort][1]
        if kind == "datetime":
            value = datetime.fromisoformat(value)
        elif kind == "decimal":
            value = Decimal(value)
        elif not isinstance(value, str):
            raise ValueError("bad value")
        return value, UUID(row_id)
    except (ValueError, TypeError, KeyError, json.JSONDecodeError) as exc:
        reason = str(exc) if "sort order" in str(exc) else "it was not made by this listing"
        raise ValidationError(f"invalid cursor ({reason}); start again from the first page "
                              "(drop the cursor parameter)") from None


def parse_sort(sort: str) -> tuple[str, bool]:
    desc = sort.startswith("-")
    key = sort.lstrip("-")
    if key not in _SORTS:
        raise ValidationError(f"cannot sort by {key!r}; use one of: {', '.join(SORT_KEYS)}")
    return key, desc


def listing_query(
    conn: sa.Connection,
    f: InstanceFilter,
    *,
    sort: str = "name",
    limit: int = 100,
    cursor: str | None = None,
) -> sa.Select[Any]:
    """The statement :func:`list_page` runs (one row more than ``limit``)."""
    key, desc = parse_sort(sort)
    after = _decode_cursor(cursor, key) if cursor else None
    where, bounded = _conditions(f, conn)
    # With few candidates (bounded), sorting them costs less than walks looking for them.
    if key == "last_seen_at" and not bounded:
        merged = _by_last_seen(conn, f, where, desc=desc, limit=limit, after=after)
        if merged is not None:
            return merged
    return derived_order_query(conn, f, key, desc=desc, limit=limit, after=after,
                               where=where)


def derived_order_query(
    conn: sa.Connection, f: InstanceFilter, key: str, *, desc: bool, limit: int,
    after: tuple[Any, UUID] | None, where: list[Any] | None = None,
) -> sa.Select[Any]:
    """The page as one ORDER BY over the sort expression (for ``last_seen_at``, the
    derived value): what every sort but ``last_seen_at`` runs, and the reference the
    merged ``last_seen_at`` page is tested against. ``where``: ``f``'s predicates,
    when made already."""
    expr = _SORTS[key][0]
    q = select_full(expr.label("_sortval")).where(*(_where(f, conn) if where is None else where))
    if after is not None:
        q = q.where(_beyond(expr, after, desc))
    order = (expr.desc(), instances.c.id.desc()) if desc else (expr.asc(), instances.c.id.asc())
    return q.order_by(*order).limit(limit + 1)


def _beyond(expr: Any, after: tuple[Any, Any], desc: bool) -> Any:
    """Rows after the cursor's (value, id) in the (expr, id) order (values, or
    parameters standing for them)."""
    value, last_id = after
    if desc:
        return sa.or_(expr < value, sa.and_(expr == value, instances.c.id < last_id))
    return sa.or_(expr > value, sa.and_(expr == value, instances.c.id > last_id))


# Rows whose last_seen_at reads as stored whatever the accounts' syncs: the condition of
# the partial index ix_instances_seen_stored, written the same way (so that SQLite, which
# compares them as written, uses it).
_AS_STORED = sa.or_(instances.c.missing_since.is_not(None), instances.c.account_id.is_(None))


# sort=last_seen_at merges two index walks per account (and one more) in a UNION ALL;
# with more accounts than this it sorts the filtered rows instead. SQLite allows at
# most 500 terms in a compound SELECT.
MERGED_ACCOUNTS = 100


def _by_last_seen(
    conn: sa.Connection, f: InstanceFilter, where: list[Any], *, desc: bool, limit: int,
    after: tuple[Any, UUID] | None,
) -> sa.Select[Any] | None:
    """A page sorted by the derived ``last_seen_at`` from indexes (migration 0023).

    A row reads as seen at its account's last sync L when it is not missing and its
    stored value is older than L; otherwise as stored. So the rows fall in streams
    that each have an index in the page's order:

    - missing rows and rows without an account: as stored (``ix_instances_seen_stored``,
      partial on exactly ``_AS_STORED``);
    - per account, its rows not missing whose stored value is the one read (stored
      after L, or no L): ``ix_instances_seen_by_account``;
    - per account with an L, its other rows not missing: all read as L, a tie, in id
      order (``ix_instances_account_id_id``).

    Each stream gives its first ``limit + 1`` rows past the cursor and the page is the
    first ``limit + 1`` of their union: the same rows, in the same order, as the
    derived ORDER BY. None (sort the rows instead) with more than ``MERGED_ACCOUNTS``
    accounts, or a PostgreSQL search (3 characters or more) with at most
    ``SELECTIVE_ROWS`` matches. The
    accounts' L are read just before; a sync committing between the two
    statements shows its account's unchanged rows at its previous sync for this page.
    """
    owners = sa.select(accounts_t.c.id, accounts_t.c.last_sync_at)
    if f.account_id:
        owners = owners.where(accounts_t.c.id == f.account_id)
    # Missing rows only: they read as stored, one walk (the accounts' would find nothing
    # after reading every row of theirs).
    found = [] if f.missing else conn.execute(owners.limit(MERGED_ACCOUNTS + 1)).all()
    if len(found) > MERGED_ACCOUNTS:
        return None
    pg = conn.dialect.name == "postgresql"
    if pg and f.text and len(f.text) >= 3:
        # A search the trigram indexes answer: with few matches, sorting them is cheaper
        # than walks that read an account's rows looking for them. (SQLite's search
        # knows its number of candidates already: _conditions.)
        few = conn.execute(sa.select(instances.c.id).where(*where)
                           .limit(SELECTIVE_ROWS + 1)).all()
        if len(few) <= SELECTIVE_ROWS:
            return None
    stored = instances.c.last_seen_at
    # The tie's bound on the stored value, written so SQLite cannot take it for an index
    # range: it would read the tie from ix_instances_seen_by_account and sort all of it
    # (it keeps no statistics of values to see the bound keeps most of the account).
    tied = stored if pg else sa.func.coalesce(stored, stored)
    c_id = instances.c.id
    by_stored = (stored.desc(), c_id.desc()) if desc else (stored.asc(), c_id.asc())

    def stream(seen: Any, *conds: Any, order: Sequence[Any]) -> sa.Subquery:
        cols = [c for c in instances.c if c.name != "last_seen_at"]
        q = (sa.select(*cols, seen.label("last_seen_at"), seen.label("_sortval"))
             .where(*conds, *where).order_by(*order).limit(limit + 1))
        return q.subquery()

    def past_cursor() -> list[Any]:
        if after is None:
            return []
        # The bound alone lets the walk start at the cursor rather than filter up to it.
        bound = stored <= after[0] if desc else stored >= after[0]
        return [bound, _beyond(stored, after, desc)]

    parts = [stream(stored, _AS_STORED, *past_cursor(), order=by_stored)]
    present = instances.c.missing_since.is_(None)
    for account_id, synced in found:
        own = instances.c.account_id == account_id
        later = [] if synced is None else [stored > synced]
        parts.append(stream(stored, own, present, *later, *past_cursor(), order=by_stored))
        if synced is None:
            continue
        tie: list[Any] = []
        if after is not None:
            value, last_id = after
            if synced == value:
                tie = [c_id < last_id if desc else c_id > last_id]
            elif (synced > value) == desc:  # the whole tie is before the cursor
                continue
        seen: Any = sa.literal(synced, UTCDateTime())
        if pg:  # typed, also when the statement is printed with its values inlined
            seen = sa.cast(seen, UTCDateTime())
        parts.append(stream(seen, own, present, tied <= synced, *tie,
                            order=(c_id.desc(),) if desc else (c_id.asc(),)))
    merged = sa.union_all(*(sa.select(p) for p in parts)).subquery()
    order = ((merged.c._sortval.desc(), merged.c.id.desc()) if desc
             else (merged.c._sortval.asc(), merged.c.id.asc()))
    return sa.select(merged).order_by(*order).limit(limit + 1)


def list_page(
    conn: sa.Connection,
    f: InstanceFilter,
    *,
    sort: str = "name",
    limit: int = 100,
    cursor: str | None = None,
) -> tuple[list[Instance], str | None]:
    """One page of instances and the cursor of the next page (None at the end)."""
    key, _ = parse_sort(sort)
    result = conn.execute(listing_query(conn, f, sort=sort, limit=limit, cursor=cursor))
    keys = result.keys()
    rows = result.all()
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        last = rows[-1]
        next_cursor = _encode_cursor(key, last._sortval, last.id)
    return _instances(rows, keys), next_cursor


# --- the listing rendered by the database ------------------------------------------
#
# GET /instances returns its page as JSON. Turning 100 rows into Python values (a
# datetime, a UUID, a decoded JSON object per column) and those into JSON again cost
# more than the query: the database renders each row's JSON object itself (C code on
# both stores), and the API joins the rows. Each object is exactly what the API's
# ``InstanceOut`` serialises the row's Instance to, key for key and value for value
# (tests/store/test_listing_json.py holds the two to that on both stores).

# InstanceOut's fields, in its order.
_JSON_FIELDS = (
    "id", "account_id", "provider", "provider_id", "kind", "name", "engine",
    "engine_version", "instance_class", "region", "status", "raw_status", "tags",
    "endpoint_host", "endpoint_port", "multi_az", "node_count", "cluster_provider_id",
    "hourly_cost_cents", "first_seen_at", "last_seen_at", "missing_since", "last_error",
)
_JSON_TIMES = frozenset({"first_seen_at", "last_seen_at", "missing_since"})


def _json_time(col: Any, pg: bool) -> Any:
    """A timestamp as the API writes it: ``2026-12-02T14:03:00Z``, with ``.ffffff``
    before the ``Z`` only when the microseconds are not zero; NULL stays NULL."""
    if pg:
        utc = sa.func.timezone(sa.literal_column("'UTC'"), col)
        micro = sa.func.to_char(utc, sa.literal_column("'US'"))
        whole = sa.func.to_char(utc, sa.literal_column("'YYYY-MM-DD\"T\"HH24:MI:SS'"))
        frac = sa.case((micro == sa.literal_column("'000000'"), sa.literal_column("''")),
                       else_=sa.literal_column("'.'").op("||")(micro))
        return whole.op("||")(frac).op("||")(sa.literal_column("'Z'"))
    # SQLite holds naive UTC text, 'YYYY-MM-DD HH:MM:SS.ffffff' as SQLAlchemy writes it
    # (or without the fraction, as CURRENT_TIMESTAMP does).
    trimmed = sa.case(
        (sa.func.substr(col, 20).in_([sa.literal_column("''"),
                                      sa.literal_column("'.000000'")]),
         sa.func.substr(col, 1, 19)),
        else_=col,
    )
    return sa.func.replace(trimmed, sa.literal_column("' '"), sa.literal_column("'T'")).op(
        "||")(sa.literal_column("'Z'"))


def _json_uuid(col: Any, pg: bool) -> Any:
    if pg:
        return col  # a uuid becomes its canonical text
    part = [sa.func.substr(col, a, b) for a, b in ((1, 8), (9, 4), (13, 4), (17, 4), (21, 12))]
    dash: Any = sa.literal_column("'-'")
    text: Any = part[0]
    for x in part[1:]:
        text = text.op("||")(dash).op("||")(x)
    return sa.func.lower(text)  # NULL stays NULL


def _json_object(cols: Any, pg: bool) -> Any:
    """One row's JSON object (text) from the columns ``cols`` of a page."""
    args: list[Any] = []
    for key in _JSON_FIELDS:
        col = cols[key]
        if key in ("id", "account_id"):
            value = _json_uuid(col, pg)
        elif key in _JSON_TIMES:
            value = _json_time(col, pg)
        elif key == "hourly_cost_cents":
            value = sa.cast(col, sa.Float if pg else sa.REAL)
        elif key == "tags":
            value = col if pg else sa.func.json(col)
        elif key == "multi_az" and not pg:  # 0/1 in SQLite
            value = sa.func.json(sa.case((col == sa.literal_column("1"),
                                          sa.literal_column("'true'")),
                                         else_=sa.literal_column("'false'")))
        else:
            value = col
        args += [sa.literal_column(f"'{key}'"), value]
    if pg:
        return sa.cast(sa.func.json_build_object(*args), sa.Text)
    return sa.func.json_object(*args, type_=sa.Text)


_JSON_SQL: dict[str, str] = {}


def _json_sql(dialect: sa.Dialect) -> str:
    """The SQL of :func:`_json_object` over the columns of a subquery named ``page``,
    made once per dialect: built and hashed per request, its expression tree (about
    two hundred nodes) cost more than the rows it renders."""
    sql = _JSON_SQL.get(dialect.name)
    if sql is None:
        page = sa.table("page", *(sa.column(k) for k in _JSON_FIELDS))
        expr = _json_object(page.c, dialect.name == "postgresql")
        sql = _JSON_SQL[dialect.name] = str(
            expr.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))
    return sql


def _rendered(page: sa.Select[Any], dialect: sa.Dialect, desc: bool) -> sa.Select[Any]:
    """The page's statement with each of its rows rendered as JSON text, in its order."""
    sub = page.subquery("page")
    # Named, not taken from sub.c: making the subquery's column collection (a proxy
    # per column) cost as much as the rest of the statement. Untyped: only the last
    # row's sort value and id are converted (for the cursor), not every row's.
    sortval: Any = sa.literal_column("page._sortval")
    row_id: Any = sa.literal_column("page.id")
    order = (sortval.desc(), row_id.desc()) if desc else (sortval.asc(), row_id.asc())
    return (sa.select(sa.literal_column(_json_sql(dialect)), sortval, row_id)
            .select_from(sub).order_by(*order))


# The rendered page's statement per shape, with named parameters for the values: built
# per request, the statement (its tree and SQLAlchemy's cache key of it) cost about
# half a millisecond of CPU, as much as the database's rendering of the rows. A shape
# is what decides the SQL apart from values: the dialect, the sort, whether there is a
# cursor, which filters are given (and how many tags), ``missing``. The SQL and the
# rows are those of listing_query's statement (the same predicates, in the same order,
# with parameters where it has values); tests/store/test_listing_json.py holds
# list_page_json, which uses them, to list_page, which does not.
_EQUALS = ("provider", "account_id", "region", "engine", "status", "kind")
_TEMPLATES: dict[tuple[Any, ...], sa.Select[Any]] = {}
_TEMPLATES_MAX = 512  # tags make shapes without end; past this many, built per request


def _shape(conn: sa.Connection, f: InstanceFilter, key: str, desc: bool,
           cursor: bool) -> tuple[Any, ...] | None:
    """The page's shape, or None when its SQL depends on values: ``last_seen_at``
    (merged walks, one per account and its last sync), SQLite's searches and tag
    filters (index lookups decide the predicates)."""
    dialect = conn.dialect.name
    if key == "last_seen_at" or dialect not in ("postgresql", "sqlite"):
        return None
    if dialect == "sqlite" and (f.tags or f.text):
        return None
    return (dialect, key, desc, cursor, tuple(n for n in _EQUALS if getattr(f, n)),
            len(f.tags), bool(f.text), f.missing)


def _template(conn: sa.Connection, shape: tuple[Any, ...]) -> sa.Select[Any]:
    """The rendered page of ``shape`` (see _shape) with its parameters: ``f_<filter>``,
    ``f_tag<i>``, ``f_text``, ``c_value`` and ``c_id`` (the cursor's), ``p_limit``."""
    found = _TEMPLATES.get(shape)
    if found is not None:
        return found
    _, key, desc, cursor, equals, tags, text, missing = shape
    where: list[Any] = [instances.c[n] == sa.bindparam(f"f_{n}", type_=instances.c[n].type)
                        for n in equals]
    where += [instances.c.tags.op("@>")(sa.cast(sa.bindparam(f"f_tag{i}", type_=sa.String()),
                                                postgresql.JSONB))
              for i in range(tags)]  # PostgreSQL only (_shape)
    if text:  # PostgreSQL only (_shape): its trigram indexes take the plain predicate
        where.append(plain_text_match("", sa.bindparam("f_text", type_=sa.String())))
    if missing is True:
        where.append(instances.c.missing_since.is_not(None))
    elif missing is False:
        where.append(instances.c.missing_since.is_(None))
    expr = _SORTS[key][0]
    after = ((sa.bindparam("c_value", type_=expr.type),
              sa.bindparam("c_id", type_=instances.c.id.type)) if cursor else None)
    q = select_full(expr.label("_sortval")).where(*where)
    if after is not None:
        q = q.where(_beyond(expr, after, desc))
    order = (expr.desc(), instances.c.id.desc()) if desc else (expr.asc(), instances.c.id.asc())
    page = q.order_by(*order).limit(sa.bindparam("p_limit", type_=sa.Integer()))
    rendered = _rendered(page, conn.dialect, desc)
    if len(_TEMPLATES) < _TEMPLATES_MAX:
        _TEMPLATES[shape] = rendered
    return rendered


def _template_values(f: InstanceFilter, after: tuple[Any, UUID] | None,
                     limit: int) -> dict[str, Any]:
    values: dict[str, Any] = {f"f_{n}": getattr(f, n) for n in _EQUALS if getattr(f, n)}
    for i, (k, v) in enumerate(f.tags.items()):
        values[f"f_tag{i}"] = json.dumps({k: v})
    if f.text:
        values["f_text"] = contains_pattern(f.text)
    if after is not None:
        values["c_value"], values["c_id"] = after
    values["p_limit"] = limit + 1
    return values


def list_page_json(
    conn: sa.Connection,
    f: InstanceFilter,
    *,
    sort: str = "name",
    limit: int = 100,
    cursor: str | None = None,
) -> tuple[list[str], str | None]:
    """:func:`list_page` with each instance as the JSON text of its API object: the
    page's own statement (its rows, plan and cursor) as a subquery, each of its rows
    rendered, in the page's order."""
    key, desc = parse_sort(sort)
    shape = _shape(conn, f, key, desc, bool(cursor))  # "" is no cursor, as below
    if shape is not None:
        after = _decode_cursor(cursor, key) if cursor else None
        result = conn.execute(_template(conn, shape), _template_values(f, after, limit))
    else:
        page = listing_query(conn, f, sort=sort, limit=limit, cursor=cursor)
        result = conn.execute(_rendered(page, conn.dialect, desc))
    described = result.cursor.description
    rows = result.all()
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        last = rows[-1]
        next_cursor = _encode_cursor(
            key, _from_db(_SORTS[key][0].type, last[1], described[1][1], conn),
            _from_db(instances.c.id.type, last[2], described[2][1], conn))
    return [r[0] for r in rows], next_cursor


def _from_db(type_: Any, value: Any, coltype: Any, conn: sa.Connection) -> Any:
    """A value as a column of ``type_`` reads it (the type's result processing, for
    the driver's type ``coltype`` of the value)."""
    process = type_.dialect_impl(conn.dialect).result_processor(conn.dialect, coltype)
    return process(value) if process is not None else value


def count(conn: sa.Connection, f: InstanceFilter, cap: int | None = None) -> int:
    """How many match; with ``cap``, counting stops there (``cap`` means "at least")."""
    if cap is None:
        q = sa.select(sa.func.count()).select_from(instances).where(*_where(f, conn))
    else:
        sub = sa.select(instances.c.id).where(*_where(f, conn)).limit(cap).subquery()
        q = sa.select(sa.func.count()).select_from(sub)
    return int(conn.execute(q).scalar_one())


def iter_all(conn: sa.Connection, f: InstanceFilter | None = None) -> Iterable[Instance]:
    q = (select_full().where(*_where(f or InstanceFilter(), conn))
         .order_by(instances.c.name, instances.c.id))
    result = conn.execute(q)
    read = _reader(tuple(result.keys()))
    for r in result:
        yield read(r)


def summary(conn: sa.Connection) -> list[tuple[str, str, UUID | None, int, Decimal | None]]:
    """(provider, status, account_id, count, summed hourly cost) per group: one query."""
    q = sa.select(
        instances.c.provider, instances.c.status, instances.c.account_id, sa.func.count(),
        sa.func.sum(instances.c.hourly_cost_cents),
    ).where(instances.c.missing_since.is_(None)).group_by(
        instances.c.provider, instances.c.status, instances.c.account_id)
    return [(r[0], r[1], r[2], int(r[3]), r[4]) for r in conn.execute(q)]
