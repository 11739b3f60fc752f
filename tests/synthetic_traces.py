"""Labelled synthetic activity traces, to measure the activity analysis against truth.

A trace is a run of UTC hours of one made-up database, with the four hourly aggregates
the store would hold (cpu, connections, read and write IOPS) and, per hour, two labels:

* ``truly_idle``: nobody used the database in that hour (what really happened);
* ``recurring_idle``: the trace's weekly pattern leaves that hour idle every week. An
  hour the pattern makes busy only sometimes (an early start, a job that overruns) is
  *not* recurring idle; a random one-off visit does not change this label;
* ``recurring_busy``: the pattern makes that hour busy every week (office hours, the
  nightly job's hour, the weekly report): activity no sleep window may ever cover.

Patterns are defined in the trace's local time zone, per local hour. In zones with a
half-hour offset a UTC hour overlaps two local hours and is busy if either is.

Kinds (``KINDS``): office hours, 24/7, weekends off, a nightly batch job, a weekly job,
office hours plus a nightly job, office hours with random noise (value noise and
one-off visits at random hours), idle for good, and gaps (one of the others with
stretches of missing data and sometimes a late start).

Messier kinds (``MESSY_KINDS``, issue 21): ``drift`` (a nightly job whose start drifts
over 80 minutes, e.g. 01:20 to 02:40), ``irregular_office`` (office days that sometimes
start 60 minutes early or end 90 minutes late), ``recent_idle`` (office hours that stop
three days before the end of the lookback, idle from then on), ``new_daily_job`` (a
daily job at 04:00 that begins three days before the end of the lookback),
``monitoring`` (any pattern under a monitoring agent holding a connection and pinging
every five minutes) and ``sparse`` (30% of hours missing at random and a two-day gap).

Jobs are "light": a short batch shows only in the connections *maximum*; its CPU and
IOPS means stay under the idle thresholds, as a five-minute job does in an hour.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from snoozeql.domain.analysis import (
    MINUTES_PER_DAY,
    NoRecommendation,
    Recommendation,
)
from snoozeql.domain.metrics import CONNECTIONS, CPU, READ_IOPS, WRITE_IOPS, HourlyAggregate

KINDS = (
    "office",
    "always_on",
    "weekends_off",
    "nightly_job",
    "weekly_job",
    "office_nightly",
    "noisy",
    "idle",
    "gaps",
)
MESSY_KINDS = (
    "drift",
    "irregular_office",
    "recent_idle",
    "new_daily_job",
    "monitoring",
    "sparse",
)
REGULAR_KINDS = tuple(k for k in KINDS if k != "gaps") + (
    "drift",
    "irregular_office",
    "new_daily_job",
    "monitoring",
)
"""Kinds whose recurring pattern the lookback shows (recall >= 0.95 over them)."""
ZONES = (
    "UTC",
    "Europe/Paris",
    "America/New_York",
    "America/Los_Angeles",
    "Asia/Tokyo",
    "Asia/Kolkata",
    "Australia/Sydney",
)
SAMPLES_PER_HOUR = 4  # a 15-minute collection interval
_HOUR = timedelta(hours=1)

# A pattern: (weekday 0=Mon, local hour) -> (probability the hour is busy, "heavy"|"light")
Pattern = Callable[[int, int], tuple[float, str]]
_QUIET: tuple[float, str] = (0.0, "heavy")


@dataclass(frozen=True)
class Trace:
    """One labelled trace. ``aggregates`` holds only the hours that have data."""

    kind: str
    timezone: str
    start: datetime
    truly_idle: tuple[bool, ...]
    recurring_idle: tuple[bool, ...]
    recurring_busy: tuple[bool, ...]
    has_data: tuple[bool, ...]
    aggregates: tuple[HourlyAggregate, ...]

    @property
    def hours(self) -> int:
        return len(self.truly_idle)

    def hour(self, i: int) -> datetime:
        return self.start + i * _HOUR

    def until(self, end: datetime) -> list[HourlyAggregate]:
        """The aggregates a store would hold at ``end`` (hours before it)."""
        return [a for a in self.aggregates if a.hour < end]

    def local_minute_of_week(self, i: int) -> int:
        local = self.hour(i).astimezone(ZoneInfo(self.timezone))
        return local.weekday() * MINUTES_PER_DAY + local.hour * 60 + local.minute


# -- patterns ---------------------------------------------------------------------------


def _office(rng: random.Random) -> Pattern:
    begin, end = rng.choice((7, 8, 9)), rng.choice((17, 18, 19))

    def p(day: int, hour: int) -> tuple[float, str]:
        if day >= 5:
            return _QUIET
        if begin <= hour < end:
            return (1.0, "heavy")
        if hour == begin - 1:
            return (0.15, "heavy")  # an early start now and then
        if hour == end:
            return (0.2, "heavy")  # someone working late
        return _QUIET

    return p


def _always_on(rng: random.Random) -> Pattern:
    return lambda day, hour: (1.0, "heavy")


def _weekends_off(rng: random.Random) -> Pattern:
    def p(day: int, hour: int) -> tuple[float, str]:
        week_hour = day * 24 + hour
        if 6 <= week_hour < 4 * 24 + 21:  # Monday 06:00 to Friday 21:00
            return (1.0, "heavy")
        if week_hour in (5, 4 * 24 + 21):
            return (0.1, "heavy")
        return _QUIET

    return p


def _nightly(rng: random.Random) -> Pattern:
    at = rng.randrange(0, 6)

    def p(day: int, hour: int) -> tuple[float, str]:
        if hour == at:
            return (1.0, "light")
        if hour == at + 1:
            return (0.1, "light")  # the job overruns its hour
        return _QUIET

    return p


def _weekly(rng: random.Random) -> Pattern:
    on = 0 if rng.random() < 0.6 else rng.randrange(7)  # mostly a Monday report
    at, hours = rng.randrange(6, 21), rng.choice((1, 2))

    def p(day: int, hour: int) -> tuple[float, str]:
        if day == on and at <= hour < at + hours:
            return (1.0, "light")
        if day == on and hour == at + hours:
            return (0.1, "light")
        return _QUIET

    return p


def _both(a: Pattern, b: Pattern) -> Pattern:
    def p(day: int, hour: int) -> tuple[float, str]:
        pa, pb = a(day, hour), b(day, hour)
        return pa if pa[0] >= pb[0] else pb

    return p


def _idle(rng: random.Random) -> Pattern:
    return lambda day, hour: _QUIET


def _pattern(kind: str, rng: random.Random) -> Pattern:
    if kind in ("office", "noisy"):
        return _office(rng)
    if kind == "always_on":
        return _always_on(rng)
    if kind == "weekends_off":
        return _weekends_off(rng)
    if kind == "nightly_job":
        return _nightly(rng)
    if kind == "weekly_job":
        return _weekly(rng)
    if kind == "office_nightly":
        return _both(_office(rng), _nightly(rng))
    if kind == "idle":
        return _idle(rng)
    if kind == "gaps":
        return _pattern(rng.choice(("office", "nightly_job", "weekly_job", "idle")), rng)
    raise ValueError(f"unknown trace kind {kind!r}")


# Kinds whose activity varies per date: draw(rng, local date index, weekday, hour)
# -> (busy this time: None | "heavy" | "light", chance the hour is busy on such a day).
Draw = Callable[[int, int, int], tuple[str | None, float]]


def _drift(rng: random.Random) -> Draw:
    at = rng.randrange(0, 5)
    runs: dict[int, range] = {}

    def draw(day: int, weekday: int, hour: int) -> tuple[str | None, float]:
        if day not in runs:
            begin = at * 60 + rng.randint(20, 100)  # 01:20 .. 02:40 for at = 1
            runs[day] = range(begin // 60, (begin + rng.randint(10, 40) - 1) // 60 + 1)
        chance = 0.5 if at <= hour <= at + 2 else 0.0
        return ("light" if hour in runs[day] else None), chance

    return draw


def _irregular_office(rng: random.Random) -> Draw:
    begin, end = rng.choice((8, 9)), rng.choice((17, 18))
    days: dict[int, range] = {}

    def draw(day: int, weekday: int, hour: int) -> tuple[str | None, float]:
        if weekday >= 5:
            return None, 0.0
        if day not in days:
            a = begin * 60 - 60 if rng.random() < 0.2 else begin * 60 + rng.randint(0, 10)
            b = end * 60 + 90 if rng.random() < 0.2 else end * 60 - rng.randint(0, 10)
            days[day] = range(a // 60, (b - 1) // 60 + 1)
        chance = 1.0 if begin <= hour < end else 0.2 if begin - 1 <= hour <= end + 1 else 0.0
        return ("heavy" if hour in days[day] else None), chance

    return draw


def _from_pattern(pattern: Pattern, rng: random.Random) -> Draw:
    draws: dict[tuple[int, int], str | None] = {}

    def draw(day: int, weekday: int, hour: int) -> tuple[str | None, float]:
        prob, how = pattern(weekday, hour)
        key = (day, hour)
        if key not in draws:
            draws[key] = how if prob > 0 and rng.random() < prob else None
        return draws[key], prob

    return draw


def _changed(before: Draw, after: Draw, change_day: int) -> Draw:
    return lambda day, weekday, hour: (before if day < change_day else after)(day, weekday, hour)


def _draw(kind: str, rng: random.Random, change_day: int) -> Draw:
    if kind == "drift":
        return _drift(rng)
    if kind == "irregular_office":
        return _irregular_office(rng)
    if kind == "recent_idle":
        return _changed(_from_pattern(_office(rng), rng), _from_pattern(_idle(rng), rng),
                        change_day)
    if kind == "new_daily_job":
        base = _pattern(rng.choice(("office", "idle", "weekly_job")), rng)
        at = 4
        job: Pattern = lambda day, hour: (1.0, "light") if hour == at else _QUIET  # noqa: E731
        return _changed(_from_pattern(base, rng), _from_pattern(_both(base, job), rng),
                        change_day)
    if kind in ("monitoring", "sparse"):
        base_kind = rng.choice(
            ("office", "nightly_job", "weekly_job", "weekends_off", "office_nightly", "idle",
             "drift", "irregular_office")
        )
        return _draw(base_kind, rng, change_day)
    return _from_pattern(_pattern(kind, rng), rng)


# -- values -----------------------------------------------------------------------------


def _values(
    rng: random.Random, busy: str | None, noisy: bool, monitor: int = 0
) -> dict[str, tuple[float, float]]:
    """(avg, max) per metric for an hour: idle (busy None), a light job or heavy use.

    ``monitor``: a monitoring agent holds one connection and pings every five minutes,
    through it (1) or through a second, short connection (2)."""
    if monitor:
        out = _values(rng, busy, noisy)
        conn, top = out[CONNECTIONS]
        if busy is None:
            cpu = rng.uniform(0.2, 1.5)
            out[CPU] = (cpu, cpu + 2)
        out[CONNECTIONS] = (conn + 1 + (monitor - 1) * 0.02, top + monitor)
        return out
    if busy == "heavy":
        conn = rng.uniform(2, 40)
        return {
            CONNECTIONS: (conn, conn + rng.uniform(1, 20)),
            CPU: (rng.uniform(12, 85), 100.0),
            READ_IOPS: (rng.uniform(30, 800), 1200.0),
            WRITE_IOPS: (rng.uniform(30, 600), 900.0),
        }
    if busy == "light":  # a few minutes of work: only the connections max shows it
        return {
            CONNECTIONS: (rng.uniform(0.05, 0.5), float(rng.randint(1, 3))),
            CPU: (rng.uniform(2, 9), rng.uniform(30, 90)),
            READ_IOPS: (rng.uniform(1, 15), rng.uniform(50, 400)),
            WRITE_IOPS: (rng.uniform(1, 15), rng.uniform(50, 400)),
        }
    cpu_top, io_top = (8.0, 15.0) if noisy else (4.0, 8.0)
    cpu = rng.uniform(0.5, cpu_top)
    return {
        CONNECTIONS: (0.0, 0.0),
        CPU: (cpu, cpu + rng.uniform(0, 6)),
        READ_IOPS: (rng.uniform(0, io_top / 2), io_top),
        WRITE_IOPS: (rng.uniform(0.5, io_top), io_top * 2),
    }


def _sparse(rng: random.Random, hours: int, lookback: int) -> set[int]:
    """30% of hours at random, and a two-day gap somewhere in the lookback."""
    missing = {i for i in range(hours) if rng.random() < 0.3}
    at = rng.randrange(0, max(1, lookback - 48))
    missing.update(range(at, at + 48))
    return missing


def _gaps(rng: random.Random, hours: int) -> set[int]:
    missing: set[int] = set()
    if rng.random() < 0.3:  # collected only from a few days in
        missing.update(range(rng.randrange(24, 5 * 24)))
    for _ in range(rng.randint(1, 4)):
        at, length = rng.randrange(hours), rng.randint(2, 48)
        missing.update(range(at, min(hours, at + length)))
    return missing


# -- the generator ----------------------------------------------------------------------


def make_trace(
    kind: str,
    *,
    seed: int,
    start: datetime,
    days: int,
    timezone: str = "UTC",
    noise_rate: float = 0.004,
    with_iops: bool | None = None,
    lookback_days: int | None = None,
) -> Trace:
    """A trace of ``kind`` over ``days`` days from the UTC hour ``start``.

    Deterministic for a seed. ``noise_rate`` is the chance per hour of a one-off visit
    in a ``noisy`` trace. ``with_iops`` None: one trace in five has no IOPS metrics, as
    on platforms that give no IO figures. ``lookback_days`` (default: ``days`` - 7) is
    where the analysis' lookback ends: the recent-change kinds change three days before.
    """
    rng = random.Random(f"{kind}:{seed}")
    lookback = days - 7 if lookback_days is None else lookback_days
    draw = _draw(kind, rng, lookback - 3)
    noisy = kind == "noisy"
    monitor = (1 if rng.random() < 0.7 else 2) if kind == "monitoring" else 0
    iops_given = rng.random() < 0.8
    with_iops = iops_given if with_iops is None else with_iops
    hours = days * 24
    missing = (
        _gaps(rng, hours) if kind == "gaps"
        else _sparse(rng, hours, lookback * 24) if kind == "sparse"
        else set()
    )
    tz = ZoneInfo(timezone)
    first_day = start.astimezone(tz).toordinal()

    def drawn(d: datetime) -> tuple[str | None, float]:
        """Whether a local hour is busy this time, and its chance of being busy."""
        return draw(d.toordinal() - first_day, d.weekday(), d.hour)

    truly: list[bool] = []
    recurring: list[bool] = []
    always: list[bool] = []
    aggregates: list[HourlyAggregate] = []
    for i in range(hours):
        hour = start + i * _HOUR
        local = hour.astimezone(tz)
        touched = [local.replace(minute=0)]
        if local.minute:  # a half-hour zone: the UTC hour overlaps the next local hour too
            touched.append((hour + _HOUR).astimezone(tz).replace(minute=0))
        busy: str | None = None
        chance = 0.0
        for d in touched:
            how, prob = drawn(d)
            chance = max(chance, prob)
            if how == "heavy" or (how and busy is None):
                busy = how
        if noisy and busy is None and rng.random() < noise_rate:
            busy = "heavy"
        truly.append(busy is None)
        recurring.append(chance == 0)
        always.append(chance >= 1)
        if i in missing:
            continue
        for metric, (avg, top) in _values(rng, busy, noisy, monitor).items():
            if not with_iops and metric in (READ_IOPS, WRITE_IOPS):
                continue
            low = 0.0 if metric == CONNECTIONS and busy != "heavy" else avg * 0.5
            if metric == CONNECTIONS and monitor:
                low = max(low, 1.0)
            aggregates.append(HourlyAggregate(metric, hour, avg, low, top, SAMPLES_PER_HOUR))
    return Trace(
        kind=kind,
        timezone=timezone,
        start=start,
        truly_idle=tuple(truly),
        recurring_idle=tuple(recurring),
        recurring_busy=tuple(always),
        has_data=tuple(i not in missing for i in range(hours)),
        aggregates=tuple(aggregates),
    )


def random_trace(
    seed: int, days: int = 21, *, complete: bool = False, kinds: tuple[str, ...] = KINDS
) -> Trace:
    """A trace of a random kind (of ``kinds``), zone and start (any season, so DST
    changes occur).

    ``complete``: every hour has all four metrics (no ``gaps`` kind, IOPS always given).
    """
    rng = random.Random(seed)
    kind = rng.choice([k for k in kinds if k not in ("gaps", "sparse")] if complete else kinds)
    start = datetime(2026, 1, 5, tzinfo=UTC) + timedelta(
        days=rng.randrange(330), hours=rng.randrange(24)
    )
    zone = rng.choice(ZONES)
    return make_trace(
        kind, seed=seed, start=start, days=days, timezone=zone, with_iops=True if complete else None
    )


# -- scoring ----------------------------------------------------------------------------


@dataclass
class Score:
    """Counts over held-out hours, summed over traces.

    precision = slept hours that were truly idle / hours slept at all (an hour counts
    as slept if any minute of it is), recall = minutes slept of the truly idle recurring
    hours / their minutes; ``strict_recall`` counts only hours slept end to end.
    """

    slept_hours: int = 0
    slept_idle_hours: int = 0
    recurring_hours: int = 0
    recurring_minutes_slept: int = 0
    recurring_hours_fully_slept: int = 0
    recurring_busy_minutes_slept: int = 0
    traces: int = 0
    recommendations: int = 0

    def add(self, other: Score) -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    @property
    def precision(self) -> float:
        return self.slept_idle_hours / self.slept_hours if self.slept_hours else 1.0

    @property
    def recall(self) -> float:
        if not self.recurring_hours:
            return 1.0
        return self.recurring_minutes_slept / (60 * self.recurring_hours)

    @property
    def strict_recall(self) -> float:
        if not self.recurring_hours:
            return 1.0
        return self.recurring_hours_fully_slept / self.recurring_hours

    def summary(self) -> str:
        return (
            f"precision {self.precision:.2%} ({self.slept_idle_hours}/{self.slept_hours} "
            f"slept hours truly idle), recall {self.recall:.2%} of "
            f"{self.recurring_hours} truly idle recurring hours (fully slept: "
            f"{self.strict_recall:.2%}), {self.recommendations}/{self.traces} traces "
            f"with a recommendation, {self.recurring_busy_minutes_slept} minutes of "
            f"recurring activity slept"
        )


def score(trace: Trace, result: Recommendation | NoRecommendation, first: int) -> Score:
    """Score ``result`` against the labels of the hours from ``first`` to the end."""
    s = Score(traces=1)
    rec = result if isinstance(result, Recommendation) else None
    s.recommendations = int(rec is not None)
    for i in range(first, trace.hours):
        slept = rec.overlap_minutes(trace.local_minute_of_week(i), 60) if rec else 0
        idle = trace.truly_idle[i]
        if slept:
            s.slept_hours += 1
            s.slept_idle_hours += idle
        if trace.recurring_busy[i]:
            s.recurring_busy_minutes_slept += slept
        if idle and trace.recurring_idle[i]:
            s.recurring_hours += 1
            s.recurring_minutes_slept += slept
            s.recurring_hours_fully_slept += slept == 60
    return s
