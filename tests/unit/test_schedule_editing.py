"""The editor's views of a schedule: periods as text (errors with their position) and
the weekly grid (round trip to periods, refusals with the reason)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from snoozeql.domain.errors import ValidationError
from snoozeql.domain.schedules import Schedule, desired_state
from snoozeql.domain.schedules.editing import (
    format_periods_text,
    grid_from_periods,
    parse_periods_text,
    periods_from_grid,
    running_cells,
)


def test_text_reads_periods_with_quotes_comments_and_blank_lines() -> None:
    text = ("# office\n\nbegintime=08:00 endtime=19:00 weekdays=mon-fri\n"
            'begintime=10:00 endtime=14:00 weekdays=sat months=nov-dec name="winter sat"\n')
    periods, err = parse_periods_text(text)
    assert err is None
    assert periods == [
        {"begintime": "08:00", "endtime": "19:00", "weekdays": "mon-fri"},
        {"begintime": "10:00", "endtime": "14:00", "weekdays": "sat", "months": "nov-dec",
         "name": "winter sat"},
    ]
    again, err = parse_periods_text(format_periods_text(periods))
    assert err is None and again == periods


@pytest.mark.parametrize(("text", "line", "column", "message"), [
    ("begintime=08:00 endtime=19:00 weekdays=mon-fry", 1,
     "begintime=08:00 endtime=19:00 weekdays=mon-fry".index("fry") + 1,
     "unknown weekday 'fry'"),
    ("begintime=08:00\nbegintime=18:00 endtime=09:00", 2, 11, "is after endtime 09:00"),
    ("begintime=08:00 endtime=25:00", 1, 25, "endtime"),
    ("begintime=08:00 weekday=mon", 1, 17, "unknown key 'weekday'"),
    ("begintime=08:00 mon-fri", 1, 17, "'mon-fri': write key=value"),
    ("begintime=08:00 begintime=09:00", 1, 17, "given twice"),
    ('name="open', 1, 6, "quote is not closed"),
    ("weekdays=mon monthdays=20-10", 1, 24, "'20-10'"),
    ("begintime=", 1, 11, "no value"),
])
def test_text_errors_point_at_the_bad_part(text: str, line: int, column: int,
                                          message: str) -> None:
    periods, err = parse_periods_text(text)
    assert periods == [] and err is not None
    assert message in err.message
    assert (err.line, err.column) == (line, column), err
    lines = text.split("\n")
    assert err.offset == sum(len(x) + 1 for x in lines[: line - 1]) + column - 1


def test_grid_to_periods_groups_days_with_the_same_window() -> None:
    grid = [[False] * 24 for _ in range(7)]
    for d in range(5):
        for h in range(8, 19):
            grid[d][h] = True
    for h in range(20, 24):
        grid[4][h] = True  # Friday evening too
    grid[6] = [True] * 24
    assert periods_from_grid(grid) == [
        {"begintime": "08:00", "endtime": "19:00", "weekdays": "mon-fri"},
        {"begintime": "20:00", "endtime": "24:00", "weekdays": "fri"},
        {"begintime": "00:00", "endtime": "24:00", "weekdays": "sun"},
    ]
    assert periods_from_grid([[True] * 24 for _ in range(7)]) == [
        {"begintime": "00:00", "endtime": "24:00"}]
    assert periods_from_grid([[False] * 24 for _ in range(7)]) == []
    with pytest.raises(ValidationError):
        periods_from_grid([[False] * 24])


def test_random_grids_round_trip_and_mean_what_they_show() -> None:
    rnd = random.Random(16)
    monday = datetime(2026, 1, 5, tzinfo=UTC)
    for _ in range(60):
        grid = [[rnd.random() < 0.4 for _ in range(24)] for _ in range(7)]
        periods = periods_from_grid(grid)
        back, why = grid_from_periods(periods)
        assert why is None and back == grid
        if not periods:
            continue
        schedule = Schedule.from_dict({"name": "g", "timezone": "UTC", "periods": periods})
        for d in range(7):
            for h in range(24):
                at = monday + timedelta(days=d, hours=h, minutes=30)
                want = "running" if grid[d][h] else "stopped"
                assert str(desired_state(schedule, at).state) == want, (d, h)
        assert running_cells(periods) == grid


@pytest.mark.parametrize(("period", "why"), [
    ({"begintime": "08:00", "endtime": "19:00", "monthdays": "1-15"}, "day of the month"),
    ({"begintime": "08:00", "endtime": "19:00", "months": "jan"}, "month"),
    ({"begintime": "08:30", "endtime": "19:00"}, "between whole hours"),
    ({"begintime": "08:00"}, "only a begin time"),
    ({"endtime": "19:00"}, "only a end time"),
    ({"begintime": "08:00", "endtime": "19:00", "weekdays": "mon#1"}, "some weeks only"),
    ({"begintime": "08:00", "endtime": "19:00", "weekdays": "friL"}, "some weeks only"),
])
def test_periods_the_grid_cannot_show_say_why(period: dict[str, str], why: str) -> None:
    grid, reason = grid_from_periods([period])
    assert grid is None and reason is not None and why in reason


def test_overlapping_periods_run_when_any_runs() -> None:
    grid, why = grid_from_periods([
        {"begintime": "08:00", "endtime": "12:00", "weekdays": "mon-fri"},
        {"begintime": "10:00", "endtime": "18:00", "weekdays": "fri-sun"},
    ])
    assert why is None and grid is not None
    assert [h for h in range(24) if grid[4][h]] == list(range(8, 18))
    assert [h for h in range(24) if grid[0][h]] == list(range(8, 12))
    assert [h for h in range(24) if grid[6][h]] == list(range(10, 18))
