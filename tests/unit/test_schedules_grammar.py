"""The period grammar and schedule validation: every form parses to the days a user
means, and every malformed schedule is refused with a message naming the bad part."""

from __future__ import annotations

import calendar
import json
from datetime import date

import pytest

from snoozeql.domain.errors import ValidationError
from snoozeql.domain.schedules import DesiredState, ExceptionDate, Period, Schedule
from snoozeql.domain.schedules.grammar import (
    format_weekdays,
    parse_monthdays,
    parse_months,
    parse_time,
    parse_weekdays,
)
from snoozeql.domain.schedules.model import schedule_document


def days_matching(matcher, year: int, month: int) -> list[int]:
    last = calendar.monthrange(year, month)[1]
    return [d for d in range(1, last + 1) if matcher.matches(date(year, month, d))]


# --------------------------------------------------------------------------- weekdays


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("mon", {0}),
        ("Monday", {0}),
        ("SUN", {6}),
        ("0", {0}),
        ("6", {6}),
        ("mon-fri", {0, 1, 2, 3, 4}),
        ("0-4", {0, 1, 2, 3, 4}),
        ("fri-mon", {4, 5, 6, 0}),  # wraps over the weekend
        ("sat-sun", {5, 6}),
        ("mon,wed,fri", {0, 2, 4}),
        ("mon, wed ,fri", {0, 2, 4}),
        ("mon-fri/2", {0, 2, 4}),
        ("tue/3", {1, 4}),  # from Tuesday to the end of the week, every third day
        ("fri-tue/2", {4, 6, 1}),  # a wrapping range with a step
        ("*/2", {0, 2, 4, 6}),
        ("*", set(range(7))),
        ("?", set(range(7))),
        ("mon-wed,sat", {0, 1, 2, 5}),
    ],
)
def test_weekday_sets(expr: str, expected: set[int]) -> None:
    assert set(parse_weekdays(expr).days) == expected


def test_weekday_list_form_equals_comma_form() -> None:
    assert parse_weekdays(["mon-wed", "sat"]) == parse_weekdays("mon-wed,sat")


@pytest.mark.parametrize(
    ("expr", "year", "month", "expected"),
    [
        ("mon#3", 2026, 11, [16]),  # Mondays of Nov 2026: 2, 9, 16, 23, 30
        ("mon#1", 2026, 6, [1]),  # June 2026 starts on a Monday
        ("0#5", 2026, 11, [30]),
        ("fri#5", 2027, 1, [29]),  # Jan 2027 has five Fridays
        ("fri#5", 2027, 2, []),  # Feb 2027 has four
        ("friL", 2026, 11, [27]),
        ("friL", 2026, 10, [30]),  # the last Friday falls on the 30th, not the 31st
        ("sunL", 2026, 3, [29]),  # the EU clock change Sunday
        ("6L", 2026, 10, [25]),
        ("tueL", 2028, 2, [29]),  # leap day is the last Tuesday of Feb 2028
        ("mon#1,friL", 2026, 6, [1, 26]),
        ("sat-sun,mon#2", 2026, 11, [1, 7, 8, 9, 14, 15, 21, 22, 28, 29]),
    ],
)
def test_weekday_occurrences(expr: str, year: int, month: int, expected: list[int]) -> None:
    assert days_matching(parse_weekdays(expr), year, month) == expected


def test_format_weekdays_compacts_runs() -> None:
    assert format_weekdays({0, 1, 2, 3, 4}) == "mon-fri"
    assert format_weekdays({0, 1, 2, 3, 4, 6}) == "mon-fri,sun"
    assert format_weekdays({5}) == "sat"


# --------------------------------------------------------------------------- monthdays


@pytest.mark.parametrize(
    ("expr", "year", "month", "expected"),
    [
        ("1", 2026, 11, [1]),
        ("1,15", 2026, 11, [1, 15]),
        ("1-5", 2026, 11, [1, 2, 3, 4, 5]),
        ("28-L", 2028, 2, [28, 29]),
        ("28-L", 2027, 2, [28]),
        ("L", 2028, 2, [29]),  # leap year
        ("L", 2027, 2, [28]),
        ("L", 2026, 4, [30]),
        ("L", 2026, 12, [31]),
        ("31", 2026, 4, []),  # April has no 31st: it never matches
        ("29", 2027, 2, []),
        ("29", 2028, 2, [29]),
        ("25-31", 2027, 2, [25, 26, 27, 28]),  # a range covers what the month has
        ("1/7", 2026, 11, [1, 8, 15, 22, 29]),
        ("1-31/7", 2026, 11, [1, 8, 15, 22, 29]),
        ("*/10", 2026, 12, [1, 11, 21, 31]),
        ("15W", 2025, 11, [14]),  # the 15th is a Saturday: the Friday before
        ("15W", 2026, 3, [16]),  # the 15th is a Sunday: the Monday after
        ("15W", 2026, 11, [16]),  # Sunday again
        ("16W", 2026, 11, [16]),  # a Monday stays
        ("1W", 2025, 11, [3]),  # the 1st is a Saturday: Monday the 3rd, not last month
        ("31W", 2026, 5, [29]),  # the 31st is a Sunday: Friday the 29th, not next month
        ("31W", 2026, 4, []),  # April has no 31st
        ("30W", 2028, 2, []),
        ("L,15W", 2026, 3, [16, 31]),
        ("*", 2027, 2, list(range(1, 29))),
    ],
)
def test_monthday_sets(expr: str, year: int, month: int, expected: list[int]) -> None:
    assert days_matching(parse_monthdays(expr), year, month) == expected


# --------------------------------------------------------------------------- months


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("jan", {1}),
        ("January", {1}),
        ("12", {12}),
        ("jan-mar", {1, 2, 3}),
        ("nov-feb", {11, 12, 1, 2}),  # wraps over the new year
        ("jan/3", {1, 4, 7, 10}),
        ("1-12/6", {1, 7}),
        ("jun,aug", {6, 8}),
        ("*", set(range(1, 13))),
    ],
)
def test_month_sets(expr: str, expected: set[int]) -> None:
    assert set(parse_months(expr).months) == expected


# --------------------------------------------------------------------------- times


@pytest.mark.parametrize(
    ("text", "minutes"),
    [("00:00", 0), ("09:00", 540), ("9:05", 545), ("23:59", 1439), (" 17:30 ", 1050)],
)
def test_times(text: str, minutes: int) -> None:
    assert parse_time(text) == minutes


def test_end_of_day_only_for_endtime() -> None:
    assert parse_time("24:00", allow_end_of_day=True) == 1440
    with pytest.raises(ValidationError):
        parse_time("24:00")


# --------------------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    ("field", "expr", "message"),
    [
        ("weekdays", "mon-fry", "periods[0].weekdays: 'mon-fry': unknown weekday 'fry'"),
        ("weekdays", "mon,tue-fry", "periods[0].weekdays: 'tue-fry': unknown weekday 'fry'"),
        ("weekdays", "7", "periods[0].weekdays: '7': weekday number 7 is out of range 0-6"),
        ("weekdays", "mon#6", "periods[0].weekdays: 'mon#6': the occurrence after '#' must be"),
        ("weekdays", "mon#x", "periods[0].weekdays: 'mon#x': the occurrence after '#'"),
        ("weekdays", "fryL", "periods[0].weekdays: 'fryL': unknown weekday 'fryL'"),
        ("weekdays", "mon/0", "periods[0].weekdays: 'mon/0': the step after '/' must be 1"),
        ("weekdays", "mon/x", "periods[0].weekdays: 'mon/x': the step after '/' must be a whole"),
        ("weekdays", "L", "periods[0].weekdays: 'L': 'L' alone is not a weekday"),
        ("weekdays", "mon,,fri", "periods[0].weekdays: 'mon,,fri': empty item in the list"),
        ("weekdays", "", "periods[0].weekdays: the expression is empty"),
        ("weekdays", "mon-", "periods[0].weekdays: 'mon-': a range is written FIRST-LAST"),
        ("weekdays", 5, "periods[0].weekdays: expected a string"),
        ("monthdays", "0", "periods[0].monthdays: '0': day of the month 0 is out of range 1-31"),
        ("monthdays", "32", "periods[0].monthdays: '32': day of the month 32 is out of range"),
        ("monthdays", "20-10", "periods[0].monthdays: '20-10': the range goes backwards"),
        ("monthdays", "xW", "periods[0].monthdays: 'xW': 'x' is not a day of the month"),
        ("monthdays", "first", "periods[0].monthdays: 'first': 'first' is not a day"),
        ("months", "13", "periods[0].months: '13': month number 13 is out of range 1-12"),
        ("months", "jan-foo", "periods[0].months: 'jan-foo': unknown month 'foo'"),
        ("begintime", "25:00", "periods[0].begintime: '25:00' is not a time of day"),
        ("begintime", "9", "periods[0].begintime: '9' is not a time of day (expected HH:MM)"),
        ("begintime", "09:60", "periods[0].begintime: '09:60' is not a time of day"),
        ("begintime", "24:00", "periods[0].begintime: '24:00' is not a time of day"),
        ("endtime", "24:01", "periods[0].endtime: '24:01' is not a time of day"),
        ("endtime", 900, "periods[0].endtime: 900 is not a time of day"),
    ],
)
def test_malformed_period_fields_are_refused(field: str, expr: object, message: str) -> None:
    data = {"name": "s", "timezone": "UTC", "periods": [{field: expr}]}
    with pytest.raises(ValidationError) as info:
        Schedule.from_dict(data)
    assert info.value.message.startswith(message), info.value.message


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            {"periods": [{"weekdays": "mon-fri"}, {"weekdays": "mon-fry"}]},
            "periods[1].weekdays: 'mon-fry': unknown weekday 'fry'",
        ),
        (
            {"periods": [{"begintime": "18:00", "endtime": "09:00"}]},
            "periods[0]: begintime 18:00 is after endtime 09:00",
        ),
        (
            {"periods": [{"begintime": "09:00", "endtime": "09:00"}]},
            "periods[0]: begintime 09:00 is equal to endtime 09:00",
        ),
        ({"timezone": "Europe/Pariss"}, "timezone: unknown time zone 'Europe/Pariss'"),
        ({"timezone": "../../etc/passwd"}, "timezone: unknown time zone '../../etc/passwd'"),
        ({"timezone": ""}, "timezone: '' is not a time zone name"),
        ({"periods": []}, "periods: a schedule needs at least one period"),
        ({"periods": [{"weekday": "mon"}]}, "periods[0]: unknown field 'weekday'"),
        ({"periods": ["mon-fri"]}, "periods[0]: expected an object"),
        ({"periods": "mon-fri"}, "periods: expected a list"),
        ({"timezon": "UTC"}, "unknown field 'timezon'"),
        ({"override_status": "sleeping"}, "override_status: 'sleeping' must be 'running'"),
        ({"enforced": "yes"}, "enforced: expected true or false"),
        ({"dry_run": 1}, "dry_run: expected true or false"),
        ({"name": ""}, "name: a schedule needs a non-empty name"),
        ({"name": "a\nb"}, "name: 'a\\nb' must be printable"),
        ({"exceptions": ["2026-13-01"]}, "exceptions[0].date: '2026-13-01' is not a date"),
        ({"exceptions": ["12-25"]}, "exceptions[0].date: '12-25' is not a date"),
        (
            {"exceptions": [{"date": "2026-12-25", "state": "asleep"}]},
            "exceptions[0].state: 'asleep' must be 'running' or 'stopped'",
        ),
        (
            {"exceptions": ["2026-12-25", {"date": "2026-12-25", "state": "running"}]},
            "exceptions[1]: date 2026-12-25 is already listed at exceptions[0]",
        ),
        ({"exceptions": [{"state": "running"}]}, "exceptions[0].date: missing"),
    ],
)
def test_malformed_schedules_are_refused(data: dict, message: str) -> None:
    base = {"name": "office", "timezone": "Europe/Berlin", "periods": [{"weekdays": "mon"}]}
    with pytest.raises(ValidationError) as info:
        Schedule.from_dict(base | data)
    assert info.value.message.startswith(message), info.value.message


def test_missing_name_and_zone_are_named() -> None:
    with pytest.raises(ValidationError, match="^name: missing"):
        Schedule.from_dict({"timezone": "UTC", "periods": [{}]})
    with pytest.raises(ValidationError, match="^timezone: missing"):
        Schedule.from_dict({"name": "x", "periods": [{}]})


def test_validation_error_maps_to_a_user_mistake() -> None:
    with pytest.raises(ValidationError) as info:
        Schedule.from_dict({"name": "x", "timezone": "Mars/Olympus", "periods": [{}]})
    assert info.value.http_status == 400 and info.value.exit_code == 2


# --------------------------------------------------------------------------- dict form


def test_round_trip_through_json() -> None:
    data = {
        "name": "office",
        "timezone": "Europe/Berlin",
        "description": "office hours",
        "periods": [
            {"name": "day", "begintime": "9:00", "endtime": "17:30", "weekdays": ["mon-fri"]},
            {"begintime": "10:00", "weekdays": "sat", "months": "nov-feb"},
            {"endtime": "24:00", "monthdays": "L,15W"},
        ],
        "override_status": None,
        "enforced": True,
        "dry_run": True,
        "exceptions": ["2026-12-25", {"date": "2026-12-31", "state": "running",
                                      "description": "year end batch"}],
    }
    schedule = Schedule.from_dict(data)
    as_dict = schedule_document(schedule)
    assert Schedule.from_dict(json.loads(json.dumps(as_dict))) == schedule
    assert as_dict["periods"][0] == {
        "name": "day", "begintime": "09:00", "endtime": "17:30", "weekdays": "mon-fri"
    }
    assert as_dict["exceptions"] == [
        {"date": "2026-12-25", "state": "stopped"},
        {"date": "2026-12-31", "state": "running", "description": "year end batch"},
    ]
    assert as_dict["enforced"] is True and as_dict["dry_run"] is True


def test_schedule_built_in_code_is_validated_and_hashable() -> None:
    schedule = Schedule(
        name="office",
        timezone="America/Los_Angeles",
        periods=(Period(begintime="09:00", endtime="17:00", weekdays="mon-fri"),),
        exceptions=(ExceptionDate(date(2026, 11, 26)),),
    )
    assert schedule.exceptions[0].state is DesiredState.STOPPED
    assert hash(schedule) == hash(Schedule.from_dict(schedule_document(schedule)))
    with pytest.raises(ValidationError, match="^weekdays: 'sunday-funday'"):
        Period(weekdays="sunday-funday")


def test_override_alone_needs_no_period() -> None:
    schedule = Schedule.from_dict(
        {"name": "hold", "timezone": "UTC", "override_status": "stopped"}
    )
    assert schedule.override_status is DesiredState.STOPPED
    assert schedule_document(schedule)["override_status"] == "stopped"
