"""Import a Cloud Custodian offhours/onhours tag value as a SnoozeQL schedule.

Custodian's tag (``maid_offhours`` by default) holds values such as
``off=(M-F,19);on=(M-F,7);tz=pt`` or ``off=[(M-F,21),(U,18)];on=[(M-F,6),(U,10)]``.
Custodian acts on *events*: at each ``on`` hour it starts the resource, at each ``off``
hour it stops it, and in between it leaves the resource alone. The importer turns the
week of events into periods whose desired state changes exactly at those events:

* between an ``on`` event and the next ``off`` event the schedule says running, between
  an ``off`` and the next ``on`` it says stopped;
* when two events in a row do the same thing on different days (``on`` Monday 7:00 and
  ``on`` Tuesday 7:00 with no ``off`` between), the day of the second one says "any"
  (leave it as it is) from midnight until its hour, so the second start is still a
  transition. When the second one is at hour 0 there is no such stretch: its day gets
  a ``repeat`` period (begintime 00:00 for a start, endtime 00:00 for a stop), whose
  boundary is a transition although the state stays the same, so a database stopped
  by hand is started again at 00:00 as Custodian's on hour does. A repeat of the same
  action later on the same day is dropped.

Defaults follow Custodian: a missing ``on`` or ``off`` takes the policy's default (on
at 7, off at 19, Monday to Friday unless ``weekends``/``weekends_only`` say otherwise),
``on=disabled``/``off=disabled`` means no such events, an empty value or ``on`` means
all defaults, and the time zone defaults to ``et`` (America/New_York).
"""

from __future__ import annotations

import re
from functools import lru_cache
from zoneinfo import available_timezones

from snoozeql.domain.errors import ValidationError
from snoozeql.domain.schedules.grammar import format_time, format_weekdays
from snoozeql.domain.schedules.model import DesiredState, Period, Schedule

__all__ = ["CUSTODIAN_TZ_ALIASES", "import_custodian", "parse_custodian_tag"]

#: Custodian's short time-zone names, each tied to a locality so DST is followed.
CUSTODIAN_TZ_ALIASES: dict[str, str] = {
    "pdt": "America/Los_Angeles",
    "pt": "America/Los_Angeles",
    "pst": "America/Los_Angeles",
    "ast": "America/Phoenix",
    "at": "America/Phoenix",
    "est": "America/New_York",
    "edt": "America/New_York",
    "et": "America/New_York",
    "cst": "America/Chicago",
    "cdt": "America/Chicago",
    "ct": "America/Chicago",
    "mst": "America/Denver",
    "mdt": "America/Denver",
    "mt": "America/Denver",
    "gmt": "Etc/GMT",
    "gt": "Etc/GMT",
    "bst": "Europe/London",
    "ist": "Europe/Dublin",
    "cet": "Europe/Berlin",
    "it": "Asia/Kolkata",
    "jst": "Asia/Tokyo",
    "kst": "Asia/Seoul",
    "sgt": "Asia/Singapore",
    "aet": "Australia/Sydney",
    "brt": "America/Sao_Paulo",
    "nzst": "Pacific/Auckland",
    "utc": "Etc/UTC",
}

_DAY_LETTERS = {"m": 0, "t": 1, "w": 2, "h": 3, "f": 4, "s": 5, "u": 6}
# Services that forbid ( ) [ ] , ; = / - in tag values get them escaped as u<hex>.
_ESCAPES = {
    "u28": "(",
    "u29": ")",
    "u5b": "[",
    "u5d": "]",
    "u2c": ",",
    "u3b": ";",
    "u3d": "=",
    "u2f": "/",
    "u2d": "-",
}
_ESCAPE_RE = re.compile("|".join(_ESCAPES))
_TUPLE_RE = re.compile(r"\(([^()]*)\)")

Event = tuple[tuple[int, ...], int]  # (weekdays 0=Monday, hour)


@lru_cache(maxsize=1)
def _zones_by_lower_name() -> dict[str, str]:
    return {z.lower(): z for z in available_timezones()}


def resolve_custodian_tz(value: str) -> str:
    """An alias (``pt``) or an IANA name in any letter case, as an IANA zone name."""
    key = value.strip().lower()
    if key in CUSTODIAN_TZ_ALIASES:
        return CUSTODIAN_TZ_ALIASES[key]
    name = _zones_by_lower_name().get(key)
    if name is None:
        raise ValidationError(
            f"tz={value}: unknown time zone {value!r} (use an alias such as pt, et, cet, "
            "utc or an IANA name such as Europe/Berlin)"
        )
    return name


def _days(text: str, where: str) -> tuple[int, ...]:
    t = text.strip()
    if t in _DAY_LETTERS:
        return (_DAY_LETTERS[t],)
    first, sep, last = t.partition("-")
    if sep:
        for letter in (first, last):
            if letter not in _DAY_LETTERS:
                raise ValidationError(
                    f"{where}: unknown day {letter!r} (use M T W H F S U, or a range like M-F)"
                )
        a, b = _DAY_LETTERS[first], _DAY_LETTERS[last]
        return tuple((a + k) % 7 for k in range((b - a) % 7 + 1))
    raise ValidationError(f"{where}: unknown day {t!r} (use M T W H F S U, or a range like M-F)")


def _events(key: str, text: str) -> list[Event]:
    """Parse ``(M-F,19)`` or ``[(M-F,21),(U,18)]``; ``disabled`` gives no events."""
    where = f"{key}={text}"
    body = text.strip()
    if body == "disabled":
        return []
    if body.startswith("[") or body.endswith("]"):
        if not (body.startswith("[") and body.endswith("]")):
            raise ValidationError(f"{where}: unbalanced brackets")
        body = body[1:-1]
    tuples = _TUPLE_RE.findall(body)
    if not tuples or _TUPLE_RE.sub("", body).replace(",", "").strip():
        raise ValidationError(f"{where}: expected (days,hour) or [(days,hour),(days,hour),...]")
    out: list[Event] = []
    for inner in tuples:
        parts = [p.strip() for p in inner.split(",")]
        if len(parts) != 2:
            raise ValidationError(f"{where}: ({inner}) must be (days,hour)")
        days_text, hour_text = parts
        if not hour_text.isdigit() or not 0 <= int(hour_text) <= 23:
            raise ValidationError(f"{where}: hour {hour_text!r} is not a whole hour 0-23")
        out.append((_days(days_text, where), int(hour_text)))
    return out


def _describe(events: list[Event]) -> str:
    return ", ".join(f"{format_weekdays(days)} {hour}:00" for days, hour in events) or "none"


def parse_custodian_tag(
    tag_value: str | None,
    *,
    default_tz: str = "et",
    onhour: int = 7,
    offhour: int = 19,
    weekends: bool = True,
    weekends_only: bool = False,
    opt_out: bool = False,
    warnings: list[str] | None = None,
) -> tuple[list[Event], list[Event], str]:
    """Parse a tag value into (on events, off events, IANA zone), defaults applied.

    ``tag_value`` None is a resource without the tag: with ``opt_out`` Custodian gives
    it the policy's defaults, without it leaves it alone (a ValidationError here).
    Where Custodian would read the tag differently from what it seems to say, a
    sentence saying so, and what SnoozeQL does, is appended to ``warnings``.
    """
    notes: list[str] = warnings if warnings is not None else []
    if tag_value is None:
        if not opt_out:
            raise ValidationError(
                "custodian tag: no tag value; without opt-out Custodian leaves a resource "
                "without the tag alone (give the tag value, or opt-out for the policy's "
                "default schedule)"
            )
        tag_value = ""
    if not isinstance(tag_value, str):
        raise ValidationError("custodian tag: expected a string")
    value = _ESCAPE_RE.sub(lambda m: _ESCAPES[m.group(0)], tag_value.strip().lower())
    value = value.strip("'").strip('"').strip()
    if value == "off":
        raise ValidationError(
            "custodian tag: 'off' opts the resource out of offhours; there is no schedule"
        )
    for hour, what in ((onhour, "onhour"), (offhour, "offhour")):
        if not 0 <= hour <= 23:
            raise ValidationError(f"{what}: {hour} is not a whole hour 0-23")
    default_on: list[Event]
    default_off: list[Event]
    if weekends_only:
        default_on, default_off = [((0,), onhour)], [((4,), offhour)]
    elif weekends:
        default_on, default_off = [(tuple(range(5)), onhour)], [(tuple(range(5)), offhour)]
    else:
        default_on, default_off = [(tuple(range(7)), onhour)], [(tuple(range(7)), offhour)]
    found: dict[str, str] = {}
    if value not in ("", "on"):
        for raw_piece in value.split(";"):
            piece = raw_piece.strip()
            if not piece:
                continue
            if raw_piece[:1].isspace() and piece.partition("=")[0].strip() in ("on", "off", "tz"):
                notes.append(
                    f"{piece!r} follows '; ': Custodian keeps the space in the key and "
                    "silently ignores it, as if it were not in the tag; SnoozeQL reads it "
                    "as written (remove the space so both agree)"
                )
            key, sep, rest = piece.partition("=")
            key = key.strip()
            if not sep or "=" in rest:
                raise ValidationError(f"custodian tag: {piece!r} is not key=value")
            if key not in ("on", "off", "tz"):
                raise ValidationError(
                    f"custodian tag: unknown key {key!r} in {piece!r} (expected off, on, tz)"
                )
            if key in found:
                raise ValidationError(f"custodian tag: {key!r} is given twice")
            found[key] = rest.strip()
    sides: dict[str, list[Event]] = {}
    for key, default in (("on", default_on), ("off", default_off)):
        if key not in found:
            sides[key] = default
            continue
        if found[key].strip() == "disabled":
            sides[key] = []
            notes.append(
                f"{key}=disabled: Custodian treats the whole tag as a parse error and "
                "neither starts nor stops the resource; SnoozeQL reads it as written: "
                + ("it is never started by this schedule, only stopped"
                   if key == "on" else "it is never stopped by this schedule, only started")
            )
            continue
        try:
            sides[key] = _events(key, found[key])
        except ValidationError as e:
            sides[key] = default
            notes.append(
                f"{e.message}: Custodian cannot parse this side and falls back to the "
                f"policy's default {key}hour ({_describe(default)}); SnoozeQL does the same"
            )
    try:
        zone = resolve_custodian_tz(found.get("tz") or default_tz)
    except ValidationError as e:
        raise ValidationError(f"custodian tag: {e.message}") from None
    return sides["on"], sides["off"], zone


_HOURS = 24
_WEEK = 7 * _HOURS


def _week_cells(on: list[Event], off: list[Event]) -> tuple[list[DesiredState], set[int]]:
    """The desired state of every hour of the week (Monday 00:00 first), and the days
    (0 = Monday) that begin with a repeat of the action before (see module doc)."""
    events: dict[int, DesiredState] = {}
    for kind, specs in ((DesiredState.RUNNING, on), (DesiredState.STOPPED, off)):
        for days, hour in specs:
            for wd in days:
                pos = wd * _HOURS + hour
                if events.get(pos, kind) is not kind:
                    raise ValidationError(
                        f"custodian tag: on and off both at {hour}:00 on {format_weekdays([wd])}"
                    )
                events[pos] = kind
    if not events:
        raise ValidationError(
            "custodian tag: on and off are both disabled, so nothing is ever started or stopped"
        )
    positions = sorted(events)
    cells: list[DesiredState] = [DesiredState.STOPPED] * _WEEK
    for j, pos in enumerate(positions):
        nxt = positions[(j + 1) % len(positions)]
        length = (nxt - pos) % _WEEK or _WEEK
        for k in range(length):
            cells[(pos + k) % _WEEK] = events[pos]
    repeats: set[int] = set()
    for j, pos in enumerate(positions):
        prev = positions[j - 1]
        if events[prev] is not events[pos]:
            continue
        if prev < pos and prev // _HOURS == pos // _HOURS:
            continue  # the same action again later that day: nothing to mark
        if pos % _HOURS == 0:
            repeats.add(pos // _HOURS)
        for c in range((pos // _HOURS) * _HOURS, pos):
            cells[c] = DesiredState.ANY
    return cells, repeats


_Spec = tuple[str | None, str | None, bool]  # (begintime, endtime, repeat)


def _day_spec(cells: list[DesiredState], repeat: bool = False) -> tuple[_Spec, ...]:
    """(begintime, endtime, repeat) of the periods that give one day's 24 cells;
    ``repeat``: the day begins with a repeat of the previous action (at 00:00)."""
    spec: list[_Spec] = []
    if repeat and cells[0] is DesiredState.STOPPED:
        spec.append((None, format_time(0), True))  # stopped again at 00:00
    a = 0
    while a < _HOURS:
        b = a
        while b < _HOURS and cells[b] is cells[a]:
            b += 1
        state = cells[a]
        if state is DesiredState.RUNNING:
            again = repeat and a == 0
            if a == 0 and b == _HOURS and not again:
                spec.append((None, None, False))
            else:
                spec.append((format_time(a * 60), None if b == _HOURS and again
                             else format_time(b * 60), again))
        elif state is DesiredState.ANY:
            # Only ever from midnight up to an event: an endtime-only period says "any"
            # before its endtime and stopped after it.
            assert a == 0, "an 'any' stretch starts at midnight by construction"
            spec.append((None, format_time(b * 60), False))
        a = b
    if (len(spec) == 2 and spec[0][0] is None and not spec[0][2]
            and spec[1] == (spec[0][1], "24:00", False)):
        # "any" until an hour, then running to midnight: one begintime-only period.
        return ((spec[1][0], None, False),)
    return tuple(spec)


def import_custodian(
    tag_value: str | None,
    *,
    name: str,
    default_tz: str = "et",
    onhour: int = 7,
    offhour: int = 19,
    weekends: bool = True,
    weekends_only: bool = False,
    opt_out: bool = False,
    description: str | None = None,
    warnings: list[str] | None = None,
) -> Schedule:
    """Build a schedule that starts and stops at the same hours as the Custodian tag.

    ``default_tz``, ``onhour``, ``offhour``, ``weekends``, ``weekends_only`` and
    ``opt_out`` are the policy options Custodian reads when the tag leaves something out
    (``opt_out``: a resource without the tag, ``tag_value`` None, gets the defaults).
    Warnings (see :func:`parse_custodian_tag`) are appended to ``warnings``.
    """
    on, off, zone_name = parse_custodian_tag(
        tag_value,
        default_tz=default_tz,
        onhour=onhour,
        offhour=offhour,
        weekends=weekends,
        weekends_only=weekends_only,
        opt_out=opt_out,
        warnings=warnings,
    )
    cells, repeats = _week_cells(on, off)
    groups: dict[tuple[_Spec, ...], list[int]] = {}
    for wd in range(7):
        spec = _day_spec(cells[wd * _HOURS : (wd + 1) * _HOURS], wd in repeats)
        if spec:
            groups.setdefault(spec, []).append(wd)
    periods = [
        Period(begintime=begin, endtime=end, weekdays=format_weekdays(days), repeat=again)
        for spec, days in groups.items()
        for begin, end, again in spec
    ]
    return Schedule(
        name=name,
        timezone=zone_name,
        periods=tuple(periods),
        description=description or (
            f"imported from Cloud Custodian tag {tag_value!r}" if tag_value is not None
            else "imported from a Cloud Custodian opt-out policy's defaults"),
    )
