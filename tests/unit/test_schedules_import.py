"""Importers: Cloud Custodian offhours tag values and AWS Instance Scheduler JSON become
schedules that start and stop at the same moments the original would."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from snoozeql.domain.errors import ValidationError
from snoozeql.domain.schedules import (
    CUSTODIAN_TZ_ALIASES,
    DesiredState,
    Schedule,
    desired_state,
    import_custodian,
    import_instance_scheduler,
    next_transition,
    preview,
)
from snoozeql.domain.schedules.model import period_document, schedule_document

R, S, A = DesiredState.RUNNING, DesiredState.STOPPED, DesiredState.ANY
WEEKDAYS = (0, 1, 2, 3, 4)


def periods(schedule: Schedule) -> list[dict]:
    return [period_document(p) for p in schedule.periods]


# --------------------------------------------------------------------------- Custodian parsing


@pytest.mark.parametrize(
    ("tag", "zone", "expected"),
    [
        # Custodian's documented examples
        ("off=(M-F,19);on=(M-F,7)", "America/New_York",
         [{"begintime": "07:00", "endtime": "19:00", "weekdays": "mon-fri"}]),
        ("off=[(M-F,21),(U,18)];on=[(M-F,6),(U,10)];tz=pt", "America/Los_Angeles",
         [{"begintime": "06:00", "endtime": "21:00", "weekdays": "mon-fri"},
          {"begintime": "10:00", "endtime": "18:00", "weekdays": "sun"}]),
        # empty, "on", or only a zone: the policy defaults (on 7, off 19, Monday-Friday)
        ("", "America/New_York",
         [{"begintime": "07:00", "endtime": "19:00", "weekdays": "mon-fri"}]),
        ("on", "America/New_York",
         [{"begintime": "07:00", "endtime": "19:00", "weekdays": "mon-fri"}]),
        ("tz=cet", "Europe/Berlin",
         [{"begintime": "07:00", "endtime": "19:00", "weekdays": "mon-fri"}]),
        # only one side given: the other keeps its default
        ("off=(M-F,17)", "America/New_York",
         [{"begintime": "07:00", "endtime": "17:00", "weekdays": "mon-fri"}]),
        ("on=(M-F,9);tz=utc", "Etc/UTC",
         [{"begintime": "09:00", "endtime": "19:00", "weekdays": "mon-fri"}]),
        # letter case, quotes, blanks and a trailing semicolon do not matter
        ("'OFF=(m-f,19); ON=(M-F,7); TZ=PT;'", "America/Los_Angeles",
         [{"begintime": "07:00", "endtime": "19:00", "weekdays": "mon-fri"}]),
        # the escaped form for services that forbid ( ) , ; = / in tag values
        ("offu3du28M-Fu2c18u29u3btzu3dAustraliau2fSydney", "Australia/Sydney",
         [{"begintime": "07:00", "endtime": "18:00", "weekdays": "mon-fri"}]),
        # day ranges wrap; single letters; H is Thursday
        ("on=(F-M,8);off=(F-M,20);tz=gmt", "Etc/GMT",
         [{"begintime": "08:00", "endtime": "20:00", "weekdays": "mon,fri-sun"}]),
        ("on=[(T,8),(H,8)];off=[(T,18),(H,18)];tz=jst", "Asia/Tokyo",
         [{"begintime": "08:00", "endtime": "18:00", "weekdays": "tue,thu"}]),
        # running overnight: on in the evening, off the next morning
        ("on=(M-F,20);off=(T-S,4);tz=ct", "America/Chicago",
         [{"begintime": "20:00", "endtime": "24:00", "weekdays": "mon"},
          {"begintime": "00:00", "endtime": "04:00", "weekdays": "tue-fri"},
          {"begintime": "20:00", "endtime": "24:00", "weekdays": "tue-fri"},
          {"begintime": "00:00", "endtime": "04:00", "weekdays": "sat"}]),
        # only stops: "any" until the stop, stopped after it
        ("off=(M-F,19);on=disabled;tz=mt", "America/Denver",
         [{"endtime": "19:00", "weekdays": "mon-fri"}]),
        # only starts: the start each weekday, running over the weekend
        ("on=(M-F,7);off=disabled", "America/New_York",
         [{"begintime": "07:00", "weekdays": "mon-fri"}, {"weekdays": "sat-sun"}]),
        # IANA names in any case, including ones that are not title case
        ("tz=america/los_angeles", "America/Los_Angeles",
         [{"begintime": "07:00", "endtime": "19:00", "weekdays": "mon-fri"}]),
    ],
)
def test_custodian_tags(tag: str, zone: str, expected: list[dict]) -> None:
    schedule = import_custodian(tag, name="imported")
    assert schedule.timezone == zone
    assert periods(schedule) == expected
    assert Schedule.from_dict(schedule_document(schedule)) == schedule


def test_custodian_policy_defaults() -> None:
    weekends_only = import_custodian("", name="w", weekends_only=True, default_tz="pt")
    assert weekends_only.timezone == "America/Los_Angeles"
    # stopped from Friday 19:00 to Monday 07:00, running the rest of the week
    assert desired_state(weekends_only, datetime(2026, 11, 27, 18, 59, tzinfo=ZoneInfo(
        "America/Los_Angeles"))).state is R
    assert desired_state(weekends_only, datetime(2026, 11, 29, 12, tzinfo=ZoneInfo(
        "America/Los_Angeles"))).state is S
    assert desired_state(weekends_only, datetime(2026, 11, 25, 3, tzinfo=ZoneInfo(
        "America/Los_Angeles"))).state is R
    every_day = import_custodian("", name="e", weekends=False, onhour=8, offhour=20)
    assert periods(every_day) == [
        {"begintime": "08:00", "endtime": "20:00", "weekdays": "mon-sun"}
    ]


@pytest.mark.parametrize(
    ("alias", "zone"),
    [("pt", "America/Los_Angeles"), ("et", "America/New_York"), ("ct", "America/Chicago"),
     ("mt", "America/Denver"), ("gmt", "Etc/GMT"), ("utc", "Etc/UTC"),
     ("cet", "Europe/Berlin"), ("bst", "Europe/London"), ("ist", "Europe/Dublin"),
     ("it", "Asia/Kolkata"), ("jst", "Asia/Tokyo"), ("aet", "Australia/Sydney"),
     ("at", "America/Phoenix"), ("brt", "America/Sao_Paulo"), ("sgt", "Asia/Singapore")],
)
def test_custodian_time_zone_aliases(alias: str, zone: str) -> None:
    assert CUSTODIAN_TZ_ALIASES[alias] == zone
    assert import_custodian(f"tz={alias}", name="x").timezone == zone


@pytest.mark.parametrize(
    ("tag", "message"),
    [
        ("off=(M-F,19);foo=1", "custodian tag: unknown key 'foo' in 'foo=1'"),
        ("off=(M-F,19);off=(M-F,20)", "custodian tag: 'off' is given twice"),
        ("off", "custodian tag: 'off' opts the resource out"),
        ("on=disabled;off=disabled", "custodian tag: on and off are both disabled"),
        ("on=(M,7);off=(M,7)", "custodian tag: on and off both at 7:00 on mon"),
        ("tz=mars", "custodian tag: tz=mars: unknown time zone 'mars'"),
        ("off(M-F,19)", "custodian tag: 'off(m-f,19)' is not key=value"),
        ("", "custodian tag: no tag value; without opt-out"),
    ],
)
def test_custodian_refusals(tag: str, message: str) -> None:
    with pytest.raises(ValidationError) as info:
        import_custodian(None if tag == "" and "no tag" in message else tag, name="x")
    assert info.value.message.startswith(message), info.value.message


@pytest.mark.parametrize(
    ("tag", "warning", "expected"),
    [
        # One side Custodian cannot parse: it falls back to the policy default for that
        # side, and so does the import, saying so (issue 13 item 7).
        ("off=(M-X,19);on=(M-F,8)", "off=(m-x,19): unknown day 'x'",
         [{"begintime": "08:00", "endtime": "19:00", "weekdays": "mon-fri"}]),
        ("off=(Z,17)", "off=(z,17): unknown day 'z'",
         [{"begintime": "07:00", "endtime": "19:00", "weekdays": "mon-fri"}]),
        ("off=(M-F,24)", "off=(m-f,24): hour '24' is not a whole hour 0-23",
         [{"begintime": "07:00", "endtime": "19:00", "weekdays": "mon-fri"}]),
        ("on=(M-F,seven);off=(M-F,18)", "on=(m-f,seven): hour 'seven' is not a whole hour",
         [{"begintime": "07:00", "endtime": "18:00", "weekdays": "mon-fri"}]),
        ("off=M-F,19", "off=m-f,19: expected (days,hour)",
         [{"begintime": "07:00", "endtime": "19:00", "weekdays": "mon-fri"}]),
        ("off=[(M-F,19)", "off=[(m-f,19): unbalanced brackets",
         [{"begintime": "07:00", "endtime": "19:00", "weekdays": "mon-fri"}]),
        ("off=(M-F,19,20)", "off=(m-f,19,20): (m-f,19,20) must be (days,hour)",
         [{"begintime": "07:00", "endtime": "19:00", "weekdays": "mon-fri"}]),
        ("off=(M-F,19) on", "off=(m-f,19) on: expected (days,hour)",
         [{"begintime": "07:00", "endtime": "19:00", "weekdays": "mon-fri"}]),
    ],
)
def test_custodian_unparsable_side_warns_and_takes_the_default(
    tag: str, warning: str, expected: list[dict]
) -> None:
    warnings: list[str] = []
    schedule = import_custodian(tag, name="x", warnings=warnings)
    assert periods(schedule) == expected
    [text] = warnings
    assert text.startswith(warning), text
    assert "falls back to the policy's default" in text and "SnoozeQL does the same" in text


def test_custodian_warns_where_custodian_reads_the_tag_otherwise() -> None:
    # A key after "; ": Custodian drops it silently; SnoozeQL uses it, and says so.
    warnings: list[str] = []
    schedule = import_custodian("off=(M-F,18); tz=pt", name="x", warnings=warnings)
    assert schedule.timezone == "America/Los_Angeles"
    [text] = warnings
    assert "'tz=pt' follows '; '" in text and "silently ignores it" in text
    assert "SnoozeQL reads it as written" in text
    # on=disabled: a parse error for Custodian; SnoozeQL only stops, and says so.
    warnings = []
    schedule = import_custodian("off=(M-F,19);on=disabled", name="x", warnings=warnings)
    assert periods(schedule) == [{"endtime": "19:00", "weekdays": "mon-fri"}]
    [text] = warnings
    assert text.startswith("on=disabled: Custodian treats the whole tag as a parse error")
    assert "never started by this schedule" in text
    # A tag Custodian reads as written gives no warning.
    warnings = []
    import_custodian("off=(M-F,19);on=(M-F,7);tz=pt", name="x", warnings=warnings)
    assert warnings == []


def test_custodian_opt_out_policy_gives_untagged_resources_the_defaults() -> None:
    schedule = import_custodian(None, name="x", opt_out=True, onhour=8, offhour=20,
                                weekends_only=True, default_tz="cet")
    assert schedule.timezone == "Europe/Berlin"
    berlin = ZoneInfo("Europe/Berlin")
    assert desired_state(schedule, datetime(2026, 11, 27, 19, 59, tzinfo=berlin)).state is R
    assert desired_state(schedule, datetime(2026, 11, 28, 12, tzinfo=berlin)).state is S
    t = next_transition(schedule, datetime(2026, 11, 28, 12, tzinfo=berlin))
    assert t is not None and t.at == datetime(2026, 11, 30, 8, tzinfo=berlin) and t.state is R
    with pytest.raises(ValidationError, match="opts the resource out"):
        import_custodian("off", name="x", opt_out=True)


def test_custodian_repeated_start_at_midnight_is_a_transition() -> None:
    """Issue 13 item 5: on=(M-F,0) starts again every weekday at 00:00, as Custodian's
    on hour does, although the schedule already says running just before."""
    schedule = import_custodian("off=(S,3);on=(M-F,0)", name="x")
    ny = ZoneInfo("America/New_York")
    t = next_transition(schedule, datetime(2026, 3, 2, 23, 30, tzinfo=ny))
    assert t is not None and t.at == datetime(2026, 3, 3, 0, 0, tzinfo=ny)
    assert t.state is R and t.previous is R
    assert next_transition(schedule, datetime(2026, 3, 2, 23, 30, tzinfo=ny),
                           into={"running"}) == t
    assert desired_state(schedule, datetime(2026, 3, 2, 23, 30, tzinfo=ny)).state is R
    segments = preview(schedule, datetime(2026, 3, 2, tzinfo=ny), datetime(2026, 3, 9, tzinfo=ny))
    assert [(s.start.replace(tzinfo=None), s.state) for s in segments] == [
        (datetime(2026, 3, 2, 0, 0), R), (datetime(2026, 3, 3, 0, 0), R),
        (datetime(2026, 3, 4, 0, 0), R), (datetime(2026, 3, 5, 0, 0), R),
        (datetime(2026, 3, 6, 0, 0), R), (datetime(2026, 3, 7, 3, 0), S),
    ]
    assert Schedule.from_dict(schedule_document(schedule)) == schedule
    # The same at hour 1 (an "any" stretch before the start) keeps working.
    one = import_custodian("off=(S,3);on=(M-F,1)", name="x")
    t = next_transition(one, datetime(2026, 3, 2, 23, 30, tzinfo=ny), into={"running"})
    assert t is not None and t.at == datetime(2026, 3, 3, 1, 0, tzinfo=ny)


# --------------------------------------------------------------------------- Custodian behaviour


def custodian_actions(
    on: list[tuple[tuple[int, ...], int]],
    off: list[tuple[tuple[int, ...], int]],
    zone: ZoneInfo,
    start: date,
    end: date,
) -> list[tuple[datetime, DesiredState]]:
    """What Custodian's hourly onhour/offhour policies do: start at each on hour, stop at
    each off hour, on the listed weekdays (local time)."""
    actions = []
    d = start
    while d < end:
        for kind, specs in ((R, on), (S, off)):
            for days, hour in specs:
                if d.weekday() in days:
                    local = datetime(d.year, d.month, d.day, hour, tzinfo=zone)
                    actions.append((local.astimezone(UTC), kind))
        d += timedelta(days=1)
    actions.sort()
    kept: list[tuple[datetime, DesiredState]] = []
    for instant, kind in actions:
        if kept and kept[-1][1] is kind and (
            kept[-1][0].astimezone(zone).date() == instant.astimezone(zone).date()
        ):
            continue  # the same action again the same day: it changes nothing
        kept.append((instant, kind))
    return kept


def schedule_actions(
    schedule: Schedule, start: datetime, end: datetime
) -> list[tuple[datetime, DesiredState]]:
    out = []
    t = next_transition(schedule, start - timedelta(seconds=1), into={"running", "stopped"})
    while t is not None and t.at < end:
        out.append((t.at.astimezone(UTC), t.state))
        t = next_transition(schedule, t.at, into={"running", "stopped"})
    return out


@pytest.mark.parametrize(
    ("tag", "kwargs", "on", "off"),
    [
        ("off=(M-F,19);on=(M-F,7)", {}, [(WEEKDAYS, 7)], [(WEEKDAYS, 19)]),
        ("off=[(M-F,21),(U,18)];on=[(M-F,6),(U,10)];tz=pt", {},
         [(WEEKDAYS, 6), ((6,), 10)], [(WEEKDAYS, 21), ((6,), 18)]),
        ("on=(M-F,20);off=(T-S,4);tz=cet", {}, [(WEEKDAYS, 20)], [((1, 2, 3, 4, 5), 4)]),
        ("on=(F-M,8);off=(F-M,20);tz=utc", {}, [((4, 5, 6, 0), 8)], [((4, 5, 6, 0), 20)]),
        ("off=(M-F,19);on=disabled;tz=ct", {}, [], [(WEEKDAYS, 19)]),
        ("on=(M-F,7);off=disabled;tz=mt", {}, [(WEEKDAYS, 7)], []),
        ("on=[(M,7),(M,9)];off=(M-W,20);tz=pt", {}, [((0,), 7), ((0,), 9)],
         [((0, 1, 2), 20)]),
        ("", {"weekends_only": True}, [((0,), 7)], [((4,), 19)]),
        ("off=(M-F,18);tz=aet", {}, [(WEEKDAYS, 7)], [(WEEKDAYS, 18)]),
        # repeated actions at hour 0 of the next day (issue 13 item 5)
        ("off=(S,3);on=(M-F,0)", {}, [(WEEKDAYS, 0)], [((5,), 3)]),
        ("on=(M,7);off=(M-F,0);tz=pt", {}, [((0,), 7)], [(WEEKDAYS, 0)]),
        ("on=(M-U,0);off=disabled;tz=cet", {}, [((0, 1, 2, 3, 4, 5, 6), 0)], []),
    ],
)
def test_custodian_import_starts_and_stops_at_the_same_moments(
    tag: str, kwargs: dict, on: list, off: list
) -> None:
    schedule = import_custodian(tag, name="imported", **kwargs)
    zone = schedule.zone
    # Six weeks over the US (Mar 8), EU (Mar 29) and Sydney (Apr 5) clock changes.
    first, last = date(2026, 3, 2), date(2026, 4, 13)
    start = datetime(first.year, first.month, first.day, tzinfo=zone)
    end = datetime(last.year, last.month, last.day, tzinfo=zone)
    expected = custodian_actions(on, off, zone, first, last)
    assert schedule_actions(schedule, start, end) == expected
    # Between two actions the schedule never asks for the opposite of the last action.
    for (t0, kind), (t1, _) in zip(expected, expected[1:], strict=False):
        for fraction in (0.01, 0.5, 0.99):
            mid = t0 + (t1 - t0) * fraction
            assert desired_state(schedule, mid).state in (kind, A)


# --------------------------------------------------------------------------- Instance Scheduler


CONFIG_ITEMS = [
    {"type": "period", "name": "office-hours", "description": "Office hours",
     "begintime": "09:00", "endtime": "17:00", "weekdays": ["mon-fri"]},
    {"type": "period", "name": "first-monday", "weekdays": ["mon#1"], "begintime": "06:00"},
    {"type": "period", "name": "unused", "weekdays": ["sat"]},
    {"type": "schedule", "name": "seattle-office-hours", "timezone": "US/Pacific",
     "periods": ["office-hours", "first-monday"], "description": "Seattle"},
    {"type": "schedule", "name": "always-off", "override_status": "stopped",
     "timezone": "Europe/London"},
]


def test_instance_scheduler_config_items() -> None:
    result = import_instance_scheduler(CONFIG_ITEMS)
    seattle, always_off = result.schedules
    assert seattle.name == "seattle-office-hours"
    assert seattle.timezone == "US/Pacific"
    assert seattle.description == "Seattle"
    assert periods(seattle) == [
        {"name": "office-hours", "description": "Office hours", "begintime": "09:00",
         "endtime": "17:00", "weekdays": "mon-fri"},
        {"name": "first-monday", "begintime": "06:00", "weekdays": "mon#1"},
    ]
    assert always_off.override_status is S and always_off.periods == ()
    assert result.warnings == ()
    pacific = ZoneInfo("US/Pacific")
    # first Monday of November 2026 is the 2nd: running from 06:00
    assert desired_state(seattle, datetime(2026, 11, 2, 6, 30, tzinfo=pacific)).state is R
    assert desired_state(seattle, datetime(2026, 11, 9, 6, 30, tzinfo=pacific)).state is S
    assert desired_state(seattle, datetime(2026, 11, 9, 9, 30, tzinfo=pacific)).state is R


def test_instance_scheduler_cli_output_shape() -> None:
    data = {
        "Periods": [{"Type": "period", "Name": "weekend", "Weekdays": ["sat-sun"],
                     "Months": ["nov-feb"]}],
        "Schedules": [{"Type": "schedule", "Name": "winter-weekends",
                       "Timezone": "Europe/Berlin", "Periods": ["weekend"],
                       "Enforced": True, "StopNewInstances": True}],
    }
    result = import_instance_scheduler(data)
    (schedule,) = result.schedules
    assert schedule.enforced is True
    assert periods(schedule) == [{"name": "weekend", "weekdays": "sat-sun", "months": "nov-feb"}]
    assert result.warnings == (
        "schedule 'winter-weekends': stop_new_instances True is ignored",
    )


def test_instance_scheduler_dynamodb_scan() -> None:
    data = {"Items": [
        {"type": {"S": "period"}, "name": {"S": "nights"}, "begintime": {"S": "20:00"},
         "endtime": {"S": "23:59"}, "weekdays": {"SS": ["mon-fri"]}},
        {"type": {"S": "schedule"}, "name": {"S": "batch"}, "timezone": {"S": "Asia/Tokyo"},
         "periods": {"SS": ["nights@r6g.large"]}, "enforced": {"BOOL": False},
         "retain_running": {"BOOL": True}},
    ], "Count": 2}
    result = import_instance_scheduler(data)
    (schedule,) = result.schedules
    assert schedule.timezone == "Asia/Tokyo"
    assert periods(schedule) == [
        {"name": "nights", "begintime": "20:00", "endtime": "23:59", "weekdays": "mon-fri"}
    ]
    assert result.warnings == (
        "schedule 'batch': instance type 'r6g.large' of period 'nights' is ignored",
        "schedule 'batch': retain_running True is ignored",
    )


def test_instance_scheduler_cloudformation_template() -> None:
    template = {
        "Resources": {
            "OfficeSchedule": {
                "Type": "Custom::ServiceInstanceSchedule",
                "Properties": {
                    "ServiceToken": "arn:aws:lambda:eu-west-1:123456789012:function:x",
                    "NoStackPrefix": "True",
                    "Name": "office",
                    "Description": "office hours in Amsterdam",
                    "Timezone": "Europe/Amsterdam",
                    "Enforced": "True",
                    "Periods": [
                        {"Description": "weekdays", "BeginTime": "08:00", "EndTime": "18:00",
                         "WeekDays": "Mon-Fri"},
                        {"Description": "month end", "MonthDays": "L", "BeginTime": "18:00",
                         "EndTime": "22:00", "InstanceType": "db.r6g.large"},
                    ],
                },
            },
            "NoName": {
                "Type": "Custom::ServiceInstanceSchedule",
                "Properties": {"Periods": [{"WeekDays": "sat"}]},
            },
            "Bucket": {"Type": "AWS::S3::Bucket"},
        }
    }
    result = import_instance_scheduler(template, default_timezone="Europe/Dublin")
    office, no_name = result.schedules
    assert office.name == "office" and office.enforced is True
    assert office.timezone == "Europe/Amsterdam"
    assert periods(office) == [
        {"description": "weekdays", "begintime": "08:00", "endtime": "18:00",
         "weekdays": "Mon-Fri"},
        {"description": "month end", "begintime": "18:00", "endtime": "22:00",
         "monthdays": "L"},
    ]
    assert no_name.name == "NoName" and no_name.timezone == "Europe/Dublin"
    assert result.warnings == (
        "schedule 'office', period 1 (month end): instance type 'db.r6g.large' is ignored",
    )
    amsterdam = ZoneInfo("Europe/Amsterdam")
    # 2026-11-30 is the last day of the month and a Monday: both periods, 08:00-22:00.
    assert desired_state(office, datetime(2026, 11, 30, 21, tzinfo=amsterdam)).state is R
    assert desired_state(office, datetime(2026, 11, 27, 21, tzinfo=amsterdam)).state is S


def test_instance_scheduler_single_cloudformation_resource() -> None:
    resource = {"Type": "Custom::ServiceInstanceSchedule",
                "Properties": {"Name": "x", "Timezone": "UTC", "OverrideStatus": "running"}}
    (schedule,) = import_instance_scheduler(resource).schedules
    assert schedule.override_status is R


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([{"type": "schedule", "name": "s", "periods": ["nope"]}],
         "schedule 's': period 'nope' is not defined"),
        ([{"type": "period", "name": "p", "weekdays": "mon-fry"},
          {"type": "schedule", "name": "s", "periods": ["p"]}],
         "schedule 's', period 'p': weekdays: 'mon-fry': unknown weekday 'fry'"),
        ([{"type": "period", "name": "p", "begintime": "18:00", "endtime": "09:00"},
          {"type": "schedule", "name": "s", "periods": ["p"]}],
         "schedule 's', period 'p': begintime 18:00 is after endtime 09:00"),
        ([{"type": "schedule", "name": "s", "timezone": "Europe/Pariss",
           "override_status": "running"}],
         "schedule 's': timezone: unknown time zone 'Europe/Pariss'"),
        ([{"type": "schedule", "name": "s", "override_status": "running", "enforced": "maybe"}],
         "schedule 's': enforced: 'maybe' is not true or false"),
        ([{"type": "period", "name": "p", "weekdays": "mon"}],
         "no schedule found"),
        ([{"type": "period", "weekdays": "mon"}], "$[0]: a period needs a name"),
        ([{"type": "period", "name": "p"}, {"type": "period", "name": "p"}],
         "$[1]: period 'p' is defined twice"),
        ([{"type": "schedule", "name": "s", "override_status": "running"},
          {"type": "schedule", "name": "s", "override_status": "stopped"}],
         "$[1]: schedule 's' is defined twice"),
        ([{"type": "maintenance"}], "$[0]: unknown item type 'maintenance'"),
        ("office", "$: expected an object or a list"),
    ],
)
def test_instance_scheduler_refusals(data: object, message: str) -> None:
    with pytest.raises(ValidationError) as info:
        import_instance_scheduler(data)
    assert info.value.message.startswith(message), info.value.message
