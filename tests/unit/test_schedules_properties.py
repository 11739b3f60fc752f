"""Property tests of the evaluator over random schedules, zones and instants.

They check what the reconciler relies on: the reported next transition really is the
first change of state (sampled densely, including every period boundary), the state is
constant between two transitions, the preview agrees with both, and away from clock
changes the evaluator agrees with a plain minute-by-minute reading of Instance
Scheduler's rules.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from snoozeql.domain.schedules import (
    DesiredState,
    ExceptionDate,
    Period,
    Schedule,
    desired_state,
    next_transition,
    preview,
)
from snoozeql.domain.schedules.model import schedule_document

R, S, A = DesiredState.RUNNING, DesiredState.STOPPED, DesiredState.ANY
ZONES = [
    "UTC",
    "Europe/Berlin",
    "America/Los_Angeles",
    "Asia/Tokyo",
    "Asia/Kolkata",
    "Australia/Sydney",
    "America/St_Johns",  # -03:30 with DST
    "Pacific/Chatham",  # +12:45 with DST
    "America/Havana",  # clocks change at midnight
]
HORIZON = timedelta(days=9)
TINY = timedelta(microseconds=1)

minutes = st.one_of(
    st.integers(0, 1439),
    st.sampled_from([0, 1, 59, 60, 119, 120, 150, 180, 181, 1380, 1438, 1439]),
)
weekdays = st.sampled_from(
    [None, "mon-fri", "sat-sun", "fri-mon", "mon,wed,fri", "tue/3", "mon#1", "friL", "sun#5",
     "*", "0-6/2", "thu"]
)
monthdays = st.sampled_from([None, None, None, "1-15", "L", "15W", "1/7", "31", "29", "28-L"])
months = st.sampled_from([None, None, None, "jan-jun", "nov-feb", "feb", "mar,oct"])


def hhmm(m: int | None) -> str | None:
    return None if m is None else f"{m // 60:02d}:{m % 60:02d}"


@st.composite
def periods(draw: st.DrawFn) -> Period:
    begin = draw(st.none() | minutes)
    end = draw(st.none() | minutes | st.just(1440))
    if begin is not None and end is not None:
        if begin == end:
            end = None
        elif begin > end:
            begin, end = end, begin
    return Period(
        begintime=hhmm(begin),
        endtime=hhmm(end),
        weekdays=draw(weekdays),
        monthdays=draw(monthdays),
        months=draw(months),
    )


instants = st.datetimes(
    min_value=datetime(2025, 1, 1), max_value=datetime(2028, 12, 31), timezones=st.just(UTC)
)


@st.composite
def cases(draw: st.DrawFn) -> tuple[Schedule, datetime]:
    instant = draw(instants)
    offsets = draw(st.lists(st.integers(-1, 6), max_size=2, unique=True))
    exceptions = tuple(
        ExceptionDate(instant.date() + timedelta(days=k), draw(st.sampled_from([R, S])))
        for k in offsets
    )
    chosen = draw(st.lists(periods(), min_size=1, max_size=3))
    first = chosen[0]
    if first.end_minute is not None and first.end_minute < 1440 and draw(st.booleans()):
        # A period that begins one minute after the first one ends (after 23:59, the
        # next day at 00:00): Instance Scheduler's adjacent periods, bridged.
        end = first.end_minute
        begin = first.begin_minute
        if begin is None:
            begin = draw(st.integers(0, end - 1)) if end > 0 else None
        follow = (end + 1) % 1440
        chosen[0] = Period(begintime=hhmm(begin), endtime=hhmm(end), weekdays=first.weekdays,
                           monthdays=first.monthdays, months=first.months)
        chosen.insert(1, Period(
            begintime=hhmm(follow),
            endtime=hhmm(draw(st.integers(follow + 1, 1440))),
            weekdays=first.weekdays if draw(st.booleans()) else draw(weekdays),
            monthdays=first.monthdays,
            months=first.months,
        ))
    schedule = Schedule(
        name="prop",
        timezone=draw(st.sampled_from(ZONES)),
        periods=tuple(chosen),
        override_status=draw(st.sampled_from([None] * 8 + [R, S])),
        exceptions=exceptions,
    )
    return schedule, instant


def boundary_points(schedule: Schedule, start: datetime, end: datetime) -> list[datetime]:
    """Instants in [start, end) where a mistake would show: every period boundary and
    midnight of every local day (both folds), a second either side, plus an even grid."""
    zone = schedule.zone
    marks = {0}
    for p in schedule.periods:
        for m in (p.begin_minute, p.end_minute):
            if m is not None:
                marks.add(m % 1440)
    points = [start, end - TINY]
    points += [start + (end - start) * k / 24 for k in range(1, 24)]
    day = start.astimezone(zone).date() - timedelta(days=1)
    last = end.astimezone(zone).date() + timedelta(days=1)
    while day <= last:
        for m in marks:
            naive = datetime(day.year, day.month, day.day) + timedelta(minutes=m)
            for fold in (0, 1):
                base = naive.replace(tzinfo=zone, fold=fold).astimezone(UTC)
                for delta in (-1, 0, 1, 30):
                    points.append(base + timedelta(seconds=delta))
        day += timedelta(days=1)
    return [p for p in points if start <= p < end]


def state(schedule: Schedule, instant: datetime) -> DesiredState:
    return desired_state(schedule, instant).state


SETTINGS = settings(max_examples=150, deadline=None)


@SETTINGS
@given(cases())
def test_next_transition_is_the_first_change_of_state(case: tuple[Schedule, datetime]) -> None:
    schedule, instant = case
    before = state(schedule, instant)
    t = next_transition(schedule, instant, HORIZON)
    end = t.at if t is not None else instant + HORIZON
    for point in boundary_points(schedule, instant, end):
        assert state(schedule, point) is before, point
    if t is not None:
        assert t.at > instant
        assert t.previous is before and t.state is not before
        assert state(schedule, t.at) is t.state
        assert state(schedule, t.at - TINY) is before


@SETTINGS
@given(cases())
def test_state_is_constant_between_consecutive_transitions(
    case: tuple[Schedule, datetime],
) -> None:
    schedule, instant = case
    t = next_transition(schedule, instant, HORIZON)
    for _ in range(4):
        if t is None:
            return
        following = next_transition(schedule, t.at, HORIZON)
        if following is None:
            return
        assert following.previous is t.state
        assert following.at > t.at
        for point in boundary_points(schedule, t.at, following.at):
            assert state(schedule, point) is t.state, point
        t = following


@SETTINGS
@given(cases(), st.sampled_from([{"running"}, {"stopped"}, {"running", "stopped"}]))
def test_into_picks_the_first_matching_transition(
    case: tuple[Schedule, datetime], into: set[str]
) -> None:
    schedule, instant = case
    chain = []
    t = next_transition(schedule, instant, HORIZON)
    while t is not None:
        chain.append(t)
        t = next_transition(schedule, t.at, instant + HORIZON - t.at) if (
            instant + HORIZON > t.at
        ) else None
    expected = next((c for c in chain if c.state in into), None)
    got = next_transition(schedule, instant, HORIZON, into=into)
    if expected is None:
        assert got is None
    else:
        assert got is not None and (got.at, got.state) == (expected.at, expected.state)


@SETTINGS
@given(cases(), st.integers(1, 8))
def test_preview_agrees_with_transitions(case: tuple[Schedule, datetime], days: int) -> None:
    schedule, instant = case
    end = instant + timedelta(days=days)
    segments = preview(schedule, instant, end)
    assert segments[0].start == instant and segments[-1].end == end
    for before, after in zip(segments, segments[1:], strict=False):
        assert before.end == after.start
        assert before.state is not after.state
    for seg in segments:
        assert state(schedule, seg.start) is seg.state
        assert state(schedule, seg.end - TINY) is seg.state
    boundaries = []
    t = next_transition(schedule, instant, end - instant)
    while t is not None and t.at < end:
        boundaries.append(t.at)
        t = next_transition(schedule, t.at, end - t.at) if end > t.at else None
    assert boundaries == [seg.start for seg in segments[1:]]


# --------------------------------------------------------------------------- oracle


def oracle_raw(schedule: Schedule, local: datetime) -> DesiredState:
    """Instance Scheduler's rules read off a wall clock, one minute at a time."""
    if schedule.override_status is not None:
        return schedule.override_status
    exception = schedule.exception_on(local.date())
    if exception is not None:
        return exception.state
    minute = local.hour * 60 + local.minute
    found = []
    for p in schedule.periods:
        if not p.matches_day(local.date()):
            found.append(S)
            continue
        b, e = p.begin_minute, p.end_minute
        if b is None and e is None:
            found.append(R)
        elif b is None:
            assert e is not None
            found.append(S if minute >= e else A)
        elif e is None:
            found.append(R if minute >= b else A)
        else:
            found.append(R if b <= minute < e else S)
    if R in found:
        return R
    return A if A in found else S


def oracle(schedule: Schedule, instant: datetime) -> DesiredState:
    local = instant.astimezone(schedule.zone).replace(tzinfo=None)
    raw = oracle_raw(schedule, local)
    minute = timedelta(minutes=1)
    if raw is S and oracle_raw(schedule, local - minute) is R and (
        oracle_raw(schedule, local + minute) is R
    ):
        return R  # adjacent periods: a one-minute gap between running periods is bridged
    return raw


@settings(max_examples=300, deadline=None)
@given(cases(), st.lists(st.integers(0, 3 * 24 * 3600), min_size=1, max_size=20))
def test_agrees_with_instance_scheduler_rules_away_from_clock_changes(
    case: tuple[Schedule, datetime], offsets: list[int]
) -> None:
    schedule, instant = case
    zone = schedule.zone
    points = [instant + timedelta(seconds=seconds) for seconds in offsets]
    points += boundary_points(schedule, instant, instant + timedelta(days=3))
    for point in points:
        offsets_around = {
            (point + timedelta(hours=h)).astimezone(zone).utcoffset() for h in range(-50, 51, 2)
        }
        if len(offsets_around) > 1:
            continue  # the DST rules are tested on their own
        assert state(schedule, point) is oracle(schedule, point), point


@settings(max_examples=200, deadline=None)
@given(cases())
def test_round_trip_through_json(case: tuple[Schedule, datetime]) -> None:
    schedule, _ = case
    again = Schedule.from_dict(json.loads(json.dumps(schedule_document(schedule))))
    assert again == schedule
    assert schedule_document(again) == schedule_document(schedule)


def test_cases_cover_zones_whose_clocks_change() -> None:
    # The zone list must keep zones with DST, or the DST paths go untested.
    changing = [
        name for name in ZONES
        if len({datetime(2026, month, 15, tzinfo=UTC).astimezone(
            Schedule(name="z", timezone=name, override_status=R).zone
        ).utcoffset() for month in (1, 7)}) > 1
    ]
    assert len(changing) >= 5
