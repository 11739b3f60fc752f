"""Import AWS Instance Scheduler periods and schedules as SnoozeQL schedules.

Instance Scheduler keeps its configuration in several JSON shapes, and people export
whichever they have at hand, so the importer takes all of them:

* the configuration table's items, ``{"type": "period", "name": ..., "begintime": ...}``
  and ``{"type": "schedule", "name": ..., "timezone": ..., "periods": ["name", ...]}``,
  as a list, as ``{"periods": [...], "schedules": [...]}`` (also the scheduler CLI's
  ``Periods``/``Schedules`` output), or as a DynamoDB scan with typed values
  (``{"Items": [{"name": {"S": "..."}, ...}]}``);
* CloudFormation ``Custom::ServiceInstanceSchedule`` resources (a whole template or one
  resource) whose ``Periods`` are inline (``BeginTime``, ``EndTime``, ``WeekDays``,
  ``MonthDays``, ``Months``).

Field names are matched ignoring case, ``_`` and ``-``. The grammar and the meaning of
periods are the same as ours, so periods move over unchanged. Settings SnoozeQL has no
equivalent for (``retain_running``, ``hibernate``, ``stop_new_instances``, maintenance
windows, instance types) are dropped and reported in ``ImportResult.warnings``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from snoozeql.domain.errors import ValidationError
from snoozeql.domain.schedules.model import DesiredState, Period, Schedule

__all__ = ["ImportResult", "import_instance_scheduler"]


@dataclass(frozen=True)
class ImportResult:
    schedules: tuple[Schedule, ...]
    warnings: tuple[str, ...] = ()


_PERIOD_FIELDS = {
    "begintime": "begintime",
    "endtime": "endtime",
    "weekdays": "weekdays",
    "monthdays": "monthdays",
    "months": "months",
    "description": "description",
    "name": "name",
}
_QUIET = {"type", "configuredinstack", "servicetoken", "nostackprefix"}
_UNSUPPORTED = {
    "retainrunning": "retain_running",
    "hibernate": "hibernate",
    "stopnewinstances": "stop_new_instances",
    "ssmmaintenancewindow": "ssm_maintenance_window",
    "usemaintenancewindow": "use_maintenance_window",
    "usemetrics": "use_metrics",
    "instancetype": "instance type",
}
_SCHEDULE_TYPE = "custom::serviceinstanceschedule"


def _key(k: object) -> str:
    return str(k).lower().replace("_", "").replace("-", "")


def _plain(value: Any) -> Any:
    """Unwrap DynamoDB typed values ({"S": "x"}, {"SS": [...]}, ...) recursively."""
    if isinstance(value, Mapping):
        if len(value) == 1:
            ((tag, inner),) = value.items()
            if tag in ("S", "N", "BOOL"):
                return inner
            if tag in ("SS", "NS"):
                return list(inner)
            if tag == "L":
                return [_plain(v) for v in inner]
            if tag == "M":
                return _plain(inner)
            if tag == "NULL":
                return None
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _norm(obj: Mapping[str, Any]) -> dict[str, Any]:
    return {_key(k): v for k, v in obj.items()}


def _bool(value: Any, where: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "yes"):
        return True
    if isinstance(value, str) and value.strip().lower() in ("false", "no", ""):
        return False
    raise ValidationError(f"{where}: {value!r} is not true or false")


class _Collector:
    def __init__(self) -> None:
        self.periods: dict[str, tuple[str, dict[str, Any]]] = {}
        self.schedules: list[tuple[str, dict[str, Any]]] = []

    def collect(self, obj: Any, path: str) -> None:
        if isinstance(obj, list):
            for i, item in enumerate(obj):
                self.collect(item, f"{path}[{i}]")
            return
        if not isinstance(obj, Mapping):
            raise ValidationError(f"{path}: expected an object or a list")
        n = _norm(obj)
        if isinstance(n.get("resources"), Mapping):
            for logical_id, res in n["resources"].items():
                if isinstance(res, Mapping) and str(_norm(res).get("type", "")).lower() == (
                    _SCHEDULE_TYPE
                ):
                    self._cfn_resource(_norm(res), f"Resources.{logical_id}", str(logical_id))
            return
        if "properties" in n and str(n.get("type", "")).lower() == _SCHEDULE_TYPE:
            self._cfn_resource(n, path, None)
            return
        if "items" in n and isinstance(n["items"], list):
            self.collect(n["items"], f"{path}.Items")
            return
        if "name" not in n and ("periods" in n or "schedules" in n):
            if "periods" in n:
                self.collect(n["periods"], f"{path}.periods")
            if "schedules" in n:
                self.collect(n["schedules"], f"{path}.schedules")
            return
        kind = str(n.get("type", "")).lower()
        if kind == "period" or (
            not kind and "periods" not in n and "timezone" not in n and "overridestatus" not in n
        ):
            name = n.get("name")
            if not isinstance(name, str) or not name.strip():
                raise ValidationError(f"{path}: a period needs a name")
            if name in self.periods:
                raise ValidationError(f"{path}: period {name!r} is defined twice")
            self.periods[name] = (path, n)
        elif kind in ("schedule", ""):
            self.schedules.append((path, n))
        else:
            raise ValidationError(f"{path}: unknown item type {n.get('type')!r}")

    def _cfn_resource(self, res: dict[str, Any], path: str, logical_id: str | None) -> None:
        props = res.get("properties")
        if not isinstance(props, Mapping):
            raise ValidationError(f"{path}: Properties must be an object")
        n = _norm(props)
        if "name" not in n and logical_id is not None:
            n["name"] = logical_id
        self.schedules.append((f"{path}.Properties", n))


def _period(n: Mapping[str, Any], label: str, warnings: list[str]) -> Period:
    kwargs: dict[str, Any] = {}
    for key, value in n.items():
        if key in _PERIOD_FIELDS:
            if value is not None and value != "" and value != []:
                kwargs[_PERIOD_FIELDS[key]] = value
        elif key in _UNSUPPORTED:
            warnings.append(f"{label}: {_UNSUPPORTED[key]} {value!r} is ignored")
        elif key not in _QUIET:
            warnings.append(f"{label}: unknown field {key!r} is ignored")
    try:
        return Period(**kwargs)
    except ValidationError as e:
        raise ValidationError(f"{label}: {e.message}") from None


def _schedule(
    path: str,
    n: Mapping[str, Any],
    periods: Mapping[str, tuple[str, dict[str, Any]]],
    default_timezone: str,
    warnings: list[str],
) -> Schedule:
    name = n.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ValidationError(f"{path}: a schedule needs a name")
    label = f"schedule {name!r}"
    built: list[Period] = []
    refs = n.get("periods") or []
    if isinstance(refs, str):
        refs = [r.strip() for r in refs.split(",") if r.strip()]
    if not isinstance(refs, list):
        raise ValidationError(f"{label}: periods must be a list")
    for i, ref in enumerate(refs):
        if isinstance(ref, Mapping):
            pn = _norm(ref)
            pname = pn.get("name") or pn.get("description")
            plabel = f"{label}, period {i}" + (f" ({pname})" if pname else "")
            built.append(_period(pn, plabel, warnings))
            continue
        if not isinstance(ref, str):
            raise ValidationError(f"{label}: periods[{i}] must be a period name")
        pname, _, instance_type = ref.partition("@")
        pname = pname.strip()
        if instance_type:
            warnings.append(
                f"{label}: instance type {instance_type!r} of period {pname!r} is ignored"
            )
        if pname not in periods:
            raise ValidationError(f"{label}: period {pname!r} is not defined")
        built.append(_period(periods[pname][1], f"{label}, period {pname!r}", warnings))
    for key, value in n.items():
        if key in _UNSUPPORTED:
            warnings.append(f"{label}: {_UNSUPPORTED[key]} {value!r} is ignored")
        elif key not in _QUIET and key not in (
            "name",
            "periods",
            "timezone",
            "description",
            "overridestatus",
            "enforced",
        ):
            warnings.append(f"{label}: unknown field {key!r} is ignored")
    raw_override = n.get("overridestatus")
    if isinstance(raw_override, str):
        raw_override = raw_override.strip().lower() or None
    if raw_override not in (None, "running", "stopped"):
        raise ValidationError(
            f"{label}: override_status: {raw_override!r} must be 'running' or 'stopped'"
        )
    override = None if raw_override is None else DesiredState(raw_override)
    timezone = n.get("timezone") or default_timezone
    try:
        return Schedule(
            name=name,
            timezone=timezone,
            periods=tuple(built),
            override_status=override,
            enforced=_bool(n.get("enforced", False), "enforced"),
            description=n.get("description") or None,
        )
    except ValidationError as e:
        raise ValidationError(f"{label}: {e.message}") from None


def import_instance_scheduler(data: object, *, default_timezone: str = "UTC") -> ImportResult:
    """Turn Instance Scheduler configuration (parsed JSON) into schedules.

    ``default_timezone`` stands in for the stack's default time zone, which
    Instance Scheduler uses for schedules that name none. Periods that no schedule uses
    are not imported (a SnoozeQL period lives inside its schedule).
    """
    collector = _Collector()
    collector.collect(_plain(data), "$")
    if not collector.schedules:
        raise ValidationError("no schedule found (periods alone are not enough to import)")
    warnings: list[str] = []
    schedules: list[Schedule] = []
    seen: set[str] = set()
    for path, n in collector.schedules:
        schedule = _schedule(path, n, collector.periods, default_timezone, warnings)
        if schedule.name in seen:
            raise ValidationError(f"{path}: schedule {schedule.name!r} is defined twice")
        seen.add(schedule.name)
        schedules.append(schedule)
    return ImportResult(tuple(schedules), tuple(warnings))
