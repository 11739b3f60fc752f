"""The pure schedule evaluator: desired state at an instant, next transition, preview.

How it works, and why:

1. For one local calendar day the periods give a step function over wall-clock minutes
   (``_Compiled.profile``): the state only changes at a begintime or an endtime, so a
   day is a handful of ``(minute, state, decider)`` breakpoints, never 1440 minutes.
2. Each breakpoint is mapped once to a UTC instant (``wall_to_utc``). That is where the
   DST rules live: a wall time inside a spring-forward gap maps to the first instant
   after the gap; a wall time that occurs twice in a fall-back fold maps to its first
   occurrence only, so nothing fires twice.
3. Days are chained into a timeline of UTC segments; a stopped stretch of one minute or
   less between two running stretches is bridged (Instance Scheduler's adjacent-period
   rule, so ``endtime 23:59`` followed by ``begintime 00:00`` keeps running).
4. ``desired_state`` is a lookup in that timeline; ``next_transition`` walks it forward
   day by day (in growing chunks) until the state changes, or until a ``repeat``
   period's begintime (a start) or endtime (a stop): a transition where the state stays
   the same, which ``preview`` shows as a boundary between two segments of one state.

Per-day breakpoints are cached per schedule (schedules are immutable and hashable), so
the reconciler asking thousands of instances that share a few schedules every minute
does a dictionary lookup and a bisection per instance.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from functools import lru_cache
from zoneinfo import ZoneInfo

from snoozeql.domain.errors import ValidationError
from snoozeql.domain.schedules.grammar import MINUTES_PER_DAY
from snoozeql.domain.schedules.model import DesiredState, Schedule

__all__ = [
    "DEFAULT_HORIZON",
    "BRIDGE_GAP",
    "Decision",
    "Segment",
    "Transition",
    "desired_state",
    "next_transition",
    "preview",
    "wall_to_utc",
]

#: How far ``next_transition`` looks by default: a year and a bit, so yearly patterns
#: (``months jan``) are found; the reconciler may pass a shorter one.
DEFAULT_HORIZON = timedelta(days=400)

#: How far back a cron pair's latest firing is looked for.
CRON_LOOKBACK = timedelta(days=400)

#: Stopped stretches this short between two running stretches are bridged.
BRIDGE_GAP = timedelta(minutes=1)

_R, _S, _A = DesiredState.RUNNING, DesiredState.STOPPED, DesiredState.ANY

# A decider says what decided a stretch of time:
#   ("override",) | ("exception", date) | ("period", index) | ("none",) | ("bridge", index)
#   | ("period", index, "repeat"): the begintime/endtime of a ``repeat`` period, a
#   transition even where the state does not change
_Decider = tuple[object, ...]
_NONE: _Decider = ("none",)
_Entry = tuple[datetime, DesiredState, _Decider]


@dataclass(frozen=True)
class Decision:
    """The desired state at an instant and what decided it.

    ``source`` is one of ``override``, ``exception``, ``period``, ``no_period``,
    ``bridge`` and ``cron``; ``period`` is the index of the deciding period in ``schedule.periods``
    and ``exception`` the exception date, where they apply.
    """

    state: DesiredState
    reason: str
    source: str
    period: int | None = None
    exception: date | None = None


@dataclass(frozen=True)
class Transition:
    """The desired state changes from ``previous`` to ``state`` at ``at``."""

    at: datetime
    state: DesiredState
    previous: DesiredState
    reason: str


@dataclass(frozen=True)
class Segment:
    """``state`` holds from ``start`` (inclusive) to ``end`` (exclusive)."""

    start: datetime
    end: datetime
    state: DesiredState
    reason: str


# --------------------------------------------------------------------------- time zones


def wall_to_utc(zone: ZoneInfo, day: date, minute: int) -> datetime:
    """The UTC instant at which the wall clock of ``zone`` reads ``day`` + ``minute``.

    A wall time that occurs twice (fall back) gives its first occurrence. A wall time
    that does not exist (spring forward) gives the first valid instant after it, the
    moment the clocks jump.
    """
    naive = datetime(day.year, day.month, day.day) + timedelta(minutes=minute)
    first = naive.replace(tzinfo=zone).astimezone(UTC)
    if first.astimezone(zone).replace(tzinfo=None) == naive:
        return first
    # In a gap: fold=1 reads the wall time with the offset after the jump, which puts it
    # before the jump; fold=0 with the offset before, which puts it after. The jump lies
    # between; find it to the second.
    lo = naive.replace(tzinfo=zone, fold=1).astimezone(UTC)
    hi = first
    if lo >= hi:  # not a forward gap after all (should not happen); keep fold=0
        return first
    lo_offset = lo.astimezone(zone).utcoffset()
    while hi - lo > timedelta(seconds=1):
        mid = lo + (hi - lo) / 2
        mid = mid.replace(microsecond=0)
        if mid <= lo:
            break
        if mid.astimezone(zone).utcoffset() == lo_offset:
            lo = mid
        else:
            hi = mid
    return hi


# --------------------------------------------------------------------------- compiled form


class _Compiled:
    """A schedule with its per-day breakpoints cached (bounded)."""

    _MAX_DAYS = 2048
    _MAX_SPANS = 64

    def __init__(self, schedule: Schedule) -> None:
        self.schedule = schedule
        self.zone = schedule.zone
        self.exceptions = {ex.date: ex for ex in schedule.exceptions}
        self._days: dict[date, tuple[_Entry, ...]] = {}
        self._spans: dict[tuple[date, date], tuple[list[_Entry], list[datetime]]] = {}
        self.cron = schedule.cron
        self._carried: dict[date, DesiredState] = {}

    # A cron pair: each firing is a transition into its state (start: running, stop:
    # stopped), also when the state does not change, as a repeated period start is; a
    # day begins in the state of the latest firing before it.

    def _firings(self, d: date) -> list[tuple[int, DesiredState]]:
        assert self.cron is not None
        start, stop = self.cron
        fired = [(m, _R) for m in start.minutes_of_day(d)]
        fired += [(m, _S) for m in stop.minutes_of_day(d)]
        return sorted(fired, key=lambda f: f[0])

    def _carried_into(self, d: date) -> DesiredState:
        """The state of the latest firing before local day ``d`` (``any`` when nothing
        fired within CRON_LOOKBACK: the instance is then left as it is)."""
        found = self._carried.get(d)
        if found is not None:
            return found
        state = _A
        for back in range(1, CRON_LOOKBACK.days + 1):
            firings = self._firings(d - timedelta(days=back))
            if firings:
                state = firings[-1][1]
                break
        if len(self._carried) >= self._MAX_DAYS:
            self._carried.clear()
        self._carried[d] = state
        return state

    def _cron_profile(self, d: date) -> list[tuple[int, DesiredState, _Decider]]:
        out: list[tuple[int, DesiredState, _Decider]] = [
            (0, self._carried_into(d), ("cron", "carried"))]
        for minute, state in self._firings(d):
            entry = (minute, state, ("cron", "start" if state is _R else "stop", _REPEAT))
            if minute == 0:
                out[0] = entry
            else:
                out.append(entry)
        return out

    def profile(self, d: date) -> list[tuple[int, DesiredState, _Decider]]:
        """Breakpoints of local day ``d`` in wall-clock minutes, first one at minute 0."""
        ex = self.exceptions.get(d)
        if ex is not None:
            return [(0, ex.state, ("exception", d))]
        if self.cron is not None:
            return self._cron_profile(d)
        active = [(i, p) for i, p in enumerate(self.schedule.periods) if p.matches_day(d)]
        if not active:
            return [(0, _S, _NONE)]
        cuts = {0}
        for _, p in active:
            if p.begin_minute is not None:
                cuts.add(p.begin_minute)
            if p.end_minute is not None and p.end_minute < MINUTES_PER_DAY:
                cuts.add(p.end_minute)
        out: list[tuple[int, DesiredState, _Decider]] = []
        repeats = [(i, p) for i, p in active if p.repeat]
        for minute in sorted(cuts):
            states = [(i, p, p.state_at_minute(minute)) for i, p in active]
            running = [(i, p) for i, p, s in states if s is _R]
            if running:
                # The most recently begun running period decides (as Instance Scheduler).
                i, _ = max(
                    running,
                    key=lambda ip: (
                        -1 if ip[1].begin_minute is None else ip[1].begin_minute,
                        -ip[0],
                    ),
                )
                entry: tuple[int, DesiredState, _Decider] = (minute, _R, ("period", i))
            else:
                any_index = next((i for i, _, s in states if s is _A), None)
                if any_index is not None:
                    entry = (minute, _A, ("period", any_index))
                else:
                    entry = (minute, _S, _NONE)
            for i, p in repeats:
                starts = entry[1] is _R and entry[2] == ("period", i) and p.begin_minute == minute
                stops = entry[1] is _S and p.end_minute == minute
                if starts or stops:
                    entry = (minute, entry[1], ("period", i, _REPEAT))
                    break
            if out and out[-1][1:] == entry[1:] and not _is_repeat(entry[2]):
                continue
            out.append(entry)
        return out

    def day(self, d: date) -> tuple[_Entry, ...]:
        """Breakpoints of local day ``d`` as UTC instants (cached)."""
        found = self._days.get(d)
        if found is not None:
            return found
        entries = tuple(
            (wall_to_utc(self.zone, d, minute), state, decider)
            for minute, state, decider in self.profile(d)
        )
        if len(self._days) >= self._MAX_DAYS:
            self._days.clear()
        self._days[d] = entries
        return entries

    def day_start(self, d: date) -> datetime:
        return self.day(d)[0][0]  # every day's first breakpoint is its midnight

    def timeline(self, first: date, last: date) -> tuple[list[_Entry], list[datetime]]:
        """Entries from the start of ``first`` to the end of ``last``, bridged, and
        their start instants (for bisection). Cached: the reconciler asks about the same
        few days of the same schedule for every instance that uses it."""
        key = (first, last)
        found = self._spans.get(key)
        if found is not None:
            return found
        entries = self._build(first, last)
        result = (entries, [e[0] for e in entries])
        if len(self._spans) >= self._MAX_SPANS:
            self._spans.clear()
        self._spans[key] = result
        return result

    def _build(self, first: date, last: date) -> list[_Entry]:
        entries: list[_Entry] = []
        d = first
        while d <= last:
            for at, state, decider in self.day(d):
                if entries and at <= entries[-1][0]:
                    # Two boundaries on one instant (both inside one DST gap): the later
                    # one in wall-clock order wins.
                    entries[-1] = (entries[-1][0], state, decider)
                elif entries and entries[-1][1:] == (state, decider) and not _is_repeat(decider):
                    continue
                else:
                    entries.append((at, state, decider))
            d += timedelta(days=1)
        return _bridge(entries)


def _bridge(entries: list[_Entry]) -> list[_Entry]:
    """Turn stopped stretches of at most BRIDGE_GAP between running stretches running."""
    runs: list[tuple[int, int]] = []  # (first index, end index) of same-state runs
    start = 0
    for k in range(1, len(entries) + 1):
        if k == len(entries) or entries[k][1] != entries[start][1]:
            runs.append((start, k))
            start = k
    for r in range(1, len(runs) - 1):
        a, b = runs[r]
        if entries[a][1] is not _S or entries[a][2][0] == "cron":
            continue  # a cron pair's stop is never bridged: the latest firing decides
        if entries[runs[r - 1][0]][1] is not _R or entries[runs[r + 1][0]][1] is not _R:
            continue
        if entries[b][0] - entries[a][0] > BRIDGE_GAP:
            continue
        next_decider = entries[b][2]
        index = next_decider[1] if next_decider[0] == "period" else None
        for k in range(a, b):
            entries[k] = (entries[k][0], _R, ("bridge", index))
    return entries


_REPEAT = "repeat"


def _is_repeat(decider: _Decider) -> bool:
    """A ``repeat`` period's start or stop: a transition even without a change of state."""
    return len(decider) == 3 and decider[2] == _REPEAT


@lru_cache(maxsize=512)
def _compiled(schedule: Schedule) -> _Compiled:
    return _Compiled(schedule)


# --------------------------------------------------------------------------- reasons


def _period_label(schedule: Schedule, index: int) -> str:
    p = schedule.periods[index]
    label = f"period {index}"
    if p.name:
        label += f" ({p.name})"
    return f"{label} [{p.describe()}]"


def _decision(schedule: Schedule, state: DesiredState, decider: _Decider) -> Decision:
    kind = decider[0]
    if kind == "override":
        return Decision(state, f"override_status forces {state}", "override")
    if kind == "exception":
        d = decider[1]
        assert isinstance(d, date)
        ex = next(e for e in schedule.exceptions if e.date == d)
        note = f" ({ex.description})" if ex.description else ""
        return Decision(
            state,
            f"exception date {d.isoformat()}{note}: {state} all day",
            "exception",
            exception=d,
        )
    if kind == "period":
        i = decider[1]
        assert isinstance(i, int)
        label = _period_label(schedule, i)
        if _is_repeat(decider):
            p = schedule.periods[i]
            text = (f"{label} is running (a repeated start at {p.begintime})" if state is _R
                    else f"{label}: stopped (a repeated stop at {p.endtime})")
            return Decision(state, text, "period", period=i)
        if state is _R:
            text = f"{label} is running"
        else:
            text = f"{label} sets no state now: the instance is left as it is"
        return Decision(state, text, "period", period=i)
    if kind == "cron":
        start_cron, stop_cron = schedule.start_cron, schedule.stop_cron
        if decider[1] == "start":
            return Decision(state, f"start_cron {start_cron!r} fired: running", "cron")
        if decider[1] == "stop":
            return Decision(state, f"stop_cron {stop_cron!r} fired: stopped", "cron")
        if state is _A:
            return Decision(state, "neither cron expression fired in the last "
                            f"{CRON_LOOKBACK.days} days: the instance is left as it is", "cron")
        which = (f"start_cron {start_cron!r}" if state is _R
                 else f"stop_cron {stop_cron!r}")
        return Decision(state, f"{state}: the latest firing was {which}", "cron")
    if kind == "bridge":
        i = decider[1]
        return Decision(
            state,
            "a stop of one minute or less between two running periods is bridged",
            "bridge",
            period=i if isinstance(i, int) else None,
        )
    return Decision(state, "no period is running at this time", "no_period")


# --------------------------------------------------------------------------- public API


def _local(utc: datetime, zone: ZoneInfo) -> datetime:
    """``utc`` on the schedule's wall clock, with a fixed-offset tzinfo.

    A fixed offset keeps the local reading for display while making comparison and
    subtraction exact: two ZoneInfo datetimes in the same zone compare by wall clock and
    ignore ``fold``, which would make the two passes of a repeated hour look equal.
    """
    local = utc.astimezone(zone)
    offset = local.utcoffset()
    assert offset is not None
    return local.replace(tzinfo=timezone(offset))


def _utc(instant: datetime, what: str = "instant") -> datetime:
    if not isinstance(instant, datetime):
        raise ValidationError(f"{what}: expected a date and time")
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValidationError(
            f"{what}: {instant.isoformat()} has no UTC offset (give e.g. +01:00 or Z)"
        )
    return instant.astimezone(UTC)


def desired_state(schedule: Schedule, instant: datetime) -> Decision:
    """What ``schedule`` wants at ``instant`` (an aware datetime) and why."""
    utc = _utc(instant)
    if schedule.override_status is not None:
        return _decision(schedule, schedule.override_status, ("override",))
    c = _compiled(schedule)
    d = utc.astimezone(c.zone).date()
    entries, starts = c.timeline(d - timedelta(days=1), d + timedelta(days=1))
    k = max(bisect_right(starts, utc) - 1, 0)
    _, state, decider = entries[k]
    return _decision(schedule, state, decider)


def next_transition(
    schedule: Schedule,
    instant: datetime,
    horizon: timedelta = DEFAULT_HORIZON,
    *,
    into: Iterable[str] | None = None,
) -> Transition | None:
    """The first instant strictly after ``instant`` at which the desired state changes.

    Only changes no later than ``instant + horizon`` are reported; ``None`` means the
    state stays the same that long. ``into`` restricts the answer to changes into the
    given states (e.g. ``{"stopped"}`` for the next scheduled stop). ``at`` reads as
    the schedule's local time, with a fixed UTC offset (see ``_local``).
    """
    utc = _utc(instant)
    if horizon <= timedelta(0):
        raise ValidationError("horizon: must be positive")
    if schedule.override_status is not None:
        return None
    wanted = None if into is None else frozenset(DesiredState(s) for s in into)
    c = _compiled(schedule)
    limit = utc + horizon
    today = utc.astimezone(c.zone).date()
    first = today - timedelta(days=1)
    span = 2
    while True:
        last = today + timedelta(days=span)
        cutoff = c.day_start(last)
        entries, starts = c.timeline(first, last)
        k = max(bisect_right(starts, utc) - 1, 0)
        previous = entries[k][1]
        for at, state, decider in entries[k + 1 :]:
            if at >= cutoff or at > limit:
                break
            if state is previous and not _is_repeat(decider):
                continue
            if wanted is None or state in wanted:
                reason = _decision(schedule, state, decider).reason
                return Transition(_local(at, c.zone), state, previous, reason)
            previous = state
        if cutoff > limit:
            return None
        span *= 4


def preview(schedule: Schedule, start: datetime, end: datetime) -> list[Segment]:
    """The desired state from ``start`` to ``end`` as consecutive segments.

    Neighbouring segments differ in state, except at a ``repeat`` period's start or stop
    (a transition that keeps the state); times read as the schedule's local time, each
    with its fixed UTC offset.
    This is what ``snoozeql schedules preview NAME --days 7`` prints.
    """
    s_utc, e_utc = _utc(start, "start"), _utc(end, "end")
    if e_utc <= s_utc:
        raise ValidationError("end: must be after start")
    zone = schedule.zone
    if schedule.override_status is not None:
        d = _decision(schedule, schedule.override_status, ("override",))
        return [Segment(_local(s_utc, zone), _local(e_utc, zone), d.state, d.reason)]
    c = _compiled(schedule)
    entries, starts = c.timeline(
        s_utc.astimezone(zone).date() - timedelta(days=1),
        e_utc.astimezone(zone).date() + timedelta(days=1),
    )
    k = max(bisect_right(starts, s_utc) - 1, 0)
    segments: list[Segment] = []
    seg_start, seg_state, seg_decider = s_utc, entries[k][1], entries[k][2]
    for at, state, decider in entries[k + 1 :]:
        if at >= e_utc:
            break
        if state is seg_state and not _is_repeat(decider):
            continue
        reason = _decision(schedule, seg_state, seg_decider).reason
        segments.append(Segment(_local(seg_start, zone), _local(at, zone), seg_state, reason))
        seg_start, seg_state, seg_decider = at, state, decider
    reason = _decision(schedule, seg_state, seg_decider).reason
    segments.append(Segment(_local(seg_start, zone), _local(e_utc, zone), seg_state, reason))
    return segments
