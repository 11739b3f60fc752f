"""Activity analysis: idle hours, sleep windows, confidence, savings, and its quality.

Hand-built traces check exact windows for each kind of activity; the labelled synthetic
traces (tests/synthetic_traces.py) measure precision and recall over many seeds.
"""

from __future__ import annotations

import math
import random
import uuid
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from snoozeql.domain.analysis import (
    AnalysisSettings,
    BlockAnalysis,
    NoRecommendation,
    NoRecommendationReason,
    Recommendation,
    RecommendationKind,
    SleepWindow,
    activity_profile,
    analyse,
    format_weekdays,
    monthly_savings_cents,
)
from snoozeql.domain.errors import ValidationError
from snoozeql.domain.metrics import (
    BLOCK_COLUMNS,
    CONNECTIONS,
    CPU,
    READ_IOPS,
    WRITE_IOPS,
    HourlyAggregate,
    HourlySeries,
    SeriesBlock,
)
from snoozeql.domain.types import Instance, InstanceKind, InstanceStatus, ProviderKind
from snoozeql.services.recommendations import entry_body
from tests.synthetic_traces import (
    KINDS,
    MESSY_KINDS,
    REGULAR_KINDS,
    ZONES,
    Score,
    make_trace,
    random_trace,
    score,
)

DEFAULTS = AnalysisSettings()
MONDAY = datetime(2026, 1, 12, tzinfo=UTC)  # no DST change in the two weeks after it

# busy(local start of the UTC hour) -> None (idle), "heavy" or "light" (a short job)
Busy = Callable[[datetime], str | None]


def hour_values(how: str | None, idle_cpu: float = 2.0) -> dict[str, tuple[float, float]]:
    if how == "heavy":
        return {CONNECTIONS: (12.0, 30.0), CPU: (45.0, 90.0), READ_IOPS: (300.0, 900.0),
                WRITE_IOPS: (150.0, 500.0)}  # fmt: skip
    if how == "light":  # a five-minute job: only the connections max shows it
        return {CONNECTIONS: (0.1, 1.0), CPU: (4.0, 60.0), READ_IOPS: (5.0, 200.0),
                WRITE_IOPS: (6.0, 200.0)}  # fmt: skip
    return {CONNECTIONS: (0.0, 0.0), CPU: (idle_cpu, idle_cpu + 3), READ_IOPS: (1.0, 4.0),
            WRITE_IOPS: (2.0, 6.0)}  # fmt: skip


def build(
    busy: Busy,
    *,
    zone: str = "UTC",
    start: datetime = MONDAY,
    days: int = 14,
    skip: Callable[[int], bool] = lambda i: False,
    idle_cpu: float = 2.0,
) -> list[HourlyAggregate]:
    tz = ZoneInfo(zone)
    out = []
    for i in range(days * 24):
        if skip(i):
            continue
        hour = start + timedelta(hours=i)
        for metric, (avg, top) in hour_values(busy(hour.astimezone(tz)), idle_cpu).items():
            out.append(HourlyAggregate(metric, hour, avg, 0.0, top, 4))
    return out


def run(
    aggs: list[HourlyAggregate],
    zone: str = "UTC",
    *,
    start: datetime = MONDAY,
    days: int = 14,
    s: AnalysisSettings = DEFAULTS,
    cost: Decimal | None = None,
    nodes: int = 1,
) -> Recommendation | NoRecommendation:
    return analyse(aggs, s, start + timedelta(days=days, minutes=7), zone, cost, nodes)


def rec_of(result: Recommendation | NoRecommendation) -> Recommendation:
    assert isinstance(result, Recommendation), result
    return result


def local(zone: str, year: int, month: int, day: int, hour: int, minute: int) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=ZoneInfo(zone))


def office(begin: int = 9, end: int = 18) -> Busy:
    return lambda d: "heavy" if d.weekday() < 5 and begin <= d.hour < end else None


# -- kinds of activity -----------------------------------------------------------------


def test_office_hours_sleep_nights_and_weekends() -> None:
    zone = "Europe/Paris"
    r = rec_of(run(build(office(), zone=zone), zone, cost=Decimal("100"), nodes=2))
    assert r.kind is RecommendationKind.SLEEP
    assert [sp.describe() for sp in r.spans] == [
        "mon 18:30 -> tue 08:30",
        "tue 18:30 -> wed 08:30",
        "wed 18:30 -> thu 08:30",
        "thu 18:30 -> fri 08:30",
        "fri 18:30 -> mon 08:30",  # across the weekend and Sunday midnight, one window
    ]
    assert r.windows == (
        SleepWindow((0, 1, 2, 3, 4), "00:00", "08:30"),
        SleepWindow((0, 1, 2, 3, 4), "18:30", "24:00"),
        SleepWindow((5, 6), "00:00", "24:00"),
    )
    assert r.to_schedule_periods() == [
        {"begintime": "08:30", "endtime": "18:30", "weekdays": "mon-fri"}
    ]
    assert r.sleep_hours_per_week == 118
    # 118 h/week x 365.25/12/7 weeks/month x 100 cents x 2 nodes
    assert r.monthly_savings_cents == Decimal(102618)
    assert 0.8 <= r.confidence <= 1.0
    assert r.weeks_observed == 2 and r.hours_observed == 336
    for day in range(26, 31):  # Monday to Friday of the next week
        for hour in range(9, 18):
            assert not r.sleeps_at(local(zone, 2026, 1, day, hour, 15))
        assert r.sleeps_at(local(zone, 2026, 1, day, 3, 0))
    assert r.sleeps_at(local(zone, 2026, 1, 31, 12, 0))  # Saturday noon
    assert not r.sleeps_at(local(zone, 2026, 1, 26, 8, 45))  # awake before people come
    assert not r.sleeps_at(local(zone, 2026, 1, 26, 18, 15))  # and a little after


def test_busy_all_week_gets_no_recommendation() -> None:
    r = run(build(lambda d: "heavy"))
    assert isinstance(r, NoRecommendation)
    assert r.code is NoRecommendationReason.NO_IDLE_WINDOW
    assert "no idle window" in r.reason and r.hours_observed == 336


def test_weekends_off() -> None:
    zone = "America/New_York"

    def weekdays_on(d: datetime) -> str | None:
        week_hour = d.weekday() * 24 + d.hour
        return "heavy" if 6 <= week_hour < 4 * 24 + 21 else None

    r = rec_of(run(build(weekdays_on, zone=zone), zone))
    assert [sp.describe() for sp in r.spans] == ["fri 21:30 -> mon 05:30"]
    assert r.sleep_hours_per_week == 56
    assert r.to_schedule_periods() == [
        {"begintime": "05:30", "endtime": "24:00", "weekdays": "mon"},
        {"begintime": "00:00", "endtime": "24:00", "weekdays": "tue-thu"},
        {"begintime": "00:00", "endtime": "21:30", "weekdays": "fri"},
    ]


def nightly(at: int = 2) -> Busy:
    return lambda d: "light" if d.hour == at else None


def test_a_nightly_job_is_never_slept_through() -> None:
    r = rec_of(run(build(nightly())))
    assert [sp.describe() for sp in r.spans] == [
        f"{a} 03:30 -> {b} 01:30"
        for a, b in zip(
            ("mon", "tue", "wed", "thu", "fri", "sat", "sun"),
            ("tue", "wed", "thu", "fri", "sat", "sun", "mon"),
            strict=True,
        )
    ]
    assert r.sleep_hours_per_week == 7 * 22
    for day in range(7):
        midnight = datetime(2026, 1, 26, tzinfo=UTC) + timedelta(days=day)
        for minute in range(90, 210, 5):  # 01:30 to 03:30 every night stays awake
            assert not r.sleeps_at(midnight + timedelta(minutes=minute))
    assert r.to_schedule_periods() == [
        {"begintime": "01:30", "endtime": "03:30", "weekdays": "mon-sun"}
    ]


def test_the_connections_max_reveals_a_short_job_the_mean_hides() -> None:
    aggs = build(nightly())
    # With the mean and a threshold of half a connection, the five-minute job vanishes,
    # and the database looks idle for good: that is why the max is the default.
    hiding = AnalysisSettings(connections_statistic="avg", idle_connections=0.5)
    hidden = rec_of(run(aggs, s=hiding))
    assert hidden.kind is RecommendationKind.STOP
    assert rec_of(run(aggs)).kind is RecommendationKind.SLEEP


def test_a_weekly_monday_report_is_never_slept_through() -> None:
    zone = "Europe/Paris"
    r = rec_of(
        run(
            build(lambda d: "light" if d.weekday() == 0 and d.hour == 10 else None, zone=zone), zone
        )
    )
    assert r.kind is RecommendationKind.SLEEP
    assert [sp.describe() for sp in r.spans] == ["mon 11:30 -> mon 09:30"]
    assert r.sleep_hours_per_week == 166
    assert not r.sleeps_at(local(zone, 2026, 1, 26, 10, 30))
    assert r.sleeps_at(local(zone, 2026, 1, 27, 10, 30))
    assert r.to_schedule_periods() == [
        {"begintime": "09:30", "endtime": "11:30", "weekdays": "mon"}
    ]


def test_idle_for_good_gets_a_stop_recommendation() -> None:
    r = rec_of(run(build(lambda d: None), cost=Decimal("12.5"), nodes=3))
    assert r.kind is RecommendationKind.STOP
    assert r.sleep_hours_per_week == 168
    assert r.to_schedule_periods() == []
    assert r.windows == (SleepWindow((0, 1, 2, 3, 4, 5, 6), "00:00", "24:00"),)
    # 168 h x 365.25 / 12 / 7 = 730.5 h a month, x 12.5 cents x 3 nodes
    assert r.monthly_savings_cents == Decimal("27394")
    assert r.kind.value == "always_idle"
    assert r.sleeps_at(datetime(2026, 1, 28, 15, tzinfo=UTC))


def test_fewer_than_24_hours_of_data_gets_no_recommendation() -> None:
    aggs = build(lambda d: None, skip=lambda i: i < 336 - 20)
    r = run(aggs)
    assert isinstance(r, NoRecommendation)
    assert r.code is NoRecommendationReason.NOT_ENOUGH_DATA
    assert "20 hours" in r.reason and "at least 24" in r.reason
    assert r.code.value == "not_enough_data"
    # configurable: 30 hours pass the default bar (and then lack weeks), not a 48-hour one
    aggs = build(lambda d: None, skip=lambda i: i < 336 - 30)
    r24 = run(aggs)
    assert isinstance(r24, NoRecommendation)
    assert r24.code is NoRecommendationReason.NOT_ENOUGH_WEEKS
    r48 = run(aggs, s=AnalysisSettings(min_hours=48))
    assert isinstance(r48, NoRecommendation) and "at least 48" in r48.reason


def test_a_few_days_of_data_is_not_enough_weeks() -> None:
    r = run(build(lambda d: None, skip=lambda i: i < 336 - 72))
    assert isinstance(r, NoRecommendation)
    assert r.code is NoRecommendationReason.NOT_ENOUGH_WEEKS
    assert "2 different weeks" in r.reason


def test_hours_never_observed_are_not_slept() -> None:
    # Idle, but nothing was collected on either Wednesday from 10:00 to 19:59.
    gap = {d * 24 + h for d in (2, 9) for h in range(10, 20)}
    r = rec_of(run(build(lambda d: None, skip=lambda i: i in gap)))
    assert r.kind is RecommendationKind.SLEEP  # not "always idle": not every hour was seen
    assert [sp.describe() for sp in r.spans] == ["wed 20:30 -> wed 09:30"]
    assert not r.sleeps_at(datetime(2026, 1, 28, 15, tzinfo=UTC))


def test_an_hour_observed_idle_in_one_week_counts() -> None:
    # Nothing collected on the first Wednesday 10:00-19:59: the second week saw it idle.
    gap = range(2 * 24 + 10, 2 * 24 + 20)
    r = rec_of(run(build(lambda d: None, skip=lambda i: i in gap)))
    assert r.sleeps_at(datetime(2026, 1, 28, 15, tzinfo=UTC))
    assert r.coverage < 1 and r.confidence < 1


def test_required_idle_share() -> None:
    # One visit, on the first Wednesday at 14:00 only.
    once = datetime(2026, 1, 14, 14, tzinfo=UTC)
    aggs = build(lambda d: "heavy" if d == once else None)
    strict = rec_of(run(aggs))
    assert not strict.sleeps_at(datetime(2026, 1, 28, 14, 30, tzinfo=UTC))
    assert strict.confidence > 0.8
    half = rec_of(run(aggs, s=AnalysisSettings(required_idle_share=0.5)))
    assert half.sleeps_at(datetime(2026, 1, 28, 14, 30, tzinfo=UTC))
    assert half.kind is RecommendationKind.SLEEP  # activity was seen: not "stop"
    assert half.confidence <= 0.5


def test_short_idle_gaps_are_not_windows() -> None:
    def lunch(hours: int) -> Busy:
        return lambda d: "heavy" if 9 <= d.hour < 12 or 12 + hours <= d.hour < 18 else None

    two = rec_of(run(build(lunch(2))))
    assert not any(sp.describe().split()[1] == "12:30" for sp in two.spans)
    three = rec_of(run(build(lunch(3))))
    assert [sp.describe() for sp in three.spans if sp.describe().startswith("mon 12")] == [
        "mon 12:30 -> mon 14:30"
    ]
    longer = rec_of(run(build(lunch(3)), s=AnalysisSettings(min_window_hours=3)))
    assert not any(sp.describe().split()[1] == "12:30" for sp in longer.spans)


def test_margin_is_configurable() -> None:
    r = rec_of(run(build(office()), s=AnalysisSettings(margin_minutes=0)))
    assert r.spans[0].describe() == "mon 18:00 -> tue 09:00"


def test_half_hour_time_zone() -> None:
    zone = "Asia/Kolkata"  # UTC hours begin at hh:30 local
    tz = ZoneInfo(zone)

    def busy(d: datetime) -> str | None:  # busy when the hour touches 09:00-18:00 local
        minutes = d.hour * 60 + d.minute
        return "heavy" if d.weekday() < 5 and minutes + 60 > 540 and minutes < 1080 else None

    r = rec_of(run(build(busy, zone=zone), zone))
    assert r.spans[0].describe() == "mon 19:00 -> tue 08:00"
    assert r.to_schedule_periods() == [
        {"begintime": "08:00", "endtime": "19:00", "weekdays": "mon-fri"}
    ]
    assert not r.sleeps_at(datetime(2026, 1, 27, 9, 0, tzinfo=tz))


def test_windows_stay_in_local_time_across_a_dst_change() -> None:
    zone = "Europe/Paris"  # clocks go forward on Sunday 29 March 2026
    start = datetime(2026, 3, 16, tzinfo=UTC)
    r = rec_of(run(build(office(), zone=zone, start=start), zone, start=start))
    assert [sp.describe() for sp in r.spans][-1] == "fri 18:30 -> mon 08:30"
    assert r.to_schedule_periods() == [
        {"begintime": "08:30", "endtime": "18:30", "weekdays": "mon-fri"}
    ]
    for day in (27, 30):  # a Friday in winter time, a Monday in summer time
        assert not r.sleeps_at(local(zone, 2026, 3, day, 9, 5))
        assert r.sleeps_at(local(zone, 2026, 3, day, 22, 0))


def test_the_current_hour_and_older_hours_are_ignored() -> None:
    aggs = build(lambda d: None, days=30, start=MONDAY - timedelta(days=16))
    # busy in the unfinished current hour and before the lookback: neither counts
    now = MONDAY + timedelta(days=14, minutes=7)
    extra = [
        HourlyAggregate(CONNECTIONS, now.replace(minute=0), 5.0, 0, 9.0, 1),
        HourlyAggregate(CONNECTIONS, MONDAY - timedelta(hours=5), 5.0, 0, 9.0, 4),
    ]
    r = rec_of(analyse(aggs + extra, DEFAULTS, now))
    assert r.kind is RecommendationKind.STOP and r.hours_observed == 336


def test_columns_and_aggregates_give_the_same_answer() -> None:
    zone = "America/Los_Angeles"
    aggs = build(office(8, 17), zone=zone)
    cols = HourlySeries.from_aggregates(aggs, MONDAY, 336)
    assert run(aggs, zone) == run(cols, zone)  # type: ignore[arg-type]


def test_confidence_falls_as_idle_hours_come_close_to_busy() -> None:
    quiet = rec_of(run(build(office(), idle_cpu=0.5)))
    loud = rec_of(run(build(office(), idle_cpu=9.0)))
    assert 0.0 <= loud.confidence < quiet.confidence <= 1.0
    assert loud.confidence >= 0.5


def test_savings_are_null_without_a_cost() -> None:
    r = rec_of(run(build(office())))
    assert r.monthly_savings_cents is None
    assert monthly_savings_cents(60 * 168, Decimal("10"), 1) == Decimal(7305)


@pytest.mark.parametrize(
    ("call", "fragment"),
    [
        (lambda: analyse([], DEFAULTS, datetime(2026, 1, 1), "UTC"), "naive"),
        (lambda: analyse([], DEFAULTS, MONDAY, "Mars/Olympus"), "unknown time zone"),
        (lambda: analyse([], DEFAULTS, MONDAY, "UTC", None, 0), "node_count"),
        (lambda: AnalysisSettings(min_weeks=3), "lookback of at least 21 days"),
        (lambda: AnalysisSettings(required_idle_share=0), "required_idle_share"),
        (lambda: AnalysisSettings(connections_statistic="p99"), "connections_statistic"),
        (lambda: AnalysisSettings(idle_cpu_percent=0), "idle_cpu_percent"),
        (lambda: AnalysisSettings(margin_minutes=90), "margin_minutes"),
        (lambda: AnalysisSettings(idle_cpu_percent="5"), "not a number"),  # type: ignore[arg-type]
    ],
)
def test_bad_input_is_refused(call: Callable[[], object], fragment: str) -> None:
    with pytest.raises(ValidationError) as e:
        call()
    assert fragment in e.value.message


def test_format_weekdays() -> None:
    assert format_weekdays([0, 1, 2, 3, 4]) == "mon-fri"
    assert format_weekdays([5, 6]) == "sat,sun"
    assert format_weekdays([0, 2, 3, 4, 6]) == "mon,wed-fri,sun"


# -- activity profile ------------------------------------------------------------------


def test_activity_profile_is_in_local_time() -> None:
    zone = "Europe/Paris"
    p = activity_profile(build(office(), zone=zone), zone)
    assert p.connections[0][9] == 12.0 and p.connections_max[0][9] == 30.0
    assert p.connections[0][8] == 0.0 and p.cpu[5][12] == 2.0
    assert p.hours[2][10] == 2 and p.samples[2][10] == 8  # two weeks, four samples each
    empty = activity_profile([], zone)
    assert empty.connections[0][0] is None and empty.hours[0][0] == 0
    assert len(p.cpu) == 7 and len(p.cpu[0]) == 24


# -- measured against labelled traces ------------------------------------------------------

LOOKBACK = 14


def analyse_trace(seed: int) -> tuple[str, Score]:
    trace = random_trace(seed, days=LOOKBACK + 7)
    now = trace.start + timedelta(days=LOOKBACK, minutes=17)
    result = analyse(trace.until(now), DEFAULTS, now, trace.timezone)
    return trace.kind, score(trace, result, LOOKBACK * 24)


def test_each_trace_kind_gets_the_expected_answer() -> None:
    start = datetime(2026, 5, 4, 3, tzinfo=UTC)
    now = start + timedelta(days=LOOKBACK, minutes=1)
    expected = {
        "office": RecommendationKind.SLEEP,
        "always_on": NoRecommendationReason.NO_IDLE_WINDOW,
        "weekends_off": RecommendationKind.SLEEP,
        "nightly_job": RecommendationKind.SLEEP,
        "weekly_job": RecommendationKind.SLEEP,
        "office_nightly": RecommendationKind.SLEEP,
        "noisy": RecommendationKind.SLEEP,
        "idle": RecommendationKind.STOP,
    }
    assert set(expected) | {"gaps"} == set(KINDS)
    for kind, want in expected.items():
        for seed in range(3):
            trace = make_trace(kind, seed=seed, start=start, days=LOOKBACK, with_iops=True)
            r = analyse(trace.until(now), DEFAULTS, now, trace.timezone)
            got = r.kind if isinstance(r, Recommendation) else r.code
            assert got == want, (kind, seed, r)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 10**6))
def test_observed_and_recurring_activity_is_never_in_a_window(seed: int) -> None:
    trace = random_trace(seed, days=LOOKBACK + 7)
    now = trace.start + timedelta(days=LOOKBACK, minutes=17)
    r = analyse(trace.until(now), DEFAULTS, now, trace.timezone)
    if not isinstance(r, Recommendation):
        return
    for i in range(trace.hours):
        observed_busy = i < LOOKBACK * 24 and trace.has_data[i] and not trace.truly_idle[i]
        if observed_busy or trace.recurring_busy[i]:
            assert r.overlap_minutes(trace.local_minute_of_week(i), 60) == 0, (trace.kind, i)


def test_precision_and_recall_over_many_traces() -> None:
    """The issue's quality bar: >= 99% of slept hours truly idle, >= 90% recall."""
    total = Score()
    by_kind: dict[str, Score] = defaultdict(Score)
    for seed in range(400):
        kind, s = analyse_trace(seed)
        total.add(s)
        by_kind[kind].add(s)
    print(f"\nanalysis quality over {total.traces} traces: {total.summary()}")
    for kind in sorted(by_kind):
        print(f"  {kind}: {by_kind[kind].summary()}")
    assert total.slept_hours > 10_000  # the measurement measured something
    assert total.recurring_busy_minutes_slept == 0
    assert total.precision >= 0.99
    assert total.recall >= 0.90


# -- issue 21: jitter, recent change, monitoring background, sparse data ------------------


def test_jitter_seen_on_one_weekday_is_kept_awake_on_every_weekday() -> None:
    tue, thu = MONDAY + timedelta(days=1), MONDAY + timedelta(days=10)

    def busy(d: datetime) -> str | None:
        if d.weekday() >= 5:
            return None
        if 9 <= d.hour < 18:
            return "heavy"
        if d.date() == tue.date() and d.hour == 8:  # came in 60 minutes early once
            return "heavy"
        if d.date() == thu.date() and d.hour in (18, 19):  # stayed 90 minutes late once
            return "heavy"
        return None

    r = rec_of(run(build(busy)))
    for day in range(26, 31):  # every weekday of the next week, not only Tue and Thu
        assert not r.sleeps_at(datetime(2026, 1, day, 8, 0, tzinfo=UTC))
        assert not r.sleeps_at(datetime(2026, 1, day, 7, 45, tzinfo=UTC))
        assert not r.sleeps_at(datetime(2026, 1, day, 19, 59, tzinfo=UTC))
        assert not r.sleeps_at(datetime(2026, 1, day, 20, 15, tzinfo=UTC))
        assert r.sleeps_at(datetime(2026, 1, day, 3, 0, tzinfo=UTC))
    assert r.margins[0] >= 90 and r.margins[1] >= 120
    assert "learned from how much its start and end vary" in r.notes[0]


def test_a_drifting_nightly_job_is_kept_awake_over_its_whole_drift() -> None:
    # The job starts at 01:xx on some days and 02:xx on others.
    r = rec_of(run(build(lambda d: "light" if d.hour == (1 if d.day % 3 else 2) else None)))
    for day in range(7):
        midnight = datetime(2026, 1, 26, tzinfo=UTC) + timedelta(days=day)
        for minute in range(60, 180, 5):  # 01:00 to 03:00 every night stays awake
            assert not r.sleeps_at(midnight + timedelta(minutes=minute))
    assert r.notes and r.notes[0].startswith("margin")


def test_a_database_gone_quiet_says_the_pattern_changed_and_keeps_its_windows() -> None:
    quiet_from = MONDAY + timedelta(days=11)  # idle for the last 3 days
    r = rec_of(run(build(lambda d: None if d >= quiet_from else office()(d))))
    assert r.pattern_changed_on == (MONDAY + timedelta(days=11)).date()
    assert any(n.startswith(f"pattern changed on {r.pattern_changed_on}") for n in r.notes)
    assert r.pattern_changed_on.isoformat() == "2026-01-23"
    assert not r.sleeps_at(datetime(2026, 1, 26, 10, tzinfo=UTC))  # office hours kept


def test_a_holiday_week_before_now_does_not_erase_office_hours() -> None:
    holiday = MONDAY + timedelta(days=5)  # Saturday, then a week off: 9 quiet days
    r = rec_of(run(build(lambda d: None if d >= holiday else office()(d))))
    assert r.kind is RecommendationKind.SLEEP and r.pattern_changed_on is not None
    for day in range(26, 31):
        assert not r.sleeps_at(datetime(2026, 1, day, 12, tzinfo=UTC))


def test_a_change_that_held_long_enough_is_recommended_from() -> None:
    quiet_from = MONDAY + timedelta(days=2)  # 12 quiet days, more than the 10 to hold
    r = rec_of(run(build(lambda d: None if d >= quiet_from else office()(d))))
    assert r.kind is RecommendationKind.STOP
    assert any("recommended from the" in n for n in r.notes)
    held = rec_of(run(build(lambda d: None if d >= quiet_from else office()(d)),
                      s=AnalysisSettings(change_hold_days=13)))
    assert held.kind is RecommendationKind.SLEEP


def test_a_new_daily_job_is_carried_to_weekdays_not_seen_yet() -> None:
    new_from = MONDAY + timedelta(days=11)  # Friday, Saturday, Sunday at 04:00

    def busy(d: datetime) -> str | None:
        return "light" if d >= new_from and d.hour == 4 else None

    r = rec_of(run(build(busy)))
    for day in range(7):
        assert not r.sleeps_at(datetime(2026, 1, 26, 4, 30, tzinfo=UTC) + timedelta(days=day))
    assert r.pattern_changed_on == new_from.date()
    assert any("new recurring activity at 04:00" in n for n in r.notes)
    # seen on one day only: not a daily job yet, the other weekdays still sleep at 04:00
    once = rec_of(run(build(lambda d: "light" if d.date() == new_from.date() and d.hour == 4
                            else None)))
    assert once.sleeps_at(datetime(2026, 1, 27, 4, 30, tzinfo=UTC))


def with_monitor(aggs: list[HourlyAggregate], held: float = 1.0) -> list[HourlyAggregate]:
    """A monitoring agent holds ``held`` connections and pings every five minutes."""
    out = []
    for a in aggs:
        if a.metric == CONNECTIONS:
            a = HourlyAggregate(CONNECTIONS, a.hour, a.avg + held, held, a.max + held, a.count)
        elif a.metric == CPU and a.avg < 5:
            a = HourlyAggregate(CPU, a.hour, 0.4, 0.1, 1.5, a.count)
        out.append(a)
    return out


def test_a_monitoring_background_is_recognised_as_idle() -> None:
    plain = rec_of(run(build(office())))
    r = rec_of(run(with_monitor(build(office()))))
    assert r.spans == plain.spans
    assert r.background_connections == 1 and r.confidence > 0.8
    assert any("constant background of 1 connection" in n for n in r.notes)
    job = rec_of(run(with_monitor(build(nightly()))))  # a job on top still shows
    assert not job.sleeps_at(datetime(2026, 1, 27, 2, 30, tzinfo=UTC))
    off = run(with_monitor(build(office())), s=AnalysisSettings(background_connections=0))
    assert isinstance(off, NoRecommendation)
    assert "connections never fell below 1" in off.reason


def test_a_pool_larger_than_the_background_limit_is_not_idle() -> None:
    r = run(with_monitor(build(office()), held=5))
    assert isinstance(r, NoRecommendation) and "never fell below 5" in r.reason


def test_sparse_data_is_used_and_single_unobserved_hours_are_bridged() -> None:
    gaps = {i for i in range(336) if i % 7 == 3}  # every 7th hour missing, both weeks
    r = rec_of(run(build(office(), skip=lambda i: i in gaps)))
    full = rec_of(run(build(office())))
    assert r.sleep_minutes_per_week >= 0.9 * full.sleep_minutes_per_week
    assert r.coverage < full.coverage == 1 and r.confidence < full.confidence
    for day in range(26, 31):
        assert not r.sleeps_at(datetime(2026, 1, day, 12, tzinfo=UTC))


def analyse_kind_traces(kinds: tuple[str, ...], seeds: int) -> dict[str, Score]:
    by_kind: dict[str, Score] = defaultdict(Score)
    for seed in range(seeds):
        trace = random_trace(seed, days=LOOKBACK + 7, kinds=kinds)
        now = trace.start + timedelta(days=LOOKBACK, minutes=17)
        result = analyse(trace.until(now), DEFAULTS, now, trace.timezone)
        by_kind[trace.kind].add(score(trace, result, LOOKBACK * 24))
    return by_kind


# Least recall per regular class (issue 21 asks >= 95% over the regular classes
# together). Lower for two classes, for reasons docs/analysis.md ("What recall costs")
# measures: an office day plus a nightly job has four edges of activity a day, each
# costing the 30-minute margin (9 points of recall), and the gap between the job and
# the office is often too short for a 2-hour window once the margins are taken; a
# one-off visit in a noisy trace keeps its slot awake.
RECALL_FLOORS = {"office_nightly": 0.86, "noisy": 0.88}


def test_precision_and_recall_on_messy_traces() -> None:
    """Issue 21: precision >= 99% per class, recall >= 95% over the regular classes and
    >= 80% on sparse data; no minute of recurring activity inside a window; and no
    regular class falls below its floor (95% over all of them could hide one class
    collapsing)."""
    by_kind = analyse_kind_traces(KINDS + MESSY_KINDS, 450)
    regular = Score()
    for kind in sorted(by_kind):
        s = by_kind[kind]
        print(f"  {kind}: {s.summary()}")
        assert s.precision >= 0.99, kind
        assert s.recurring_busy_minutes_slept == 0, kind
        if kind in REGULAR_KINDS:
            regular.add(s)
            assert s.recall >= RECALL_FLOORS.get(kind, 0.92), (kind, s.recall)
    print(f"regular classes: {regular.summary()}")
    assert set(MESSY_KINDS) <= set(by_kind) and set(REGULAR_KINDS) <= set(by_kind)
    assert regular.recall >= 0.95
    assert by_kind["sparse"].recall >= 0.80
    assert by_kind["monitoring"].recall >= 0.90


# -- the fleet path: one block, the same answers -------------------------------------------


@pytest.mark.parametrize("tuned", [
    DEFAULTS,
    AnalysisSettings(connections_statistic="avg", idle_connections=0.5),
    AnalysisSettings(background_connections=0, required_idle_share=0.5),
    AnalysisSettings(lookback_days=21, min_weeks=3, margin_minutes=15),
])
def test_the_block_analysis_equals_the_one_instance_analysis(tuned: AnalysisSettings) -> None:
    """``BlockAnalysis`` (what the recommendations of a fleet run) gives exactly what
    ``analyse`` gives, instance by instance, on every trace kind, in zones with DST
    changes, half-hour offsets, missing hours and instances without any data."""
    for start, now_minute in ((datetime(2026, 3, 16, 5, tzinfo=UTC), 17),
                              (datetime(2026, 10, 12, 22, tzinfo=UTC), 59)):
        days = tuned.lookback_days
        now = start + timedelta(days=days, minutes=now_minute)
        first = now.replace(minute=0) - timedelta(days=days)
        traces = [
            make_trace(kind, seed=seed, start=start, days=days + 1,
                       timezone=ZONES[(seed + n) % len(ZONES)], lookback_days=days)
            for n, kind in enumerate(KINDS + MESSY_KINDS) for seed in range(4)
        ]
        series = [HourlySeries.from_aggregates(t.until(now), first, days * 24)
                  for t in traces] + _edge_series(first, days * 24)
        block = SeriesBlock.empty(first, days * 24, range(len(series)))
        for r, cols in enumerate(series):
            for c, name in enumerate(BLOCK_COLUMNS):
                block.values[c, r] = getattr(cols, name)
        fleet = BlockAnalysis(block, tuned, now)
        backgrounds = 0
        for r, cols in enumerate(series):
            zone = traces[r].timezone if r < len(traces) else ZONES[r % len(ZONES)]
            cost = Decimal("12.5") if r % 2 else None
            want = analyse(cols, tuned, now, zone, cost, 1 + r % 3)
            got = fleet.analyse(r, zone, cost, 1 + r % 3)
            assert got == want, r
            backgrounds += bool(getattr(want, "background_connections", 0))
        assert backgrounds or tuned.background_connections == 0  # the path was taken
        empty = analyse([], tuned, now, "Europe/Paris")
        assert fleet.analyse(None, "Europe/Paris") == empty
        with pytest.raises(ValidationError, match="unknown time zone"):
            fleet.analyse(0, "Mars/Olympus")


def _edge_series(first: datetime, hours: int) -> list[HourlySeries]:
    """Weekly patterns whose values sit on and next to the idle thresholds (and are
    missing now and then): any difference in how an hour is classified shows."""
    rng = random.Random(21)
    nan = math.nan
    out = []
    for _ in range(24):
        levels = {slot: (rng.choice((0.0, 0.0, 0.5, 1.0, 2.0, nan)),
                         rng.choice((0.0, 1.0, 9.999, 10.0, 10.5, nan)),
                         rng.choice((0.0, 5.0, 19.99, 20.0, nan)),
                         rng.choice((0.0, 20.0, 20.01, nan)))
                  for slot in range(0, 168, rng.choice((3, 6, 12)))}
        cols = HourlySeries.empty(first, hours)
        level = levels[0]
        for i in range(hours):
            level = levels.get(i % 168, level)
            c, u, r, w = level if rng.random() > 0.03 else (nan, nan, nan, nan)
            cols.set_hour(i, c / 2 if c == c else None, None if c != c else c,
                          None if u != u else u, None if r != r else r,
                          None if w != w else w)
        out.append(cols)
    return out


def test_a_block_for_another_lookback_is_refused() -> None:
    block = SeriesBlock.empty(MONDAY, 24, ["a"])
    with pytest.raises(ValidationError, match="block: covers 24 hours"):
        BlockAnalysis(block, DEFAULTS, MONDAY + timedelta(days=14))


# -- the listing entry (services/recommendations.entry_body) ---------------------------


def _instance() -> Instance:
    return Instance(
        id=uuid.UUID("6f1c2a7e-0000-4000-8000-0000000000aa"), account_id=None,
        provider=ProviderKind.AWS, provider_id="arn:aws:rds:us-east-1:1:db:pg",
        kind=InstanceKind.INSTANCE, name="pg", engine="postgres", engine_version="16",
        instance_class="db.t3.micro", region="us-east-1", status=InstanceStatus.RUNNING,
        raw_status="available", tags={}, endpoint_host=None, endpoint_port=None,
        multi_az=False, node_count=1, cluster_provider_id=None, hourly_cost_cents=None,
        first_seen_at=MONDAY, last_seen_at=MONDAY, missing_since=None,
    )


def test_an_always_idle_entry_has_no_sleep_span() -> None:
    r = rec_of(run(build(lambda d: None), cost=Decimal("12.5"), nodes=3))
    body = entry_body(_instance(), r, None)
    assert body["status"] == "open" and body["kind"] == "always_idle"
    # no "mon 00:00 -> mon 00:00" span: an always-idle database has no sleep span
    assert body["spans"] == [] and "mon 00:00 -> mon 00:00" not in str(body)
    assert body["windows"] == [{"weekdays": "mon-sun", "begin": "00:00", "end": "24:00"}]
    assert body["monthly_savings_cents"] == 27394 and body["monthly_savings"] == 273.94


def test_an_office_entry_reads_as_its_recommendation() -> None:
    r = rec_of(run(build(office())))
    body = entry_body(_instance(), r, None)
    assert body["monthly_savings_cents"] is None and body["monthly_savings"] is None
    assert body["schedule"] == {"timezone": "UTC", "periods": r.to_schedule_periods()}
    assert body["margin_minutes"] == {"before": r.margins[0], "after": r.margins[1]}
    assert body["spans"] == [sp.describe() for sp in r.spans] and body["spans"]
    assert body["pattern_changed_on"] is None and body["notes"] == list(r.notes)


def test_an_entry_without_a_recommendation_says_why() -> None:
    r = run(build(lambda d: None, skip=lambda i: i < 336 - 20))
    assert isinstance(r, NoRecommendation)
    body = entry_body(_instance(), r, None)
    assert (body["status"], body["kind"], body["code"]) == ("none", None, "not_enough_data")
    assert body["reason"] == r.reason and body["hours_observed"] == 20
