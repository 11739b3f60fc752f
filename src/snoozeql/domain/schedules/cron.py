"""Cron expressions for cron-pair schedules: one expression says when to start, one when
to stop, and the desired state at an instant is the action of the latest firing at or
before it (docs/schedules.md, "Cron schedules").

The dialect is standard five-field cron as croniter reads it:

    minute (0-59)  hour (0-23)  day of month (1-31, L)  month (1-12, jan-dec)
    day of week (0-7 or sun-sat; 0 and 7 are Sunday)

Each field is ``*`` or a comma-separated list of values, ranges ``a-b`` and steps
(``*/n``, ``a-b/n``, ``a/n`` = from a to the field's maximum every n). ``L`` in the day
of month is the month's last day; ``d#n`` in the day of week is the month's n-th
weekday d (1-5). When both day fields are restricted (neither is exactly ``*``; a step
such as ``*/2`` restricts), a day matches if either does, as croniter reads them.

Pure: a :class:`CronExpr` is a value, parsed and validated once; the evaluator asks it
which minutes of a local calendar day fire.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import date, timedelta

from snoozeql.domain.errors import ValidationError

__all__ = ["CronExpr", "first_common_firing"]

_FIELDS = ("minute", "hour", "day of month", "month", "day of week")
_RANGES = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 7))
_MONTHS = {m.lower(): i for i, m in enumerate(calendar.month_abbr) if m}
_DAYS = {"sun": 0, "mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6}
_ITEM = re.compile(r"^(?P<base>\*|[0-9a-z]+(?:-[0-9a-z]+)?)(?:/(?P<step>[0-9]+))?$")


def _value(text: str, field: int) -> int:
    names = _MONTHS if field == 3 else _DAYS if field == 4 else {}
    if text in names:
        return names[text]
    if not text.isdigit():
        raise ValueError(f"{text!r} is not a number" + (" or a name" if names else ""))
    lo, hi = _RANGES[field]
    number = int(text)
    if not lo <= number <= hi:
        raise ValueError(f"{number} is out of range {lo}-{hi}")
    return number


def _item(text: str, field: int) -> set[int]:
    m = _ITEM.match(text)
    if m is None:
        raise ValueError(f"{text!r} is not a value, a range a-b or a step */n")
    lo, hi = _RANGES[field]
    base, step_text = m.group("base"), m.group("step")
    if base == "*":
        first, last = lo, hi
    elif "-" in base:
        a, b = base.split("-", 1)
        first, last = _value(a, field), _value(b, field)
        if first > last:
            raise ValueError(f"range {base!r} runs backwards")
    else:
        first = _value(base, field)
        last = hi if step_text is not None else first
    step = 1
    if step_text is not None:
        step = int(step_text)
        if step < 1:
            raise ValueError(f"step /{step} must be at least 1")
    return set(range(first, last + 1, step))


@dataclass(frozen=True)
class CronExpr:
    """A parsed five-field cron expression (see the module's docstring)."""

    text: str
    minutes: frozenset[int]
    hours: frozenset[int]
    monthdays: frozenset[int]
    last_monthday: bool
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday ... 6 = Saturday
    nth_weekdays: frozenset[tuple[int, int]]  # (weekday, n): the month's n-th weekday
    monthday_star: bool
    weekday_star: bool

    @classmethod
    def parse(cls, text: object, what: str = "cron") -> CronExpr:
        """Parse ``text``; a ValidationError names the field and the bad part."""
        if not isinstance(text, str):
            raise ValidationError(f"{what}: expected a cron expression such as '0 7 * * 1-5'")
        parts = text.lower().split()
        if len(parts) != 5:
            raise ValidationError(
                f"{what}: {text!r} has {len(parts)} field(s); a cron expression has 5: "
                "minute hour day-of-month month day-of-week (e.g. '0 7 * * 1-5')"
            )
        sets: list[set[int]] = [set() for _ in _FIELDS]
        last_monthday = False
        nth: set[tuple[int, int]] = set()
        for field, part in enumerate(parts):
            for item in part.split(","):
                try:
                    if field == 2 and item == "l":
                        last_monthday = True
                    elif field == 4 and "#" in item:
                        day, _, n = item.partition("#")
                        weekday = _value(day, 4) % 7
                        if not n.isdigit() or not 1 <= int(n) <= 5:
                            raise ValueError(f"{item!r}: the n in d#n must be 1 to 5")
                        nth.add((weekday, int(n)))
                    else:
                        sets[field] |= _item(item, field)
                except ValueError as exc:
                    raise ValidationError(
                        f"{what}: field {field + 1} ({_FIELDS[field]}) {part!r}: {exc}"
                    ) from None
        weekdays = frozenset(d % 7 for d in sets[4])
        return cls(
            text=" ".join(parts), minutes=frozenset(sets[0]), hours=frozenset(sets[1]),
            monthdays=frozenset(sets[2]), last_monthday=last_monthday,
            months=frozenset(sets[3]), weekdays=weekdays, nth_weekdays=frozenset(nth),
            monthday_star=parts[2] == "*", weekday_star=parts[4] == "*",
        )

    def matches_day(self, d: date) -> bool:
        if d.month not in self.months:
            return False
        month_days = calendar.monthrange(d.year, d.month)[1]
        by_monthday = d.day in self.monthdays or (self.last_monthday and d.day == month_days)
        weekday = d.isoweekday() % 7
        by_weekday = (
            weekday in self.weekdays
            or (weekday, (d.day - 1) // 7 + 1) in self.nth_weekdays
        )
        if self.monthday_star and self.weekday_star:
            return True
        if self.monthday_star:
            return by_weekday
        if self.weekday_star:
            return by_monthday
        return by_monthday or by_weekday

    def minutes_of_day(self, d: date) -> list[int]:
        """The wall-clock minutes of local day ``d`` at which this expression fires."""
        if not self.matches_day(d):
            return []
        return sorted(h * 60 + m for h in self.hours for m in self.minutes)


#: Every combination of weekday, day of month, month length and leap year recurs
#: within 28 years (between century years that are not leap years).
_CYCLE_START, _CYCLE_DAYS = date(2001, 1, 1), 28 * 365 + 7


def first_common_firing(a: CronExpr, b: CronExpr) -> tuple[date, int] | None:
    """A (day, minute) at which both expressions fire, or None if they never do."""
    common = sorted({h * 60 + m for h in a.hours & b.hours for m in a.minutes & b.minutes})
    if not common:
        return None
    for offset in range(_CYCLE_DAYS):
        d = _CYCLE_START + timedelta(days=offset)
        if a.matches_day(d) and b.matches_day(d):
            return d, common[0]
    return None


def fires_ever(expr: CronExpr) -> bool:
    """Whether the expression fires on some day (``0 0 31 2 *`` never does)."""
    return any(expr.matches_day(_CYCLE_START + timedelta(days=k)) for k in range(_CYCLE_DAYS))
