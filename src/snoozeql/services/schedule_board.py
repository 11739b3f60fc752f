"""What the dashboard's schedule pages show, computed once for the whole fleet.

The schedules list needs, for every schedule, how many instances it matches now and
whether it disagrees with another schedule on a shared instance; the conflicts page
needs every such pair with the rule that wins. Both come from one resolution of the
fleet's assignments (``ScheduleService.governing``), which reads every instance. That
resolution is kept in the process (``Context.memo``) while its inputs are the same:
the inventory's data version (bumped by every write to the instances), the schedules
and assignments as stored (read on every call: a few rows), and, for conflicts, the
hour (they look a week ahead from now). A page load of a big fleet therefore reads the
inventory once per change, not once per view.

Per-instance timelines (:meth:`ScheduleBoard.instance_timeline`) read only what can
govern that instance.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from snoozeql.domain.protection import is_protected
from snoozeql.domain.schedules import DesiredState, Schedule, Transition, next_transition
from snoozeql.domain.schedules.assignment import ranked
from snoozeql.domain.schedules.conflicts import (
    CombinedSegment,
    Ranked,
    combined_preview,
    first_conflict,
)
from snoozeql.domain.selectors import parse_selector
from snoozeql.domain.types import Instance, ProviderKind
from snoozeql.services.context import Context
from snoozeql.services.inventory import InventoryService
from snoozeql.services.schedules import (
    CONFLICT_DAYS,
    MatchView,
    OverrideService,
    ScheduleService,
    ScheduleView,
    Via,
    _selector_target,
    resolve,
)
from snoozeql.store import accounts as account_store
from snoozeql.store import instances as instance_store
from snoozeql.store import schedules as store
from snoozeql.store import versions

__all__ = ["BoardConflict", "MatchDetail", "ScheduleBoard", "ScheduleSummary",
           "TimelineSegment"]

_MEMO = "schedule_board"
MAX_NAMES = 10


@dataclass(frozen=True)
class BoardConflict:
    """Two schedules that want opposite states on shared instances within a week."""

    a_id: UUID
    a_name: str
    a_priority: int
    b_id: UUID
    b_name: str
    b_priority: int
    first_at: datetime
    a_state: str
    b_state: str
    instances: int
    instance_names: tuple[str, ...]  # the first few, by name
    winner: str
    rule: str

    @property
    def why(self) -> str:
        """Why the winner wins, in a sentence."""
        loser = self.b_name if self.winner == self.a_name else self.a_name
        if self.rule == "higher priority":
            hi, lo = sorted((self.a_priority, self.b_priority), reverse=True)
            return (f"its priority {hi} is higher than {loser}'s {lo}; the higher "
                    "priority decides whatever the states")
        return (f"both have priority {self.a_priority}, and at equal priority a schedule "
                "that wants the database running wins over one that wants it stopped")

    @property
    def explanation(self) -> str:
        return f"{self.winner} wins: {self.why}"


@dataclass(frozen=True)
class ScheduleSummary:
    view: ScheduleView
    matched: int
    next: Transition | None
    conflicts: tuple[BoardConflict, ...]


@dataclass(frozen=True)
class MatchDetail:
    """A matched instance on a schedule's page: how it matched, its override now (None:
    none), and the other schedules matching it."""

    match: MatchView
    override: Any
    others: tuple[str, ...]


@dataclass(frozen=True)
class TimelineSegment:
    start: datetime
    end: datetime
    state: str
    source: str  # the schedule (or "override") that decided it


@dataclass(frozen=True, slots=True)
class _Lite:
    """What a selector reads of an instance (``domain/selectors.py``): kept for the
    whole fleet instead of full instances, for the editor's live preview."""

    id: UUID
    name: str
    tags: dict[str, str]
    provider: ProviderKind
    account_id: UUID | None
    region: str | None
    engine: str


@dataclass
class _Resolved:
    key: tuple[Any, ...]
    counts: dict[UUID, int]
    # distinct sets of schedules matching some instance -> the instances' names
    groups: dict[frozenset[UUID], list[str]]
    # per schedule, the instances it matches: (name, id, how it matched), by name
    members: dict[UUID, list[tuple[str, UUID, tuple[Via, ...]]]] = field(
        default_factory=dict)
    conflicts: dict[str, list[BoardConflict]] = field(default_factory=dict)  # by hour
    # what selectors read of every instance a schedule may apply to, by name
    fleet: list[_Lite] = field(default_factory=list)
    accounts: dict[UUID, str] = field(default_factory=dict)
    # instances matched by more than one schedule: which ones
    shared: dict[UUID, frozenset[UUID]] = field(default_factory=dict)


def _pair(a: Ranked, b: Ranked, start: datetime, names: list[str]) -> BoardConflict | None:
    c = first_conflict(a.schedule, b.schedule, start, start + timedelta(days=CONFLICT_DAYS))
    if c is None:
        return None
    if a.priority != b.priority:
        win = a if a.priority > b.priority else b
        rule = "higher priority"
    else:
        win = a if c.a_state is DesiredState.RUNNING else b
        rule = "same priority: running wins"
    ordered = sorted(names)
    return BoardConflict(
        a.key, a.schedule.name, a.priority, b.key, b.schedule.name,  # type: ignore[arg-type]
        b.priority, c.at, str(c.a_state), str(c.b_state), len(names),
        tuple(ordered[:MAX_NAMES]), win.schedule.name, rule)


class ScheduleBoard:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def _resolved(self) -> tuple[_Resolved, dict[UUID, ScheduleView], dict[UUID, int]]:
        with self.ctx.engine.connect() as conn:
            seen = versions.read(conn).get(versions.INSTANCES, 0)
            records = store.list_schedules(conn)
            assignments = store.list_assignments(conn)
            state = hashlib.sha256(repr((
                [(r.id, r.updated_at, r.priority) for r in records],
                [(a.id, a.schedule_id) for a in assignments],
            )).encode()).hexdigest()
            key = (seen, state)
            memo: _Resolved | None = self.ctx.memo.get(_MEMO)
            if memo is None or memo.key != key:
                accounts = dict(account_store.names(conn))
                instances = list(instance_store.iter_all(
                    conn, instance_store.InstanceFilter(missing=False)))
                found = resolve(instances, records, assignments, accounts)
                names = {i.id: i.name for i in instances}
                counts: dict[UUID, int] = {}
                groups: dict[frozenset[UUID], list[str]] = {}
                members: dict[UUID, list[tuple[str, UUID, tuple[Via, ...]]]] = {}
                shared: dict[UUID, frozenset[UUID]] = {}
                for iid, gov in found.items():
                    ids = frozenset(m.schedule_id for m in gov.matches) or frozenset(
                        {gov.schedule_id})
                    for sid in ids:
                        counts[sid] = counts.get(sid, 0) + 1
                        via = tuple(Via(m.via, m.target, m.assignment_id)
                                    for m in gov.matches if m.schedule_id == sid)
                        members.setdefault(sid, []).append((names[iid], iid, via))
                    if len(ids) > 1:
                        groups.setdefault(ids, []).append(names[iid])
                        shared[iid] = ids
                for rows in members.values():
                    rows.sort(key=lambda r: (r[0], str(r[1])))
                fleet = sorted(
                    (_Lite(i.id, i.name, i.tags, i.provider, i.account_id, i.region, i.engine)
                     for i in instances if not is_protected(i)),
                    key=lambda x: (x.name, str(x.id)))
                memo = _Resolved(key, counts, groups, members, fleet=fleet,
                                 accounts=accounts, shared=shared)
                self.ctx.memo[_MEMO] = memo
        views = {r.id: ScheduleView(r.id, Schedule.from_dict(r.definition), r.created_at,
                                    r.updated_at, r.priority) for r in records}
        return memo, views, {r.id: r.priority for r in records}

    def conflicts(self, start: datetime | None = None) -> list[BoardConflict]:
        """Every pair of schedules that disagree on a shared instance in the coming
        week, earliest first (computed once per hour and change)."""
        memo, views, _ = self._resolved()
        begin = (start or self.ctx.now()).astimezone(UTC)
        hour = begin.replace(minute=0, second=0, microsecond=0).isoformat()
        if start is None and hour in memo.conflicts:
            return memo.conflicts[hour]
        shared: dict[tuple[UUID, UUID], set[str]] = {}
        for ids, names in memo.groups.items():
            ordered = sorted(ids, key=lambda i: (views[i].name if i in views else "", str(i)))
            for n, a in enumerate(ordered):
                for b in ordered[n + 1:]:
                    shared.setdefault((a, b), set()).update(names)
        out = []
        for (a, b), pair_names in shared.items():
            if a not in views or b not in views:
                continue
            va, vb = views[a], views[b]
            found = _pair(Ranked(a, va.schedule, va.priority), Ranked(b, vb.schedule,
                                                                      vb.priority),
                          begin, sorted(pair_names))
            if found is not None:
                out.append(found)
        out.sort(key=lambda c: (c.first_at, c.a_name, c.b_name))
        if start is None:
            memo.conflicts = {hour: out}
        return out

    def summaries(self) -> list[ScheduleSummary]:
        """Every schedule, by name, with its matched instances, next transition and
        conflicts."""
        memo, views, _ = self._resolved()
        now = self.ctx.now()
        conflicts = self.conflicts()
        out = []
        for view in sorted(views.values(), key=lambda v: v.name):
            mine = tuple(c for c in conflicts if view.id in (c.a_id, c.b_id))
            out.append(ScheduleSummary(view, memo.counts.get(view.id, 0),
                                       next_transition(view.schedule, now), mine))
        return out

    def matches_page(self, schedule_id: UUID, offset: int = 0, limit: int = 50
                     ) -> tuple[int, list[MatchView]]:
        """How many instances the schedule matches now, and one page of them by name
        (the same as ``ScheduleService.matches``, without reading the fleet again)."""
        total, rows = self.matches_detail(schedule_id, offset, limit)
        return total, [r.match for r in rows]

    def matches_detail(self, schedule_id: UUID, offset: int = 0, limit: int = 50
                       ) -> tuple[int, list[MatchDetail]]:
        """:meth:`matches_page` with, for each instance, its override now and the
        other schedules that match it (whose wishes may win over this one's)."""
        memo, views, _ = self._resolved()
        rows = memo.members.get(schedule_id, [])
        page = rows[offset:offset + limit]
        now = self.ctx.now()
        with self.ctx.engine.connect() as conn:
            accounts = dict(account_store.names(conn))
            found = instance_store.get_many(conn, [iid for _, iid, _ in page])
            overrides = {k: v for k, v in store.all_overrides(conn).items()
                         if v.until > now}
        out = []
        for _, iid, via in page:
            inst = found.get(iid)
            if inst is None:
                continue
            account = accounts.get(inst.account_id) if inst.account_id else None
            others = tuple(sorted(views[o].name for o in memo.shared.get(iid, ())
                                  if o != schedule_id and o in views))
            out.append(MatchDetail(MatchView(inst, account, via), overrides.get(iid),
                                   others))
        return len(rows), out

    def preview_selector(self, raw: Any, limit: int = 50) -> tuple[int, list[MatchView]]:
        """What an unsaved selector matches now, by name: how many, and the first
        ``limit``. The same rules as ``ScheduleService.preview_selector`` (behind
        ``POST /api/v1/schedules/preview``): the same parsed selector, the instances
        the last sync saw, protected ones left out; but matched against the fleet kept
        with the resolution, so a keystroke does not read the inventory."""
        selector = parse_selector(raw)
        target = _selector_target(selector)
        memo, _, _ = self._resolved()
        names = memo.accounts
        found = [x for x in memo.fleet if selector.matches(
            x, names.get(x.account_id) if x.account_id else None)]  # type: ignore[arg-type]
        with self.ctx.engine.connect() as conn:
            full = instance_store.get_many(conn, [x.id for x in found[:limit]])
        out = [MatchView(full[x.id], names.get(x.account_id) if x.account_id else None,
                         (Via("selector", target, None),))
               for x in found[:limit] if x.id in full]
        return len(found), out

    def facets(self) -> dict[str, list[str]]:
        """The values a selector's provider, account, region and engine conditions can
        name in this fleet (for the builder's suggestions)."""
        memo, _, _ = self._resolved()
        return {
            "provider": sorted({x.provider.value for x in memo.fleet}),
            "account": sorted(set(memo.accounts.values())),
            "region": sorted({x.region for x in memo.fleet if x.region}),
            "engine": sorted({x.engine for x in memo.fleet}),
        }

    # ------------------------------------------------------------------ one instance

    def instance_timeline(self, ref: str, days: int = 7
                          ) -> tuple[Instance, list[TimelineSegment], list[BoardConflict],
                                     Any]:
        """The instance's combined desired state for ``days`` days from now: the
        schedules matching it combined by priority (running wins at equal priority),
        with its override on top; and the conflicts among those schedules."""
        inst = InventoryService(self.ctx).get(ref)
        now = self.ctx.now()
        end = now + timedelta(days=days)
        gov = ScheduleService(self.ctx).governing_one(inst)
        override = OverrideService(self.ctx).get(str(inst.id))
        if override is not None and override.until <= now:
            override = None
        segments: list[TimelineSegment] = []
        conflicts: list[BoardConflict] = []
        if gov is not None:
            ranks = ranked(gov)
            names = {r.key: r.schedule.name for r in ranks}
            combined: list[CombinedSegment] = combined_preview(ranks, now, end)
            segments = [TimelineSegment(s.start, s.end, str(s.state),
                                        names.get(s.deciding, "no schedule decides")
                                        if s.deciding is not None else "every schedule: any")
                        for s in combined]
            for n, a in enumerate(ranks):
                for b in ranks[n + 1:]:
                    c = _pair(a, b, now, [inst.name])
                    if c is not None:
                        conflicts.append(c)
        else:
            segments = [TimelineSegment(now.astimezone(UTC), end.astimezone(UTC), "any",
                                        "no schedule")]
        if override is not None:
            segments = _overlay(segments, now.astimezone(UTC),
                                min(override.until, end).astimezone(UTC), override.state,
                                f"override by {override.created_by}: {override.reason}")
        return inst, segments, conflicts, gov


def _overlay(segments: list[TimelineSegment], start: datetime, end: datetime, state: str,
             source: str) -> list[TimelineSegment]:
    """``segments`` with [start, end) replaced by one segment of ``state``."""
    out: list[TimelineSegment] = []
    for s in segments:
        if s.end <= start or s.start >= end:
            out.append(s)
            continue
        if s.start < start:
            out.append(TimelineSegment(s.start, start, s.state, s.source))
        if s.end > end:
            out.append(TimelineSegment(end, s.end, s.state, s.source))
    out.append(TimelineSegment(start, end, state, source))
    return sorted(out, key=lambda s: s.start)
