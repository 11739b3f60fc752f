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
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from decimal import ROUND_HALF_EVEN, Decimal
from enum import StrEnum
from functools import cached_property, lru_cache
from itertools import compress
from operator import add, itemgetter
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from snoozeql.domain.errors import ValidationError
from snoozeql.domain.metrics import CONNECTIONS, CPU, HourlyAggregate, HourlySeries

__all__ = [
    "DAYS_PER_MONTH",
    "MINUTES_PER_DAY",
    "MINUTES_PER_WEEK",
    "WEEKDAY_NAMES",
    "ActivityProfile",
    "AnalysisSettings",
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
    """Taken off each end of a window that borders activity or missing data."""

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
        for name in ("lookback_days", "min_hours", "min_weeks", "margin_minutes"):
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
        """E.g. ``fri 18:30 -> mon 08:30``."""
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

    def as_dict(self) -> dict[str, Any]:
        return {"weekdays": format_weekdays(self.weekdays), "begin": self.begin, "end": self.end}


class RecommendationKind(StrEnum):
    SLEEP = "sleep"
    """Sleep in the given windows every week."""
    STOP = "stop"
    """Idle for the whole lookback: stop it (or delete it)."""


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

    def as_dict(self) -> dict[str, Any]:
        """JSON-able form for the API and the store."""
        return {
            "kind": self.kind.value,
            "timezone": self.timezone,
            "windows": [w.as_dict() for w in self.windows],
            "spans": [sp.describe() for sp in self.spans],
            "running_periods": self.to_schedule_periods(),
            "confidence": self.confidence,
            "sleep_hours_per_week": round(self.sleep_hours_per_week, 2),
            "monthly_savings_cents": (
                None if self.monthly_savings_cents is None else str(self.monthly_savings_cents)
            ),
            "hours_observed": self.hours_observed,
            "weeks_observed": self.weeks_observed,
        }


@dataclass(frozen=True)
class NoRecommendation:
    """Why an instance gets no recommendation; ``reason`` is fit to show a user."""

    code: NoRecommendationReason
    reason: str
    hours_observed: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "code": self.code.value,
            "reason": self.reason,
            "hours_observed": self.hours_observed,
        }


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
    return _Layout(
        bytes(hour_slot), None if same else tuple(hour_occurrence), pad, rows, pad, possible, phase
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


def _classify(cols: HourlySeries, s: AnalysisSettings) -> tuple[bytes, _Idleness]:
    """Per lookback hour its state (0 no data, 1 idle, 2 busy), and the idle hours' means.

    Missing values are NaN and every comparison with NaN is false, so a missing metric
    never makes an hour busy; an hour is observed when it has connections or CPU. This
    loop runs for every hour of every instance of the fleet: keep it this plain (a
    ``map`` over float methods measured three times slower).
    """
    conn = cols.connections_max if s.connections_statistic == "max" else cols.connections_avg
    t_conn, t_cpu = s.idle_connections, s.idle_cpu_percent
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
        sc / nc if nc else 0.0,
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
    columns (:class:`HourlySeries`, the fast path for a whole fleet); only hours in the
    ``lookback_days`` before ``now``'s (unfinished) hour are used. Windows are in
    ``timezone`` (IANA). Raises ValidationError for an unknown zone, a naive ``now``
    or a node count below 1.
    """
    s = settings
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValidationError("now: naive datetime; use timezone-aware UTC")
    if node_count < 1:
        raise ValidationError(f"node_count: {node_count} must be at least 1")
    _zone(timezone)
    end = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    n = s.lookback_hours
    start = end - n * _HOUR
    if isinstance(series, HourlySeries):
        cols = series.window(start, n)
    else:
        cols = HourlySeries.from_aggregates(series, start, n)
    state, idleness = _classify(cols, s)

    observed = n - state.count(_NONE)
    if observed < s.min_hours:
        return NoRecommendation(
            NoRecommendationReason.NOT_ENOUGH_DATA,
            f"not enough data: {observed} hours observed in the last {s.lookback_days} days,"
            f" at least {s.min_hours} are needed",
            observed,
        )

    # Fold hours into occurrences (only a DST repeat needs it), then count per slot
    # the weeks observed and the weeks busy.
    layout = _layout(timezone, start, n)
    occ = state
    if layout.hour_occurrence is not None:
        folded = bytearray(layout.occurrences)
        for i, k in enumerate(layout.hour_occurrence):
            if state[i] > folded[k]:  # busy wins over idle wins over no data
                folded[k] = state[i]
        occ = bytes(folded)
    weeks = _per_slot(occ.translate(_OBSERVED) + b"\x00", layout.rows)  # + the pad
    busy_weeks = _per_slot(occ.translate(_BUSY_ONLY) + b"\x00", layout.rows)
    # Enough weeks: min_weeks, or every date the slot had when DST skipped its hour.
    if min(layout.possible) >= s.min_weeks:
        enough = weeks.translate(_at_least(s.min_weeks))
    else:
        enough = bytes(
            w >= max(1, min(s.min_weeks, p)) for w, p in zip(weeks, layout.possible, strict=True)
        )
    share = s.required_idle_share
    if share >= 1:
        candidate = _and(enough, busy_weeks.translate(_IS_ZERO))
    else:
        candidate = bytes(
            e and w - b >= share * w - 1e-9
            for e, w, b in zip(enough, weeks, busy_weeks, strict=True)
        )
    if 1 not in candidate:
        if max(weeks) < s.min_weeks:
            return NoRecommendation(
                NoRecommendationReason.NOT_ENOUGH_WEEKS,
                f"not enough data yet: no hour of the week has data from {s.min_weeks} "
                f"different weeks ({observed} hours observed)",
                observed,
            )
        return _no_window(s, observed)

    min_minutes = math.ceil(s.min_window_hours * 60)
    spans: list[SleepSpan] = []
    slept = bytearray(SLOTS_PER_WEEK)
    for first, length in _runs(candidate):
        if length == SLOTS_PER_WEEK:
            begin, minutes = layout.phase, length * 60
        else:
            begin = first * 60 + layout.phase + s.margin_minutes
            minutes = length * 60 - 2 * s.margin_minutes
        if minutes < min_minutes:
            continue
        spans.append(SleepSpan(begin % MINUTES_PER_WEEK, minutes))
        tail = first + length - SLOTS_PER_WEEK
        if tail > 0:
            slept[first:] = b"\x01" * (SLOTS_PER_WEEK - first)
            slept[:tail] = b"\x01" * tail
        else:
            slept[first : first + length] = b"\x01" * length
    if not spans:
        return _no_window(s, observed)
    spans.sort(key=lambda sp: sp.start)

    # Confidence = evidence x consistency x headroom (docs/analysis.md).
    weakest = min(compress(weeks, slept))
    evidence = min(1.0, weakest / max(1, s.lookback_days // 7))
    consistency = 1.0
    if share < 1:
        consistency = min(
            (w - b) / w for w, b, on in zip(weeks, busy_weeks, slept, strict=True) if on
        )
    confidence = round(evidence * consistency * _headroom(idleness, s), 3)

    kind = RecommendationKind.SLEEP
    if 0 not in slept and _BUSY not in state:
        kind = RecommendationKind.STOP
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
    )


def _no_window(s: AnalysisSettings, observed: int) -> NoRecommendation:
    share = (
        "every observed week"
        if s.required_idle_share >= 1
        else (f"{s.required_idle_share:.0%} of the observed weeks")
    )
    return NoRecommendation(
        NoRecommendationReason.NO_IDLE_WINDOW,
        f"no idle window: no run of hours of at least {s.min_window_hours:g} h was idle in "
        f"{share} (with at least {s.min_weeks} weeks of data)",
        observed,
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

    def as_dict(self) -> dict[str, Any]:
        return {
            "timezone": self.timezone,
            "weekdays": list(WEEKDAY_NAMES),
            "connections": [list(r) for r in self.connections],
            "connections_max": [list(r) for r in self.connections_max],
            "cpu": [list(r) for r in self.cpu],
            "hours": [list(r) for r in self.hours],
            "samples": [list(r) for r in self.samples],
        }


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
