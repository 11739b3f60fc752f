"""docs/schedules.md "Differences from Instance Scheduler" says exactly what SnoozeQL does
(issue 13 item 9): every listed difference is checked against the evaluator, and the
items that are not differences from Instance Scheduler 3.x are not listed."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from snoozeql.domain.errors import ValidationError
from snoozeql.domain.schedules import Period, Schedule, desired_state, preview

DOC = Path(__file__).resolve().parents[2] / "docs" / "schedules.md"


def _section() -> str:
    text = DOC.read_text()
    start = text.index("## Differences from Instance Scheduler")
    return text[start:text.index("\n## ", start + 5)]


def test_the_list_names_no_false_difference() -> None:
    section = _section()
    # Instance Scheduler 3.x also refuses other spellings, rejects ^ and $ and clips
    # monthday ranges to the month: not differences.
    assert "mond" not in section
    assert "`^`" not in section and "`$`" not in section
    assert "past the end of a month" not in section
    for must in ("Fall back", "`begintime` equals its `endtime`", "`/0`", "`1/14` as `1/4`",
                 "`1/10`", "`31W`"):
        assert must in section, must


def _days(expr: str, year: int, month: int) -> list[int]:
    p = Period(monthdays=expr)
    out = []
    d = date(year, month, 1)
    while d.month == month:
        if p.matches_day(d):
            out.append(d.day)
        d += timedelta(days=1)
    return out


def test_each_listed_difference_holds() -> None:
    with pytest.raises(ValidationError, match="equal to endtime"):
        Period(begintime="09:00", endtime="09:00")
    for field in ("weekdays", "monthdays", "months"):
        with pytest.raises(ValidationError, match="step after '/' must be 1 or more"):
            Period(**{field: "1/0"})
    assert _days("1/14", 2026, 5) == [1, 15, 29]
    assert _days("1/10", 2026, 5) == [1, 11, 21, 31]
    assert _days("31W", 2026, 4) == []  # April has no 31st: no match, no error
    assert _days("31W", 2026, 5) == [29]  # Sunday the 31st: Friday the 29th
    Period(endtime="24:00")
    with pytest.raises(ValidationError):
        Period(weekdays="L")
    assert Period(weekdays="*/2").matches_day(date(2026, 11, 29))  # a Sunday


def test_fall_back_second_pass_does_not_run_again() -> None:
    schedule = Schedule(name="fold", timezone="Europe/Berlin",
                        periods=(Period(begintime="02:00", endtime="02:30"),))
    first = datetime(2026, 10, 25, 0, 15, tzinfo=UTC)  # 02:15 CEST
    second = datetime(2026, 10, 25, 1, 15, tzinfo=UTC)  # 02:15 CET, the repeat
    assert str(desired_state(schedule, first).state) == "running"
    assert str(desired_state(schedule, second).state) == "stopped"
    running = [s for s in preview(schedule, datetime(2026, 10, 24, 22, tzinfo=UTC),
                                  datetime(2026, 10, 25, 4, tzinfo=UTC))
               if str(s.state) == "running"]
    assert len(running) == 1
