"""Several schedules on one instance: the combined desired state, and conflicts.

An instance may be matched by more than one schedule (an instance assignment, a tag,
a selector, its account). Two of them *conflict* when, at some instant, one wants the
instance running and the other stopped ("any" never conflicts). Rather than flap, the
reconciler applies one rule, the same everywhere (:func:`winner`):

1. a schedule that says "any" at that instant abstains;
2. of the others, the highest ``priority`` decides;
3. on a tie in priority, ``running`` wins over ``stopped`` (a database kept up by
   mistake costs money; one stopped by mistake stops people's work).

Everything here is pure: it works on the evaluator's preview segments, so conflict
reports and the reconciler see exactly the decisions ``desired_state`` would make.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from snoozeql.domain.schedules.evaluator import Segment, preview
from snoozeql.domain.schedules.model import DesiredState, Schedule

__all__ = [
    "CombinedSegment",
    "Conflict",
    "Ranked",
    "combined_preview",
    "first_conflict",
    "pair_conflicts",
    "winner",
]


@dataclass(frozen=True)
class Ranked:
    """One schedule that matches an instance, with its priority and an identifying key."""

    key: Hashable
    schedule: Schedule
    priority: int = 0


@dataclass(frozen=True)
class CombinedSegment:
    """``state`` holds from ``start`` to ``end`` (UTC); ``deciding`` is the key of the
    schedule that decided it at ``start`` (None when every schedule said "any")."""

    start: datetime
    end: datetime
    state: DesiredState
    deciding: Hashable | None


@dataclass(frozen=True)
class Conflict:
    """The first instant at which ``a`` and ``b`` disagree, and what each wants then."""

    at: datetime
    a_state: DesiredState
    b_state: DesiredState


def winner(decisions: Iterable[tuple[Hashable, int, DesiredState]]
           ) -> tuple[Hashable | None, DesiredState]:
    """The rule above applied to (key, priority, state) triples: (deciding key, state)."""
    best: tuple[int, int] | None = None
    chosen: tuple[Hashable | None, DesiredState] = (None, DesiredState.ANY)
    for key, priority, state in decisions:
        if state is DesiredState.ANY:
            continue
        rank = (priority, 1 if state is DesiredState.RUNNING else 0)
        if best is None or rank > best:
            best, chosen = rank, (key, state)
    return chosen


def _utc(segments: Sequence[Segment]) -> list[tuple[datetime, datetime, DesiredState]]:
    return [(s.start.astimezone(UTC), s.end.astimezone(UTC), s.state) for s in segments]


def _pieces(timelines: Sequence[list[tuple[datetime, datetime, DesiredState]]],
            start: datetime, end: datetime
            ) -> list[tuple[datetime, datetime, list[DesiredState]]]:
    """Cut [start, end) at every boundary of every timeline; the states in each piece."""
    cuts = sorted({start, end, *(b for tl in timelines for seg in tl for b in seg[:2]
                                 if start < b < end)})
    idx = [0] * len(timelines)
    out = []
    for lo, hi in zip(cuts, cuts[1:], strict=False):
        states = []
        for n, tl in enumerate(timelines):
            while idx[n] + 1 < len(tl) and tl[idx[n]][1] <= lo:
                idx[n] += 1
            states.append(tl[idx[n]][2])
        out.append((lo, hi, states))
    return out


def combined_preview(ranked: Sequence[Ranked], start: datetime, end: datetime
                     ) -> list[CombinedSegment]:
    """The combined desired state from ``start`` to ``end`` as consecutive UTC segments
    (neighbours differ in state)."""
    s, e = start.astimezone(UTC), end.astimezone(UTC)
    if not ranked:
        return [CombinedSegment(s, e, DesiredState.ANY, None)]
    timelines = [_utc(preview(r.schedule, s, e)) for r in ranked]
    out: list[CombinedSegment] = []
    for lo, hi, states in _pieces(timelines, s, e):
        key, state = winner((r.key, r.priority, st) for r, st in zip(ranked, states,
                                                                     strict=True))
        if out and out[-1].state is state:
            out[-1] = CombinedSegment(out[-1].start, hi, state, out[-1].deciding)
        else:
            out.append(CombinedSegment(lo, hi, state, key))
    return out


def _disagree(x: DesiredState, y: DesiredState) -> bool:
    return DesiredState.ANY not in (x, y) and x is not y


def first_conflict(a: Schedule, b: Schedule, start: datetime, end: datetime
                   ) -> Conflict | None:
    """The first instant in [start, end) at which ``a`` and ``b`` want opposite states."""
    s, e = start.astimezone(UTC), end.astimezone(UTC)
    timelines = [_utc(preview(a, s, e)), _utc(preview(b, s, e))]
    for lo, _hi, (x, y) in _pieces(timelines, s, e):
        if _disagree(x, y):
            return Conflict(lo, x, y)
    return None


def pair_conflicts(
    target: Hashable,
    schedules: Mapping[Hashable, Schedule],
    instance_schedules: Mapping[Hashable, Iterable[Hashable]],
    start: datetime,
    end: datetime,
) -> dict[Hashable, tuple[Conflict, list[Hashable]]]:
    """For schedule ``target``: every other schedule it conflicts with on a shared
    instance, with the first conflicting instant and the shared instances.

    ``instance_schedules`` maps each instance to the keys of the schedules matching it.
    Timing is a property of the two schedules alone, so each pair is evaluated once.
    """
    shared: dict[Hashable, list[Hashable]] = {}
    for instance, keys in instance_schedules.items():
        keys = list(keys)
        if target not in keys:
            continue
        for other in keys:
            if other != target:
                shared.setdefault(other, []).append(instance)
    out: dict[Hashable, tuple[Conflict, list[Hashable]]] = {}
    for other, instances in shared.items():
        found = first_conflict(schedules[target], schedules[other], start, end)
        if found is not None:
            out[other] = (found, instances)
    return out
