"""Schedules as a use case: CRUD, import, evaluation, assignments and overrides.

The evaluator itself is pure (``snoozeql.domain.schedules``); this module stores
schedules (as ``Schedule.to_dict()``), resolves which schedule governs each instance,
and keeps per-instance overrides. :meth:`ScheduleService.create_and_assign` is the one
call that both makes a schedule and assigns it, so applying a recommendation is a
single, all-or-nothing step.

Which schedule governs an instance, strongest first: an assignment to the instance
itself, the instance's own tag ``snoozeql-schedule=NAME``, a tag selector, an account
assignment. Among equals the schedule whose name sorts first wins. An instance tagged
``snoozeql-protect=true`` has no schedule at all.
"""

from __future__ import annotations

import builtins
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from snoozeql.domain.errors import ConflictError, NotFoundError, ValidationError
from snoozeql.domain.schedules import (
    Decision,
    DesiredState,
    Schedule,
    Segment,
    Transition,
    desired_state,
    import_custodian,
    import_instance_scheduler,
    next_transition,
    preview,
)
from snoozeql.domain.schedules.model import load_zone
from snoozeql.domain.types import Instance
from snoozeql.services.accounts import AccountService
from snoozeql.services.context import Context
from snoozeql.services.inventory import InventoryService, parse_tags
from snoozeql.store import instances as instance_store
from snoozeql.store import schedules as store
from snoozeql.store.schedules import AssignmentRecord, OverrideRecord, ScheduleRecord

__all__ = [
    "PROTECT_TAG",
    "SCHEDULE_TAG",
    "Assignment",
    "Evaluation",
    "Governing",
    "OverrideService",
    "ScheduleService",
    "ScheduleView",
    "is_protected",
    "parse_until",
]

SCHEDULE_TAG = "snoozeql-schedule"
PROTECT_TAG = "snoozeql-protect"
MAX_PREVIEW_DAYS = 62

# Strength of each way of assigning, strongest first.
_VIA_RANK = {"instance": 0, "own_tag": 1, "tag": 2, "account": 3}


def is_protected(instance: Instance) -> bool:
    """``snoozeql-protect=true`` (any letter case): never touched by the reconciler."""
    value = next((v for k, v in instance.tags.items() if k.lower() == PROTECT_TAG), None)
    return value is not None and value.strip().lower() in ("true", "yes", "1")


@dataclass(frozen=True)
class ScheduleView:
    id: UUID
    schedule: Schedule
    created_at: datetime
    updated_at: datetime

    @property
    def name(self) -> str:
        return self.schedule.name

    def to_json(self) -> dict[str, Any]:
        return {
            "id": str(self.id), **self.schedule.to_dict(),
            "created_at": self.created_at.isoformat(), "updated_at": self.updated_at.isoformat(),
        }


@dataclass(frozen=True)
class Assignment:
    id: UUID
    schedule_id: UUID
    schedule_name: str
    kind: str
    target: str
    created_at: datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "id": str(self.id), "schedule_id": str(self.schedule_id),
            "schedule": self.schedule_name, "kind": self.kind, "target": self.target,
            "created_at": self.created_at.isoformat(),
        }


@dataclass(frozen=True)
class Evaluation:
    at: datetime
    decision: Decision
    next: Transition | None
    next_stop: Transition | None

    def to_json(self) -> dict[str, Any]:
        def tr(t: Transition | None) -> dict[str, Any] | None:
            if t is None:
                return None
            return {"at": t.at.isoformat(), "state": str(t.state),
                    "previous": str(t.previous), "reason": t.reason}

        return {
            "at": self.at.isoformat(), "state": str(self.decision.state),
            "reason": self.decision.reason, "source": self.decision.source,
            "next_transition": tr(self.next), "next_stop": tr(self.next_stop),
        }


@dataclass(frozen=True)
class Governing:
    """The schedule that governs one instance, how it got there and since when."""

    schedule_id: UUID
    schedule: Schedule
    via: str  # instance | own_tag | tag | account
    since: datetime  # when this schedule (as it is now) started to govern the instance


def _view(r: ScheduleRecord) -> ScheduleView:
    return ScheduleView(r.id, Schedule.from_dict(r.definition), r.created_at, r.updated_at)


def _instant(value: datetime | str, what: str) -> datetime:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise ValidationError(
                f"{what}: {value!r} is not an ISO date and time such as "
                "2026-11-23T19:30:00+01:00"
            ) from None
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValidationError(f"{what}: {value.isoformat()} needs a UTC offset (e.g. +01:00, Z)")
    return value


class ScheduleService:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    # ------------------------------------------------------------------ CRUD

    def create(self, definition: dict[str, Any] | Schedule) -> ScheduleView:
        schedule = definition if isinstance(definition, Schedule) else Schedule.from_dict(
            definition
        )
        try:
            with self.ctx.engine.begin() as conn:
                return self._insert(conn, schedule)
        except sa.exc.IntegrityError:  # a concurrent create of the same name won
            raise ConflictError(f"a schedule named {schedule.name!r} already exists") from None

    def _insert(self, conn: sa.Connection, schedule: Schedule) -> ScheduleView:
        # No savepoints here: on SQLite a SAVEPOINT that opens the transaction commits on
        # release, which would break the all-or-nothing promise of the callers.
        if store.find_schedule(conn, schedule.name):
            raise ConflictError(f"a schedule named {schedule.name!r} already exists")
        now = self.ctx.now()
        sid = store.insert_schedule(conn, schedule.name, schedule.to_dict(), now)
        return ScheduleView(sid, schedule, now, now)

    def list(self) -> list[ScheduleView]:
        with self.ctx.engine.connect() as conn:
            return [_view(r) for r in store.list_schedules(conn)]

    def get(self, ref: str | UUID) -> ScheduleView:
        with self.ctx.engine.connect() as conn:
            return _view(self._record(conn, ref))

    def _record(self, conn: sa.Connection, ref: str | UUID) -> ScheduleRecord:
        found = None
        try:
            found = store.get_schedule(conn, UUID(str(ref)))
        except ValueError:
            pass
        found = found or store.find_schedule(conn, str(ref))
        if found is None:
            raise NotFoundError(f"no schedule {str(ref)!r}")
        return found

    def update(self, ref: str | UUID, changes: dict[str, Any], *, replace: bool = False
               ) -> ScheduleView:
        """Change a schedule: ``replace`` takes ``changes`` as the whole new definition,
        otherwise the given fields replace those fields only."""
        with self.ctx.engine.begin() as conn:
            rec = self._record(conn, ref)
            merged = dict(changes) if replace else {**rec.definition, **changes}
            schedule = Schedule.from_dict(merged)
            if schedule.name != rec.name and store.find_schedule(conn, schedule.name):
                raise ConflictError(f"a schedule named {schedule.name!r} already exists")
            now = self.ctx.now()
            store.update_schedule(conn, rec.id, schedule.name, schedule.to_dict(), now)
            return ScheduleView(rec.id, schedule, rec.created_at, now)

    def delete(self, ref: str | UUID) -> ScheduleView:
        with self.ctx.engine.begin() as conn:
            rec = self._record(conn, ref)
            store.delete_schedule(conn, rec.id)
            return _view(rec)

    # ------------------------------------------------------------------ import

    def import_custodian(
        self, tag_value: str, *, name: str, default_tz: str = "et",
        description: str | None = None,
    ) -> ScheduleView:
        return self.create(import_custodian(
            tag_value, name=name, default_tz=default_tz, description=description
        ))

    def import_instance_scheduler(
        self, data: object, *, default_timezone: str = "UTC"
    ) -> tuple[builtins.list[ScheduleView], builtins.list[str]]:
        """Create every schedule in the configuration, all or none."""
        result = import_instance_scheduler(data, default_timezone=default_timezone)
        try:
            with self.ctx.engine.begin() as conn:
                views = [self._insert(conn, s) for s in result.schedules]
        except sa.exc.IntegrityError:
            raise ConflictError("a schedule with one of these names already exists") from None
        return views, list(result.warnings)

    # ------------------------------------------------------------------ evaluation

    def evaluate(self, ref: str | UUID, at: datetime | str | None = None) -> Evaluation:
        schedule = self.get(ref).schedule
        instant = self.ctx.now() if at is None else _instant(at, "at")
        return Evaluation(
            at=instant,
            decision=desired_state(schedule, instant),
            next=next_transition(schedule, instant),
            next_stop=next_transition(schedule, instant, into={"stopped"}),
        )

    def preview(self, ref: str | UUID, *, start: datetime | str | None = None, days: int = 7
                ) -> tuple[ScheduleView, builtins.list[Segment]]:
        if not 1 <= days <= MAX_PREVIEW_DAYS:
            raise ValidationError(f"days: must be between 1 and {MAX_PREVIEW_DAYS}")
        view = self.get(ref)
        begin = self.ctx.now() if start is None else _instant(start, "start")
        return view, preview(view.schedule, begin, begin + timedelta(days=days))

    # ------------------------------------------------------------------ assignments

    def assign(
        self, ref: str | UUID, *, instance: str | None = None, tag: str | None = None,
        account: str | None = None,
    ) -> Assignment:
        values = self._target(instance=instance, tag=tag, account=account)
        try:
            with self.ctx.engine.begin() as conn:
                return self._assign(conn, self._record(conn, ref), values)
        except sa.exc.IntegrityError:  # raced with the same assignment
            raise ConflictError(f"schedule {ref!s} is already assigned to {values['target']}"
                                ) from None

    def _target(self, *, instance: str | None, tag: str | None, account: str | None
                ) -> dict[str, Any]:
        given = [x for x in (instance, tag, account) if x]
        if len(given) != 1:
            raise ValidationError("give exactly one of instance, tag (key=value) or account")
        if instance:
            inst = InventoryService(self.ctx).get(instance)
            return {"kind": "instance", "target": f"instance:{inst.id}", "instance_id": inst.id}
        if account:
            acct = AccountService(self.ctx).get(account)
            return {"kind": "account", "target": f"account:{acct.id}", "account_id": acct.id}
        assert tag is not None
        ((key, value),) = parse_tags([tag]).items()
        return {"kind": "tag", "target": f"tag:{key}={value}", "tag_key": key, "tag_value": value}

    def _assign(self, conn: sa.Connection, rec: ScheduleRecord, values: dict[str, Any]
                ) -> Assignment:
        if any(a.target == values["target"] for a in store.list_assignments(conn, rec.id)):
            raise ConflictError(
                f"schedule {rec.name!r} is already assigned to {values['target']}"
            )
        now = self.ctx.now()
        aid = store.insert_assignment(conn, schedule_id=rec.id, created_at=now, **values)
        return Assignment(aid, rec.id, rec.name, values["kind"], values["target"], now)

    def unassign(
        self, ref: str | UUID, *, instance: str | None = None, tag: str | None = None,
        account: str | None = None,
    ) -> None:
        values = self._target(instance=instance, tag=tag, account=account)
        with self.ctx.engine.begin() as conn:
            rec = self._record(conn, ref)
            if not store.delete_assignment(conn, rec.id, values["target"]):
                raise NotFoundError(f"schedule {rec.name!r} is not assigned to {values['target']}")

    def assignments(self, ref: str | UUID | None = None) -> builtins.list[Assignment]:
        with self.ctx.engine.connect() as conn:
            names = {r.id: r.name for r in store.list_schedules(conn)}
            sid = self._record(conn, ref).id if ref is not None else None
            return [
                Assignment(a.id, a.schedule_id, names[a.schedule_id], a.kind, a.target,
                           a.created_at)
                for a in store.list_assignments(conn, sid)
            ]

    def create_and_assign(
        self, definition: dict[str, Any] | Schedule, *, instances: Iterable[str] = (),
        tags: Iterable[str] = (), accounts: Iterable[str] = (),
    ) -> tuple[ScheduleView, builtins.list[Assignment]]:
        """Create a schedule and assign it, in one transaction (nothing half-written)."""
        schedule = definition if isinstance(definition, Schedule) else Schedule.from_dict(
            definition
        )
        # Resolve every target first: a typo fails before anything is written.
        targets = [self._target(instance=i, tag=None, account=None) for i in instances]
        targets += [self._target(instance=None, tag=t, account=None) for t in tags]
        targets += [self._target(instance=None, tag=None, account=a) for a in accounts]
        try:
            with self.ctx.engine.begin() as conn:
                view = self._insert(conn, schedule)
                rec = ScheduleRecord(view.id, view.name, schedule.to_dict(), view.created_at,
                                     view.updated_at)
                made = [self._assign(conn, rec, values) for values in targets]
        except sa.exc.IntegrityError:
            raise ConflictError(f"a schedule named {schedule.name!r} already exists") from None
        return view, made

    # ------------------------------------------------------------------ resolution

    def governing(
        self, instances: builtins.list[Instance] | None = None
    ) -> dict[UUID, Governing]:
        """The schedule governing each (non-protected) instance that has one."""
        with self.ctx.engine.connect() as conn:
            records = store.list_schedules(conn)
            assignments = store.list_assignments(conn)
            if instances is None:
                instances = list(instance_store.iter_all(
                    conn, instance_store.InstanceFilter(missing=False)
                ))
        return resolve(instances, records, assignments)

    def governing_one(self, instance: Instance) -> Governing | None:
        return self.governing([instance]).get(instance.id)


def resolve(
    instances: list[Instance], records: list[ScheduleRecord],
    assignments: list[AssignmentRecord],
) -> dict[UUID, Governing]:
    """Pure resolution of assignments to one schedule per instance (see module doc)."""
    by_id = {r.id: r for r in records}
    by_name = {r.name: r for r in records}
    parsed: dict[UUID, Schedule] = {}

    def schedule_of(r: ScheduleRecord) -> Schedule:
        if r.id not in parsed:
            parsed[r.id] = Schedule.from_dict(r.definition)
        return parsed[r.id]

    direct: dict[UUID, list[AssignmentRecord]] = {}
    by_account: dict[UUID, list[AssignmentRecord]] = {}
    by_tag: list[AssignmentRecord] = []
    for a in assignments:
        if a.kind == "instance" and a.instance_id:
            direct.setdefault(a.instance_id, []).append(a)
        elif a.kind == "account" and a.account_id:
            by_account.setdefault(a.account_id, []).append(a)
        elif a.kind == "tag":
            by_tag.append(a)
    out: dict[UUID, Governing] = {}
    for inst in instances:
        if is_protected(inst):
            continue
        candidates: list[tuple[int, str, ScheduleRecord, datetime]] = []
        for a in direct.get(inst.id, []):
            r = by_id[a.schedule_id]
            candidates.append((_VIA_RANK["instance"], r.name, r, a.created_at))
        own = inst.tags.get(SCHEDULE_TAG)
        if own and own.strip() in by_name:
            r = by_name[own.strip()]
            candidates.append((_VIA_RANK["own_tag"], r.name, r, inst.first_seen_at))
        for a in by_tag:
            if inst.tags.get(a.tag_key or "") == a.tag_value:
                r = by_id[a.schedule_id]
                candidates.append((_VIA_RANK["tag"], r.name, r, a.created_at))
        if inst.account_id is not None:
            for a in by_account.get(inst.account_id, []):
                r = by_id[a.schedule_id]
                candidates.append((_VIA_RANK["account"], r.name, r, a.created_at))
        if not candidates:
            continue
        rank, _, rec, assigned_at = min(candidates, key=lambda c: (c[0], c[1]))
        via = next(k for k, v in _VIA_RANK.items() if v == rank)
        out[inst.id] = Governing(rec.id, schedule_of(rec), via, max(assigned_at, rec.updated_at))
    return out


# --------------------------------------------------------------------------- overrides

_HHMM = re.compile(r"^(\d{1,2}):(\d{2})$")
_DURATION = re.compile(r"^\+?(\d+)\s*(m|min|h|d)$")


def parse_until(text: str, now: datetime, zone: ZoneInfo) -> datetime:
    """When an override ends: an ISO instant with offset, ``HH:MM`` (the next time the
    wall clock of ``zone`` shows it), ``tomorrow HH:MM``, ``today HH:MM``, or a
    duration ``90m``, ``2h``, ``1d``."""
    raw = text.strip().lower()
    m = _DURATION.match(raw)
    if m:
        n, unit = int(m.group(1)), m.group(2)
        delta = {"m": timedelta(minutes=n), "min": timedelta(minutes=n),
                 "h": timedelta(hours=n), "d": timedelta(days=n)}[unit]
        return now + delta
    day_word, _, clock = raw.rpartition(" ")
    hm = _HHMM.match(clock)
    if hm and day_word in ("", "today", "tomorrow"):
        hour, minute = int(hm.group(1)), int(hm.group(2))
        if hour > 23 or minute > 59:
            raise ValidationError(f"until: {text!r} is not a valid time of day")
        local_now = now.astimezone(zone)
        d: date = local_now.date() + timedelta(days=1 if day_word == "tomorrow" else 0)
        candidate = datetime.combine(d, time(hour, minute), tzinfo=zone)
        if day_word == "" and candidate <= now:
            candidate = datetime.combine(d + timedelta(days=1), time(hour, minute), tzinfo=zone)
        return candidate
    try:
        return _instant(text, "until")
    except ValidationError:
        raise ValidationError(
            f"until: {text!r}: give HH:MM, 'tomorrow HH:MM', a duration (90m, 2h) or an "
            "ISO time with offset"
        ) from None


class OverrideService:
    """``keep-awake`` and ``sleep``: a fixed state for one instance until a time."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def set(
        self, ref: str, state: str, until: str | datetime, *, actor: str,
        reason: str | None = None, timezone: str | None = None,
    ) -> tuple[Instance, OverrideRecord]:
        if state not in (DesiredState.RUNNING, DesiredState.STOPPED):
            raise ValidationError(f"state: {state!r} must be 'running' or 'stopped'")
        instance = InventoryService(self.ctx).get(ref)
        now = self.ctx.now()
        if isinstance(until, datetime):
            end = _instant(until, "until")
        else:
            end = parse_until(until, now, self._zone(instance, timezone))
        if end <= now:
            raise ValidationError(f"until: {end.isoformat()} is not in the future")
        word = "keep awake" if state == DesiredState.RUNNING else "sleep"
        rec = OverrideRecord(
            instance.id, str(state), end, (reason or f"{word} until {end.isoformat()}")[:255],
            actor, now,
        )
        with self.ctx.engine.begin() as conn:
            store.put_override(conn, rec)
        return instance, rec

    def _zone(self, instance: Instance, timezone: str | None) -> ZoneInfo:
        if timezone:
            return load_zone(timezone)
        gov = ScheduleService(self.ctx).governing_one(instance)
        return gov.schedule.zone if gov else load_zone(self.ctx.settings.default_timezone)

    def get(self, ref: str) -> OverrideRecord | None:
        instance = InventoryService(self.ctx).get(ref)
        with self.ctx.engine.connect() as conn:
            return store.get_override(conn, instance.id)

    def clear(self, ref: str) -> bool:
        """End the instance's override now. The row stays with ``until`` = now, so the
        reconciler treats the end like a transition and applies the schedule again."""
        instance = InventoryService(self.ctx).get(ref)
        now = self.ctx.now()
        with self.ctx.engine.begin() as conn:
            rec = store.get_override(conn, instance.id)
            if rec is None or rec.until <= now:
                return False
            store.put_override(conn, OverrideRecord(
                rec.instance_id, rec.state, now, rec.reason, rec.created_by, rec.created_at
            ))
            return True
