"""The editor's views of a schedule: periods as text, and the weekly grid.

Both are pure translations to and from the schedule's ``periods`` (the one stored
form), so the dashboard's three editing modes change the same schedule:

* **Periods text**: one period per line, ``key=value`` items separated by spaces, the
  keys and grammar of Instance Scheduler (and of the CLI's ``--period``)::

      begintime=08:00 endtime=19:00 weekdays=mon-fri
      begintime=10:00 endtime=14:00 weekdays=sat months=nov-dec name="winter saturdays"

  Blank lines and lines starting with ``#`` are ignored; a value with spaces is
  written in double quotes. :func:`parse_periods_text` validates every period as the
  model does and reports the first error with its line and column
  (:class:`TextError`).
* **Weekly grid**: 7 days (Monday first) x 24 hours, ``True`` = running, in the
  schedule's time zone. :func:`periods_from_grid` turns a grid into periods (one per
  distinct daily window, with the days that share it); :func:`grid_from_periods` does
  the reverse when the periods can be drawn on a week of whole hours, and otherwise
  says why not (days of the month, months, n-th weekdays, minutes, a period with only
  a begin or an end time).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from snoozeql.domain.errors import ValidationError
from snoozeql.domain.schedules.grammar import format_weekdays
from snoozeql.domain.schedules.model import Period, period_document

__all__ = [
    "PERIOD_TEXT_KEYS",
    "TextError",
    "format_periods_text",
    "grid_from_periods",
    "parse_periods_text",
    "periods_from_grid",
]

PERIOD_TEXT_KEYS = ("begintime", "endtime", "weekdays", "monthdays", "months", "name",
                    "description")
MAX_TEXT_CHARS = 20_000
MAX_PERIODS = 200

_TOKEN = re.compile(r'(\S+?)=("(?:[^"\\]|\\.)*"|\S*)|(\S+)')
_QUOTED = re.compile(r"'([^']*)'")


@dataclass(frozen=True)
class TextError:
    """Why the text is not a list of periods: the message and where (1-based line and
    column, and the 0-based offset in the whole text)."""

    message: str
    line: int
    column: int
    offset: int


@dataclass(frozen=True)
class _Item:
    key: str
    value: str
    key_col: int  # 0-based column of the key in the line
    value_col: int  # 0-based column of the value's first character (after a quote)


def _unquote(raw: str) -> str:
    if len(raw) >= 2 and raw[0] == raw[-1] == '"':
        return re.sub(r"\\(.)", r"\1", raw[1:-1])
    return raw


def _where(message: str, items: list[_Item], line_text: str) -> int:
    """The 0-based column in the line the model's error message points at."""
    head = re.match(r"^([a-z_]+)[:\s]", message)
    item = None
    if head:
        item = next((i for i in items if i.key == head.group(1)), None)
    if item is None:
        return items[0].key_col if items else 0
    col = item.value_col
    # the innermost quoted part the message names (e.g. the item 'fry' in 'mon-fry')
    for quoted in reversed(_QUOTED.findall(message)):
        at = item.value.find(quoted) if quoted else -1
        if at >= 0:
            return col + at
    return col if item.value else item.key_col


def parse_periods_text(text: str) -> tuple[list[dict[str, str]], TextError | None]:
    """The periods the text describes (dict form, as the store keeps them), or the first
    error with its position. Nothing else is checked here (the schedule's other fields
    are validated when it is saved)."""
    if len(text) > MAX_TEXT_CHARS:
        return [], TextError(f"the text is longer than {MAX_TEXT_CHARS} characters",
                             1, 1, 0)
    periods: list[dict[str, str]] = []
    offset = 0
    for number, line_text in enumerate(text.split("\n"), start=1):
        line_start = offset
        offset += len(line_text) + 1
        stripped = line_text.strip()
        if not stripped or stripped.startswith("#"):
            continue

        def fail(message: str, col: int, number: int = number, line_start: int = line_start
                 ) -> tuple[list[dict[str, str]], TextError]:
            return [], TextError(message, number, col + 1, line_start + col)

        items: list[_Item] = []
        for m in _TOKEN.finditer(line_text):
            if m.group(3) is not None:
                return fail(f"{m.group(3)!r}: write key=value, with key one of "
                            f"{', '.join(PERIOD_TEXT_KEYS)}", m.start(3))
            key, raw = m.group(1), m.group(2)
            if key not in PERIOD_TEXT_KEYS:
                return fail(f"unknown key {key!r}; use one of {', '.join(PERIOD_TEXT_KEYS)}",
                            m.start(1))
            if raw.startswith('"') and (len(raw) < 2 or not raw.endswith('"')):
                return fail(f"{key}: the quote is not closed", m.start(2))
            if any(i.key == key for i in items):
                return fail(f"{key}: given twice on this line", m.start(1))
            if not raw:
                return fail(f"{key}: no value after '='", m.start(2))
            quoted = raw.startswith('"')
            items.append(_Item(key, _unquote(raw), m.start(1),
                               m.start(2) + (1 if quoted else 0)))
        if len(periods) >= MAX_PERIODS:
            return fail(f"at most {MAX_PERIODS} periods", 0)
        data = {i.key: i.value for i in items}
        try:
            Period.from_dict(data)
        except ValidationError as exc:
            return fail(exc.message, _where(exc.message, items, line_text))
        periods.append(data)
    return periods, None


def _quote(value: str) -> str:
    if value and not re.search(r'[\s"\\]', value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def format_periods_text(periods: Sequence[Mapping[str, Any] | Period]) -> str:
    """Periods as text, one per line (what :func:`parse_periods_text` reads back)."""
    lines = []
    for p in periods:
        data = period_document(p) if isinstance(p, Period) else dict(p)
        lines.append(" ".join(f"{k}={_quote(str(data[k]))}" for k in PERIOD_TEXT_KEYS
                              if data.get(k) not in (None, "")))
    return "\n".join(lines)


# --------------------------------------------------------------------------- the grid

Grid = list[list[bool]]  # [weekday 0 = Monday][hour 0-23]

# Five consecutive weeks from a Monday: a period whose days differ between them uses
# days of the month (n-th weekday, last weekday) and cannot be drawn on one week.
_WEEKS = [date(2024, 1, 1) + timedelta(weeks=w) for w in range(5)]


def periods_from_grid(grid: Grid) -> list[dict[str, str]]:
    """The periods that run exactly the grid's hours: each distinct daily window
    becomes one period on the weekdays that have it."""
    if len(grid) != 7 or any(len(day) != 24 for day in grid):
        raise ValidationError("grid: expected 7 days of 24 hours")
    windows: dict[tuple[int, int], list[int]] = {}
    for day, hours in enumerate(grid):
        h = 0
        while h < 24:
            if not hours[h]:
                h += 1
                continue
            start = h
            while h < 24 and hours[h]:
                h += 1
            windows.setdefault((start, h), []).append(day)
    out = []
    for (start, end), days in sorted(windows.items(), key=lambda kv: (min(kv[1]), kv[0])):
        period = {"begintime": f"{start:02d}:00", "endtime": f"{end:02d}:00"}
        if len(days) < 7:
            period["weekdays"] = format_weekdays(days)
        out.append(period)
    return out


def grid_from_periods(periods: Sequence[Mapping[str, Any] | Period]
                      ) -> tuple[Grid | None, str | None]:
    """(the grid, None) when the periods fit a week of whole hours, else (None, why)."""
    grid: Grid = [[False] * 24 for _ in range(7)]
    for n, raw in enumerate(periods):
        p = raw if isinstance(raw, Period) else Period.from_dict(raw)
        where = f"period {n + 1} ({p.describe()})"
        if p.monthdays is not None or p.months is not None:
            return None, f"{where} depends on the day of the month or the month"
        begin, end = p.begin_minute, p.end_minute
        if (begin is None) != (end is None):
            return None, (f"{where} has only a {'begin' if end is None else 'end'} time "
                          "(it leaves the other part of the day as it is)")
        if p.repeat:
            return None, f"{where} repeats its start or stop"
        begin, end = begin or 0, 24 * 60 if end is None else end
        if begin % 60 or end % 60:
            return None, f"{where} starts or ends between whole hours"
        weeks = {tuple(p.matches_day(first + timedelta(days=d)) for d in range(7))
                 for first in _WEEKS}
        if len(weeks) > 1:
            return None, f"{where} runs on some weeks only (n-th or last weekday)"
        (days,) = weeks
        for d in range(7):
            if days[d]:
                for h in range(begin // 60, end // 60):
                    grid[d][h] = True
    return grid, None


def running_cells(periods: Sequence[Mapping[str, Any] | Period]) -> Grid:
    """Which hours of a week the periods run (at each hour's middle, on the first
    reference week): for drawing, also when :func:`grid_from_periods` refuses."""
    parsed = [p if isinstance(p, Period) else Period.from_dict(p) for p in periods]
    grid: Grid = [[False] * 24 for _ in range(7)]
    for d in range(7):
        day = _WEEKS[0] + timedelta(days=d)
        for p in parsed:
            if not p.matches_day(day):
                continue
            for h in range(24):
                if p.state_at_minute(h * 60 + 30).value == "running":
                    grid[d][h] = True
    return grid
