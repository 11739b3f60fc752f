"""Queries on stacks, their service instances, overrides and applied state.

Plain rows in and out; ``override_entry_rows`` and ``row_to_override`` map an override
row to a domain ``Override`` value and back, while the service keeps secret env values in
the encrypted secrets table (a stored entry's value comes back through a callback).
Live rows are the ones with ``deleted_at IS NULL``; every lookup by name looks at live
rows only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

import sqlalchemy as sa

from snoozeql.domain.stacks import Override, OverrideKind, parse_override
from snoozeql.store.stack_tables import stack_applied as ta
from snoozeql.store.stack_tables import stack_instances as ti
from snoozeql.store.stack_tables import stack_override_entries as te
from snoozeql.store.stack_tables import stack_overrides as to
from snoozeql.store.stack_tables import stack_templates as tt
from snoozeql.store.stack_tables import stacks as ts
from snoozeql.store.types import LIKE_ESCAPE, contains_pattern


@dataclass(frozen=True)
class StackRecord:
    id: UUID
    name: str
    description: str
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None


@dataclass(frozen=True)
class InstanceRecord:
    id: UUID
    stack_id: UUID
    name: str
    template: str
    description: str
    enabled: bool
    seq: int
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None


@dataclass(frozen=True)
class OverrideRow:
    """One override: its kind, mode and the stored entry dicts in order."""

    kind: str
    mode: str
    entries: list[dict[str, Any]]


@dataclass(frozen=True)
class AppliedRecord:
    id: UUID
    stack_id: UUID
    instance_id: UUID
    instance_name: str
    runtime_name: str
    runtime: str
    digest: str
    state: str
    summary: dict[str, Any]
    applied_at: datetime


def _stack(r: Any) -> StackRecord:
    return StackRecord(r.id, r.name, r.description or "", r.created_at, r.updated_at,
                       r.deleted_at)


def _instance(r: Any) -> InstanceRecord:
    return InstanceRecord(
        r.id, r.stack_id, r.name, r.template, r.description or "", bool(r.enabled), r.seq,
        r.created_at, r.updated_at, r.deleted_at,
    )


# ------------------------------------------------------------------------ templates


def template_get(conn: sa.Connection, name: str) -> tuple[UUID, dict[str, Any]] | None:
    r = conn.execute(sa.select(tt.c.id, tt.c.definition).where(tt.c.name == name)).first()
    return (r.id, dict(r.definition)) if r else None


def template_list(conn: sa.Connection) -> list[tuple[UUID, dict[str, Any]]]:
    rows = conn.execute(sa.select(tt.c.id, tt.c.definition).order_by(tt.c.name))
    return [(r.id, dict(r.definition)) for r in rows]


def template_insert(
    conn: sa.Connection, template_id: UUID, name: str, definition: dict[str, Any], now: datetime
) -> None:
    conn.execute(tt.insert().values(
        id=template_id, name=name, definition=definition, created_at=now, updated_at=now,
    ))


def template_delete(conn: sa.Connection, name: str) -> int:
    return conn.execute(tt.delete().where(tt.c.name == name)).rowcount


def template_in_use(conn: sa.Connection, name: str) -> list[tuple[str, str]]:
    """(stack, instance) pairs of live instances in live stacks using the template."""
    q = (
        sa.select(ts.c.name, ti.c.name)
        .select_from(ti.join(ts, ti.c.stack_id == ts.c.id))
        .where(ti.c.template == name, ti.c.deleted_at.is_(None), ts.c.deleted_at.is_(None))
        .order_by(ts.c.name, ti.c.seq)
    )
    return [(r[0], r[1]) for r in conn.execute(q)]


# --------------------------------------------------------------------------- stacks


def stack_insert(conn: sa.Connection, name: str, description: str, now: datetime) -> UUID:
    sid = uuid4()
    conn.execute(ts.insert().values(
        id=sid, name=name, description=description, created_at=now, updated_at=now,
    ))
    return sid


def stack_get(conn: sa.Connection, stack_id: UUID) -> StackRecord | None:
    r = conn.execute(sa.select(ts).where(ts.c.id == stack_id)).first()
    return _stack(r) if r else None


def stack_by_name(conn: sa.Connection, name: str) -> StackRecord | None:
    r = conn.execute(
        sa.select(ts).where(ts.c.name == name, ts.c.deleted_at.is_(None))
    ).first()
    return _stack(r) if r else None


def stack_latest_deleted(conn: sa.Connection, name: str) -> StackRecord | None:
    r = conn.execute(
        sa.select(ts)
        .where(ts.c.name == name, ts.c.deleted_at.is_not(None))
        .order_by(ts.c.deleted_at.desc())
        .limit(1)
    ).first()
    return _stack(r) if r else None


def stack_deleted(conn: sa.Connection, name: str) -> list[StackRecord]:
    """The deleted stacks of that name, most recently deleted first."""
    q = (sa.select(ts).where(ts.c.name == name, ts.c.deleted_at.is_not(None))
         .order_by(ts.c.deleted_at.desc()))
    return [_stack(r) for r in conn.execute(q)]


def stack_list(conn: sa.Connection, include_deleted: bool = False) -> list[StackRecord]:
    q = sa.select(ts).order_by(ts.c.name, ts.c.created_at)
    if not include_deleted:
        q = q.where(ts.c.deleted_at.is_(None))
    return [_stack(r) for r in conn.execute(q)]


def stack_update(conn: sa.Connection, stack_id: UUID, now: datetime, **values: Any) -> None:
    conn.execute(ts.update().where(ts.c.id == stack_id).values(updated_at=now, **values))


def instance_counts(conn: sa.Connection, stack_ids: Sequence[UUID]) -> dict[UUID, int]:
    if not stack_ids:
        return {}
    q = (
        sa.select(ti.c.stack_id, sa.func.count())
        .where(ti.c.stack_id.in_(list(stack_ids)), ti.c.deleted_at.is_(None))
        .group_by(ti.c.stack_id)
    )
    return {r[0]: int(r[1]) for r in conn.execute(q)}


# ------------------------------------------------------------------------ instances


def instance_insert(
    conn: sa.Connection,
    stack_id: UUID,
    name: str,
    template: str,
    description: str,
    enabled: bool,
    now: datetime,
) -> UUID:
    """Insert a live instance; ``seq`` continues the stack's creation order."""
    seq = conn.execute(
        sa.select(sa.func.coalesce(sa.func.max(ti.c.seq), 0)).where(ti.c.stack_id == stack_id)
    ).scalar_one()
    iid = uuid4()
    conn.execute(ti.insert().values(
        id=iid, stack_id=stack_id, name=name, template=template, description=description,
        enabled=enabled, seq=int(seq) + 1, created_at=now, updated_at=now,
    ))
    return iid


def instance_get(conn: sa.Connection, instance_id: UUID) -> InstanceRecord | None:
    r = conn.execute(sa.select(ti).where(ti.c.id == instance_id)).first()
    return _instance(r) if r else None


def instance_by_name(conn: sa.Connection, stack_id: UUID, name: str) -> InstanceRecord | None:
    r = conn.execute(
        sa.select(ti).where(
            ti.c.stack_id == stack_id, ti.c.name == name, ti.c.deleted_at.is_(None)
        )
    ).first()
    return _instance(r) if r else None


def instance_list(
    conn: sa.Connection,
    stack_id: UUID,
    *,
    search: str | None = None,
    enabled: bool | None = None,
) -> list[InstanceRecord]:
    """Live instances in creation order; ``search`` matches name, template, description."""
    q = sa.select(ti).where(ti.c.stack_id == stack_id, ti.c.deleted_at.is_(None))
    if enabled is not None:
        q = q.where(ti.c.enabled == enabled)
    if search:
        like, esc = contains_pattern(search), LIKE_ESCAPE
        q = q.where(sa.or_(
            sa.func.lower(ti.c.name).like(like, escape=esc),
            sa.func.lower(ti.c.template).like(like, escape=esc),
            sa.func.lower(ti.c.description).like(like, escape=esc),
        ))
    return [_instance(r) for r in conn.execute(q.order_by(ti.c.seq))]


def instance_update(conn: sa.Connection, instance_id: UUID, now: datetime, **values: Any) -> None:
    conn.execute(ti.update().where(ti.c.id == instance_id).values(updated_at=now, **values))


# ------------------------------------------------------------------------ overrides


def overrides_for(
    conn: sa.Connection, instance_ids: Iterable[UUID]
) -> dict[UUID, list[OverrideRow]]:
    """Every override of the given instances with their entries, two queries in all."""
    ids = list(instance_ids)
    out: dict[UUID, list[OverrideRow]] = {i: [] for i in ids}
    if not ids:
        return out
    heads = conn.execute(
        sa.select(to.c.id, to.c.instance_id, to.c.kind, to.c.mode)
        .where(to.c.instance_id.in_(ids))
        .order_by(to.c.instance_id, to.c.kind)
    ).all()
    entries: dict[UUID, list[dict[str, Any]]] = {h.id: [] for h in heads}
    if heads:
        rows = conn.execute(
            sa.select(te.c.override_id, te.c.data)
            .where(te.c.override_id.in_([h.id for h in heads]))
            .order_by(te.c.override_id, te.c.position)
        )
        for r in rows:
            entries[r.override_id].append(dict(r.data))
    for h in heads:
        out[h.instance_id].append(OverrideRow(h.kind, h.mode, entries[h.id]))
    return out


def override_put(
    conn: sa.Connection,
    instance_id: UUID,
    kind: str,
    mode: str,
    entries: Sequence[dict[str, Any]],
    now: datetime,
) -> None:
    """Replace the instance's override of ``kind`` (head row plus one row per entry)."""
    override_delete(conn, instance_id, kind)
    oid = uuid4()
    conn.execute(to.insert().values(
        id=oid, instance_id=instance_id, kind=kind, mode=mode, updated_at=now,
    ))
    if entries:
        conn.execute(
            te.insert(),
            [{"override_id": oid, "position": i, "data": dict(e)} for i, e in enumerate(entries)],
        )


def override_delete(conn: sa.Connection, instance_id: UUID, kind: str) -> int:
    oid = conn.execute(
        sa.select(to.c.id).where(to.c.instance_id == instance_id, to.c.kind == kind)
    ).scalar_one_or_none()
    if oid is None:
        return 0
    conn.execute(te.delete().where(te.c.override_id == oid))
    return conn.execute(to.delete().where(to.c.id == oid)).rowcount


# -------------------------------------------------------------------- applied state


def _applied(r: Any) -> AppliedRecord:
    return AppliedRecord(
        r.id, r.stack_id, r.instance_id, r.instance_name, r.runtime_name, r.runtime,
        r.digest, r.state, dict(r.summary or {}), r.applied_at,
    )


def applied_list(conn: sa.Connection, stack_id: UUID) -> list[AppliedRecord]:
    q = sa.select(ta).where(ta.c.stack_id == stack_id).order_by(ta.c.runtime_name)
    return [_applied(r) for r in conn.execute(q)]


def applied_last(conn: sa.Connection, stack_ids: Sequence[UUID]) -> dict[UUID, datetime]:
    """When each stack's objects were last brought up by ``apply``."""
    if not stack_ids:
        return {}
    q = (sa.select(ta.c.stack_id, sa.func.max(ta.c.applied_at))
         .where(ta.c.stack_id.in_(list(stack_ids))).group_by(ta.c.stack_id))
    return {r[0]: r[1] for r in conn.execute(q) if r[1] is not None}


def applied_put(
    conn: sa.Connection,
    *,
    stack_id: UUID,
    instance_id: UUID,
    instance_name: str,
    runtime_name: str,
    runtime: str,
    digest: str,
    state: str,
    summary: dict[str, Any],
    now: datetime,
) -> None:
    values = dict(
        instance_id=instance_id, instance_name=instance_name, runtime=runtime, digest=digest,
        state=state, summary=summary, applied_at=now,
    )
    res = conn.execute(
        ta.update()
        .where(ta.c.stack_id == stack_id, ta.c.runtime_name == runtime_name)
        .values(**values)
    )
    if res.rowcount == 0:
        conn.execute(ta.insert().values(
            id=uuid4(), stack_id=stack_id, runtime_name=runtime_name, **values
        ))


def applied_set_state(
    conn: sa.Connection, stack_id: UUID, runtime_name: str, state: str,
    now: datetime | None = None,
) -> None:
    """Record the object's state; ``now`` (an apply that started it) also moves
    ``applied_at``, while ``down`` leaves it as the time of the last apply."""
    values: dict[str, Any] = {"state": state}
    if now is not None:
        values["applied_at"] = now
    conn.execute(
        ta.update()
        .where(ta.c.stack_id == stack_id, ta.c.runtime_name == runtime_name)
        .values(**values)
    )


def applied_delete(conn: sa.Connection, stack_id: UUID, runtime_name: str) -> int:
    return conn.execute(
        ta.delete().where(ta.c.stack_id == stack_id, ta.c.runtime_name == runtime_name)
    ).rowcount


# ------------------------------------------------------------------ row mapping


def override_entry_rows(o: Override) -> list[dict[str, Any]]:
    """The rows one override is stored as (secret values are blanked by the caller)."""
    data = o.to_dict(reveal_secrets=True)["entries"]
    if o.kind is OverrideKind.HEALTHCHECK:
        return [{"field": k, "value": v} for k, v in data.items()]
    if o.kind is OverrideKind.DOMAINS:
        return [{"domain": d} for d in data]
    return list(data)


def row_to_override(row: OverrideRow, stored_value: Callable[[str], str | None]) -> Override:
    """The override a stored row holds; ``stored_value(key)`` gives the value of an env
    var whose entry is marked ``stored`` (kept in the encrypted secrets table), or None."""
    entries: Any
    if row.kind == OverrideKind.HEALTHCHECK.value:
        entries = {e["field"]: e["value"] for e in row.entries}
    elif row.kind == OverrideKind.DOMAINS.value:
        entries = [e["domain"] for e in row.entries]
    elif row.kind == OverrideKind.ENV_VARS.value:
        entries = []
        for e in row.entries:
            e = dict(e)
            if e.pop("stored", False):
                e["value"] = stored_value(e["key"])
            entries.append(e)
    else:
        entries = row.entries
    return parse_override(row.kind, {"mode": row.mode, "entries": entries})
