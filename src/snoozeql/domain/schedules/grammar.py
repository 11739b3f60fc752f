"""The period grammar: times of day and the weekday, monthday and month expressions.

The grammar is the one AWS Instance Scheduler users already write, so a schedule can be
moved over without rewording it:

* weekdays: ``mon``..``sun`` (or full names) or ``0``..``6`` with 0 = Monday; ranges that
  may wrap (``fri-mon``); lists (``mon,wed``); steps (``mon-fri/2``, ``tue/3``, ``*/2``);
  the n-th weekday of the month (``mon#3``); the last one (``friL``).
* monthdays: ``1``..``31``, ranges (``1-15``, ``15-L``), steps (``1/7``, ``1-31/7``),
  the last day (``L``) and the nearest weekday (``15W``).
* months: ``jan``..``dec`` (or full names) or ``1``..``12``, ranges that may wrap
  (``nov-feb``), lists and steps (``jan/3``).
* ``*`` or ``?`` is every value.

Parsing happens once, when a schedule is built; what comes out is a small immutable set
object whose ``matches(date)`` is cheap, because the evaluator asks it for every day it
looks at. Errors are :class:`ValidationError` naming the offending item, for example
``'mon-fry': unknown weekday 'fry'``; the model prefixes the field path.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

from snoozeql.domain.errors import ValidationError

__all__ = [
    "MINUTES_PER_DAY",
    "MonthSet",
    "MonthdaySet",
    "WeekdaySet",
    "format_time",
    "format_weekdays",
    "nearest_weekday",
    "parse_monthdays",
    "parse_months",
    "parse_time",
    "parse_weekdays",
]

MINUTES_PER_DAY = 24 * 60

WEEKDAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_WEEKDAY_LOOKUP = {n: i for i, n in enumerate(WEEKDAY_NAMES)} | {
    calendar.day_name[i].lower(): i for i in range(7)
}
MONTH_NAMES = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_MONTH_LOOKUP = {n: i + 1 for i, n in enumerate(MONTH_NAMES)} | {
    calendar.month_name[i].lower(): i for i in range(1, 13)
}

_TIME_RE = re.compile(r"^(\d{1,2}):(\d{2})$")
_WILDCARDS = ("*", "?")


# --------------------------------------------------------------------------- times


def parse_time(text: object, *, allow_end_of_day: bool = False) -> int:
    """Parse ``HH:MM`` (or ``H:MM``) into minutes after midnight.

    ``24:00`` is accepted only where ``allow_end_of_day`` is set (an ``endtime``): it
    means "until the end of the day", which ``23:59`` cannot say exactly.
    """
    if not isinstance(text, str):
        raise ValidationError(f"{text!r} is not a time of day (expected a string HH:MM)")
    m = _TIME_RE.match(text.strip())
    if m is None:
        raise ValidationError(f"{text!r} is not a time of day (expected HH:MM)")
    hours, minutes = int(m.group(1)), int(m.group(2))
    if allow_end_of_day and hours == 24 and minutes == 0:
        return MINUTES_PER_DAY
    if hours > 23 or minutes > 59:
        upper = "24:00" if allow_end_of_day else "23:59"
        raise ValidationError(f"{text!r} is not a time of day (00:00 to {upper})")
    return hours * 60 + minutes


def format_time(minutes: int) -> str:
    """Minutes after midnight as ``HH:MM`` (1440 is ``24:00``)."""
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


# --------------------------------------------------------------------------- helpers


def _items(expr: str | Iterable[str]) -> list[str]:
    """Split an expression (a comma-separated string or a list of them) into items."""
    if isinstance(expr, str):
        parts = expr.split(",")
    else:
        parts = []
        for piece in expr:
            if not isinstance(piece, str):
                raise ValidationError(f"{piece!r} is not a string")
            parts.extend(piece.split(","))
    items = [p.strip() for p in parts]
    if not items or items == [""]:
        raise ValidationError("the expression is empty")
    if any(not p for p in items):
        raise ValidationError(f"{','.join(items)!r}: empty item in the list")
    return items


def _stepped_range(start: int, end: int, step: int, low: int, size: int) -> list[int]:
    """Values from ``start`` to ``end`` (wrapping past the top of the cycle) every ``step``."""
    count = (end - start) % size
    return [low + (start - low + k) % size for k in range(0, count + 1, step)]


def _split_step(item: str) -> tuple[str, int | None]:
    if "/" not in item:
        return item, None
    base, _, step_text = item.partition("/")
    if not step_text.isdigit():
        raise ValidationError(f"{item!r}: the step after '/' must be a whole number")
    step = int(step_text)
    if step < 1:
        raise ValidationError(f"{item!r}: the step after '/' must be 1 or more")
    return base, step


class _Cycle:
    """A named cycle of values (weekdays 0-6, months 1-12) with names and numbers."""

    def __init__(self, what: str, lookup: dict[str, int], low: int, high: int) -> None:
        self.what = what
        self.lookup = lookup
        self.low = low
        self.high = high

    def value(self, token: str, item: str) -> int:
        t = token.strip().lower()
        if t.isdigit():
            v = int(t)
            if not self.low <= v <= self.high:
                raise ValidationError(
                    f"{item!r}: {self.what} number {v} is out of range {self.low}-{self.high}"
                )
            return v
        if t in self.lookup:
            return self.lookup[t]
        raise ValidationError(f"{item!r}: unknown {self.what} {token.strip()!r}")

    def expand(self, item: str) -> list[int]:
        """Expand one plain item: value, range, wildcard, each with an optional step."""
        base, step = _split_step(item)
        size = self.high - self.low + 1
        if base in _WILDCARDS:
            return _stepped_range(self.low, self.high, step or 1, self.low, size)
        if "-" in base:
            first, _, last = base.partition("-")
            if not first or not last or "-" in last:
                raise ValidationError(f"{item!r}: a range is written FIRST-LAST")
            a, b = self.value(first, item), self.value(last, item)
            return _stepped_range(a, b, step or 1, self.low, size)
        a = self.value(base, item)
        if step is None:
            return [a]
        return _stepped_range(a, self.high, step, self.low, size)


_WEEKDAYS = _Cycle("weekday", _WEEKDAY_LOOKUP, 0, 6)
_MONTHS = _Cycle("month", _MONTH_LOOKUP, 1, 12)


# --------------------------------------------------------------------------- weekdays


@dataclass(frozen=True)
class WeekdaySet:
    """Weekdays (0 = Monday) plus n-th (``mon#3``) and last (``friL``) occurrences."""

    days: frozenset[int]
    nth: frozenset[tuple[int, int]] = frozenset()
    last: frozenset[int] = frozenset()

    def matches(self, d: date) -> bool:
        wd = d.weekday()
        if wd in self.days:
            return True
        if self.nth and (wd, (d.day - 1) // 7 + 1) in self.nth:
            return True
        if wd in self.last:
            return d.day + 7 > calendar.monthrange(d.year, d.month)[1]
        return False


def parse_weekdays(expr: str | Iterable[str]) -> WeekdaySet:
    days: set[int] = set()
    nth: set[tuple[int, int]] = set()
    last: set[int] = set()
    for item in _items(expr):
        if "#" in item:
            base, _, n_text = item.partition("#")
            if not n_text.isdigit() or not 1 <= int(n_text) <= 5:
                raise ValidationError(f"{item!r}: the occurrence after '#' must be 1-5")
            nth.add((_WEEKDAYS.value(base, item), int(n_text)))
        elif (
            len(item) > 1
            and item[-1] in "lL"
            and "-" not in item
            and "/" not in item
            and (item[:-1].isdigit() or item[:-1].lower() in _WEEKDAY_LOOKUP)
        ):
            last.add(_WEEKDAYS.value(item[:-1], item))
        elif item in ("L", "l"):
            raise ValidationError(
                f"{item!r}: 'L' alone is not a weekday; write e.g. 'friL' for the last "
                "Friday of the month, or monthdays 'L' for the last day of the month"
            )
        else:
            days.update(_WEEKDAYS.expand(item))
    return WeekdaySet(frozenset(days), frozenset(nth), frozenset(last))


def format_weekdays(days: Iterable[int]) -> str:
    """A set of weekdays as a compact expression: ``{0,1,2,3,4,6}`` -> ``mon-fri,sun``."""
    values = sorted(set(days))
    parts: list[str] = []
    i = 0
    while i < len(values):
        j = i
        while j + 1 < len(values) and values[j + 1] == values[j] + 1:
            j += 1
        first, last = WEEKDAY_NAMES[values[i]], WEEKDAY_NAMES[values[j]]
        parts.append(first if i == j else f"{first}-{last}")
        i = j + 1
    return ",".join(parts)


# --------------------------------------------------------------------------- monthdays


def nearest_weekday(year: int, month: int, day: int) -> int | None:
    """The working day (Mon-Fri) nearest to ``day``, staying inside the month.

    Saturday moves to Friday (or to Monday the 3rd when the 1st is a Saturday); Sunday
    moves to Monday (or to Friday when Sunday is the last day). A day the month does not
    have gives ``None``.
    """
    dim = calendar.monthrange(year, month)[1]
    if day > dim:
        return None
    wd = calendar.weekday(year, month, day)
    if wd == 5:
        return day - 1 if day > 1 else day + 2
    if wd == 6:
        return day + 1 if day < dim else day - 2
    return day


@dataclass(frozen=True)
class MonthdaySet:
    """Days of the month plus the last day (``L``) and nearest weekdays (``15W``).

    A day the month lacks (31 in April) simply never matches; a range such as ``1-31``
    covers whatever days the month has.
    """

    days: frozenset[int]
    last: bool = False
    nearest: frozenset[int] = frozenset()

    def matches(self, d: date) -> bool:
        if d.day in self.days:
            return True
        if self.last and d.day == calendar.monthrange(d.year, d.month)[1]:
            return True
        return any(nearest_weekday(d.year, d.month, n) == d.day for n in self.nearest)


def _monthday_value(token: str, item: str) -> int:
    t = token.strip()
    if not t.isdigit():
        raise ValidationError(f"{item!r}: {t!r} is not a day of the month (1-31 or L)")
    v = int(t)
    if not 1 <= v <= 31:
        raise ValidationError(f"{item!r}: day of the month {v} is out of range 1-31")
    return v


def parse_monthdays(expr: str | Iterable[str]) -> MonthdaySet:
    days: set[int] = set()
    last = False
    nearest: set[int] = set()
    for item in _items(expr):
        upper = item.upper()
        if upper == "L":
            last = True
            continue
        if upper.endswith("W") and "-" not in item and "/" not in item:
            nearest.add(_monthday_value(item[:-1], item))
            continue
        base, step = _split_step(item)
        if base in _WILDCARDS:
            start, end = 1, 31
        elif "-" in base:
            first, _, second = base.partition("-")
            if not first or not second or "-" in second:
                raise ValidationError(f"{item!r}: a range is written FIRST-LAST")
            start = _monthday_value(first, item)
            end = 31 if second.strip().upper() == "L" else _monthday_value(second, item)
            if start > end:
                raise ValidationError(
                    f"{item!r}: the range goes backwards (days of the month do not wrap)"
                )
        else:
            start = _monthday_value(base, item)
            end = start if step is None else 31
        days.update(range(start, end + 1, step or 1))
    return MonthdaySet(frozenset(days), last, frozenset(nearest))


# --------------------------------------------------------------------------- months


@dataclass(frozen=True)
class MonthSet:
    months: frozenset[int]

    def matches(self, d: date) -> bool:
        return d.month in self.months


def parse_months(expr: str | Iterable[str]) -> MonthSet:
    months: set[int] = set()
    for item in _items(expr):
        months.update(_MONTHS.expand(item))
    return MonthSet(frozenset(months))
