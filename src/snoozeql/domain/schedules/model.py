"""Schedules and periods: the validated value objects the evaluator works on.

A :class:`Schedule` is immutable and hashable, so the evaluator can cache per-day work
keyed on it, and it round-trips through a plain JSON-able dict (:func:`schedule_document`
/ :meth:`Schedule.from_dict`): that dict is what the store keeps and what the REST API
sends and receives. Everything is validated on construction; a malformed schedule never
exists, and the :class:`ValidationError` names the bad part, e.g.
``periods[1].weekdays: 'mon-fry': unknown weekday 'fry'``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from snoozeql.domain.errors import ValidationError
from snoozeql.domain.schedules.cron import CronExpr, fires_ever, first_common_firing
from snoozeql.domain.schedules.grammar import (
    MonthdaySet,
    MonthSet,
    WeekdaySet,
    format_time,
    parse_monthdays,
    parse_months,
    parse_time,
    parse_weekdays,
)
from snoozeql.domain.validation import MAX_DESCRIPTION_CHARS, MAX_NAME_CHARS, bounded_text

__all__ = [
    "DesiredState",
    "ExceptionDate",
    "Period",
    "Schedule",
    "exception_document",
    "load_zone",
    "period_document",
    "schedule_document",
]


class DesiredState(StrEnum):
    """What a schedule wants at an instant. ``ANY`` means "leave it as it is"."""

    RUNNING = "running"
    STOPPED = "stopped"
    ANY = "any"


_FIELD_PATH = re.compile(r"^[a-z_]+(\[\d+\])?(\.[a-z_]+(\[\d+\])?)*:")


def _prefixed(prefix: str, error: ValidationError) -> ValidationError:
    """Put ``prefix`` in front of a nested error: ``periods[1]`` + ``weekdays: ...``."""
    msg = error.message
    joiner = "." if _FIELD_PATH.match(msg) else ": "
    return ValidationError(f"{prefix}{joiner}{msg}")


def load_zone(name: object) -> ZoneInfo:
    """The IANA zone called ``name``, or a ValidationError that names it."""
    if not isinstance(name, str) or not name.strip():
        raise ValidationError(f"timezone: {name!r} is not a time zone name")
    try:
        return ZoneInfo(name.strip())
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValidationError(f"timezone: unknown time zone {name!r}") from None


def _expr_text(value: object, field_name: str) -> str | None:
    """Normalise an expression given as a string or a list of strings."""
    if value is None:
        return None
    if isinstance(value, str):
        parts = [p.strip() for p in value.split(",")]
    elif isinstance(value, list | tuple | set | frozenset):
        if not all(isinstance(v, str) for v in value):
            raise ValidationError(f"{field_name}: every item must be a string")
        items = sorted(value) if isinstance(value, set | frozenset) else list(value)
        parts = [p.strip() for v in items for p in v.split(",")]
    else:
        raise ValidationError(f"{field_name}: expected a string such as 'mon-fri'")
    return ",".join(parts)


@dataclass(frozen=True)
class Period:
    """One running window, Instance Scheduler style.

    All given fields must match (AND). Times are wall-clock ``HH:MM`` in the schedule's
    zone; ``endtime`` may be ``24:00``. Expressions are kept as the text the user wrote
    (what ``schedule_document`` gives back); their parsed form lives in private fields.

    ``repeat`` makes the period's begintime a start (and its endtime a stop) even where
    the schedule already wants that state just before: a transition with no change of
    state, which the reconciler acts on like any other (it starts again a database
    stopped by hand). It is how a Cloud Custodian on hour repeated at 00:00 on the next
    day is imported; Instance Scheduler has no such thing.
    """

    begintime: str | None = None
    endtime: str | None = None
    weekdays: str | None = None
    monthdays: str | None = None
    months: str | None = None
    name: str | None = None
    description: str | None = None
    repeat: bool = False

    _begin: int | None = field(default=None, init=False, repr=False, compare=False)
    _end: int | None = field(default=None, init=False, repr=False, compare=False)
    _weekdays: WeekdaySet | None = field(default=None, init=False, repr=False, compare=False)
    _monthdays: MonthdaySet | None = field(default=None, init=False, repr=False, compare=False)
    _months: MonthSet | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        setattr_ = object.__setattr__
        for text_field in ("name", "description"):
            value = getattr(self, text_field)
            if value is not None and not isinstance(value, str):
                raise ValidationError(f"{text_field}: expected a string")
            if value is not None:
                bounded_text(value, f"period {text_field}",
                             MAX_NAME_CHARS if text_field == "name" else MAX_DESCRIPTION_CHARS)
        begin = end = None
        if self.begintime is not None:
            try:
                begin = parse_time(self.begintime)
            except ValidationError as e:
                raise _prefixed("begintime", e) from None
            setattr_(self, "begintime", format_time(begin))
        if self.endtime is not None:
            try:
                end = parse_time(self.endtime, allow_end_of_day=True)
            except ValidationError as e:
                raise _prefixed("endtime", e) from None
            setattr_(self, "endtime", format_time(end))
        if begin is not None and end is not None and begin >= end:
            word = "equal to" if begin == end else "after"
            raise ValidationError(
                f"begintime {format_time(begin)} is {word} endtime {format_time(end)}"
                " (a period cannot cross midnight: split it into two periods)"
            )
        if not isinstance(self.repeat, bool):
            raise ValidationError("repeat: expected true or false")
        if self.repeat and begin is None and end is None:
            raise ValidationError("repeat: needs a begintime (a start) or an endtime (a stop)")
        setattr_(self, "_begin", begin)
        setattr_(self, "_end", end)
        for name, parser in (
            ("weekdays", parse_weekdays),
            ("monthdays", parse_monthdays),
            ("months", parse_months),
        ):
            text = _expr_text(getattr(self, name), name)
            if text is None:
                continue
            try:
                parsed = parser(text)
            except ValidationError as e:
                raise _prefixed(name, e) from None
            setattr_(self, name, text)
            setattr_(self, f"_{name}", parsed)

    # -- evaluation helpers used by the evaluator

    def matches_day(self, d: date) -> bool:
        """Whether ``d`` satisfies weekdays, monthdays and months (all that are set)."""
        return (
            (self._weekdays is None or self._weekdays.matches(d))
            and (self._months is None or self._months.matches(d))
            and (self._monthdays is None or self._monthdays.matches(d))
        )

    @property
    def begin_minute(self) -> int | None:
        return self._begin

    @property
    def end_minute(self) -> int | None:
        return self._end

    def state_at_minute(self, minute: int) -> DesiredState:
        """The period's own state at a wall-clock minute of a day it matches."""
        begin, end = self._begin, self._end
        if begin is None and end is None:
            return DesiredState.RUNNING
        if begin is None:
            assert end is not None
            return DesiredState.STOPPED if minute >= end else DesiredState.ANY
        if end is None:
            return DesiredState.RUNNING if minute >= begin else DesiredState.ANY
        return DesiredState.RUNNING if begin <= minute < end else DesiredState.STOPPED

    def describe(self) -> str:
        """A short human description, e.g. ``09:00-17:00 weekdays mon-fri``."""
        parts: list[str] = []
        if self.begintime and self.endtime:
            parts.append(f"{self.begintime}-{self.endtime}")
        elif self.begintime:
            parts.append(f"from {self.begintime}")
        elif self.endtime:
            parts.append(f"stopped from {self.endtime}")
        else:
            parts.append("all day")
        for name in ("weekdays", "monthdays", "months"):
            value = getattr(self, name)
            if value is not None:
                parts.append(f"{name} {value}")
        if self.repeat:
            parts.append("repeat")
        return " ".join(parts)

    # -- dict form

    _KEYS = ("name", "description", "begintime", "endtime", "weekdays", "monthdays", "months",
             "repeat")

    @classmethod
    def from_dict(cls, data: object) -> Period:
        if not isinstance(data, Mapping):
            raise ValidationError("expected an object with begintime, endtime, weekdays, ...")
        unknown = [k for k in data if k not in cls._KEYS]
        if unknown:
            raise ValidationError(
                f"unknown field {unknown[0]!r} (expected one of {', '.join(cls._KEYS)})"
            )
        return cls(**{k: data[k] for k in cls._KEYS if k in data})


@dataclass(frozen=True)
class ExceptionDate:
    """A calendar date (with its year) whose whole local day has a fixed state."""

    date: date
    state: DesiredState = DesiredState.STOPPED
    description: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.date, str):
            try:
                object.__setattr__(self, "date", date.fromisoformat(self.date.strip()))
            except ValueError:
                raise ValidationError(
                    f"date: {self.date!r} is not a date (expected YYYY-MM-DD, with the year)"
                ) from None
        elif not isinstance(self.date, date) or isinstance(self.date, datetime):
            raise ValidationError(f"date: {self.date!r} is not a date (expected YYYY-MM-DD)")
        if self.state not in (DesiredState.RUNNING, DesiredState.STOPPED):
            raise ValidationError(f"state: {self.state!r} must be 'running' or 'stopped'")
        object.__setattr__(self, "state", DesiredState(self.state))
        if self.description is not None and not isinstance(self.description, str):
            raise ValidationError("description: expected a string")
        if self.description is not None:
            bounded_text(self.description, "description")

    @classmethod
    def from_dict(cls, data: object) -> ExceptionDate:
        if isinstance(data, str | date):
            return cls(date=data)  # type: ignore[arg-type]
        if not isinstance(data, Mapping):
            raise ValidationError("expected a date 'YYYY-MM-DD' or {date, state}")
        unknown = [k for k in data if k not in ("date", "state", "description")]
        if unknown:
            raise ValidationError(
                f"unknown field {unknown[0]!r} (expected date, state, description)"
            )
        if "date" not in data:
            raise ValidationError("date: missing")
        return cls(
            date=data["date"],
            state=data.get("state", DesiredState.STOPPED),
            description=data.get("description"),
        )


_NAME_MAX = MAX_NAME_CHARS


@dataclass(frozen=True)
class Schedule:
    """A named set of periods, or a cron pair, in one IANA time zone, with its options.

    ``override_status`` forces the state at every instant; an exception date fixes the
    state for its whole local day; otherwise the periods decide (running wins over
    "any", which wins over stopped), or, for a cron pair (``start_cron`` and
    ``stop_cron``), the latest firing at or before the instant (start: running, stop:
    stopped). ``enforced`` and ``dry_run`` are carried for the reconciler and do not
    change the desired state.
    """

    name: str
    timezone: str
    periods: tuple[Period, ...] = ()
    override_status: DesiredState | None = None
    enforced: bool = False
    dry_run: bool = False
    description: str | None = None
    exceptions: tuple[ExceptionDate, ...] = ()
    start_cron: str | None = None
    stop_cron: str | None = None

    def __post_init__(self) -> None:
        setattr_ = object.__setattr__
        if not isinstance(self.name, str) or not self.name.strip():
            raise ValidationError("name: a schedule needs a non-empty name")
        bounded_text(self.name, "name", _NAME_MAX)
        if not self.name.isprintable():
            raise ValidationError(
                f"name: {self.name!r} must be printable and at most {_NAME_MAX} characters"
            )
        setattr_(self, "name", self.name.strip())
        zone = load_zone(self.timezone)
        setattr_(self, "timezone", zone.key)
        if self.description is not None and not isinstance(self.description, str):
            raise ValidationError("description: expected a string")
        if self.description is not None:
            bounded_text(self.description, "description")
        for flag in ("enforced", "dry_run"):
            if not isinstance(getattr(self, flag), bool):
                raise ValidationError(f"{flag}: expected true or false")
        if self.override_status is not None:
            if self.override_status not in (DesiredState.RUNNING, DesiredState.STOPPED):
                raise ValidationError(
                    f"override_status: {self.override_status!r} must be 'running', "
                    "'stopped' or null"
                )
            setattr_(self, "override_status", DesiredState(self.override_status))
        periods = tuple(self.periods)
        for i, p in enumerate(periods):
            if not isinstance(p, Period):
                raise ValidationError(f"periods[{i}]: expected a Period")
        cron = self._check_cron(periods)
        if not periods and cron is None and self.override_status is None:
            raise ValidationError(
                "periods: a schedule needs at least one period, a start_cron and stop_cron "
                "pair, or an override_status"
            )
        setattr_(self, "periods", periods)
        exceptions = tuple(self.exceptions)
        seen: dict[date, int] = {}
        for i, ex in enumerate(exceptions):
            if not isinstance(ex, ExceptionDate):
                raise ValidationError(f"exceptions[{i}]: expected an ExceptionDate")
            if ex.date in seen:
                raise ValidationError(
                    f"exceptions[{i}]: date {ex.date.isoformat()} is already listed "
                    f"at exceptions[{seen[ex.date]}]"
                )
            seen[ex.date] = i
        setattr_(self, "exceptions", exceptions)

    def _check_cron(self, periods: tuple[Period, ...]) -> tuple[CronExpr, CronExpr] | None:
        if self.start_cron is None and self.stop_cron is None:
            return None
        if self.start_cron is None or self.stop_cron is None:
            missing = "start_cron" if self.start_cron is None else "stop_cron"
            raise ValidationError(f"{missing}: a cron schedule needs both start_cron and "
                                  "stop_cron")
        if periods:
            raise ValidationError(
                "periods: a schedule has periods or a cron pair, not both (to switch, set "
                "periods to [] or start_cron and stop_cron to null)")
        start = CronExpr.parse(self.start_cron, "start_cron")
        stop = CronExpr.parse(self.stop_cron, "stop_cron")
        for name, expr in (("start_cron", start), ("stop_cron", stop)):
            if not fires_ever(expr):
                raise ValidationError(f"{name}: {expr.text!r} never fires (no such day)")
        both = first_common_firing(start, stop)
        if both is not None:
            day, minute = both
            raise ValidationError(
                f"stop_cron: {stop.text!r} fires at the same minute as start_cron "
                f"{start.text!r} (e.g. {day.isoformat()} {minute // 60:02d}:{minute % 60:02d}): "
                "which one wins would be unclear"
            )
        object.__setattr__(self, "start_cron", start.text)
        object.__setattr__(self, "stop_cron", stop.text)
        return start, stop

    @property
    def cron(self) -> tuple[CronExpr, CronExpr] | None:
        """(start, stop) of a cron-pair schedule, else None."""
        if self.start_cron is None or self.stop_cron is None:
            return None
        return CronExpr.parse(self.start_cron, "start_cron"), CronExpr.parse(
            self.stop_cron, "stop_cron")

    @property
    def mode(self) -> str:
        """``cron`` for a cron pair, else ``periods``."""
        return "cron" if self.start_cron is not None else "periods"

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def exception_on(self, d: date) -> ExceptionDate | None:
        for ex in self.exceptions:
            if ex.date == d:
                return ex
        return None

    # -- dict form

    _KEYS = (
        "name",
        "timezone",
        "description",
        "periods",
        "override_status",
        "enforced",
        "dry_run",
        "exceptions",
        "start_cron",
        "stop_cron",
    )

    @classmethod
    def from_dict(cls, data: object) -> Schedule:
        """Build and validate a schedule from its document (see :func:`schedule_document`).

        ``periods`` and ``exceptions`` may be omitted; an exception may be a bare date
        string (its state is then ``stopped``); expressions may be strings or lists.
        """
        if not isinstance(data, Mapping):
            raise ValidationError("a schedule must be an object")
        unknown = [k for k in data if k not in cls._KEYS]
        if unknown:
            raise ValidationError(
                f"unknown field {unknown[0]!r} (expected one of {', '.join(cls._KEYS)})"
            )
        if "name" not in data:
            raise ValidationError("name: missing")
        if "timezone" not in data:
            raise ValidationError("timezone: missing (an IANA zone such as 'Europe/Berlin')")
        raw_periods = data.get("periods") or []
        if not isinstance(raw_periods, list | tuple):
            raise ValidationError("periods: expected a list")
        periods = []
        for i, raw in enumerate(raw_periods):
            try:
                periods.append(Period.from_dict(raw))
            except ValidationError as e:
                raise _prefixed(f"periods[{i}]", e) from None
        raw_exceptions = data.get("exceptions") or []
        if not isinstance(raw_exceptions, list | tuple):
            raise ValidationError("exceptions: expected a list")
        exceptions = []
        for i, raw in enumerate(raw_exceptions):
            try:
                exceptions.append(ExceptionDate.from_dict(raw))
            except ValidationError as e:
                raise _prefixed(f"exceptions[{i}]", e) from None
        return cls(
            name=data["name"],
            timezone=data["timezone"],
            periods=tuple(periods),
            override_status=data.get("override_status"),
            enforced=data.get("enforced", False),
            dry_run=data.get("dry_run", False),
            description=data.get("description"),
            exceptions=tuple(exceptions),
            start_cron=data.get("start_cron"),
            stop_cron=data.get("stop_cron"),
        )


# -- the document form: what users write (files, API bodies), the store keeps and the
# API shows; ``Schedule.from_dict`` / ``Period.from_dict`` / ``ExceptionDate.from_dict``
# read it back: ``Schedule.from_dict(schedule_document(s)) == s``.


def period_document(period: Period) -> dict[str, Any]:
    """A period as a JSON-able dict; fields that are not set are left out."""
    return {k: getattr(period, k) for k in Period._KEYS
            if getattr(period, k) is not None and getattr(period, k) is not False}


def exception_document(exception: ExceptionDate) -> dict[str, Any]:
    out: dict[str, Any] = {"date": exception.date.isoformat(), "state": str(exception.state)}
    if exception.description is not None:
        out["description"] = exception.description
    return out


def schedule_document(schedule: Schedule) -> dict[str, Any]:
    """The schedule's JSON-able document (``start_cron`` and ``stop_cron`` only for a
    cron pair)."""
    s = schedule
    return {
        "name": s.name,
        "timezone": s.timezone,
        "description": s.description,
        "periods": [period_document(p) for p in s.periods],
        "override_status": None if s.override_status is None else str(s.override_status),
        "enforced": s.enforced,
        "dry_run": s.dry_run,
        "exceptions": [exception_document(ex) for ex in s.exceptions],
    } | ({"start_cron": s.start_cron, "stop_cron": s.stop_cron}
         if s.start_cron is not None else {})
