"""Queries on schedules, assignments, overrides, reconcile claims and stop intervals.

The claim functions are the exactly-once mechanism of the reconciler: :func:`claim`
inserts (instance, kind, at) and relies on the primary key, so of several reconcilers
racing on one PostgreSQL exactly one wins; a failed or abandoned (lease expired) claim
is taken over with one conditional UPDATE, which is atomic on both stores.

The tables (defined here, on the one ``metadata`` of :mod:`snoozeql.store.schema`):

- A schedule is stored as its validated document (``schedule_document``), so the
  store never holds a schedule the evaluator would refuse.
- An assignment names its target once, in ``target`` (``instance:<id>``,
  ``account:<id>``, ``tag:key=value``, ``selector:<digest>``), which makes "the same
  assignment twice" a unique-key violation; the id columns are there for the cascading
  deletes.
- ``reconcile_claims`` is how several replicas act exactly once: a reconciler inserts
  (instance, kind, at) before it acts; the unique key lets only one of them win. The
  row then records the outcome, which also remembers the last transition acted on.
- ``stop_intervals`` are the periods SnoozeQL kept an instance stopped; realized
  savings are computed from them with the cost known at the time of the stop.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

import sqlalchemy as sa

from snoozeql.domain.errors import ConflictError
from snoozeql.domain.schedules.assignment import (
    AssignmentRecord,
    OverrideRecord,
    ScheduleRecord,
    Target,
)
from snoozeql.domain.schedules.model import Schedule, schedule_document
from snoozeql.domain.schedules.reconcile import ClaimState
from snoozeql.domain.types import Instance
from snoozeql.store import versions
from snoozeql.store.schema import metadata
from snoozeql.store.types import JSONType, UTCDateTime

schedules = sa.Table(
    "schedules",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("name", sa.String(128), nullable=False, unique=True),
    sa.Column("definition", JSONType, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    # When several schedules match one instance the highest priority wins (0006).
    sa.Column("priority", sa.Integer, nullable=False, server_default="0"),
)

schedule_assignments = sa.Table(
    "schedule_assignments",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column(
        "schedule_id", sa.Uuid, sa.ForeignKey("schedules.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("target", sa.String(600), nullable=False),
    sa.Column("instance_id", sa.Uuid, sa.ForeignKey("instances.id", ondelete="CASCADE")),
    sa.Column("account_id", sa.Uuid, sa.ForeignKey("accounts.id", ondelete="CASCADE")),
    sa.Column("tag_key", sa.String(255)),
    sa.Column("tag_value", sa.String(255)),
    sa.Column("created_at", UTCDateTime, nullable=False),
    # kind ``selector``: the rule tree (domain/selectors.py); ``target`` holds its digest.
    sa.Column("selector", JSONType),
    sa.UniqueConstraint("schedule_id", "target"),
    # A page of instances reads its own assignments (and the rule-based ones, NULL
    # here) without scanning every instance's; deleting an instance finds its rows.
    sa.Index("ix_schedule_assignments_instance_id", "instance_id"),
)

# One override per instance; a new one replaces the old. Expired rows stay until
# replaced: their ``until`` is the instant the schedule takes over again.
instance_overrides = sa.Table(
    "instance_overrides",
    metadata,
    sa.Column(
        "instance_id", sa.Uuid, sa.ForeignKey("instances.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("until", UTCDateTime, nullable=False),
    sa.Column("reason", sa.String(255), nullable=False),
    sa.Column("created_by", sa.String(128), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
)

reconcile_claims = sa.Table(
    "reconcile_claims",
    metadata,
    sa.Column("instance_id", sa.Uuid, primary_key=True),
    # transition | enforce | override | warn
    sa.Column("kind", sa.String(16), primary_key=True),
    sa.Column("at", UTCDateTime, primary_key=True),
    sa.Column("schedule_id", sa.Uuid),
    # claimed (in flight, until lease_until) | done | failed (retried next run)
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("result", sa.String(16)),
    sa.Column("owner", sa.String(128), nullable=False),
    sa.Column("claimed_at", UTCDateTime, nullable=False),
    sa.Column("lease_until", UTCDateTime, nullable=False),
    sa.Column("finished_at", UTCDateTime),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="1"),
    sa.Index("ix_reconcile_claims_claimed_at", "claimed_at"),
)

stop_intervals = sa.Table(
    "stop_intervals",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column(
        "instance_id", sa.Uuid, sa.ForeignKey("instances.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("instance_name", sa.String(255), nullable=False),
    sa.Column("account_id", sa.Uuid),
    sa.Column("schedule_id", sa.Uuid),
    sa.Column("schedule_name", sa.String(128)),
    sa.Column("stopped_at", UTCDateTime, nullable=False),
    sa.Column("started_at", UTCDateTime),
    sa.Column("hourly_cost_cents", sa.Numeric(14, 4)),
    sa.Column("node_count", sa.Integer, nullable=False, server_default="1"),
    sa.Column("details", JSONType, nullable=False),
    sa.Index("ix_stop_intervals_instance_id", "instance_id"),
    sa.Index("ix_stop_intervals_stopped_at", "stopped_at"),
)

# --------------------------------------------------------------------------- schedules


def _schedule(r: Any) -> ScheduleRecord:
    return ScheduleRecord(r.id, r.name, dict(r.definition), r.created_at, r.updated_at,
                          int(r.priority or 0))


def _taken(name: str) -> ConflictError:
    return ConflictError(f"a schedule named {name!r} already exists")


def insert_schedule(conn: sa.Connection, schedule: Schedule, now: datetime,
                    priority: int = 0) -> ScheduleRecord:
    """Store a new schedule; :class:`ConflictError` if its name is taken (also when a
    concurrent insert of the same name won)."""
    rec = ScheduleRecord(uuid4(), schedule.name, schedule_document(schedule), now, now, priority)
    try:
        conn.execute(schedules.insert().values(
            id=rec.id, name=rec.name, definition=rec.definition, created_at=now,
            updated_at=now, priority=priority,
        ))
    except sa.exc.IntegrityError:
        raise _taken(schedule.name) from None
    versions.bump(conn, versions.SCHEDULES)
    return rec


def update_schedule(conn: sa.Connection, rec: ScheduleRecord, schedule: Schedule,
                    now: datetime, priority: int) -> ScheduleRecord:
    """Replace ``rec``'s definition and priority; :class:`ConflictError` if the new
    name is another schedule's."""
    new = ScheduleRecord(rec.id, schedule.name, schedule_document(schedule), rec.created_at, now,
                         priority)
    try:
        conn.execute(schedules.update().where(schedules.c.id == rec.id).values(
            name=new.name, definition=new.definition, updated_at=now, priority=priority))
    except sa.exc.IntegrityError:
        raise _taken(schedule.name) from None
    versions.bump(conn, versions.SCHEDULES)
    return new


def delete_schedule(conn: sa.Connection, sid: UUID) -> int:
    conn.execute(schedule_assignments.delete().where(schedule_assignments.c.schedule_id == sid))
    removed: int = conn.execute(schedules.delete().where(schedules.c.id == sid)).rowcount
    versions.bump(conn, versions.SCHEDULES)
    return removed


def get_schedule(conn: sa.Connection, sid: UUID) -> ScheduleRecord | None:
    r = conn.execute(sa.select(schedules).where(schedules.c.id == sid)).first()
    return _schedule(r) if r else None


def find_schedule(conn: sa.Connection, name: str) -> ScheduleRecord | None:
    r = conn.execute(sa.select(schedules).where(schedules.c.name == name)).first()
    return _schedule(r) if r else None


def list_schedules(conn: sa.Connection) -> list[ScheduleRecord]:
    return [_schedule(r) for r in conn.execute(sa.select(schedules).order_by(schedules.c.name))]


# --------------------------------------------------------------------------- assignments


def _assignment(r: Any) -> AssignmentRecord:
    return AssignmentRecord(
        r.id, r.schedule_id, r.kind, r.target, r.instance_id, r.account_id, r.tag_key,
        r.tag_value, r.created_at, dict(r.selector) if r.selector is not None else None,
    )


def insert_assignment(conn: sa.Connection, schedule: ScheduleRecord, target: Target,
                      now: datetime) -> AssignmentRecord:
    """Assign ``schedule`` to ``target``; :class:`ConflictError` if it already is (also
    when a concurrent insert of the same assignment won)."""
    rec = AssignmentRecord(uuid4(), schedule.id, target.kind, target.target,
                           target.instance_id, target.account_id, target.tag_key,
                           target.tag_value, now, target.selector)
    try:
        conn.execute(schedule_assignments.insert().values(
            id=rec.id, schedule_id=rec.schedule_id, kind=rec.kind, target=rec.target,
            instance_id=rec.instance_id, account_id=rec.account_id, tag_key=rec.tag_key,
            tag_value=rec.tag_value, selector=rec.selector, created_at=now,
        ))
    except sa.exc.IntegrityError:
        raise ConflictError(f"schedule {schedule.name!r} is already assigned to "
                            f"{target.target}") from None
    versions.bump(conn, versions.SCHEDULES)
    return rec


def delete_assignment(conn: sa.Connection, schedule_id: UUID, target: str) -> int:
    removed: int = conn.execute(schedule_assignments.delete().where(
        schedule_assignments.c.schedule_id == schedule_id,
        schedule_assignments.c.target == target,
    )).rowcount
    versions.bump(conn, versions.SCHEDULES)
    return removed


def list_assignments(conn: sa.Connection, schedule_id: UUID | None = None
                     ) -> list[AssignmentRecord]:
    q = sa.select(schedule_assignments).order_by(
        schedule_assignments.c.created_at, schedule_assignments.c.id
    )
    if schedule_id is not None:
        q = q.where(schedule_assignments.c.schedule_id == schedule_id)
    return [_assignment(r) for r in conn.execute(q)]


# Built once, so that a table page pays for executing them, not for building and
# compiling them again.
_OWN = (
    sa.select(schedule_assignments)
    .where(schedule_assignments.c.instance_id.in_(sa.bindparam("ids", expanding=True)))
)
_RULES = sa.select(schedule_assignments).where(schedule_assignments.c.instance_id.is_(None))


def own_assignments(conn: sa.Connection, instance_ids: Collection[UUID]
                    ) -> list[AssignmentRecord]:
    """The assignments made to these instances themselves (through
    ``ix_schedule_assignments_instance_id``: the rows read follow the instances asked
    about, not every instance's own assignments)."""
    if not instance_ids:
        return []
    return [_assignment(r) for r in conn.execute(_OWN, {"ids": list(instance_ids)})]


def rule_assignments(conn: sa.Connection) -> list[AssignmentRecord]:
    """Every rule-based assignment (account, tag, selector: no ``instance_id``)."""
    return [_assignment(r) for r in conn.execute(_RULES)]


# --------------------------------------------------------------------------- overrides


def _override(r: Any) -> OverrideRecord:
    return OverrideRecord(r.instance_id, r.state, r.until, r.reason, r.created_by, r.created_at)


def put_override(conn: sa.Connection, rec: OverrideRecord) -> None:
    """Replace the instance's override (one per instance)."""
    conn.execute(instance_overrides.delete().where(
        instance_overrides.c.instance_id == rec.instance_id
    ))
    conn.execute(instance_overrides.insert().values(
        instance_id=rec.instance_id, state=rec.state, until=rec.until, reason=rec.reason,
        created_by=rec.created_by, created_at=rec.created_at,
    ))


def get_override(conn: sa.Connection, instance_id: UUID) -> OverrideRecord | None:
    r = conn.execute(sa.select(instance_overrides).where(
        instance_overrides.c.instance_id == instance_id
    )).first()
    return _override(r) if r else None


def delete_override(conn: sa.Connection, instance_id: UUID) -> int:
    return conn.execute(instance_overrides.delete().where(
        instance_overrides.c.instance_id == instance_id
    )).rowcount


def all_overrides(conn: sa.Connection) -> dict[UUID, OverrideRecord]:
    return {r.instance_id: _override(r) for r in conn.execute(sa.select(instance_overrides))}


# --------------------------------------------------------------------------- claims


@dataclass(frozen=True)
class ClaimRecord:
    instance_id: UUID
    kind: str
    at: datetime
    status: str
    result: str | None
    owner: str
    attempts: int
    lease_until: datetime | None = None


def claim(
    conn: sa.Connection, instance_id: UUID, kind: str, at: datetime, *, owner: str,
    now: datetime, lease: timedelta, schedule_id: UUID | None = None,
) -> bool:
    """Take (instance, kind, at) for this owner; False if another holds or finished it.

    A new key is inserted (the primary key lets one racer win); a ``failed`` claim or
    a ``claimed`` one whose lease ran out (its holder died) is taken over by a
    conditional UPDATE. The caller must commit right after, before acting.
    """
    try:
        with conn.begin_nested():
            conn.execute(reconcile_claims.insert().values(
                instance_id=instance_id, kind=kind, at=at, schedule_id=schedule_id,
                status="claimed", owner=owner, claimed_at=now, lease_until=now + lease,
                attempts=1,
            ))
        return True
    except sa.exc.IntegrityError:
        pass
    c = reconcile_claims.c
    res = conn.execute(
        reconcile_claims.update()
        .where(
            c.instance_id == instance_id, c.kind == kind, c.at == at,
            sa.or_(c.status == "failed", sa.and_(c.status == "claimed", c.lease_until < now)),
        )
        .values(status="claimed", owner=owner, claimed_at=now, lease_until=now + lease,
                attempts=c.attempts + 1, result=None, finished_at=None)
    )
    return res.rowcount == 1


ClaimKey = tuple[UUID, str, datetime]
_CLAIM_CHUNK = 200


def _insert_claims(conn: sa.Connection) -> Any:
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects import postgresql

        return postgresql.insert(reconcile_claims)
    from sqlalchemy.dialects import sqlite

    return sqlite.insert(reconcile_claims)


_CLAIM_INSERTS: dict[str, Any] = {}


def _claim_insert(conn: sa.Connection) -> Any:
    """``INSERT .. ON CONFLICT DO NOTHING RETURNING`` the key, for executemany; one
    statement object per dialect (its compilation is cached with it)."""
    name = conn.dialect.name
    stmt = _CLAIM_INSERTS.get(name)
    if stmt is None:
        c = reconcile_claims.c
        stmt = _CLAIM_INSERTS[name] = (_insert_claims(conn).on_conflict_do_nothing()
                                       .returning(c.instance_id, c.kind, c.at))
    return stmt


def claim_many(
    conn: sa.Connection, keys: list[tuple[UUID, str, datetime, UUID | None]], *,
    owner: str, now: datetime, lease: timedelta,
) -> set[ClaimKey]:
    """:func:`claim` for many keys, a few statements per chunk of 200: one
    ``INSERT .. ON CONFLICT DO NOTHING RETURNING`` (the primary key lets exactly one of
    several racers win each key), then one conditional ``UPDATE .. RETURNING`` taking
    over the conflicting keys that are ``failed`` or whose lease ran out. Returns the
    keys won (instance, kind, at). The caller must commit right after, before acting.
    Works on SQLite 3.35+ and PostgreSQL."""
    won: set[ClaimKey] = set()
    c = reconcile_claims.c
    # One order for every racer: rows are locked in it, so two reconcilers claiming
    # overlapping batches wait for each other instead of deadlocking.
    keys = sorted(keys, key=lambda k: (str(k[0]), k[1], k[2]))
    for i in range(0, len(keys), _CLAIM_CHUNK):
        part = keys[i:i + _CLAIM_CHUNK]
        rows = [dict(instance_id=iid, kind=kind, at=at, schedule_id=sid, status="claimed",
                     owner=owner, claimed_at=now, lease_until=now + lease, attempts=1,
                     result=None, finished_at=None)
                for iid, kind, at, sid in part]
        # A one-row statement built once, executed with every row's parameters:
        # SQLAlchemy sends it as one multi-row INSERT (its "insertmanyvalues", rows in
        # the given order) from a cached compilation; ``.values(rows)`` compiled a new
        # 200-row statement per chunk, a third of a reconcile's own CPU.
        got = {(r.instance_id, r.kind, r.at) for r in conn.execute(_claim_insert(conn), rows)}
        won |= got
        rest = [(iid, kind, at) for iid, kind, at, _ in part if (iid, kind, at) not in got]
        if not rest:
            continue
        res = conn.execute(
            reconcile_claims.update()
            .where(
                sa.tuple_(c.instance_id, c.kind, c.at).in_(rest),
                sa.or_(c.status == "failed",
                       sa.and_(c.status == "claimed", c.lease_until < now)),
            )
            .values(status="claimed", owner=owner, claimed_at=now, lease_until=now + lease,
                    attempts=c.attempts + 1, result=None, finished_at=None)
            .returning(c.instance_id, c.kind, c.at)
        )
        won |= {(r.instance_id, r.kind, r.at) for r in res}
    return won


def finish_claims(
    conn: sa.Connection, outcomes: list[tuple[UUID, str, datetime, str, str]], *,
    owner: str, now: datetime,
) -> None:
    """:func:`finish_claim` for many (instance, kind, at, status, result): one
    statement (executemany) for all."""
    if not outcomes:
        return
    c = reconcile_claims.c
    conn.execute(
        reconcile_claims.update()
        .where(c.instance_id == sa.bindparam("b_iid"), c.kind == sa.bindparam("b_kind"),
               c.at == sa.bindparam("b_at"), c.owner == owner)
        .values(status=sa.bindparam("b_status"), result=sa.bindparam("b_result"),
                finished_at=now),
        [{"b_iid": iid, "b_kind": kind, "b_at": at, "b_status": status, "b_result": result}
         for iid, kind, at, status, result in outcomes],
    )


def finish_claim(
    conn: sa.Connection, instance_id: UUID, kind: str, at: datetime, *, owner: str,
    status: str, result: str, now: datetime,
) -> None:
    c = reconcile_claims.c
    conn.execute(
        reconcile_claims.update()
        .where(c.instance_id == instance_id, c.kind == kind, c.at == at, c.owner == owner)
        .values(status=status, result=result, finished_at=now)
    )


def renew_claim(
    conn: sa.Connection, instance_id: UUID, kind: str, at: datetime, *, owner: str,
    until: datetime,
) -> bool:
    """Extend ``owner``'s lease on a claim in flight; False if it no longer holds it."""
    c = reconcile_claims.c
    res = conn.execute(
        reconcile_claims.update()
        .where(c.instance_id == instance_id, c.kind == kind, c.at == at, c.owner == owner,
               c.status == "claimed")
        .values(lease_until=until)
    )
    return res.rowcount == 1


def renew_claims(conn: sa.Connection, keys: list[ClaimKey], *, owner: str,
                 until: datetime) -> bool:
    """Extend ``owner``'s leases on the claims of ``keys`` still in flight (one
    statement per 200); False if it holds none of them any more."""
    c = reconcile_claims.c
    kept = 0
    for i in range(0, len(keys), _CLAIM_CHUNK):
        kept += conn.execute(
            reconcile_claims.update()
            .where(sa.tuple_(c.instance_id, c.kind, c.at).in_(keys[i:i + _CLAIM_CHUNK]),
                   c.owner == owner, c.status == "claimed")
            .values(lease_until=until)
        ).rowcount
    return kept > 0


def claims_at(conn: sa.Connection, kinds: set[str], ats: set[datetime]
              ) -> dict[tuple[UUID, str, datetime], ClaimState]:
    """Every claim of ``kinds`` at any of ``ats``, whatever its status (read only)."""
    if not ats or not kinds:
        return {}
    c = reconcile_claims.c
    q = sa.select(reconcile_claims).where(c.kind.in_(sorted(kinds)), c.at.in_(sorted(ats)))
    return {(r.instance_id, r.kind, r.at): ClaimState(r.status, r.result, r.owner,
                                                      r.lease_until)
            for r in conn.execute(q)}


def get_claim(conn: sa.Connection, instance_id: UUID, kind: str, at: datetime
              ) -> ClaimRecord | None:
    c = reconcile_claims.c
    r = conn.execute(sa.select(reconcile_claims).where(
        c.instance_id == instance_id, c.kind == kind, c.at == at
    )).first()
    if r is None:
        return None
    return ClaimRecord(r.instance_id, r.kind, r.at, r.status, r.result, r.owner, r.attempts,
                       r.lease_until)


def finished_claims(conn: sa.Connection, kind: str, ats: set[datetime]
                    ) -> dict[tuple[UUID, datetime], ClaimRecord]:
    """Claims of ``kind`` at any of ``ats`` that are done (one query per run)."""
    if not ats:
        return {}
    c = reconcile_claims.c
    out: dict[tuple[UUID, datetime], ClaimRecord] = {}
    q = sa.select(reconcile_claims).where(c.kind == kind, c.at.in_(sorted(ats)),
                                          c.status == "done")
    for r in conn.execute(q):
        out[(r.instance_id, r.at)] = ClaimRecord(
            r.instance_id, r.kind, r.at, r.status, r.result, r.owner, r.attempts, r.lease_until
        )
    return out


def done_results(conn: sa.Connection, kind: str, ats: set[datetime]
                 ) -> dict[tuple[UUID, datetime], str | None]:
    """:func:`finished_claims` narrowed to what a run needs: (instance, at) -> result
    (one query; three columns, so a steady-state run over many instances stays cheap)."""
    if not ats:
        return {}
    c = reconcile_claims.c
    q = sa.select(c.instance_id, c.at, c.result).where(
        c.kind == kind, c.at.in_(sorted(ats)), c.status == "done")
    return {(r.instance_id, r.at): r.result for r in conn.execute(q)}


def prune_claims(conn: sa.Connection, before: datetime) -> int:
    """Forget finished claims claimed before ``before`` (they can never be asked again)."""
    c = reconcile_claims.c
    return conn.execute(reconcile_claims.delete().where(
        c.claimed_at < before, c.status != "claimed",
        sa.or_(c.kind == "enforce", c.kind.like("warn%")),
    )).rowcount


# --------------------------------------------------------------------------- stop intervals


@dataclass(frozen=True)
class StopInterval:
    id: UUID
    instance_id: UUID
    instance_name: str
    account_id: UUID | None
    schedule_id: UUID | None
    schedule_name: str | None
    stopped_at: datetime
    started_at: datetime | None
    hourly_cost_cents: Decimal | None
    node_count: int


def open_interval(conn: sa.Connection, instance: Instance, *, schedule_id: UUID | None,
                  schedule_name: str | None, stopped_at: datetime) -> None:
    """Record that SnoozeQL stopped ``instance`` at ``stopped_at``, at its cost then
    (unless an interval is already open): one statement."""
    conn.execute(_OPEN_INTERVAL, {
        "id": uuid4(), "details": {}, "instance_id": instance.id,
        "instance_name": instance.name, "account_id": instance.account_id,
        "schedule_id": schedule_id, "schedule_name": schedule_name,
        "stopped_at": stopped_at, "hourly_cost_cents": instance.hourly_cost_cents,
        "node_count": instance.node_count})


# Built once (one stop interval per stopped instance; see store/instances.py, _GET):
# ``INSERT .. SELECT <the values> WHERE NOT EXISTS (an open interval of the instance)``.
_INTERVAL_COLUMNS = ("id", "instance_id", "instance_name", "account_id", "schedule_id",
                     "schedule_name", "stopped_at", "hourly_cost_cents", "node_count",
                     "details")
_OPEN_INTERVAL = stop_intervals.insert().from_select(
    _INTERVAL_COLUMNS,
    sa.select(*(sa.bindparam(name, type_=stop_intervals.c[name].type)
                for name in _INTERVAL_COLUMNS))
    .where(~sa.exists().where(
        stop_intervals.c.instance_id == sa.bindparam("instance_id",
                                                     type_=stop_intervals.c.instance_id.type),
        stop_intervals.c.started_at.is_(None))),
)


def insert_intervals(conn: sa.Connection, intervals: list[StopInterval]) -> int:
    """Insert past stop intervals in one batch (a history import; the demo's seed)."""
    if not intervals:
        return 0
    conn.execute(stop_intervals.insert(), [
        {"id": i.id, "details": {}, "instance_id": i.instance_id,
         "instance_name": i.instance_name, "account_id": i.account_id,
         "schedule_id": i.schedule_id, "schedule_name": i.schedule_name,
         "stopped_at": i.stopped_at, "started_at": i.started_at,
         "hourly_cost_cents": i.hourly_cost_cents, "node_count": i.node_count}
        for i in intervals])
    return len(intervals)


def close_intervals(conn: sa.Connection, instance_ids: list[UUID], at: datetime) -> int:
    if not instance_ids:
        return 0
    c = stop_intervals.c
    return conn.execute(
        stop_intervals.update()
        .where(c.instance_id.in_(instance_ids), c.started_at.is_(None))
        .values(started_at=at)
    ).rowcount


def any_open_interval(conn: sa.Connection) -> bool:
    """Whether some instance has a stop interval not closed yet (one small read)."""
    c = stop_intervals.c
    return conn.execute(sa.select(c.id).where(c.started_at.is_(None)).limit(1)).first() \
        is not None


def intervals_overlapping(conn: sa.Connection, start: datetime, end: datetime
                          ) -> list[StopInterval]:
    c = stop_intervals.c
    q = sa.select(stop_intervals).where(
        c.stopped_at < end, sa.or_(c.started_at.is_(None), c.started_at > start)
    ).order_by(c.stopped_at)
    return [
        StopInterval(r.id, r.instance_id, r.instance_name, r.account_id, r.schedule_id,
                     r.schedule_name, r.stopped_at, r.started_at, r.hourly_cost_cents,
                     r.node_count)
        for r in conn.execute(q)
    ]
