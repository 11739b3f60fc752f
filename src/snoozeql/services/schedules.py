"""Schedules as a use case: CRUD, import, evaluation, assignments and overrides.

The evaluator itself is pure (``snoozeql.domain.schedules``); this module stores
schedules (as their documents, ``schedule_document``), resolves which schedule governs
each instance, and keeps per-instance overrides.
:meth:`ScheduleService.create_and_assign` is the one call that both makes a schedule and
assigns it, so applying a recommendation is a single, all-or-nothing step.

Which schedules match an instance, and which one governs it, is the pure
``domain/schedules/assignment.py`` (:func:`resolve`); this module reads what it needs
(:func:`read_for`, kept per data version) and calls it. When several match, the
reconciler combines them: highest ``priority`` first, then running wins over stopped.
An instance tagged ``snoozeql-protect=true`` has no schedule at all.

Every change (schedules, assignments, overrides) is written to the audit trail in the
same transaction (``services/audit.py``), with the caller's ``actor``.
"""

from __future__ import annotations

import builtins
import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any
from uuid import UUID
from zoneinfo import ZoneInfo

from snoozeql.domain.errors import ConflictError, NotFoundError, ValidationError
from snoozeql.domain.protection import PROTECT_TAG, is_protected
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
from snoozeql.domain.schedules.assignment import (
    AssignmentRecord,
    Governing,
    OverrideRecord,
    ParsedRules,
    ScheduleRecord,
    Target,
    resolve,
)
from snoozeql.domain.schedules.conflicts import Conflict, pair_conflicts
from snoozeql.domain.schedules.model import load_zone, schedule_document
from snoozeql.domain.selectors import Selector, parse_selector, selector_document
from snoozeql.domain.types import Instance
from snoozeql.domain.validation import iso_instant
from snoozeql.services import audit
from snoozeql.services.accounts import AccountService
from snoozeql.services.context import Context
from snoozeql.services.inventory import InventoryService, parse_tags
from snoozeql.store import accounts as account_store
from snoozeql.store import instances as instance_store
from snoozeql.store import schedules as store
from snoozeql.store import versions

if TYPE_CHECKING:
    from sqlalchemy import Connection

__all__ = [
    "PROTECT_TAG",
    "Assignment",
    "ConflictView",
    "Evaluation",
    "Governing",
    "MatchView",
    "Via",
    "OverrideService",
    "ScheduleService",
    "ScheduleView",
    "Upcoming",
    "is_protected",
    "parse_until",
]

MAX_PREVIEW_DAYS = 62
CONFLICT_DAYS = 7
MAX_PRIORITY = 1_000_000
# Up to this many instances, resolution reads only what can match them (a table page
# is at most 200); beyond it, every assignment (one query, no huge IN list).
NARROW_READ_MAX = 500


@dataclass(frozen=True)
class ScheduleView:
    id: UUID
    schedule: Schedule
    created_at: datetime
    updated_at: datetime
    priority: int = 0

    @property
    def name(self) -> str:
        return self.schedule.name



@dataclass(frozen=True)
class Assignment:
    id: UUID
    schedule_id: UUID
    schedule_name: str
    kind: str
    target: str
    created_at: datetime
    selector: dict[str, Any] | None = None

    @property
    def description(self) -> str:
        """The target in words (a selector's rule tree in one line)."""
        if self.selector is not None:
            return parse_selector(self.selector).describe()
        return self.target



def _audited(item: ScheduleView | Assignment) -> dict[str, Any]:
    """What the audit trail keeps of a schedule or an assignment (before / after)."""
    if isinstance(item, ScheduleView):
        return {**schedule_document(item.schedule), "priority": item.priority}
    return {"schedule": item.schedule_name, "kind": item.kind, "target": item.target,
            "selector": item.selector}


@dataclass(frozen=True)
class Upcoming:
    """The schedule governing an instance and that schedule's next transition."""

    schedule_id: UUID
    schedule_name: str
    next: Transition | None


@dataclass(frozen=True)
class Evaluation:
    at: datetime
    decision: Decision
    next: Transition | None
    next_stop: Transition | None


@dataclass(frozen=True)
class Via:
    """An assignment that matched (``assignment_id`` None: the instance's own tag, or a
    selector not saved yet)."""

    kind: str
    target: str
    assignment_id: UUID | None


@dataclass(frozen=True)
class MatchView:
    """An instance a schedule (or an unsaved selector) applies to now."""

    instance: Instance
    account_name: str | None
    via: tuple[Via, ...]


@dataclass(frozen=True)
class ConflictView:
    """Another schedule that disagrees with this one on shared instances."""

    schedule_id: UUID
    schedule_name: str
    other_id: UUID
    other_name: str
    first_at: datetime
    state: str  # what this schedule wants at first_at
    other_state: str
    instances: tuple[str, ...]
    winner: str  # the schedule the reconciler follows at first_at
    rule: str  # why: priority, or running wins


def _view(r: ScheduleRecord) -> ScheduleView:
    return ScheduleView(r.id, Schedule.from_dict(r.definition), r.created_at, r.updated_at,
                        r.priority)


def _split(definition: dict[str, Any] | Schedule) -> tuple[Schedule, int | None]:
    """A schedule and its priority (None: not given) from the API/CLI dict form."""
    if isinstance(definition, Schedule):
        return definition, None
    if not isinstance(definition, dict):
        raise ValidationError("a schedule must be an object")
    data = dict(definition)
    priority = data.pop("priority", None)
    if priority is not None and (isinstance(priority, bool) or not isinstance(priority, int)
                                 or abs(priority) > MAX_PRIORITY):
        raise ValidationError(
            f"priority: {priority!r} must be a whole number between -{MAX_PRIORITY} and "
            f"{MAX_PRIORITY}"
        )
    return Schedule.from_dict(data), priority


def _selector_target(selector: Selector) -> str:
    canonical = json.dumps(selector_document(selector), sort_keys=True, separators=(",", ":"))
    return "selector:" + hashlib.sha256(canonical.encode()).hexdigest()[:16]


def _read_selector(raw: Any) -> Selector:
    """A selector from its JSON form (a dict, or a JSON string from a CLI flag)."""
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ValidationError(f"selector: not JSON ({exc.msg} at position {exc.pos})"
                                  ) from None
    return parse_selector(raw)


def _instant(value: datetime | str, what: str) -> datetime:
    return iso_instant(value, what)


class ScheduleService:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    # ------------------------------------------------------------------ CRUD

    def create(self, definition: dict[str, Any] | Schedule, *, actor: str = "cli"
               ) -> ScheduleView:
        schedule, priority = _split(definition)
        with self.ctx.engine.begin() as conn:
            return self._insert(conn, schedule, priority or 0, actor=actor)[0]

    def _insert(self, conn: Connection, schedule: Schedule, priority: int = 0, *,
                actor: str = "cli") -> tuple[ScheduleView, ScheduleRecord]:
        # No savepoints here: on SQLite a SAVEPOINT that opens the transaction commits on
        # release, which would break the all-or-nothing promise of the callers.
        if store.find_schedule(conn, schedule.name):
            raise ConflictError(f"a schedule named {schedule.name!r} already exists")
        now = self.ctx.now()
        rec = store.insert_schedule(conn, schedule, now, priority)
        view = ScheduleView(rec.id, schedule, now, now, priority)
        audit.record(conn, at=now, actor=actor, action="create", kind="schedule",
                     object_id=rec.id, name=schedule.name, after=_audited(view))
        return view, rec

    def list(self) -> list[ScheduleView]:
        with self.ctx.engine.connect() as conn:
            return [_view(r) for r in store.list_schedules(conn)]

    def get(self, ref: str | UUID) -> ScheduleView:
        with self.ctx.engine.connect() as conn:
            return _view(self._record(conn, ref))

    def _record(self, conn: Connection, ref: str | UUID) -> ScheduleRecord:
        found = None
        try:
            found = store.get_schedule(conn, UUID(str(ref)))
        except ValueError:
            pass
        found = found or store.find_schedule(conn, str(ref))
        if found is None:
            raise NotFoundError(f"no schedule {str(ref)!r}")
        return found

    def update(self, ref: str | UUID, changes: dict[str, Any], *, replace: bool = False,
               actor: str = "cli") -> ScheduleView:
        """Change a schedule: ``replace`` takes ``changes`` as the whole new definition,
        otherwise the given fields replace those fields only. The priority is kept unless
        ``changes`` gives one."""
        with self.ctx.engine.begin() as conn:
            rec = self._record(conn, ref)
            merged = dict(changes) if replace else {**rec.definition, **changes}
            schedule, priority = _split(merged)
            priority = rec.priority if priority is None else priority
            if schedule.name != rec.name and store.find_schedule(conn, schedule.name):
                raise ConflictError(f"a schedule named {schedule.name!r} already exists")
            now = self.ctx.now()
            store.update_schedule(conn, rec, schedule, now, priority)
            view = ScheduleView(rec.id, schedule, rec.created_at, now, priority)
            audit.record(conn, at=now, actor=actor, action="update", kind="schedule",
                         object_id=rec.id, name=schedule.name,
                         before=_audited(_view(rec)), after=_audited(view))
            return view

    def delete(self, ref: str | UUID, *, actor: str = "cli") -> ScheduleView:
        with self.ctx.engine.begin() as conn:
            rec = self._record(conn, ref)
            view = _view(rec)
            assigned = [{"kind": a.kind, "target": a.target, "selector": a.selector}
                        for a in store.list_assignments(conn, rec.id)]
            store.delete_schedule(conn, rec.id)
            audit.record(conn, at=self.ctx.now(), actor=actor, action="delete",
                         kind="schedule", object_id=rec.id, name=rec.name,
                         before={**_audited(view), "assignments": assigned})
            return view

    # ------------------------------------------------------------------ import

    def import_custodian(
        self, tag_value: str | None, *, name: str, default_tz: str = "et",
        onhour: int = 7, offhour: int = 19, weekends: bool = True,
        weekends_only: bool = False, opt_out: bool = False,
        description: str | None = None, actor: str = "cli",
        warnings: builtins.list[str] | None = None,
    ) -> ScheduleView:
        """Create the schedule a Custodian tag value means under a policy's options
        (``default_tz``, ``onhour``, ``offhour``, ``weekends``, ``weekends-only``,
        ``opt-out``); where Custodian would read the tag otherwise, a warning is
        appended to ``warnings``."""
        return self.create(import_custodian(
            tag_value, name=name, default_tz=default_tz, onhour=onhour, offhour=offhour,
            weekends=weekends, weekends_only=weekends_only, opt_out=opt_out,
            description=description, warnings=warnings,
        ), actor=actor)

    def import_instance_scheduler(
        self, data: object, *, default_timezone: str = "UTC", actor: str = "cli",
    ) -> tuple[builtins.list[ScheduleView], builtins.list[str]]:
        """Create every schedule in the configuration, all or none."""
        result = import_instance_scheduler(data, default_timezone=default_timezone)
        with self.ctx.engine.begin() as conn:
            views = [self._insert(conn, s, actor=actor)[0] for s in result.schedules]
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
        account: str | None = None, selector: Any = None, actor: str = "cli",
    ) -> Assignment:
        target = self._target(instance=instance, tag=tag, account=account, selector=selector)
        with self.ctx.engine.begin() as conn:
            return self._assign(conn, self._record(conn, ref), target, actor)

    def _target(self, *, instance: str | None, tag: str | None, account: str | None,
                selector: Any = None) -> Target:
        given = [x for x in (instance, tag, account) if x]
        if selector is not None:
            given.append(selector)
        if len(given) != 1:
            raise ValidationError(
                "give exactly one of instance, tag (key=value), account or selector"
            )
        if selector is not None:
            sel = _read_selector(selector)
            return Target("selector", _selector_target(sel), selector=selector_document(sel))
        if instance:
            inst = InventoryService(self.ctx).get(instance)
            return Target("instance", f"instance:{inst.id}", instance_id=inst.id)
        if account:
            acct = AccountService(self.ctx).get(account)
            return Target("account", f"account:{acct.id}", account_id=acct.id)
        assert tag is not None
        ((key, value),) = parse_tags([tag]).items()
        return Target("tag", f"tag:{key}={value}", tag_key=key, tag_value=value)

    def _assign(self, conn: Connection, rec: ScheduleRecord, target: Target,
                actor: str = "cli") -> Assignment:
        if any(a.target == target.target for a in store.list_assignments(conn, rec.id)):
            raise ConflictError(
                f"schedule {rec.name!r} is already assigned to {target.target}"
            )
        now = self.ctx.now()
        made_rec = store.insert_assignment(conn, rec, target, now)
        made = Assignment(made_rec.id, rec.id, rec.name, target.kind, target.target, now,
                          target.selector)
        audit.record(conn, at=now, actor=actor, action="assign", kind="assignment",
                     object_id=made.id, name=rec.name, after=_audited(made),
                     reason=f"assign schedule {rec.name} to {made.description}")
        return made

    def unassign(
        self, ref: str | UUID, *, instance: str | None = None, tag: str | None = None,
        account: str | None = None, selector: Any = None, actor: str = "cli",
    ) -> None:
        target = self._target(instance=instance, tag=tag, account=account, selector=selector)
        with self.ctx.engine.begin() as conn:
            rec = self._record(conn, ref)
            found = next((a for a in store.list_assignments(conn, rec.id)
                          if a.target == target.target), None)
            if found is None or not store.delete_assignment(conn, rec.id, target.target):
                raise NotFoundError(f"schedule {rec.name!r} is not assigned to {target.target}")
            gone = Assignment(found.id, rec.id, rec.name, found.kind, found.target,
                              found.created_at, found.selector)
            audit.record(conn, at=self.ctx.now(), actor=actor, action="unassign",
                         kind="assignment", object_id=found.id, name=rec.name,
                         before=_audited(gone),
                         reason=f"unassign schedule {rec.name} from {gone.description}")

    def assignments(self, ref: str | UUID | None = None) -> builtins.list[Assignment]:
        with self.ctx.engine.connect() as conn:
            names = {r.id: r.name for r in store.list_schedules(conn)}
            sid = self._record(conn, ref).id if ref is not None else None
            return [
                Assignment(a.id, a.schedule_id, names[a.schedule_id], a.kind, a.target,
                           a.created_at, a.selector)
                for a in store.list_assignments(conn, sid)
            ]

    def create_and_assign(
        self, definition: dict[str, Any] | Schedule, *, instances: Iterable[str] = (),
        tags: Iterable[str] = (), accounts: Iterable[str] = (), selectors: Iterable[Any] = (),
        actor: str = "cli",
    ) -> tuple[ScheduleView, builtins.list[Assignment]]:
        """Create a schedule and assign it, in one transaction (nothing half-written)."""
        schedule, priority = _split(definition)
        # Resolve every target first: a typo fails before anything is written.
        targets = [self._target(instance=i, tag=None, account=None) for i in instances]
        targets += [self._target(instance=None, tag=t, account=None) for t in tags]
        targets += [self._target(instance=None, tag=None, account=a) for a in accounts]
        targets += [self._target(instance=None, tag=None, account=None, selector=x)
                    for x in selectors]
        with self.ctx.engine.begin() as conn:
            view, rec = self._insert(conn, schedule, priority or 0, actor=actor)
            made = [self._assign(conn, rec, target, actor) for target in targets]
        return view, made

    # ------------------------------------------------------------------ resolution

    def _snapshot(self, instances: builtins.list[Instance] | None = None
                  ) -> tuple[builtins.list[Instance], builtins.list[ScheduleRecord],
                             builtins.list[AssignmentRecord], dict[UUID, str]]:
        """What resolution reads, in one connection; for a few given instances only
        what can match them (:func:`read_for`)."""
        with self.ctx.engine.connect() as conn:
            if instances is not None and len(instances) <= NARROW_READ_MAX:
                found = read_for(self.ctx, conn, instances)
                return instances, found.records, found.assignments, found.account_names
            accounts = dict(account_store.names(conn))
            records = store.list_schedules(conn)
            assignments = store.list_assignments(conn)
            if instances is None:
                instances = list(instance_store.iter_all(
                    conn, instance_store.InstanceFilter(missing=False)
                ))
        return instances, records, assignments, accounts

    def governing(
        self, instances: builtins.list[Instance] | None = None
    ) -> dict[UUID, Governing]:
        """The schedule governing each (non-protected) instance that has one."""
        instances, records, assignments, accounts = self._snapshot(instances)
        return resolve(instances, records, assignments, accounts)

    def governing_one(self, instance: Instance) -> Governing | None:
        return self.governing([instance]).get(instance.id)

    # ------------------------------------------------------------------ matches, conflicts

    def matches(self, ref: str | UUID) -> tuple[ScheduleView, builtins.list[MatchView]]:
        """The instances the schedule applies to now, each with the assignments that
        matched it (protected instances are left out: no schedule applies to them)."""
        view = self.get(ref)
        instances, records, assignments, accounts = self._snapshot()
        found = resolve(instances, records, assignments, accounts)
        out = []
        for inst in instances:
            gov = found.get(inst.id)
            via = tuple(Via(m.via, m.target, m.assignment_id) for m in gov.matches
                        if m.schedule_id == view.id) if gov else ()
            if via:
                out.append(MatchView(inst, accounts.get(inst.account_id) if inst.account_id
                                     else None, via))
        return view, out

    def preview_selector(self, selector: Any) -> builtins.list[MatchView]:
        """What an (unsaved) selector matches now; nothing is written."""
        sel = _read_selector(selector)
        target = _selector_target(sel)
        instances, _, _, accounts = self._snapshot()
        out = []
        for inst in instances:
            name = accounts.get(inst.account_id) if inst.account_id else None
            if is_protected(inst) or not sel.matches(inst, name):
                continue
            out.append(MatchView(inst, name, (Via("selector", target, None),)))
        return out

    def conflicts(self, ref: str | UUID, *, start: datetime | None = None,
                  days: int = CONFLICT_DAYS) -> builtins.list[ConflictView]:
        """Other schedules that want the opposite state of this one, on an instance both
        match, at some time in the next ``days`` days; the first such instant of each."""
        view = self.get(ref)
        begin = self.ctx.now() if start is None else _instant(start, "start")
        instances, records, assignments, accounts = self._snapshot()
        found = resolve(instances, records, assignments, accounts)
        names = {i.id: i.name for i in instances}
        schedules: dict[Any, Schedule] = {}
        priorities: dict[Any, int] = {}
        per_instance: dict[Any, list[Any]] = {}
        for iid, gov in found.items():
            keys = []
            for m in gov.matches:
                schedules[m.schedule_id] = m.schedule
                priorities[m.schedule_id] = m.priority
                if m.schedule_id not in keys:
                    keys.append(m.schedule_id)
            per_instance[iid] = keys
        if view.id not in schedules:
            return []
        pairs = pair_conflicts(view.id, schedules, per_instance, begin,
                               begin + timedelta(days=days))
        out = [
            _conflict_view(view, other, schedules[other], priorities[other], c,
                           sorted(names[i] for i in shared))  # type: ignore[index]
            for other, (c, shared) in pairs.items()
        ]
        return sorted(out, key=lambda c: (c.first_at, c.other_name))


def _conflict_view(view: ScheduleView, other_id: Any, other: Schedule, other_priority: int,
                   c: Conflict, instances: builtins.list[str]) -> ConflictView:
    if view.priority != other_priority:
        mine = view.priority > other_priority
        rule = "higher priority"
    else:
        mine = c.a_state is DesiredState.RUNNING
        rule = "same priority: running wins"
    return ConflictView(
        view.id, view.name, other_id, other.name, c.at, str(c.a_state), str(c.b_state),
        tuple(instances), view.name if mine else other.name, rule,
    )


@dataclass
class _Rules:
    """Everything resolution needs that does not depend on the instances asked about:
    every schedule, the rule-based assignments and the account names, with their parsed
    forms and each schedule's next transition as far as it is known. Kept in the
    context's memo under the data versions it was read at."""

    versions: tuple[int, int]
    records: builtins.list[ScheduleRecord]
    rules: builtins.list[AssignmentRecord]
    account_names: dict[UUID, str]
    parsed: ParsedRules = field(default_factory=ParsedRules)
    # schedule id -> (evaluated at, next transition after that instant): the answer
    # holds for every instant from the first up to (not including) the transition.
    nexts: dict[UUID, tuple[datetime, Transition]] = field(default_factory=dict)
    schedule_ids: frozenset[UUID] = field(init=False)

    def __post_init__(self) -> None:
        self.schedule_ids = frozenset(r.id for r in self.records)


_RULES_MEMO = "schedules.rules"


def _rules(ctx: Context, conn: Connection, seen: dict[str, int] | None = None, *,
           again: bool = False) -> _Rules:
    # Versions are read before the rows: a write landing in between leaves the memo
    # keyed to the older versions, so the next call reads again.
    seen = versions.read(conn) if seen is None or again else seen
    key = (seen.get(versions.SCHEDULES, 0), seen.get(versions.ACCOUNTS, 0))
    memo: _Rules | None = ctx.memo.get(_RULES_MEMO)
    if memo is None or memo.versions != key or again:
        memo = _Rules(key, store.list_schedules(conn), store.rule_assignments(conn),
                      dict(account_store.names(conn)))
        ctx.memo[_RULES_MEMO] = memo
    return memo


@dataclass(frozen=True)
class Candidates:
    """What :func:`resolve` needs for some instances (see :func:`read_for`)."""

    records: builtins.list[ScheduleRecord]
    assignments: builtins.list[AssignmentRecord]
    account_names: dict[UUID, str]
    rules: _Rules


def read_for(ctx: Context, conn: Connection, instances: Iterable[Instance], *,
             seen: dict[str, int] | None = None) -> Candidates:
    """What :func:`resolve` needs for these instances (a page of a table, a few): every
    schedule, the rule-based assignments and the account names (few, and kept in the
    context's memo until a schedule, assignment or account changes: store/versions.py),
    and the instances' own assignments. The rows read follow the instances asked
    about, not the fleet: a data-version read and one indexed query when nothing
    changed. ``seen``: the data versions, when the caller read them (before the
    instances)."""
    rules = _rules(ctx, conn, seen)
    own = store.own_assignments(conn, {i.id for i in instances})
    if any(a.schedule_id not in rules.schedule_ids for a in own):
        # A schedule made and assigned after the versions were read: read them again.
        rules = _rules(ctx, conn, again=True)
    assignments = sorted([*rules.rules, *own], key=lambda x: (x.created_at, x.id))
    return Candidates(rules.records, assignments, rules.account_names, rules)


def upcoming_of(instances: builtins.list[Instance], found: Candidates, at: datetime
                ) -> dict[UUID, Upcoming]:
    """Each instance's governing schedule (:func:`resolve`) and its next transition
    after ``at``, evaluated once per distinct schedule (and reused across calls while
    ``at`` is before that transition)."""
    rules = found.rules
    nexts: dict[UUID, Transition | None] = {}
    out: dict[UUID, Upcoming] = {}
    governing = resolve(instances, found.records, found.assignments, found.account_names,
                        parsed=rules.parsed)
    for iid, gov in governing.items():
        sid = gov.schedule_id
        if sid not in nexts:
            known = rules.nexts.get(sid)
            if known is not None and known[0] <= at < known[1].at:
                nexts[sid] = known[1]
            else:
                nexts[sid] = nxt = next_transition(gov.schedule, at)
                if nxt is not None:
                    rules.nexts[sid] = (at, nxt)
        out[iid] = Upcoming(sid, gov.schedule.name, nexts[sid])
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
            before = store.get_override(conn, instance.id)
            store.put_override(conn, rec)
            audit.record(conn, at=now, actor=actor, action="create", kind="override",
                         object_id=instance.id, name=instance.name,
                         before=_override_json(before, now), after=_override_json(rec, now),
                         reason=f"{word} {instance.name} until {end.isoformat()}")
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

    def clear(self, ref: str, *, actor: str = "cli") -> bool:
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
            audit.record(conn, at=now, actor=actor, action="delete", kind="override",
                         object_id=instance.id, name=instance.name,
                         before=_override_json(rec, now))
            return True


def _override_json(rec: OverrideRecord | None, now: datetime) -> dict[str, Any] | None:
    """An override as the audit trail shows it (None: none, or one that had ended)."""
    if rec is None or rec.until <= now:
        return None
    return {"state": rec.state, "until": rec.until.isoformat(), "reason": rec.reason,
            "created_by": rec.created_by}
