"""Which schedules govern which instance (pure).

A schedule reaches an instance through an assignment: to the instance itself, the
instance's own tag ``snoozeql-schedule=NAME``, a tag (key=value), a selector (a rule
tree, ``domain/selectors.py``) or an account. :func:`resolve` turns the stored
schedules and assignments into, per instance, every schedule matching it and the one
*governing* it (shown for the instance: its time zone, projected savings): the highest
``priority``, then the strongest way of assigning in the order above, then the name
that sorts first. An instance tagged ``snoozeql-protect=true`` has no schedule at all
(unless the caller asks to see them: the reconciler reports their transitions as
refused).

When several schedules match one instance, :func:`decide` combines them, never taking
them in turns: "any" abstains, the highest ``priority`` decides, and on a tie running
wins over stopped (``conflicts.py``). An override (:class:`OverrideRecord`) beats every
schedule while it lasts (``reconcile.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from snoozeql.domain.protection import is_protected
from snoozeql.domain.schedules.conflicts import Ranked, winner
from snoozeql.domain.schedules.evaluator import Decision, desired_state
from snoozeql.domain.schedules.model import DesiredState, Schedule
from snoozeql.domain.selectors import Selector, parse_selector
from snoozeql.domain.types import Instance

__all__ = [
    "SCHEDULE_TAG",
    "VIA_RANK",
    "AssignmentRecord",
    "Governing",
    "Match",
    "OverrideRecord",
    "ParsedRules",
    "ScheduleRecord",
    "Target",
    "decide",
    "ranked",
    "resolve",
]

#: The tag through which an instance names its own schedule.
SCHEDULE_TAG = "snoozeql-schedule"

#: Strength of each way of assigning, strongest first.
VIA_RANK = {"instance": 0, "own_tag": 1, "tag": 2, "selector": 3, "account": 4}


@dataclass(frozen=True)
class ScheduleRecord:
    """A stored schedule: its definition in the dict form (``Schedule.from_dict``)."""

    id: UUID
    name: str
    definition: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    priority: int = 0


@dataclass(frozen=True)
class AssignmentRecord:
    """A stored assignment of a schedule to a target (``target`` names it once:
    ``instance:<id>``, ``account:<id>``, ``tag:key=value``, ``selector:<digest>``)."""

    id: UUID
    schedule_id: UUID
    kind: str  # instance | account | tag | selector
    target: str
    instance_id: UUID | None
    account_id: UUID | None
    tag_key: str | None
    tag_value: str | None
    created_at: datetime
    selector: dict[str, Any] | None = None


@dataclass(frozen=True)
class Target:
    """What an assignment is made to: ``target`` names it once; the instance, account,
    tag or selector it stands for is in the field of its ``kind``."""

    kind: str  # instance | account | tag | selector
    target: str
    instance_id: UUID | None = None
    account_id: UUID | None = None
    tag_key: str | None = None
    tag_value: str | None = None
    selector: dict[str, Any] | None = None


@dataclass(frozen=True)
class OverrideRecord:
    """An instance's override: ``state`` until ``until`` (one per instance)."""

    instance_id: UUID
    state: str
    until: datetime
    reason: str
    created_by: str
    created_at: datetime


@dataclass(frozen=True)
class Match:
    """One schedule matching one instance, and through which assignment."""

    schedule_id: UUID
    schedule: Schedule
    priority: int
    via: str  # instance | own_tag | tag | selector | account
    target: str  # the assignment's target (own_tag: ``tag:snoozeql-schedule=NAME``)
    assignment_id: UUID | None  # None for the instance's own tag
    since: datetime  # when this schedule (as it is now) started to match the instance

    def ranked(self) -> Ranked:
        return Ranked(self.schedule_id, self.schedule, self.priority)


@dataclass(frozen=True)
class Governing:
    """The schedule that governs one instance, how it got there and since when; and
    every schedule that matches it (``matches``, the governing one included), which the
    reconciler combines by priority."""

    schedule_id: UUID
    schedule: Schedule
    via: str  # instance | own_tag | tag | selector | account
    since: datetime  # when this schedule (as it is now) started to govern the instance
    matches: tuple[Match, ...] = ()

    # Derived once per value (the reconciler keeps its resolution between runs) and
    # stored beside the fields: ``functools.cached_property`` takes a lock per access.

    @property
    def ranks(self) -> tuple[Ranked, ...]:
        """The distinct schedules matching the instance (the governing one alone if the
        resolution did not list them)."""
        found: tuple[Ranked, ...] | None = self.__dict__.get("_ranks")
        if found is None:
            seen: dict[UUID, Ranked] = {}
            for m in self.matches:
                seen.setdefault(m.schedule_id, m.ranked())
            found = tuple(seen.values()) or (Ranked(self.schedule_id, self.schedule),)
            object.__setattr__(self, "_ranks", found)
        return found

    @property
    def set_key(self) -> object:
        """Identifies the set of matching schedules (with their priorities) and the one
        governing: the governing schedule's id when it is alone; equal for equal sets
        with the same governing schedule. (Two instances can match the same schedules
        at the same priorities through different assignments, and be governed by
        different ones of them: a tie is decided by the governing schedule.)"""
        found = self.__dict__.get("_set_key")
        if found is None:
            ranks = self.ranks
            found = self.schedule_id if len(ranks) == 1 else (self.schedule_id, tuple(
                sorted((str(r.key), r.priority) for r in ranks)))
            object.__setattr__(self, "_set_key", found)
        return found

    @property
    def latest_since(self) -> datetime:
        """The latest moment any of the matching schedules began to match."""
        found: datetime | None = self.__dict__.get("_latest_since")
        if found is None:
            found = max([self.since, *(m.since for m in self.matches)])
            object.__setattr__(self, "_latest_since", found)
        return found


@dataclass
class ParsedRules:
    """Parsed schedule definitions (by schedule id) and selectors (by assignment id),
    kept across calls of :func:`resolve` for as long as the rows they came from; and
    the matches and resolutions made, each made once and shared by every instance it
    is equal for (the instances of one tag assignment all hold one ``Governing``: a
    resolution of 20,000 instances is a few objects, not 20,000 of each)."""

    schedules: dict[UUID, Schedule] = field(default_factory=dict)
    selectors: dict[UUID, Selector] = field(default_factory=dict)
    matches: dict[tuple[Any, ...], Match] = field(default_factory=dict)
    governing: dict[tuple[Any, ...], Governing] = field(default_factory=dict)


def resolve(
    instances: list[Instance], records: list[ScheduleRecord],
    assignments: list[AssignmentRecord], account_names: dict[UUID, str] | None = None,
    *, include_protected: bool = False, parsed: ParsedRules | None = None,
) -> dict[UUID, Governing]:
    """Every schedule matching each instance, and the governing one (see module doc).
    ``account_names`` serve selector ``account`` rules. Protected instances are left
    out unless ``include_protected``. ``parsed`` keeps the parsed forms across calls."""
    by_id = {r.id: r for r in records}
    by_name = {r.name: r for r in records}
    accounts = account_names or {}
    known = parsed if parsed is not None else ParsedRules()

    def schedule_of(r: ScheduleRecord) -> Schedule:
        found = known.schedules.get(r.id)
        if found is None:
            found = known.schedules[r.id] = Schedule.from_dict(r.definition)
        return found

    def selector_of(a: AssignmentRecord, tree: dict[str, Any]) -> Selector:
        found = known.selectors.get(a.id)
        if found is None:
            found = known.selectors[a.id] = parse_selector(tree)
        return found

    direct: dict[UUID, list[AssignmentRecord]] = {}
    by_account: dict[UUID, list[AssignmentRecord]] = {}
    by_tag: list[AssignmentRecord] = []
    by_selector: list[tuple[AssignmentRecord, Selector]] = []
    for a in assignments:
        if a.kind == "instance" and a.instance_id:
            direct.setdefault(a.instance_id, []).append(a)
        elif a.kind == "account" and a.account_id:
            by_account.setdefault(a.account_id, []).append(a)
        elif a.kind == "tag":
            by_tag.append(a)
        elif a.kind == "selector" and a.selector is not None:
            by_selector.append((a, selector_of(a, a.selector)))

    def match(r: ScheduleRecord, via: str, target: str, aid: UUID | None, at: datetime
              ) -> Match:
        key = (r.id, r.priority, via, target, aid, max(at, r.updated_at))
        found = known.matches.get(key)
        if found is None:
            found = known.matches[key] = Match(r.id, schedule_of(r), r.priority, via, target,
                                               aid, key[-1])
        return found

    out: dict[UUID, Governing] = {}
    for inst in instances:
        if is_protected(inst) and not include_protected:
            continue
        found: list[Match] = []
        for a in direct.get(inst.id, []):
            found.append(match(by_id[a.schedule_id], "instance", a.target, a.id, a.created_at))
        own = inst.tags.get(SCHEDULE_TAG)
        if own and own.strip() in by_name:
            found.append(match(by_name[own.strip()], "own_tag",
                               f"tag:{SCHEDULE_TAG}={own.strip()}", None, inst.first_seen_at))
        for a in by_tag:
            if inst.tags.get(a.tag_key or "") == a.tag_value:
                found.append(match(by_id[a.schedule_id], "tag", a.target, a.id, a.created_at))
        if by_selector:
            name = accounts.get(inst.account_id) if inst.account_id else None
            for a, sel in by_selector:
                if sel.matches(inst, name):
                    found.append(match(by_id[a.schedule_id], "selector", a.target, a.id,
                                       a.created_at))
        if inst.account_id is not None:
            for a in by_account.get(inst.account_id, []):
                found.append(match(by_id[a.schedule_id], "account", a.target, a.id,
                                   a.created_at))
        if not found:
            continue
        best = min(found, key=lambda m: (-m.priority, VIA_RANK[m.via], m.schedule.name))
        gkey = (id(best), *map(id, found))  # the matches are shared: their ids name them
        governs = known.governing.get(gkey)
        if governs is None:
            governs = known.governing[gkey] = Governing(
                best.schedule_id, best.schedule, best.via, best.since, tuple(found))
        out[inst.id] = governs
    return out


def ranked(gov: Governing) -> list[Ranked]:
    """The distinct schedules matching the instance (the governing one alone if the
    resolution did not list them)."""
    return list(gov.ranks)


def decide(gov: Governing, now: datetime) -> tuple[UUID, Schedule, Decision, str]:
    """The combined decision of the schedules matching an instance at ``now``:
    (deciding schedule id, schedule, its decision, a note on what it overruled).
    "any" abstains, the highest priority decides, on a tie running wins; when every
    schedule says "any", the governing one's decision ("any") is returned."""
    ranks = ranked(gov)
    if len(ranks) == 1:
        return gov.schedule_id, gov.schedule, desired_state(gov.schedule, now), ""
    decisions = {r.key: desired_state(r.schedule, now) for r in ranks}
    key, state = winner((r.key, r.priority, decisions[r.key].state) for r in ranks)
    if key is None:  # every schedule says "any"
        return gov.schedule_id, gov.schedule, decisions[gov.schedule_id], ""
    # Schedules tied with the winner (same priority, same state) decide alike; the one
    # named is the governing schedule if it is among them, else the first by name: never
    # the order in which the instance's assignments happened to match it (the
    # reconciler shares one decision among the instances of one set: Governing.set_key).
    top = next(r for r in ranks if r.key == key).priority
    tied = [r for r in ranks if r.priority == top and decisions[r.key].state is state]
    chosen = next((r for r in tied if r.key == gov.schedule_id), None) or min(
        tied, key=lambda r: (r.schedule.name, str(r.key)))
    key = chosen.key
    overruled = [r for r in ranks if decisions[r.key].state not in (state, DesiredState.ANY)]
    note = ""
    if overruled:
        why = ("higher priority" if all(r.priority < chosen.priority for r in overruled)
               else "running wins")
        note = f" (over {', '.join(r.schedule.name for r in overruled)}: {why})"
    return key, chosen.schedule, decisions[key], note  # type: ignore[return-value]
