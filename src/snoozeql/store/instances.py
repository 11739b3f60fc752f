"""Queries on the instance inventory.

Discovery writes through :func:`upsert_discovered` (COPY + one INSERT .. ON CONFLICT on
PostgreSQL, one prepared statement on SQLite, keyed on (provider, provider_id)) and
:func:`mark_missing` (one UPDATE);
listings use keyset pagination so the order is stable while rows change.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from snoozeql.domain.errors import ValidationError
from snoozeql.domain.types import (
    DiscoveredInstance,
    Instance,
    InstanceKind,
    InstanceStatus,
    ProviderKind,
)
from snoozeql.store.tables import instances as t

# Columns that a sync overwrites. id, first_seen_at and account_id are kept.
_SYNCED = (
    "kind", "name", "engine", "engine_version", "instance_class", "region", "status",
    "raw_status", "tags", "endpoint_host", "endpoint_port", "multi_az", "node_count",
    "cluster_provider_id", "hourly_cost_cents", "extra", "last_seen_at", "missing_since",
)


def row_to_instance(r: Any) -> Instance:
    return Instance(
        id=r.id,
        account_id=r.account_id,
        provider=ProviderKind(r.provider),
        provider_id=r.provider_id,
        kind=InstanceKind(r.kind),
        name=r.name,
        engine=r.engine,
        engine_version=r.engine_version,
        instance_class=r.instance_class,
        region=r.region,
        status=InstanceStatus(r.status),
        raw_status=r.raw_status,
        tags=dict(r.tags or {}),
        endpoint_host=r.endpoint_host,
        endpoint_port=r.endpoint_port,
        multi_az=bool(r.multi_az),
        node_count=r.node_count,
        cluster_provider_id=r.cluster_provider_id,
        hourly_cost_cents=r.hourly_cost_cents,
        first_seen_at=r.first_seen_at,
        last_seen_at=r.last_seen_at,
        missing_since=r.missing_since,
        last_error=r.last_error,
        extra=dict(r.extra or {}),
    )


def discovered_row(
    d: DiscoveredInstance, account_id: UUID | None, seen_at: datetime, cost_cents: Decimal | None
) -> dict[str, Any]:
    return {
        "id": uuid4(),
        "account_id": account_id,
        "provider": d.provider.value,
        "provider_id": d.provider_id,
        "kind": d.kind.value,
        "name": d.name,
        "engine": d.engine,
        "engine_version": d.engine_version,
        "instance_class": d.instance_class,
        "region": d.region,
        "status": d.status.value,
        "raw_status": d.raw_status,
        "tags": dict(d.tags),
        "endpoint_host": d.endpoint_host,
        "endpoint_port": d.endpoint_port,
        "multi_az": d.multi_az,
        "node_count": d.node_count,
        "cluster_provider_id": d.cluster_provider_id,
        "hourly_cost_cents": cost_cents,
        "extra": dict(d.extra),
        "first_seen_at": seen_at,
        "last_seen_at": seen_at,
        "missing_since": None,
    }


def _insert_for(conn: sa.Connection) -> Any:
    if conn.dialect.name == "postgresql":
        return postgresql.insert(t)
    if conn.dialect.name == "sqlite":
        return sqlite.insert(t)
    raise NotImplementedError(f"unsupported database dialect {conn.dialect.name}")


def upsert_discovered(
    conn: sa.Connection,
    items: Sequence[DiscoveredInstance],
    account_id: UUID | None,
    seen_at: datetime,
    costs: dict[str, Decimal | None],
) -> int:
    """Write a sync's result: insert or update each instance keyed on (provider, provider_id).

    This is the hot path of every sync, so it builds each row once, in column order,
    and bypasses per-row statement building: on PostgreSQL the rows are streamed with
    COPY into a temporary table and merged with one INSERT .. SELECT .. ON CONFLICT;
    on SQLite one prepared INSERT .. ON CONFLICT runs over the batch.
    """
    return _write(conn, [_values(d, account_id, seen_at, costs.get(d.provider_id))
                         for d in items])


def upsert_batch(conn: sa.Connection, rows: Sequence[dict[str, Any]]) -> int:
    """:func:`upsert_discovered` for rows already shaped like :func:`discovered_row`."""
    return _write(conn, [[r.get(c) for c in _COLUMNS] for r in rows])


_COLUMNS = [c.name for c in t.columns]
_JSON_INDEXES = tuple(i for i, c in enumerate(_COLUMNS) if c in ("tags", "extra"))
_UPDATE_SET = ", ".join(f"{c} = excluded.{c}" for c in _SYNCED)
_PG_STAGE = "snoozeql_sync_instances"
_CHUNK = 10_000


def _values(
    d: DiscoveredInstance, account_id: UUID | None, seen_at: datetime, cost: Decimal | None
) -> list[Any]:
    # Same order as the table's columns (checked below at import time).
    return [
        uuid4(), account_id, d.provider.value, d.provider_id, d.kind.value, d.name, d.engine,
        d.engine_version, d.instance_class, d.region, d.status.value, d.raw_status,
        d.tags, d.endpoint_host, d.endpoint_port, d.multi_az, d.node_count,
        d.cluster_provider_id, cost, d.extra, None, seen_at, seen_at, None,
    ]


assert _COLUMNS == [
    "id", "account_id", "provider", "provider_id", "kind", "name", "engine", "engine_version",
    "instance_class", "region", "status", "raw_status", "tags", "endpoint_host",
    "endpoint_port", "multi_az", "node_count", "cluster_provider_id", "hourly_cost_cents",
    "extra", "last_error", "first_seen_at", "last_seen_at", "missing_since",
], "store.instances._values is out of step with the instances table"


def _write(conn: sa.Connection, rows: list[list[Any]]) -> int:
    if not rows:
        return 0
    for i in range(0, len(rows), _CHUNK):
        chunk = rows[i : i + _CHUNK]
        if conn.dialect.name == "postgresql":
            _upsert_pg(conn, chunk)
        elif conn.dialect.name == "sqlite":
            _upsert_sqlite(conn, chunk)
        else:  # pragma: no cover - only the two supported stores reach here
            raise NotImplementedError(f"unsupported database dialect {conn.dialect.name}")
    return len(rows)


def _upsert_pg(conn: sa.Connection, rows: list[list[Any]]) -> None:
    cols = ", ".join(_COLUMNS)
    raw = conn.connection.driver_connection
    assert raw is not None
    # Losing the last sync in a crash is harmless (the next sync redoes it), so the
    # sync's transaction does not wait for its WAL flush.
    conn.exec_driver_sql("SET LOCAL synchronous_commit = off")
    dumps = json.dumps
    with raw.cursor() as cur:
        cur.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS {_PG_STAGE} "
            f"(LIKE instances INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
        )
        with cur.copy(f"COPY {_PG_STAGE} ({cols}) FROM STDIN") as copy:
            for row in rows:
                for j in _JSON_INDEXES:
                    row[j] = dumps(row[j])  # COPY text input; the server parses JSONB
                copy.write_row(row)
        cur.execute(
            f"INSERT INTO instances ({cols}) SELECT {cols} FROM {_PG_STAGE} "
            f"ON CONFLICT (provider, provider_id) DO UPDATE SET {_UPDATE_SET}"
        )
        cur.execute(f"TRUNCATE {_PG_STAGE}")


def _upsert_sqlite(conn: sa.Connection, rows: list[list[Any]]) -> None:
    dialect = conn.dialect
    procs = [(j, p) for j, c in enumerate(_COLUMNS)
             if (p := t.c[c].type._cached_bind_processor(dialect)) is not None]
    for row in rows:
        for j, p in procs:
            row[j] = p(row[j])
    marks = ", ".join("?" for _ in _COLUMNS)
    conn.exec_driver_sql(
        f"INSERT INTO instances ({', '.join(_COLUMNS)}) VALUES ({marks}) "
        f"ON CONFLICT (provider, provider_id) DO UPDATE SET {_UPDATE_SET}",
        [tuple(r) for r in rows],
    )


def upsert_one_naive(conn: sa.Connection, row: dict[str, Any]) -> None:
    """The per-row approach, kept only so the benchmark can compare against it."""
    ins = _insert_for(conn).values(**row)
    conn.execute(
        ins.on_conflict_do_update(
            index_elements=[t.c.provider, t.c.provider_id],
            set_={c: getattr(ins.excluded, c) for c in _SYNCED},
        )
    )


def mark_missing(conn: sa.Connection, account_id: UUID, seen_at: datetime) -> int:
    """Flag the account's instances that this sync (at ``seen_at``) did not see."""
    return conn.execute(
        t.update()
        .where(
            t.c.account_id == account_id,
            t.c.last_seen_at < seen_at,
            t.c.missing_since.is_(None),
        )
        .values(missing_since=seen_at)
    ).rowcount


def get(conn: sa.Connection, instance_id: UUID) -> Instance | None:
    r = conn.execute(sa.select(t).where(t.c.id == instance_id)).first()
    return row_to_instance(r) if r else None


def find(conn: sa.Connection, *, name: str | None = None, provider_id: str | None = None
         ) -> list[Instance]:
    q = sa.select(t).order_by(t.c.name, t.c.id)
    if name is not None:
        q = q.where(t.c.name == name)
    if provider_id is not None:
        q = q.where(t.c.provider_id == provider_id)
    return [row_to_instance(r) for r in conn.execute(q)]


def cluster_members(conn: sa.Connection, cluster_provider_id: str) -> list[Instance]:
    q = sa.select(t).where(t.c.cluster_provider_id == cluster_provider_id).order_by(t.c.name)
    return [row_to_instance(r) for r in conn.execute(q)]


def set_status(
    conn: sa.Connection,
    instance_id: UUID,
    status: InstanceStatus,
    raw_status: str | None,
    last_error: str | None = None,
) -> None:
    conn.execute(
        t.update()
        .where(t.c.id == instance_id)
        .values(status=status.value, raw_status=raw_status, last_error=last_error)
    )


def insert_one(conn: sa.Connection, row: dict[str, Any]) -> None:
    conn.execute(t.insert().values(**row))


def delete(conn: sa.Connection, instance_id: UUID) -> int:
    return conn.execute(t.delete().where(t.c.id == instance_id)).rowcount


# --- listing -------------------------------------------------------------------------

# Each sort key is a non-NULL expression so keyset comparisons are total.
_SORTS: dict[str, tuple[Any, str]] = {
    "name": (t.c.name, "str"),
    "engine": (t.c.engine, "str"),
    "provider": (t.c.provider, "str"),
    "status": (t.c.status, "str"),
    "region": (sa.func.coalesce(t.c.region, ""), "str"),
    "instance_class": (sa.func.coalesce(t.c.instance_class, ""), "str"),
    "hourly_cost": (sa.func.coalesce(t.c.hourly_cost_cents, -1), "decimal"),
    "first_seen_at": (t.c.first_seen_at, "datetime"),
    "last_seen_at": (t.c.last_seen_at, "datetime"),
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


def _where(f: InstanceFilter) -> list[Any]:
    w: list[Any] = []
    if f.provider:
        w.append(t.c.provider == f.provider)
    if f.account_id:
        w.append(t.c.account_id == f.account_id)
    if f.region:
        w.append(t.c.region == f.region)
    if f.engine:
        w.append(t.c.engine == f.engine)
    if f.status:
        w.append(t.c.status == f.status)
    if f.kind:
        w.append(t.c.kind == f.kind)
    for key, value in f.tags.items():
        w.append(t.c.tags[key].as_string() == value)
    if f.text:
        like = f"%{f.text.lower().replace('%', '').replace('_', '')}%"
        w.append(
            sa.or_(
                sa.func.lower(t.c.name).like(like),
                sa.func.lower(t.c.provider_id).like(like),
                sa.func.lower(t.c.engine).like(like),
                sa.func.lower(sa.func.coalesce(t.c.endpoint_host, "")).like(like),
            )
        )
    if f.missing is True:
        w.append(t.c.missing_since.is_not(None))
    elif f.missing is False:
        w.append(t.c.missing_since.is_(None))
    return w


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
        raise ValidationError(f"invalid cursor: {exc}") from None


def parse_sort(sort: str) -> tuple[str, bool]:
    desc = sort.startswith("-")
    key = sort.lstrip("-")
    if key not in _SORTS:
        raise ValidationError(f"cannot sort by {key!r}; use one of: {', '.join(SORT_KEYS)}")
    return key, desc


def list_page(
    conn: sa.Connection,
    f: InstanceFilter,
    *,
    sort: str = "name",
    limit: int = 100,
    cursor: str | None = None,
) -> tuple[list[Instance], str | None]:
    """One page of instances and the cursor of the next page (None at the end)."""
    key, desc = parse_sort(sort)
    expr = _SORTS[key][0]
    q = sa.select(t, expr.label("_sortval")).where(*_where(f))
    if cursor:
        value, last_id = _decode_cursor(cursor, key)
        if desc:
            q = q.where(sa.or_(expr < value, sa.and_(expr == value, t.c.id < last_id)))
        else:
            q = q.where(sa.or_(expr > value, sa.and_(expr == value, t.c.id > last_id)))
    order = (expr.desc(), t.c.id.desc()) if desc else (expr.asc(), t.c.id.asc())
    rows = conn.execute(q.order_by(*order).limit(limit + 1)).all()
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        last = rows[-1]
        next_cursor = _encode_cursor(key, last._sortval, last.id)
    return [row_to_instance(r) for r in rows], next_cursor


def count(conn: sa.Connection, f: InstanceFilter) -> int:
    return conn.execute(sa.select(sa.func.count()).select_from(t).where(*_where(f))).scalar_one()


def iter_all(conn: sa.Connection, f: InstanceFilter | None = None) -> Iterable[Instance]:
    q = sa.select(t).where(*_where(f or InstanceFilter())).order_by(t.c.name, t.c.id)
    for r in conn.execute(q):
        yield row_to_instance(r)
