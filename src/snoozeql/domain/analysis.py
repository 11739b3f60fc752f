"""Activity analysis: which hours of the week an instance is reliably idle in.

A pure function of (hourly aggregates, settings, now, time zone, cost). The steps,
written down in docs/analysis.md with the reasons for each default:

1. Every UTC hour of the lookback (``lookback_days`` full hours before ``now``'s hour)
   is *idle*, *busy* or *unobserved*. It is observed when it has a connections or a
   CPU aggregate; it is idle when every metric it has passes its test: connections
   (the hour's **max** by default, so a five-minute job cannot hide in a low mean) at
   or below ``idle_connections``, and the CPU, read IOPS and write IOPS means below
   theirs.
2. Each hour falls in a slot (weekday, hour) of the instance's local time. A slot is a
   sleep candidate when it was observed in at least ``min_weeks`` different weeks and
   idle in ``required_idle_share`` of them (default: every one).
3. Windows are the runs of candidate slots around the weekly ring (they wrap across
   midnight and from Sunday into Monday). Each end of a window that touches a busy or
   unobserved slot is pulled in by ``margin_minutes``, so the database is awake again
   before recurring activity starts and a job that overruns its hour is not cut off.
   Windows shorter than ``min_window_hours`` after that are dropped.
4. An instance observed idle in every hour, with every slot covered, gets a "stop it"
   recommendation instead of windows.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from decimal import ROUND_HALF_EVEN, Decimal
from enum import StrEnum
from functools import cached_property, lru_cache
from itertools import compress
from operator import add, itemgetter
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np

from snoozeql.domain.errors import ValidationError
from snoozeql.domain.metrics import (
    CONNECTIONS,
    CPU,
    HourlyAggregate,
    HourlySeries,
    SeriesBlock,
)

__all__ = [
    "AnalysisEntry",
    "DAYS_PER_MONTH",
    "MINUTES_PER_DAY",
    "MINUTES_PER_WEEK",
    "WEEKDAY_NAMES",
    "ActivityProfile",
    "AnalysisSettings",
    "BlockAnalysis",
    "NoRecommendation",
    "NoRecommendationReason",
    "Recommendation",
    "RecommendationKind",
    "SleepSpan",
    "SleepWindow",
    "activity_profile",
    "analyse",
    "format_weekdays",
    "monthly_savings_cents",
]

MINUTES_PER_DAY = 1440
MINUTES_PER_WEEK = 7 * MINUTES_PER_DAY
SLOTS_PER_WEEK = 7 * 24
WEEKDAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DAYS_PER_MONTH = Decimal("365.25") / 12
"""Average days in a month; a week of sleep is worth ``DAYS_PER_MONTH / 7`` in a month."""

_HOUR = timedelta(hours=1)
MAX_MARGIN_MINUTES = 90
"""The most a learned margin can be (the least is ``margin_minutes``)."""
POOL_HOURS = 3
"""Starts (ends) of activity within this many hours of a window's end (start), on any
weekday, are taken as the same recurring activity, jittering."""

# Hour states. BUSY > IDLE so that max() of two states is "busy wins".
_NONE, _IDLE, _BUSY = 0, 1, 2


@dataclass(frozen=True)
class AnalysisSettings:
    """Everything the analysis can be tuned with; the defaults are in docs/analysis.md.

    Validated on construction (a ValidationError names the bad field), because these
    come from user configuration.
    """

    lookback_days: int = 14
    min_hours: int = 24
    """Fewer observed hours than this: no recommendation ("not enough data")."""
    min_weeks: int = 2
    """A slot needs data from this many different weeks before it can be slept."""
    required_idle_share: float = 1.0
    """Share of a slot's observed weeks that must be idle (1.0 = every week)."""
    idle_connections: float = 0.0
    """An hour is idle when its connections statistic is at or below this."""
    connections_statistic: str = "max"
    """``max`` (default: a short job shows) or ``avg``."""
    idle_cpu_percent: float = 10.0
    """... and its mean CPU below this."""
    idle_read_iops: float = 20.0
    idle_write_iops: float = 20.0
    min_window_hours: float = 2.0
    """Shortest sleep window worth recommending, measured after the margins."""
    margin_minutes: int = 30
    """The least taken off each end of a window that borders activity or missing data;
    where the activity's start or end varies, the margin learned from that spread
    (half of it, up to ``MAX_MARGIN_MINUTES``) is used when it is larger."""
    background_connections: int = 2
    """Largest constant background of held connections (a monitoring agent, a pool)
    counted as idle; 0 turns the recognition off."""
    change_hold_days: int = 10
    """A database gone quiet is analysed from its new (quiet) pattern only once that has
    held this many days; before, the old windows stay and a note says it changed. Longer
    than a holiday week, so a holiday just before now does not erase office hours."""

    def __post_init__(self) -> None:
        # Numbers from a config file may be ints or strings: take numbers, keep floats.
        for name in (
            "required_idle_share",
            "idle_connections",
            "idle_cpu_percent",
            "idle_read_iops",
            "idle_write_iops",
            "min_window_hours",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValidationError(f"{name}: {value!r} is not a number")
            object.__setattr__(self, name, float(value))
        for name in (
            "lookback_days",
            "min_hours",
            "min_weeks",
            "margin_minutes",
            "background_connections",
            "change_hold_days",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValidationError(f"{name}: {value!r} is not a whole number")

        def need(ok: bool, name: str, rule: str) -> None:
            if not ok:
                raise ValidationError(f"{name}: {getattr(self, name)!r} {rule}")

        need(1 <= self.lookback_days <= 366, "lookback_days", "must be between 1 and 366")
        need(self.min_hours >= 1, "min_hours", "must be at least 1")
        need(self.min_weeks >= 1, "min_weeks", "must be at least 1")
        need(
            self.min_weeks * 7 <= self.lookback_days,
            "min_weeks",
            f"needs a lookback of at least {self.min_weeks * 7} days",
        )
        need(0 < self.required_idle_share <= 1, "required_idle_share", "must be in (0, 1]")
        need(self.idle_connections >= 0, "idle_connections", "must be >= 0")
        need(
            self.connections_statistic in ("max", "avg"),
            "connections_statistic",
            "must be 'max' or 'avg'",
        )
        for name in ("idle_cpu_percent", "idle_read_iops", "idle_write_iops"):
            need(getattr(self, name) > 0, name, "must be > 0")
        need(self.min_window_hours > 0, "min_window_hours", "must be > 0")
        need(0 <= self.margin_minutes < 60, "margin_minutes", "must be in [0, 60)")
        need(
            0 <= self.background_connections <= 100,
            "background_connections",
            "must be between 0 and 100",
        )
        need(self.change_hold_days >= 1, "change_hold_days", "must be at least 1")

    @property
    def lookback_hours(self) -> int:
        return self.lookback_days * 24


# -- results ----------------------------------------------------------------------------


def _hhmm(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


def format_weekdays(days: Iterable[int]) -> str:
    """Weekday numbers (0 = Monday) as Instance Scheduler text: ``mon-fri``, ``sat,sun``.

    Runs of three or more days become a range; no wrapping ranges, so any parser reads it.
    """
    ds = sorted(set(days))
    parts: list[str] = []
    i = 0
    while i < len(ds):
        j = i
        while j + 1 < len(ds) and ds[j + 1] == ds[j] + 1:
            j += 1
        if j - i >= 2:
            parts.append(f"{WEEKDAY_NAMES[ds[i]]}-{WEEKDAY_NAMES[ds[j]]}")
        else:
            parts.extend(WEEKDAY_NAMES[d] for d in ds[i : j + 1])
        i = j + 1
    return ",".join(parts)


@dataclass(frozen=True)
class SleepSpan:
    """One continuous sleep window in local wall time, possibly days long.

    ``start`` is the minute of the week (0 = Monday 00:00); the window lasts
    ``minutes`` and may run past Sunday midnight into Monday.
    """

    start: int
    minutes: int

    @property
    def end(self) -> int:
        """Minute of the week the window ends at (wrapped into the week)."""
        return (self.start + self.minutes) % MINUTES_PER_WEEK

    def describe(self) -> str:
        """E.g. ``fri 18:30 -> mon 08:30``; ``whole week`` for a span of a whole week."""
        if self.minutes >= MINUTES_PER_WEEK:
            return "whole week"
        s, e = self.start, self.end
        return (
            f"{WEEKDAY_NAMES[s // MINUTES_PER_DAY]} {_hhmm(s % MINUTES_PER_DAY)} -> "
            f"{WEEKDAY_NAMES[e // MINUTES_PER_DAY]} {_hhmm(e % MINUTES_PER_DAY)}"
        )

    def overlap(self, start: int, minutes: int) -> int:
        """Minutes of [start, start+minutes) of the week (wrapping) inside this span."""
        total = 0
        for shift in (-MINUTES_PER_WEEK, 0, MINUTES_PER_WEEK):
            a = max(self.start + shift, start)
            b = min(self.start + shift + self.minutes, start + minutes)
            if b > a:
                total += b - a
        return min(total, minutes)


@dataclass(frozen=True)
class SleepWindow:
    """Sleep on each of ``weekdays`` (0 = Monday) from ``begin`` to ``end`` (``HH:MM``).

    Never crosses midnight: a night is a window ending ``24:00`` and one beginning
    ``00:00`` on the next days. ``end`` may be ``24:00``.
    """

    weekdays: tuple[int, ...]
    begin: str
    end: str


class RecommendationKind(StrEnum):
    SLEEP = "sleep"
    """Sleep in the given windows every week."""
    STOP = "always_idle"
    """Idle in every hour of the lookback: stop it (or delete it). No sleep spans."""


class NoRecommendationReason(StrEnum):
    NOT_ENOUGH_DATA = "not_enough_data"
    NOT_ENOUGH_WEEKS = "not_enough_weeks"
    NO_IDLE_WINDOW = "no_idle_window"


def _day_pieces(spans: Iterable[SleepSpan]) -> list[list[tuple[int, int]]]:
    """Per weekday, the sorted [begin, end) minutes of the day that are slept."""
    days: list[list[tuple[int, int]]] = [[] for _ in range(7)]
    for sp in spans:
        a, b = sp.start, sp.start + sp.minutes
        while a < b:
            day_start = a - a % MINUTES_PER_DAY
            cut = min(b, day_start + MINUTES_PER_DAY)
            days[(day_start // MINUTES_PER_DAY) % 7].append((a - day_start, cut - day_start))
            a = cut
    for pieces in days:
        pieces.sort()
    return days


def _group(days: list[list[tuple[int, int]]]) -> list[tuple[tuple[int, ...], int, int]]:
    """Merge identical (begin, end) pieces of different weekdays into one entry."""
    by_piece: dict[tuple[int, int], list[int]] = {}
    for day, pieces in enumerate(days):
        for piece in pieces:
            by_piece.setdefault(piece, []).append(day)
    entries = [(tuple(ds), a, b) for (a, b), ds in by_piece.items()]
    entries.sort(key=lambda e: (e[0][0], e[1]))
    return entries


def monthly_savings_cents(
    sleep_minutes_per_week: int, hourly_cost_cents: Decimal | None, node_count: int
) -> Decimal | None:
    """Sleeping hours per month x hourly cost x nodes, in whole cents; None if no cost.

    A month is 365.25 / 12 days, so it holds 365.25 / 12 / 7 weeks.
    """
    if hourly_cost_cents is None:
        return None
    hours_per_month = Decimal(sleep_minutes_per_week) / 60 * DAYS_PER_MONTH / 7
    cents = hours_per_month * Decimal(hourly_cost_cents) * node_count
    return cents.quantize(Decimal(1), rounding=ROUND_HALF_EVEN)


@dataclass(frozen=True)
class Recommendation:
    """A sleep schedule for one instance, with how sure we are and what it saves."""

    kind: RecommendationKind
    timezone: str
    spans: tuple[SleepSpan, ...]
    confidence: float
    """0..1: evidence x consistency x headroom (see docs/analysis.md)."""
    sleep_minutes_per_week: int
    monthly_savings_cents: Decimal | None
    hours_observed: int
    weeks_observed: int
    """Fewest weeks of data among the slots slept (the weakest evidence)."""
    margins: tuple[int, int] = (0, 0)
    """Largest minutes kept awake (before, after) recurring activity: the configured
    margin, or more where the activity's start or end was seen to vary."""
    coverage: float = 1.0
    """Share of the slept hours' possible observations that had data (1 = complete)."""
    background_connections: float = 0.0
    """A constant background of connections counted as idle (0: none seen)."""
    pattern_changed_on: date | None = None
    """Local date on which the activity pattern changed (went quiet, or a new recurring
    activity began), if it did in the lookback."""
    notes: tuple[str, ...] = ()
    """Explanations fit to show a user (margins, background, changes, sparse data)."""

    @cached_property
    def windows(self) -> tuple[SleepWindow, ...]:
        """The spans cut at midnight, identical pieces of different days merged."""
        return tuple(
            SleepWindow(ds, _hhmm(a), _hhmm(b)) for ds, a, b in _group(_day_pieces(self.spans))
        )

    @property
    def sleep_hours_per_week(self) -> float:
        return self.sleep_minutes_per_week / 60

    def sleeps_at(self, when: datetime) -> bool:
        """Whether the recommended schedule has the instance asleep at ``when``."""
        local = when.astimezone(ZoneInfo(self.timezone))
        minute = local.weekday() * MINUTES_PER_DAY + local.hour * 60 + local.minute
        return any(sp.overlap(minute, 1) for sp in self.spans)

    def overlap_minutes(self, minute_of_week: int, minutes: int) -> int:
        """Minutes of local [minute_of_week, +minutes) the recommendation sleeps."""
        return min(minutes, sum(sp.overlap(minute_of_week, minutes) for sp in self.spans))

    def to_schedule_periods(self) -> list[dict[str, str]]:
        """The running periods (the complement of the windows), Instance Scheduler style.

        Each period is ``{"begintime", "endtime", "weekdays"}`` within one day in the
        recommendation's zone; ``endtime`` may be ``24:00`` (until midnight). Running
        across midnight is two periods. A weekday without a period never runs, and a
        ``stop`` recommendation has no periods at all.
        """
        sleeping = _day_pieces(self.spans)
        running: list[list[tuple[int, int]]] = []
        for pieces in sleeping:
            free, at = [], 0
            for a, b in pieces:
                if a > at:
                    free.append((at, a))
                at = max(at, b)
            if at < MINUTES_PER_DAY:
                free.append((at, MINUTES_PER_DAY))
            running.append(free)
        return [
            {"begintime": _hhmm(a), "endtime": _hhmm(b), "weekdays": format_weekdays(ds)}
            for ds, a, b in _group(running)
        ]


@dataclass(frozen=True)
class NoRecommendation:
    """Why an instance gets no recommendation; ``reason`` is fit to show a user."""

    code: NoRecommendationReason
    reason: str
    hours_observed: int
    pattern_changed_on: date | None = None
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class AnalysisEntry:
    """One instance's last analysis as listed and kept: ``body`` is its listing entry
    (the recommendation, or why there is none) but the dismissal, ``rec_id`` the
    recommendation's id (None: none), ``data_version`` the metrics version it was
    computed from and ``fingerprint`` the instance facts it used."""

    instance_id: UUID
    body: dict[str, Any]
    rec_id: UUID | None
    data_version: int
    fingerprint: str
    dismissed: bool = False

    @property
    def has_recommendation(self) -> bool:
        return self.rec_id is not None

    @property
    def savings(self) -> float:
        cents = self.body.get("monthly_savings_cents")
        return float(cents) if cents is not None else -1.0

    def listed(self) -> dict[str, Any]:
        """The entry as listed: the body with the recommendation's status."""
        out = dict(self.body)
        if self.rec_id is not None:
            out["status"] = "dismissed" if self.dismissed else "open"
        return out


# -- the analysis ------------------------------------------------------------------------


def _zone(name: str) -> tzinfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError, OSError):
        raise ValidationError(f"timezone: unknown time zone {name!r}") from None


@dataclass(frozen=True)
class _Layout:
    """Where each lookback hour falls in the instance's local week (cached per zone).

    Hours are folded into *occurrences*, one per (slot, local date): the two UTC hours
    of a repeated local hour (autumn DST change) are one occurrence, busy if either is.
    ``rows`` arranges occurrences by week: row ``w`` gives, for each of the 168 slots,
    the index of its ``w``-th occurrence, or ``pad`` (an always-empty position) when
    the slot has fewer; adding the rows up counts weeks per slot in C loops.
    """

    hour_slot: bytes
    """hour position -> slot (weekday * 24 + local hour)."""
    hour_occurrence: tuple[int, ...] | None
    """hour position -> occurrence, or None when they are the same (no DST repeat)."""
    occurrences: int
    rows: tuple[itemgetter[Any], ...]
    pad: int
    possible: bytes
    """slot -> how many dates of the lookback have that local hour (DST skips one)."""
    phase: int
    """Minutes past the local hour at which UTC hours begin (30 in India)."""
    first_day: int
    """Ordinal of the first local date of the lookback."""
    days: int
    """Local dates the lookback touches."""
    grid: tuple[int, ...]
    """(local day - first day) * 24 + local hour -> occurrence, or ``pad``: the local
    timeline, day by day, in which runs of activity and their starts and ends are read."""
    grid_get: itemgetter[Any]
    end: int
    """Grid position after the lookback's last hour."""


@lru_cache(maxsize=256)
def _layout(timezone: str, start: datetime, hours: int) -> _Layout:
    tz = _zone(timezone)
    keys: dict[tuple[int, int], int] = {}
    hour_slot = bytearray(hours)
    hour_occurrence: list[int] = []
    by_slot: list[list[int]] = [[] for _ in range(SLOTS_PER_WEEK)]
    phase = 0
    for i in range(hours):
        local = (start + i * _HOUR).astimezone(tz)
        slot = local.weekday() * 24 + local.hour
        hour_slot[i] = slot
        key = (slot, local.toordinal())
        k = keys.get(key)
        if k is None:
            k = keys[key] = len(keys)
            by_slot[slot].append(k)
        hour_occurrence.append(k)
        phase = local.minute
    pad = len(keys)
    depth = max(len(ks) for ks in by_slot)
    rows = tuple(
        itemgetter(*(ks[w] if w < len(ks) else pad for ks in by_slot)) for w in range(depth)
    )
    same = hour_occurrence == list(range(hours))
    possible = bytes(min(255, len(ks)) for ks in by_slot)
    first_day = min(day for _, day in keys)
    days = max(day for _, day in keys) - first_day + 1
    grid = [pad] * (days * 24)
    for (slot, day), k in keys.items():
        grid[(day - first_day) * 24 + slot % 24] = k
    return _Layout(
        bytes(hour_slot),
        None if same else tuple(hour_occurrence),
        pad,
        rows,
        pad,
        possible,
        phase,
        first_day,
        days,
        tuple(grid),
        itemgetter(*grid),
        max(k for k in range(len(grid)) if grid[k] != pad) + 1,
    )


# Byte translation tables over hour states 0 (none), 1 (idle), 2 (busy).
_OBSERVED = bytes.maketrans(b"\x00\x01\x02", b"\x00\x01\x01")
_BUSY_ONLY = bytes.maketrans(b"\x00\x01\x02", b"\x00\x00\x01")
_IS_ZERO = bytes([1]) + bytes(255)


def _at_least(k: int) -> bytes:
    """Translation table: byte v -> 1 if v >= k else 0."""
    return bytes(min(k, 256)) + bytes([1]) * max(0, 256 - k)


def _and(a: bytes, b: bytes) -> bytes:
    """Byte-wise AND of two 0/1 byte strings of one length, in one big-int step."""
    return (int.from_bytes(a, "big") & int.from_bytes(b, "big")).to_bytes(len(a), "big")


@dataclass
class _Idleness:
    """Means of the idle hours' values (for the confidence's headroom)."""

    connections: float = 0.0
    cpu: float = 0.0
    read_iops: float = 0.0
    write_iops: float = 0.0


def _classify(
    cols: HourlySeries, s: AnalysisSettings, background: float = 0.0
) -> tuple[bytes, _Idleness]:
    """Per lookback hour its state (0 no data, 1 idle, 2 busy), and the idle hours' means.

    Missing values are NaN and every comparison with NaN is false, so a missing metric
    never makes an hour busy; an hour is observed when it has connections or CPU. A
    fleet takes :class:`BlockAnalysis`, which does the same in array operations (and
    must stay equal to this loop: tests/test_analysis.py compares them).
    """
    conn = cols.connections_max if s.connections_statistic == "max" else cols.connections_avg
    t_conn, t_cpu = s.idle_connections + background, s.idle_cpu_percent
    t_rd, t_wr = s.idle_read_iops, s.idle_write_iops
    state = bytearray(cols.hours)
    sc = su = sr = sw = 0.0
    nc = nu = nr = nw = 0
    i = 0
    for c, u, r, w in zip(conn, cols.cpu, cols.read_iops, cols.write_iops, strict=True):
        if c > t_conn or u >= t_cpu:
            state[i] = _BUSY
        elif c != c and u != u:  # neither connections nor CPU: no data
            pass
        elif r >= t_rd or w >= t_wr:
            state[i] = _BUSY
        else:
            state[i] = _IDLE
            if c == c:
                sc += c
                nc += 1
            if u == u:
                su += u
                nu += 1
            if r == r:
                sr += r
                nr += 1
            if w == w:
                sw += w
                nw += 1
        i += 1
    means = _Idleness(
        max(0.0, sc / nc - background) if nc else 0.0,
        su / nu if nu else 0.0,
        sr / nr if nr else 0.0,
        sw / nw if nw else 0.0,
    )
    return bytes(state), means


def _headroom(m: _Idleness, s: AnalysisSettings) -> float:
    """1 when the idle hours sat at zero, 0.5 when their means reached a threshold."""
    worst = max(
        m.cpu / s.idle_cpu_percent,
        m.read_iops / s.idle_read_iops,
        m.write_iops / s.idle_write_iops,
        m.connections / s.idle_connections if s.idle_connections > 0 else 0.0,
    )
    return 1.0 - 0.5 * min(1.0, worst)


def _per_slot(flags: bytes, rows: tuple[itemgetter[Any], ...]) -> bytes:
    """For each slot, how many of its occurrences have their flag set."""
    if len(rows) == 1:
        return bytes(rows[0](flags))
    if len(rows) == 2:
        return bytes(map(add, rows[0](flags), rows[1](flags)))
    return bytes(map(sum, zip(*(r(flags) for r in rows), strict=True)))


_RUN = re.compile(b"\x01+")


def _runs(candidate: bytes) -> list[tuple[int, int]]:
    """Runs (first slot, length) of 1s around the ring; [(0, 168)] if all are 1."""
    n = len(candidate)
    gap = candidate.find(0)
    if gap < 0:
        return [(0, n)]
    rotated = candidate[gap:] + candidate[:gap]
    return [((gap + m.start()) % n, m.end() - m.start()) for m in _RUN.finditer(rotated)]


def _background(cols: HourlySeries, s: AnalysisSettings) -> float:
    """The constant background of connections counted as idle, or 0 if there is none.

    A monitoring agent (or an idle pool) holds connections open in every hour: the
    connections mean stays at or above one in (nearly) every observed hour. Its level is
    the connections maximum of the quietest hours (the 5th percentile), and it must be
    what a good share of the hours show (it never changes with the workload) and at most
    ``background_connections``.
    """
    cap = s.background_connections
    if cap <= 0:
        return 0.0
    if cols.connections_max.count(0.0) > 0.05 * cols.hours:
        return 0.0  # nobody connected in many hours: nothing is held (the common case)
    held = 0
    observed = 0
    for v in cols.connections_avg:
        if v == v:
            observed += 1
            if v >= 0.95:
                held += 1
    if observed < s.min_hours or held < 0.95 * observed:
        return 0.0
    maxes = sorted(v for v in cols.connections_max if v == v)
    level = maxes[len(maxes) // 20]
    if not 1 <= level <= cap:
        return 0.0
    if sum(1 for v in maxes if v <= level) < 0.25 * len(maxes):
        return 0.0
    return float(level)


_BUSY_RUN = re.compile(b"\\x02+")
_ONE_BUSY = re.compile(b"\\x02")


def _pool(counts: list[int], hour: int) -> tuple[int, int]:
    """(earliest, latest) offset in hours, from ``hour``, of the events in ``counts``
    (per local hour of the day) within ``POOL_HOURS`` of it, 0 included."""
    lo = hi = 0
    for h in range(24):
        if counts[h]:
            d = (h - hour + 12) % 24 - 12
            if -POOL_HOURS <= d <= POOL_HOURS:
                lo, hi = min(lo, d), max(hi, d)
    return lo, hi


def _learned_margin(spread_hours: int, s: AnalysisSettings) -> int:
    return min(MAX_MARGIN_MINUTES, max(s.margin_minutes, spread_hours * 60 // 2))


def _went_quiet(grid: bytes, end: int) -> tuple[int, int] | None:
    """(position of the first missed recurring activity, position after the last
    activity) when the database has been quiet for a day or more while activity it had
    in every earlier week of those hours did not come; else None."""
    last_busy = grid.rfind(b"\x02")
    if last_busy < 0:
        return None
    quiet = last_busy + 1
    if end - quiet < 24:
        return None
    missed: list[int] = []
    # Only hours busy a week earlier can be missed activity: find those in C.
    for m in _ONE_BUSY.finditer(grid, max(quiet, 168) - 168, end - 168):
        p = m.start() + 168
        if grid[p] != _IDLE:
            continue
        earlier = [grid[x] for x in range(p - 168, -1, -168) if grid[x]]
        if all(e == _BUSY for e in earlier):
            missed.append(p)
    if len(missed) < 3:
        return None
    return missed[0], quiet


def _when(layout: _Layout, position: int) -> str:
    day = date.fromordinal(layout.first_day + position // 24)
    return f"{day.isoformat()} {position % 24:02d}:00"


def _frame(settings: AnalysisSettings, now: datetime, timezone: str,
           node_count: int) -> tuple[datetime, int]:
    """Validate the arguments every analysis takes; (first hour, hours) of the lookback."""
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValidationError("now: naive datetime; use timezone-aware UTC")
    if node_count < 1:
        raise ValidationError(f"node_count: {node_count} must be at least 1")
    _zone(timezone)
    end = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    n = settings.lookback_hours
    return end - n * _HOUR, n


def analyse(
    series: Iterable[HourlyAggregate] | HourlySeries,
    settings: AnalysisSettings,
    now: datetime,
    timezone: str = "UTC",
    hourly_cost_cents: Decimal | None = None,
    node_count: int = 1,
) -> Recommendation | NoRecommendation:
    """Recommend when one instance can sleep, from its hourly aggregates.

    ``series`` holds the instance's aggregates (any metrics, any order), or the same as
    columns (:class:`HourlySeries`); only hours in the ``lookback_days`` before
    ``now``'s (unfinished) hour are used. Windows are in ``timezone`` (IANA). Raises
    ValidationError for an unknown zone, a naive ``now`` or a node count below 1.
    A whole fleet is analysed faster with :class:`BlockAnalysis` (same results).
    """
    s = settings
    start, n = _frame(s, now, timezone, node_count)
    if isinstance(series, HourlySeries):
        cols = series.window(start, n)
    else:
        cols = HourlySeries.from_aggregates(series, start, n)
    background = _background(cols, s)
    state, idleness = _classify(cols, s, background)
    return _recommend(
        s, start, state, idleness, background, lambda: _floor(cols), timezone,
        hourly_cost_cents, node_count,
    )


def _floor(cols: HourlySeries) -> float:
    """The lowest connections maximum of any observed hour (0 without any)."""
    return min((v for v in cols.connections_max if v == v), default=0.0)


class BlockAnalysis:
    """The analysis of many instances whose hours are in one :class:`SeriesBlock`.

    Classifying every hour (step 1) and finding the constant background are done for
    all rows at once with array operations; the rest is the same code as
    :func:`analyse`, row by row, so ``BlockAnalysis(block, s, now).analyse(r, ...)``
    equals ``analyse(block.series(r), s, now, ...)`` exactly (tests/test_analysis.py
    checks it on every trace kind). The block must cover the lookback of ``now``.
    """

    def __init__(self, block: SeriesBlock, settings: AnalysisSettings, now: datetime) -> None:
        s = self.settings = settings
        self.block = block
        self.now = now
        start, n = _frame(s, now, "UTC", 1)
        if block.start != start or block.hours != n:
            raise ValidationError(
                f"block: covers {block.hours} hours from {block.start.isoformat()}, the"
                f" analysis needs {n} hours from {start.isoformat()}"
            )
        v = block.values
        c_avg, c_max, cpu, rd, wr = (v[k] for k in range(5))
        rows = len(block)
        # The background: the common case (no connection in many hours) is decided
        # here for every row; the few rows left take the one-instance code.
        background = np.zeros(rows)
        if s.background_connections > 0 and rows:
            zeros = np.count_nonzero(c_max == 0.0, axis=1)
            for r in np.flatnonzero(zeros <= 0.05 * n).tolist():
                background[r] = _background(block.series(r), s)
        self.background = background.tolist()
        conn = c_max if s.connections_statistic == "max" else c_avg
        t_conn = (s.idle_connections + background)[:, None]
        with np.errstate(invalid="ignore"):
            busy = (conn > t_conn) | (cpu >= s.idle_cpu_percent)
            seen = ~(np.isnan(conn) & np.isnan(cpu))
            busy |= seen & ((rd >= s.idle_read_iops) | (wr >= s.idle_write_iops))
        idle = seen & ~busy
        state = np.where(busy, np.uint8(_BUSY), np.where(idle, np.uint8(_IDLE),
                                                         np.uint8(_NONE)))
        self._state = state.astype(np.uint8)
        # Sums in hour order, as the one-instance loop adds them (a cumulative sum is
        # sequential; adding 0.0 for the hours left out changes nothing).
        sums, counts = [], []
        for col in (conn, cpu, rd, wr):
            take = idle & ~np.isnan(col)
            counts.append(np.count_nonzero(take, axis=1).tolist())
            acc = np.cumsum(np.where(take, col, 0.0), axis=1)
            sums.append(acc[:, -1].tolist() if n else [0.0] * rows)
        self._sums = list(zip(*sums, strict=True)) if rows else []
        self._counts = list(zip(*counts, strict=True)) if rows else []
        with np.errstate(invalid="ignore"):
            floors = np.where(np.isnan(c_max), np.inf, c_max).min(axis=1, initial=np.inf)
        self._floors = [0.0 if f == np.inf else f for f in floors.tolist()]

    def analyse(
        self,
        row: int | None,
        timezone: str = "UTC",
        hourly_cost_cents: Decimal | None = None,
        node_count: int = 1,
    ) -> Recommendation | NoRecommendation:
        """Row ``row``'s analysis (None: an instance without any data)."""
        s = self.settings
        start, n = _frame(s, self.now, timezone, node_count)
        if row is None:
            return _recommend(s, start, bytes(n), _Idleness(), 0.0, lambda: 0.0, timezone,
                              hourly_cost_cents, node_count)
        background = self.background[row]
        (sc, su, sr, sw), (nc, nu, nr, nw) = self._sums[row], self._counts[row]
        means = _Idleness(
            max(0.0, sc / nc - background) if nc else 0.0,
            su / nu if nu else 0.0,
            sr / nr if nr else 0.0,
            sw / nw if nw else 0.0,
        )
        floor = self._floors[row]
        return _recommend(s, start, self._state[row].tobytes(), means, background,
                          lambda: floor, timezone, hourly_cost_cents, node_count)


def _recommend(
    s: AnalysisSettings,
    start: datetime,
    state: bytes,
    idleness: _Idleness,
    background: float,
    floor: Callable[[], float],
    timezone: str,
    hourly_cost_cents: Decimal | None,
    node_count: int,
) -> Recommendation | NoRecommendation:
    """Steps 2 to 4 from the hours' states (step 1)."""
    n = len(state)
    observed = n - state.count(_NONE)
    if observed < s.min_hours:
        return NoRecommendation(
            NoRecommendationReason.NOT_ENOUGH_DATA,
            f"not enough data: {observed} hours observed in the last {s.lookback_days} days,"
            f" at least {s.min_hours} are needed",
            observed,
        )

    # Fold hours into occurrences (only a DST repeat needs it).
    layout = _layout(timezone, start, n)
    occ = state
    if layout.hour_occurrence is not None:
        folded = bytearray(layout.occurrences)
        for i, k in enumerate(layout.hour_occurrence):
            if state[i] > folded[k]:  # busy wins over idle wins over no data
                folded[k] = state[i]
        occ = bytes(folded)
    pad = b"\x00"
    grid = bytes(layout.grid_get(occ + pad))  # the local timeline, 24 positions a day

    notes: list[str] = []
    changed_on: date | None = None
    quiet = _went_quiet(grid, layout.end)
    if quiet is not None:
        missed, since = quiet
        changed_on = date.fromordinal(layout.first_day + missed // 24)
        held_days = (layout.end - since) // 24
        if held_days >= s.change_hold_days:
            # The new pattern has held long enough: analyse only what came after it.
            cut = next(
                (k for k in layout.grid[since:] if k != layout.pad), layout.occurrences
            )
            occ = bytes(cut) + occ[cut:]
            grid = bytes(layout.grid_get(occ + pad))
            notes.append(
                f"pattern changed on {changed_on}: no activity since {_when(layout, since)};"
                f" recommended from the {held_days} days since"
            )
        else:
            notes.append(
                f"pattern changed on {changed_on}: the recurring activity expected since then"
                f" has not come (no activity since {_when(layout, since)}); the windows still"
                f" follow the earlier pattern until the change has held"
                f" {s.change_hold_days} days"
                f" ({changed_on + timedelta(days=s.change_hold_days)})"
            )

    # Per slot: the weeks observed and the weeks busy.
    weeks = _per_slot(occ.translate(_OBSERVED) + pad, layout.rows)
    busy_weeks = _per_slot(occ.translate(_BUSY_ONLY) + pad, layout.rows)
    if max(weeks) < s.min_weeks:
        return NoRecommendation(
            NoRecommendationReason.NOT_ENOUGH_WEEKS,
            f"not enough data yet: no hour of the week has data from {s.min_weeks} "
            f"different weeks ({observed} hours observed)",
            observed,
            changed_on,
            tuple(notes),
        )

    # Runs of activity in the local timeline: where they start and end (per local
    # hour of the day), and which hours of the day have activity on 2+ weekdays.
    starts = [0] * 24
    ends = [0] * 24
    size = len(grid)
    for m in _BUSY_RUN.finditer(grid):
        a, b = m.span()
        if a > 0 and grid[a - 1] == _IDLE:
            starts[a % 24] += 1
        if b < size and grid[b] == _IDLE:
            ends[b % 24] += 1
    carried = bytearray(SLOTS_PER_WEEK)
    wd0 = date.fromordinal(layout.first_day).weekday()
    if _BUSY in grid:
        for h in range(24):
            col = grid[h::24]
            first = col.find(b"\x02")
            if first < 0 or col.count(b"\x02") < 2:
                continue
            busy_days = {w for w in range(7) if b"\x02" in col[(w - wd0) % 7 :: 7]}
            if len(busy_days) < 2:
                continue
            for w in range(7):
                if w in busy_days:
                    continue
                # A daily activity is carried to a weekday until that weekday is seen
                # idle at that hour after the activity first appeared.
                d0 = first + 1 + (w - wd0 - first - 1) % 7
                if _IDLE not in col[d0::7]:
                    carried[w * 24 + h] = 1
            if first >= 7 and _IDLE in col[:first] and col[:first].count(_IDLE) >= 5:
                began = date.fromordinal(layout.first_day + first)
                changed_on = max(changed_on, began) if changed_on else began
                notes.append(
                    f"pattern changed on {began}: new recurring activity at {h:02d}:00,"
                    f" kept awake on every weekday until a weekday is seen without it"
                )

    share = s.required_idle_share
    observed_slot = weeks.translate(_at_least(1))
    free = bytes(carried).translate(_IS_ZERO)
    if share >= 1:
        candidate = _and(_and(observed_slot, busy_weeks.translate(_IS_ZERO)), free)
    else:
        candidate = bytes(
            bool(o and f and w - b >= share * w - 1e-9)
            for o, f, w, b in zip(observed_slot, free, weeks, busy_weeks, strict=True)
        )
    # Bridge single unobserved hours between idle ones.
    cand = bytearray(candidate)
    bridged = 0
    for j in range(SLOTS_PER_WEEK) if 0 in weeks else ():
        if (
            not candidate[j]
            and not weeks[j]
            and not carried[j]
            and candidate[j - 1]
            and candidate[(j + 1) % SLOTS_PER_WEEK]
        ):
            cand[j] = 1
            bridged += 1
    if 1 not in cand:
        return _no_window(s, observed, floor, background, changed_on, notes)

    min_minutes = math.ceil(s.min_window_hours * 60)
    spans: list[SleepSpan] = []
    slept = bytearray(SLOTS_PER_WEEK)
    most_before = most_after = 0
    for first, length in _runs(bytes(cand)):
        if length == SLOTS_PER_WEEK:
            begin, minutes = layout.phase, length * 60
            before = after = 0
        else:
            after_slot = (first + length) % SLOTS_PER_WEEK
            before_slot = (first - 1) % SLOTS_PER_WEEK
            early = late = 0
            m_end = m_begin = s.margin_minutes
            if busy_weeks[after_slot] or carried[after_slot]:
                early = _pool(starts, after_slot % 24)[0]
                m_end = _learned_margin(-early, s)
            if busy_weeks[before_slot] or carried[before_slot]:
                late = _pool(ends, first % 24)[1]
                m_begin = _learned_margin(late, s)
            before = m_end - early * 60
            after = m_begin + late * 60
            begin = first * 60 + layout.phase + after
            minutes = length * 60 - after - before
        if minutes < min_minutes:
            continue
        most_before, most_after = max(most_before, before), max(most_after, after)
        spans.append(SleepSpan(begin % MINUTES_PER_WEEK, minutes))
        tail = first + length - SLOTS_PER_WEEK
        if tail > 0:
            slept[first:] = b"\x01" * (SLOTS_PER_WEEK - first)
            slept[:tail] = b"\x01" * tail
        else:
            slept[first : first + length] = b"\x01" * length
    if not spans:
        return _no_window(s, observed, floor, background, changed_on, notes)
    spans.sort(key=lambda sp: sp.start)

    # Confidence = evidence x consistency x headroom (docs/analysis.md). The evidence
    # is the share of the slept hours' possible observations that had data.
    seen = bytes(compress(weeks, slept)).replace(b"\x00", b"")
    weakest = min(seen) if seen else 0
    if weeks == layout.possible:  # complete data: the common case, and cheap
        coverage = 1.0
    else:
        possible = sum(compress(layout.possible, slept))
        coverage = min(1.0, sum(min(w, p) for w, p, on in zip(
            weeks, layout.possible, slept, strict=True) if on) / max(1, possible))
    consistency = 1.0
    if share < 1:
        consistency = min(
            ((w - b) / w for w, b, on in zip(weeks, busy_weeks, slept, strict=True) if on and w),
            default=1.0,
        )
    confidence = round(coverage * consistency * _headroom(idleness, s), 3)

    kind = RecommendationKind.SLEEP
    if 0 not in slept and _BUSY not in occ:
        kind = RecommendationKind.STOP
    else:
        if most_before > s.margin_minutes or most_after > s.margin_minutes:
            notes.insert(0, (
                f"margin: awake up to {most_before} min before and {most_after} min after"
                f" recurring activity, learned from how much its start and end vary over the"
                f" weekdays it recurs on (at least {s.margin_minutes} min)"
            ))
        else:
            notes.insert(0, f"margin: {s.margin_minutes} min before and after activity")
    if background:
        notes.append(
            f"a constant background of {background:g} connection(s) held in every hour"
            f" (a monitoring agent or a connection pool) is counted as idle"
        )
    if coverage < 0.95:
        notes.append(
            f"rests on {coverage:.0%} of the slept hours' observations (data is missing)"
            + (f"; {bridged} single unobserved hour(s) between idle ones bridged"
               if bridged else "")
        )
    minutes_per_week = sum(sp.minutes for sp in spans)
    return Recommendation(
        kind=kind,
        timezone=timezone,
        spans=tuple(spans),
        confidence=confidence,
        sleep_minutes_per_week=minutes_per_week,
        monthly_savings_cents=monthly_savings_cents(
            minutes_per_week, hourly_cost_cents, node_count
        ),
        hours_observed=observed,
        weeks_observed=weakest,
        margins=(most_before, most_after),
        coverage=round(coverage, 3),
        background_connections=background,
        pattern_changed_on=changed_on,
        notes=tuple(notes),
    )


def _no_window(
    s: AnalysisSettings,
    observed: int,
    floor_of: Callable[[], float],
    background: float,
    changed_on: date | None,
    notes: list[str],
) -> NoRecommendation:
    share = (
        "every observed week"
        if s.required_idle_share >= 1
        else (f"{s.required_idle_share:.0%} of the observed weeks")
    )
    reason = (
        f"no idle window: no run of hours of at least {s.min_window_hours:g} h was idle in "
        f"{share} (with at least {s.min_weeks} weeks of data)"
    )
    floor = floor_of()
    if floor > s.idle_connections + background:
        reason += (
            f"; connections never fell below {floor:g} in any hour: something holds them"
            f" open all the time (a monitoring agent or a pool larger than"
            f" {s.background_connections} connections is not counted as background)"
        )
    return NoRecommendation(
        NoRecommendationReason.NO_IDLE_WINDOW, reason, observed, changed_on, tuple(notes)
    )


# -- activity profile ---------------------------------------------------------------------

Matrix = tuple[tuple[float | None, ...], ...]


@dataclass(frozen=True)
class ActivityProfile:
    """A week-by-hour picture of activity in local time, for a heatmap.

    Rows are weekdays (0 = Monday), columns local hours. ``connections`` and ``cpu``
    are sample-weighted means over every observed hour of the cell, ``connections_max``
    the highest connection count seen; ``hours`` counts observed hours per cell and
    ``samples`` their samples (coverage). Cells without data are ``None`` / 0.
    """

    timezone: str
    connections: Matrix
    connections_max: Matrix
    cpu: Matrix
    hours: tuple[tuple[int, ...], ...]
    samples: tuple[tuple[int, ...], ...]



def activity_profile(series: Iterable[HourlyAggregate], timezone: str = "UTC") -> ActivityProfile:
    """Fold every aggregate of ``series`` into its local (weekday, hour) cell."""
    tz = _zone(timezone)
    cell_of: dict[datetime, int] = {}
    sums = {CONNECTIONS: [0.0] * SLOTS_PER_WEEK, CPU: [0.0] * SLOTS_PER_WEEK}
    counts = {CONNECTIONS: [0] * SLOTS_PER_WEEK, CPU: [0] * SLOTS_PER_WEEK}
    peak: list[float | None] = [None] * SLOTS_PER_WEEK
    hours_seen: list[set[datetime]] = [set() for _ in range(SLOTS_PER_WEEK)]
    samples = [0] * SLOTS_PER_WEEK
    for a in series:
        if a.metric not in sums or a.count <= 0:
            continue
        cell = cell_of.get(a.hour)
        if cell is None:
            local = a.hour.astimezone(tz)
            cell = cell_of[a.hour] = local.weekday() * 24 + local.hour
        sums[a.metric][cell] += a.avg * a.count
        counts[a.metric][cell] += a.count
        hours_seen[cell].add(a.hour)
        if a.metric == CONNECTIONS:
            samples[cell] += a.count
            p = peak[cell]
            if p is None or a.max > p:
                peak[cell] = a.max

    def mean(metric: str) -> Matrix:
        s, c = sums[metric], counts[metric]
        return tuple(
            tuple(s[d * 24 + h] / c[d * 24 + h] if c[d * 24 + h] else None for h in range(24))
            for d in range(7)
        )

    def rows(values: list[Any]) -> tuple[tuple[Any, ...], ...]:
        return tuple(tuple(values[d * 24 : d * 24 + 24]) for d in range(7))

    # Coverage counts the samples of the connections metric, or of CPU where a source
    # gives no connections: one number per cell, not the sum over metrics.
    coverage = [samples[j] or counts[CPU][j] for j in range(SLOTS_PER_WEEK)]
    return ActivityProfile(
        timezone=timezone,
        connections=mean(CONNECTIONS),
        connections_max=rows(peak),
        cpu=mean(CPU),
        hours=rows([len(h) for h in hours_seen]),
        samples=rows(coverage),
    )
