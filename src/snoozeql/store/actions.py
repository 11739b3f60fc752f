"""The append-only action log: insert and read, nothing else."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

import sqlalchemy as sa

from snoozeql.store.tables import actions


@dataclass(frozen=True)
class ActionRecord:
    id: UUID
    at: datetime
    finished_at: datetime | None
    actor: str
    action: str
    instance_id: UUID | None
    instance_name: str | None
    provider: str | None
    reason: str
    result: str
    error: str | None
    details: dict[str, Any]
    object_kind: str | None = None
    object_id: str | None = None
    object_name: str | None = None
    before: Any = None
    after: Any = None


def append(
    conn: sa.Connection,
    *,
    at: datetime,
    finished_at: datetime | None,
    actor: str,
    action: str,
    reason: str,
    result: str,
    instance_id: UUID | None = None,
    instance_name: str | None = None,
    provider: str | None = None,
    error: str | None = None,
    details: dict[str, Any] | None = None,
    object_kind: str | None = None,
    object_id: str | None = None,
    object_name: str | None = None,
    before: Any = None,
    after: Any = None,
) -> UUID:
    action_id = uuid4()
    conn.execute(
        actions.insert().values(
            id=action_id,
            at=at,
            finished_at=finished_at,
            actor=actor,
            action=action,
            instance_id=instance_id,
            instance_name=instance_name,
            provider=provider,
            reason=reason,
            result=result,
            error=error,
            details=details or {},
            object_kind=object_kind,
            object_id=object_id,
            object_name=object_name,
            before=before,
            after=after,
        )
    )
    return action_id


def append_many(conn: sa.Connection, rows: list[dict[str, Any]]) -> int:
    """Insert many entries in one batch (a history import; the demo's seed).

    Each row has the keyword arguments of :func:`append`; an ``id`` is added.
    """
    if not rows:
        return 0
    keys = ("at", "finished_at", "actor", "action", "instance_id", "instance_name",
            "provider", "reason", "result", "error", "object_kind", "object_id",
            "object_name", "before", "after")
    values = [{"id": uuid4(), **{k: r.get(k) for k in keys}, "details": r.get("details") or {}}
              for r in rows]
    conn.execute(actions.insert(), values)
    return len(values)


def _record(r: Any) -> ActionRecord:
    return ActionRecord(
        id=r.id,
        at=r.at,
        finished_at=r.finished_at,
        actor=r.actor,
        action=r.action,
        instance_id=r.instance_id,
        instance_name=r.instance_name,
        provider=r.provider,
        reason=r.reason,
        result=r.result,
        error=r.error,
        details=dict(r.details or {}),
        object_kind=r.object_kind,
        object_id=r.object_id,
        object_name=r.object_name,
        before=r.before,
        after=r.after,
    )


def list_audit(
    conn: sa.Connection,
    *,
    kind: str | None = None,
    obj: str | None = None,
    actor: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 1000,
) -> list[ActionRecord]:
    """Audit entries (rows with an ``object_kind``), newest first; ``obj`` matches the
    object's name or id."""
    c = actions.c
    q = (sa.select(actions).where(c.object_kind.is_not(None))
         .order_by(c.at.desc(), c.id.desc()).limit(limit))
    if kind:
        q = q.where(c.object_kind == kind)
    if obj:
        q = q.where(sa.or_(c.object_name == obj, c.object_id == obj))
    if actor:
        q = q.where(c.actor == actor)
    if since:
        q = q.where(c.at >= since)
    if until:
        q = q.where(c.at < until)
    return [_record(r) for r in conn.execute(q)]


def list_recent(
    conn: sa.Connection,
    *,
    instance_id: UUID | None = None,
    action: str | None = None,
    result: str | None = None,
    actor: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 100,
    include_audit: bool = False,
) -> list[ActionRecord]:
    """Actions on instances, newest first; audit entries (changes to objects, read with
    :func:`list_audit`) only when ``include_audit``."""
    q = sa.select(actions).order_by(actions.c.at.desc(), actions.c.id.desc()).limit(limit)
    if not include_audit:
        q = q.where(actions.c.object_kind.is_(None))
    if instance_id:
        q = q.where(actions.c.instance_id == instance_id)
    if action:
        q = q.where(actions.c.action == action)
    if result:
        q = q.where(actions.c.result == result)
    if actor:
        q = q.where(actions.c.actor == actor)
    if since:
        q = q.where(actions.c.at >= since)
    if until:
        q = q.where(actions.c.at < until)
    return [_record(r) for r in conn.execute(q)]
