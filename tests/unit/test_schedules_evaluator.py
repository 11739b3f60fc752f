"""The evaluator against the documented Instance Scheduler semantics, with DST changes,
month ends, leap days and zones east and west of UTC."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from snoozeql.domain.errors import ValidationError
from snoozeql.domain.schedules import (
    DesiredState,
    Schedule,
    Transition,
    desired_state,
    next_transition,
    preview,
)

R, S, A = DesiredState.RUNNING, DesiredState.STOPPED, DesiredState.ANY
BERLIN = ZoneInfo("Europe/Berlin")
LA = ZoneInfo("America/Los_Angeles")


def sched(*periods: dict, tz: str = "Europe/Berlin", **options: object) -> Schedule:
    return Schedule.from_dict({"name": "s", "timezone": tz, "periods": list(periods)} | options)


def at(text: str) -> datetime:
    """An ISO instant; it must carry its offset, like a user's --at value."""
    value = datetime.fromisoformat(text)
    assert value.tzinfo is not None
    return value


def nxt(schedule: Schedule, instant: datetime, *, into: set[str] | None = None) -> Transition:
    found = next_transition(schedule, instant, into=into)
    assert found is not None, "expected a transition"
    return found


def state(schedule: Schedule, text: str) -> DesiredState:
    return desired_state(schedule, at(text)).state


OFFICE = {"begintime": "09:00", "endtime": "17:00", "weekdays": "mon-fri"}


# --------------------------------------------------------------------------- one period


@pytest.mark.parametrize(
    ("period", "instant", "expected"),
    [
        # begintime and endtime: running inside [begin, end), stopped outside
        (OFFICE, "2026-11-23T08:59:59+01:00", S),  # Monday
        (OFFICE, "2026-11-23T09:00:00+01:00", R),
        (OFFICE, "2026-11-23T16:59:59+01:00", R),
        (OFFICE, "2026-11-23T17:00:00+01:00", S),
        (OFFICE, "2026-11-23T19:30:00+01:00", S),
        (OFFICE, "2026-11-28T12:00:00+01:00", S),  # Saturday: the day does not match
        # only a begintime: "any" before it, running from it to the end of the day
        ({"begintime": "09:00", "weekdays": "mon-fri"}, "2026-11-23T08:00:00+01:00", A),
        ({"begintime": "09:00", "weekdays": "mon-fri"}, "2026-11-23T09:00:00+01:00", R),
        ({"begintime": "09:00", "weekdays": "mon-fri"}, "2026-11-27T23:59:30+01:00", R),
        ({"begintime": "09:00", "weekdays": "mon-fri"}, "2026-11-28T00:00:00+01:00", S),
        # only an endtime: "any" before it, stopped from it on
        ({"endtime": "19:00", "weekdays": "mon-fri"}, "2026-11-23T18:59:00+01:00", A),
        ({"endtime": "19:00", "weekdays": "mon-fri"}, "2026-11-23T19:00:00+01:00", S),
        ({"endtime": "19:00", "weekdays": "mon-fri"}, "2026-11-28T10:00:00+01:00", S),
        # no times: running all day on matching days
        ({"weekdays": "sat-sun"}, "2026-11-28T00:00:00+01:00", R),
        ({"weekdays": "sat-sun"}, "2026-11-29T23:59:59+01:00", R),
        ({"weekdays": "sat-sun"}, "2026-11-30T00:00:00+01:00", S),
        # endtime 24:00: running to midnight
        ({"begintime": "18:00", "endtime": "24:00"}, "2026-11-23T23:59:59+01:00", R),
        # every field must match (AND): the first working days of January only
        ({"weekdays": "mon-fri", "monthdays": "1-7", "months": "jan"},
         "2027-01-04T12:00:00+01:00", R),
        ({"weekdays": "mon-fri", "monthdays": "1-7", "months": "jan"},
         "2027-01-02T12:00:00+01:00", S),  # a Saturday
        ({"weekdays": "mon-fri", "monthdays": "1-7", "months": "jan"},
         "2027-01-11T12:00:00+01:00", S),  # the 11th
        ({"weekdays": "mon-fri", "monthdays": "1-7", "months": "jan"},
         "2027-02-01T12:00:00+01:00", S),  # February
    ],
)
def test_single_period(period: dict, instant: str, expected: DesiredState) -> None:
    assert state(sched(period), instant) is expected


# --------------------------------------------------------------------------- combining


def test_running_wins_over_any() -> None:
    s = sched({"endtime": "19:00"}, {"begintime": "09:00", "endtime": "12:00"})
    assert state(s, "2026-11-23T08:00:00+01:00") is A
    assert state(s, "2026-11-23T10:00:00+01:00") is R
    assert state(s, "2026-11-23T13:00:00+01:00") is A  # "any" beats the second's stopped
    assert state(s, "2026-11-23T20:00:00+01:00") is S


def test_any_wins_over_stopped() -> None:
    s = sched({"begintime": "18:00"}, {"begintime": "09:00", "endtime": "12:00"})
    assert state(s, "2026-11-23T13:00:00+01:00") is A
    assert state(s, "2026-11-23T18:30:00+01:00") is R


def test_periods_are_or_across_days() -> None:
    s = sched(OFFICE, {"begintime": "10:00", "endtime": "14:00", "weekdays": "sat"})
    assert state(s, "2026-11-28T11:00:00+01:00") is R
    assert state(s, "2026-11-28T15:00:00+01:00") is S
    assert state(s, "2026-11-29T11:00:00+01:00") is S


def test_decision_names_the_most_recently_begun_running_period() -> None:
    s = sched({"name": "long", "begintime": "06:00", "endtime": "18:00"},
              {"name": "core", "begintime": "10:00", "endtime": "16:00"})
    d = desired_state(s, at("2026-11-23T13:00:00+01:00"))
    assert d.state is R and d.source == "period" and d.period == 1
    assert "core" in d.reason
    d = desired_state(s, at("2026-11-23T08:00:00+01:00"))
    assert d.period == 0 and "long" in d.reason
    d = desired_state(s, at("2026-11-23T19:00:00+01:00"))
    assert d.state is S and d.source == "no_period" and d.period is None


def test_adjacent_periods_over_midnight_do_not_stop() -> None:
    # Instance Scheduler's documented example: one period ends 23:59, the next begins
    # 00:00 the following day; the instance keeps running.
    s = sched({"begintime": "09:00", "endtime": "23:59", "weekdays": "mon"},
              {"begintime": "00:00", "endtime": "05:00", "weekdays": "tue"})
    d = desired_state(s, at("2026-11-23T23:59:30+01:00"))
    assert d.state is R and d.source == "bridge"
    assert nxt(s, at("2026-11-23T12:00:00+01:00")).at == at(
        "2026-11-24T05:00:00+01:00"
    )
    # Without a running neighbour the last minute is stopped, as written.
    alone = sched({"begintime": "09:00", "endtime": "23:59"})
    assert state(alone, "2026-11-23T23:59:30+01:00") is S


def test_a_two_minute_gap_is_not_bridged() -> None:
    s = sched({"begintime": "09:00", "endtime": "12:00"},
              {"begintime": "12:02", "endtime": "14:00"})
    assert state(s, "2026-11-23T12:01:00+01:00") is S


# --------------------------------------------------------------------------- options


def test_override_status_forces_the_state() -> None:
    s = sched(OFFICE, override_status="stopped")
    d = desired_state(s, at("2026-11-23T10:00:00+01:00"))
    assert d.state is S and d.source == "override"
    assert next_transition(s, at("2026-11-23T10:00:00+01:00")) is None
    (segment,) = preview(s, at("2026-11-23T00:00:00+01:00"), at("2026-11-30T00:00:00+01:00"))
    assert segment.state is S
    assert state(sched(OFFICE, override_status="running"), "2026-11-28T03:00:00+01:00") is R


def test_exception_date_holds_for_the_whole_local_day() -> None:
    s = sched(OFFICE, tz="America/Los_Angeles",
              exceptions=[{"date": "2026-12-25", "description": "Christmas"},
                          {"date": "2026-12-26", "state": "running"}])
    # 2026-12-25 is a Friday: office hours would run.
    d = desired_state(s, at("2026-12-25T10:00:00-08:00"))
    assert d.state is S and d.source == "exception" and "Christmas" in d.reason
    # The local day, not the UTC day: 23:59 on the 24th in LA is 07:59Z on the 25th.
    assert state(s, "2026-12-25T07:59:00+00:00") is S  # Dec 24, 23:59 PST: office closed
    assert desired_state(s, at("2026-12-25T08:00:00+00:00")).source == "exception"
    assert state(s, "2026-12-26T03:00:00-08:00") is R  # a Saturday set to running
    assert state(s, "2026-12-27T03:00:00-08:00") is S
    t = nxt(s, at("2026-12-24T12:00:00-08:00"))
    assert (t.at, t.state) == (at("2026-12-24T17:00:00-08:00"), S)
    t = nxt(s, t.at)
    assert (t.at, t.state) == (at("2026-12-26T00:00:00-08:00"), R)
    t = nxt(s, t.at)
    assert (t.at, t.state) == (at("2026-12-27T00:00:00-08:00"), S)


# --------------------------------------------------------------------------- transitions


def test_next_transition_and_into() -> None:
    s = sched(OFFICE)
    t = nxt(s, at("2026-11-23T19:30:00+01:00"))
    assert (t.at, t.state, t.previous) == (at("2026-11-24T09:00:00+01:00"), R, S)
    assert t.at.utcoffset() == timedelta(hours=1)  # local reading, Berlin in winter
    # strictly after: at a boundary, the next one is reported
    t = nxt(s, at("2026-11-24T09:00:00+01:00"))
    assert t.at == at("2026-11-24T17:00:00+01:00")
    # over the weekend
    t = nxt(s, at("2026-11-27T17:00:00+01:00"))
    assert t.at == at("2026-11-30T09:00:00+01:00")
    # the next stop, skipping the start before it
    t = nxt(s, at("2026-11-27T20:00:00+01:00"), into={"stopped"})
    assert (t.at, t.state) == (at("2026-11-30T17:00:00+01:00"), S)


def test_horizon_limits_the_search() -> None:
    s = sched({"months": "jan"})
    instant = at("2026-11-23T12:00:00+01:00")
    assert next_transition(s, instant, timedelta(days=7)) is None
    t = nxt(s, instant)
    assert (t.at, t.state) == (at("2027-01-01T00:00:00+01:00"), R)


def test_preview_of_a_week() -> None:
    s = sched(OFFICE)
    segments = preview(s, at("2026-11-23T00:00:00+01:00"), at("2026-11-30T00:00:00+01:00"))
    running = [seg for seg in segments if seg.state is R]
    assert len(running) == 5
    assert all(seg.end - seg.start == timedelta(hours=8) for seg in running)
    assert segments[0].start == at("2026-11-23T00:00:00+01:00")
    assert segments[-1].end == at("2026-11-30T00:00:00+01:00")
    for before, after in zip(segments, segments[1:], strict=False):
        assert before.end == after.start and before.state is not after.state


def test_naive_instants_are_refused() -> None:
    with pytest.raises(ValidationError, match="no UTC offset"):
        desired_state(sched(OFFICE), datetime(2026, 11, 23, 10))
    with pytest.raises(ValidationError, match="end: must be after start"):
        preview(sched(OFFICE), at("2026-11-23T10:00:00Z"), at("2026-11-23T10:00:00Z"))


# --------------------------------------------------------------------------- month ends


def test_last_day_of_month_and_leap_day() -> None:
    s = sched({"begintime": "12:00", "endtime": "13:00", "monthdays": "L"})
    assert state(s, "2028-02-29T12:30:00+01:00") is R
    assert state(s, "2028-02-28T12:30:00+01:00") is S
    assert state(s, "2027-02-28T12:30:00+01:00") is R
    assert state(s, "2026-04-30T12:30:00+02:00") is R
    t = nxt(s, at("2028-02-01T00:00:00+01:00"))
    assert t.at == at("2028-02-29T12:00:00+01:00")


def test_leap_day_only_schedule() -> None:
    s = sched({"monthdays": "29", "months": "feb"})
    t = nxt(s, at("2027-03-01T00:00:00+01:00"))
    assert (t.at, t.state) == (at("2028-02-29T00:00:00+01:00"), R)
    t = nxt(s, t.at)
    assert (t.at, t.state) == (at("2028-03-01T00:00:00+01:00"), S)


def test_the_31st_skips_short_months() -> None:
    s = sched({"monthdays": "31"})
    t = nxt(s, at("2026-04-01T00:00:00+02:00"))
    assert t.at == at("2026-05-31T00:00:00+02:00")


@pytest.mark.parametrize(
    ("period", "running_day", "quiet_day"),
    [
        ({"weekdays": "friL"}, "2026-10-30", "2026-10-23"),
        ({"weekdays": "mon#1"}, "2026-06-01", "2026-06-08"),
        ({"weekdays": "sun#5"}, "2026-03-29", "2026-03-22"),
        ({"monthdays": "1W"}, "2025-11-03", "2025-11-01"),
        ({"monthdays": "31W"}, "2026-05-29", "2026-05-31"),
        ({"monthdays": "15W"}, "2026-03-16", "2026-03-15"),
        ({"monthdays": "L", "months": "feb"}, "2028-02-29", "2028-02-28"),
    ],
)
def test_occurrence_forms_near_month_boundaries(
    period: dict, running_day: str, quiet_day: str
) -> None:
    s = sched(period)
    assert state(s, f"{running_day}T12:00:00+01:00") is R
    assert state(s, f"{quiet_day}T12:00:00+01:00") is S


def test_nearest_weekday_crossing_into_next_month_is_not_taken() -> None:
    # May 2026: the 31st is a Sunday, so 31W is Friday the 29th, never Monday June 1st.
    s = sched({"monthdays": "31W"})
    assert state(s, "2026-06-01T12:00:00+02:00") is S


# --------------------------------------------------------------------------- time zones


def test_zone_east_of_utc() -> None:
    s = sched({"begintime": "09:00", "endtime": "17:00", "weekdays": "mon"}, tz="Asia/Tokyo")
    # Sunday 23:30 UTC is Monday 08:30 in Tokyo.
    assert state(s, "2026-11-23T00:00:00+00:00") is R  # Monday 09:00 JST
    assert state(s, "2026-11-22T23:30:00+00:00") is S
    t = nxt(s, at("2026-11-22T12:00:00+00:00"))
    assert t.at == at("2026-11-23T00:00:00+00:00") and t.at.utcoffset() == timedelta(hours=9)


def test_half_hour_zone() -> None:
    s = sched({"begintime": "09:00", "endtime": "17:00"}, tz="Asia/Kolkata")
    assert state(s, "2026-11-23T03:30:00+00:00") is R
    assert state(s, "2026-11-23T03:29:59+00:00") is S


def test_zone_west_of_utc() -> None:
    s = sched({"weekdays": "fri"}, tz="America/Los_Angeles")
    # Saturday 02:00 UTC is still Friday 18:00 in Los Angeles.
    assert state(s, "2026-11-28T02:00:00+00:00") is R
    assert state(s, "2026-11-28T08:00:00+00:00") is S  # Saturday 00:00 PST
    assert state(s, "2026-11-27T07:59:59+00:00") is S  # Thursday 23:59:59 PST


# --------------------------------------------------------------------------- DST


def test_berlin_spring_forward_begintime_in_the_gap() -> None:
    # 2026-03-29: clocks jump from 02:00 CET to 03:00 CEST; 02:30 does not exist.
    s = sched({"begintime": "02:30", "endtime": "05:00"})
    t = nxt(s, at("2026-03-29T00:00:00+01:00"))
    assert t.at == at("2026-03-29T03:00:00+02:00") and t.state is R
    assert state(s, "2026-03-29T00:59:59+00:00") is S
    assert state(s, "2026-03-29T01:00:00+00:00") is R
    # the day after, 02:30 exists again
    t = nxt(s, at("2026-03-29T12:00:00+02:00"))
    assert t.at == at("2026-03-30T02:30:00+02:00")


def test_berlin_spring_forward_endtime_in_the_gap() -> None:
    s = sched({"begintime": "01:00", "endtime": "02:30"})
    t = nxt(s, at("2026-03-29T01:30:00+01:00"))
    assert (t.at, t.state) == (at("2026-03-29T03:00:00+02:00"), S)


def test_berlin_spring_forward_period_entirely_in_the_gap_never_runs() -> None:
    s = sched({"begintime": "02:10", "endtime": "02:50"})
    segments = preview(s, at("2026-03-29T00:00:00+01:00"), at("2026-03-29T12:00:00+02:00"))
    assert [seg.state for seg in segments] == [S]


def test_berlin_fall_back_does_not_fire_twice() -> None:
    # 2026-10-25: 03:00 CEST becomes 02:00 CET; 02:00-03:00 happens twice.
    s = sched({"begintime": "02:00", "endtime": "02:30"})
    assert state(s, "2026-10-25T02:15:00+02:00") is R  # first pass
    assert state(s, "2026-10-25T02:15:00+01:00") is S  # second pass: no second start
    segments = preview(s, at("2026-10-25T00:00:00+02:00"), at("2026-10-26T00:00:00+01:00"))
    assert [(seg.start, seg.state) for seg in segments] == [
        (at("2026-10-25T00:00:00+02:00"), S),
        (at("2026-10-25T02:00:00+02:00"), R),
        (at("2026-10-25T02:30:00+02:00"), S),
    ]


def test_berlin_fall_back_begintime_in_the_repeated_hour_keeps_running() -> None:
    s = sched({"begintime": "02:30", "endtime": "05:00"})
    t = nxt(s, at("2026-10-25T00:00:00+02:00"))
    assert (t.at, t.state) == (at("2026-10-25T02:30:00+02:00"), R)
    assert state(s, "2026-10-25T02:15:00+01:00") is R  # the repeat does not stop it
    t = nxt(s, t.at)
    assert (t.at, t.state) == (at("2026-10-25T05:00:00+01:00"), S)


def test_los_angeles_spring_forward() -> None:
    # 2026-03-08: 02:00 PST jumps to 03:00 PDT.
    s = sched({"begintime": "02:00", "endtime": "08:00"}, tz="America/Los_Angeles")
    t = nxt(s, at("2026-03-07T12:00:00-08:00"))
    assert (t.at, t.state) == (at("2026-03-08T03:00:00-07:00"), R)
    assert t.at == datetime(2026, 3, 8, 10, tzinfo=UTC)
    t = nxt(s, t.at)
    assert t.at == at("2026-03-08T08:00:00-07:00")
    running = t.at - at("2026-03-08T03:00:00-07:00")
    assert running == timedelta(hours=5)


def test_los_angeles_fall_back() -> None:
    # 2026-11-01: 02:00 PDT falls back to 01:00 PST; 01:00-02:00 happens twice.
    s = sched({"begintime": "01:30", "endtime": "01:45"}, tz="America/Los_Angeles")
    assert state(s, "2026-11-01T01:35:00-07:00") is R
    assert state(s, "2026-11-01T01:35:00-08:00") is S
    t = nxt(s, at("2026-11-01T01:45:00-07:00"))
    assert t.at == at("2026-11-02T01:30:00-08:00")


def test_exception_on_a_dst_day_covers_its_23_or_25_hours() -> None:
    s = sched({"weekdays": "sat"}, exceptions=[{"date": "2026-03-29", "state": "running"},
                                              {"date": "2026-10-25", "state": "running"}])
    for day, hours in (("2026-03-29", 23), ("2026-10-25", 25)):
        start = datetime.fromisoformat(day).replace(tzinfo=BERLIN)
        segments = preview(s, start, start + timedelta(days=1, hours=1))
        assert [seg.state for seg in segments][:2] == [R, S]
        assert segments[0].end - segments[0].start == timedelta(hours=hours)


def test_southern_hemisphere_dst() -> None:
    # Sydney springs forward on 2026-10-04 at 02:00 AEST to 03:00 AEDT.
    s = sched({"begintime": "02:15", "endtime": "06:00"}, tz="Australia/Sydney")
    t = nxt(s, datetime(2026, 10, 3, 12, tzinfo=UTC))
    assert t.at == at("2026-10-04T03:00:00+11:00")
