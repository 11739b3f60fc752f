"""The reconcile plan: what one instance should be now, and since when (pure).

:func:`plan` is a function of (instance, the schedules governing it, its override,
the instant): it returns the desired state, the *key* of the current situation (an
override, keyed on when it was set; or a transition of the combined schedules, keyed on
the latest of the start of the current desired-state stretch, the moment the schedules
began to govern the instance, and the end of an override) and the reason, or None
when nothing decides now ("any"). The reconciler (``services/reconciler.py``) claims
each key once and acts; everything here is data in, data out.

When several schedules match one instance they are combined, never taken in turns:
"any" abstains, the highest ``priority`` decides, and on a tie running wins over
stopped (``conflicts.py``). The stretch is that of the combined state, so a change of
the deciding schedule that keeps the state is not a transition.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol
from uuid import UUID

from snoozeql.domain.schedules.conflicts import Ranked, combined_preview, winner
from snoozeql.domain.schedules.evaluator import (
    Decision,
    desired_state,
    next_transition,
    preview,
)
from snoozeql.domain.schedules.model import DesiredState, Schedule
from snoozeql.domain.types import Instance, InstanceStatus

__all__ = [
    "LOOKBACK",
    "Governing",
    "Match",
    "Override",
    "Plan",
    "decide",
    "matches_state",
    "next_stop",
    "plan",
    "ranked",
    "stretch_start",
]

#: How far back a plan looks for the start of the current desired-state stretch.
LOOKBACK = timedelta(days=8)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_RUNNING_LIKE = {InstanceStatus.RUNNING, InstanceStatus.STARTING}
_STOPPED_LIKE = {InstanceStatus.STOPPED, InstanceStatus.STOPPING}


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


class Override(Protocol):
    """An instance's override as planning reads it (the store's record is one)."""

    @property
    def state(self) -> str: ...

    @property
    def until(self) -> datetime: ...

    @property
    def reason(self) -> str: ...

    @property
    def created_by(self) -> str: ...

    @property
    def created_at(self) -> datetime: ...


@dataclass(frozen=True)
class Plan:
    """What one instance should be, keyed on the situation that decided it."""

    instance: Instance
    desired: DesiredState
    kind: str  # transition | override
    at: datetime
    reason: str
    dry_run: bool
    schedule_id: UUID | None = None
    schedule_name: str | None = None
    enforced: bool = False


def matches_state(status: InstanceStatus, desired: DesiredState) -> bool:
    """Whether ``status`` is (or is becoming) ``desired``."""
    return status in (_STOPPED_LIKE if desired is DesiredState.STOPPED else _RUNNING_LIKE)


def short(text: str, n: int = 255) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def ranked(gov: Governing) -> list[Ranked]:
    """The distinct schedules matching the instance (the governing one alone if the
    resolution did not list them)."""
    seen: dict[UUID, Ranked] = {}
    for m in gov.matches:
        seen.setdefault(m.schedule_id, m.ranked())
    return list(seen.values()) or [Ranked(gov.schedule_id, gov.schedule)]


def decide(gov: Governing, now: datetime) -> tuple[UUID, Schedule, Decision, str]:
    """(deciding schedule id, schedule, its decision, a note on what it overruled)."""
    ranks = ranked(gov)
    if len(ranks) == 1:
        return gov.schedule_id, gov.schedule, desired_state(gov.schedule, now), ""
    decisions = {r.key: desired_state(r.schedule, now) for r in ranks}
    key, state = winner((r.key, r.priority, decisions[r.key].state) for r in ranks)
    if key is None:  # every schedule says "any"
        return gov.schedule_id, gov.schedule, decisions[gov.schedule_id], ""
    chosen = next(r for r in ranks if r.key == key)
    overruled = [r for r in ranks if decisions[r.key].state not in (state, DesiredState.ANY)]
    note = ""
    if overruled:
        why = ("higher priority" if all(r.priority < chosen.priority for r in overruled)
               else "running wins")
        note = f" (over {', '.join(r.schedule.name for r in overruled)}: {why})"
    return key, chosen.schedule, decisions[key], note  # type: ignore[return-value]


def stretch_start(gov: Governing, now: datetime, cache: dict[object, Any]
                  ) -> datetime | None:
    """When the current (combined) desired state began (None: not within LOOKBACK).
    ``cache`` is shared by the instances of one run: one evaluation per schedule set."""
    ranks = ranked(gov)
    if len(ranks) > 1:
        key: object = tuple(sorted((str(r.key), r.priority) for r in ranks))
        if key not in cache:
            combined = combined_preview(ranks, now - LOOKBACK, now + timedelta(microseconds=1))
            cache[key] = None if len(combined) == 1 else combined[-1].start
        return cache[key]
    if gov.schedule_id not in cache:
        segments = preview(gov.schedule, now - LOOKBACK, now + timedelta(microseconds=1))
        first = segments[-1].start.astimezone(UTC)
        cache[gov.schedule_id] = None if len(segments) == 1 else first
    return cache[gov.schedule_id]


def plan(inst: Instance, gov: Governing | None, ov: Override | None, now: datetime, *,
         global_dry_run: bool, cache: dict[object, Any]) -> Plan | None:
    """The plan for one instance now (None: nothing decides its state now)."""
    if ov is not None and ov.until > now:
        return Plan(
            inst, DesiredState(ov.state), "override", ov.created_at,
            short(f"override by {ov.created_by}: {ov.reason}"), global_dry_run,
            gov.schedule_id if gov else None, gov.schedule.name if gov else None,
        )
    if gov is None:
        if ov is not None and ov.state == DesiredState.STOPPED:
            # "sleep until T" on an instance no schedule governs: wake it at T.
            return Plan(inst, DesiredState.RUNNING, "override", ov.until,
                        short(f"override ended ({ov.reason})"), global_dry_run)
        return None
    # The decision depends on the schedules and the instant only: once per schedule set.
    ranks = ranked(gov)
    dkey: object = ("decide", gov.schedule_id if len(ranks) == 1
                    else tuple(sorted((str(r.key), r.priority) for r in ranks)))
    if dkey not in cache:
        cache[dkey] = decide(gov, now)  # type: ignore[assignment]
    schedule_id, schedule, decision, note = cache[dkey]  # type: ignore[misc]
    if decision.state is DesiredState.ANY:
        return None
    since = max([gov.since, *(m.since for m in gov.matches)])
    at = max(stretch_start(gov, now, cache) or _EPOCH, since)
    reason = f"schedule {schedule.name}{note}: {decision.reason}"
    if ov is not None and ov.until > at:
        at = ov.until
        reason = f"schedule {schedule.name}{note} (override ended): {decision.reason}"
    return Plan(
        inst, decision.state, "transition", at, short(reason),
        schedule.dry_run or global_dry_run, schedule_id, schedule.name, schedule.enforced,
    )


def next_stop(gov: Governing, ranks: list[Ranked], now: datetime, lead: timedelta
              ) -> datetime | None:
    """When the (combined) desired state next turns to stopped within ``lead``."""
    if len(ranks) == 1:
        t = next_transition(gov.schedule, now, lead, into={"stopped"})
        return t.at if t else None
    combined = combined_preview(ranks, now, now + lead + timedelta(microseconds=1))
    return next((seg.start for seg in combined[1:] if seg.state is DesiredState.STOPPED), None)
