"""The append-only action log: insert and read, plus completing an intent.

An action is written as an intent (result ``pending``, with a lease) before its
provider call and completed once, with its outcome, after it (:func:`complete`). The
database refuses any other change (migration 0009).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

import sqlalchemy as sa

from snoozeql.domain.types import CONFIRMED_AFTER_TAKEOVER
from snoozeql.store.schema import metadata
from snoozeql.store.types import JSONType, UTCDateTime

# Append-only: rows are inserted once, never deleted, and never updated, except that an
# action's intent (result ``pending``, written before the provider call) is completed
# once with its outcome, and its lease renewed until then (database triggers enforce
# it, migration 0009). One row per action attempt, with its outcome.
actions = sa.Table(
    "actions",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("finished_at", UTCDateTime),
    sa.Column("actor", sa.String(128), nullable=False),
    sa.Column("action", sa.String(32), nullable=False),
    sa.Column("instance_id", sa.Uuid),
    sa.Column("instance_name", sa.String(255)),
    sa.Column("provider", sa.String(16)),
    sa.Column("reason", sa.String(255), nullable=False),
    sa.Column("result", sa.String(16), nullable=False),
    sa.Column("error", sa.Text),
    sa.Column("details", JSONType, nullable=False),
    # Audit entries (changes to accounts, schedules, keys, stacks, ...): the object
    # changed and its redacted state before and after (services/audit.py).
    sa.Column("object_kind", sa.String(32)),
    sa.Column("object_id", sa.String(64)),
    sa.Column("object_name", sa.String(255)),
    sa.Column("before", JSONType),
    sa.Column("after", JSONType),
    # While ``pending``: until when the intent's holder is alive (renewed by its
    # heartbeat); a pending entry past it is resolved by a takeover. NULL once completed.
    sa.Column("lease_until", UTCDateTime),
    sa.Index("ix_actions_at", "at"),
    sa.Index("ix_actions_lease_until", "lease_until"),
    sa.Index("ix_actions_instance_id", "instance_id"),
    sa.Index("ix_actions_object_kind", "object_kind"),
)


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
    lease_until: datetime | None = None

    @property
    def outcome(self) -> str:
        """The result as people read it: ``ok (confirmed after takeover)`` for an intent
        a takeover found done."""
        note = self.details.get("resolution")
        return f"{self.result} ({note})" if note == CONFIRMED_AFTER_TAKEOVER else self.result


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
    lease_until: datetime | None = None,
) -> UUID:
    action_id = uuid4()
    # One statement object for every call (its values as parameters): built per call
    # it cost more CPU than the insert.
    conn.execute(_INSERT, {
        "id": action_id, "at": at, "finished_at": finished_at, "actor": actor,
        "action": action, "instance_id": instance_id, "instance_name": instance_name,
        "provider": provider, "reason": reason, "result": result, "error": error,
        "details": details or {}, "object_kind": object_kind, "object_id": object_id,
        "object_name": object_name, "before": before, "after": after,
        "lease_until": lease_until,
    })
    return action_id


_INSERT = actions.insert()


def append_many(conn: sa.Connection, entries: list[dict[str, Any]]) -> list[UUID]:
    """Insert many finished entries (the keyword arguments of :func:`append`, each) in
    one statement; returns their ids in order."""
    if not entries:
        return []
    rows = []
    for e in entries:
        row: dict[str, Any] = {c.name: None for c in actions.c}
        row.update(e)
        row["id"] = uuid4()
        row["details"] = row.get("details") or {}
        rows.append(row)
    conn.execute(actions.insert(), rows)
    return [r["id"] for r in rows]


def complete(
    conn: sa.Connection, action_id: UUID, *, result: str, finished_at: datetime,
    error: str | None = None, details: dict[str, Any] | None = None,
    intent_details: dict[str, Any] | None = None,
) -> bool:
    """Give a pending intent its outcome; False if it was completed already (by a
    takeover, say). ``details`` are merged into the intent's.

    ``intent_details``: the details the caller wrote with the intent, when it has them
    (the lifecycle service): they are not read again (one statement less per action).
    Nothing but this function changes a pending intent's details, so they are still
    the stored ones while it is pending; the UPDATE itself checks it is."""
    if intent_details is None:
        row = conn.execute(_PENDING_DETAILS, {"b_id": action_id}).first()
        if row is None:
            return False
        intent_details = dict(row.details or {})
    merged = {**intent_details, **(details or {})}
    res = conn.execute(_COMPLETE, {"b_id": action_id, "result": result,
                                   "finished_at": finished_at, "error": error,
                                   "details": merged})
    return res.rowcount == 1


_PENDING_DETAILS = sa.select(actions.c.details).where(
    actions.c.id == sa.bindparam("b_id"), actions.c.result == "pending")
_COMPLETE = (actions.update()
             .where(actions.c.id == sa.bindparam("b_id"), actions.c.result == "pending")
             .values(lease_until=None))


def renew(conn: sa.Connection, action_id: UUID, until: datetime) -> bool:
    """Extend a pending intent's lease (its holder is alive)."""
    c = actions.c
    return conn.execute(
        actions.update().where(c.id == action_id, c.result == "pending")
        .values(lease_until=until)
    ).rowcount == 1


def pending(
    conn: sa.Connection, *, instance_ids: list[UUID] | None = None,
    expired_at: datetime | None = None,
) -> list[ActionRecord]:
    """Pending intents, oldest first: of some instances, or only those whose lease ran
    out before ``expired_at``."""
    c = actions.c
    if instance_ids is not None and expired_at is None:  # per action: one statement
        return [_record(r) for r in conn.execute(_PENDING_OF, {"ids": list(instance_ids)})]
    q = sa.select(actions).where(c.result == "pending").order_by(c.at, c.id)
    if instance_ids is not None:
        q = q.where(c.instance_id.in_(instance_ids))
    if expired_at is not None:
        q = q.where(c.lease_until < expired_at)
    return [_record(r) for r in conn.execute(q)]


_PENDING_OF = (sa.select(actions)
               .where(actions.c.result == "pending",
                      actions.c.instance_id.in_(sa.bindparam("ids", expanding=True)))
               .order_by(actions.c.at, actions.c.id))


def dry_run_keys_since(conn: sa.Connection, since: datetime, instance_ids: list[UUID],
                       actor: str) -> set[tuple[UUID, str, str]]:
    """``(instance id, action, details' transition_at as text)`` of ``actor``'s dry-run
    entries since ``since`` for these instances: the keys only, never the entries (a
    10,000-instance dry-run transition read back as records held 18 MB at once)."""
    c = actions.c
    out: set[tuple[UUID, str, str]] = set()
    for i in range(0, len(instance_ids), 500):
        q = sa.select(c.instance_id, c.action, c.details).where(
            c.result == "dry_run", c.actor == actor, c.at >= since,
            c.instance_id.in_(instance_ids[i:i + 500]))
        for r in conn.execute(q):
            out.add((r.instance_id, r.action, str((r.details or {}).get("transition_at"))))
    return out


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
        lease_until=r.lease_until,
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
