"""Sleep schedules: the model, the period grammar, the evaluator and the importers.

Everything here is pure (no I/O beyond reading the system's time zone database through
``zoneinfo``): a schedule is a value, and the evaluator is a function of
(schedule, instant). The store and the REST API hold a schedule as
its document (``schedule_document``) and rebuild it with ``Schedule.from_dict()``.
"""

from snoozeql.domain.schedules.custodian import CUSTODIAN_TZ_ALIASES, import_custodian
from snoozeql.domain.schedules.evaluator import (
    DEFAULT_HORIZON,
    Decision,
    Segment,
    Transition,
    desired_state,
    next_transition,
    preview,
)
from snoozeql.domain.schedules.instance_scheduler import ImportResult, import_instance_scheduler
from snoozeql.domain.schedules.model import (
    DesiredState,
    ExceptionDate,
    Period,
    Schedule,
    period_document,
    schedule_document,
)

__all__ = [
    "CUSTODIAN_TZ_ALIASES",
    "DEFAULT_HORIZON",
    "Decision",
    "DesiredState",
    "ExceptionDate",
    "ImportResult",
    "Period",
    "Schedule",
    "Segment",
    "Transition",
    "desired_state",
    "import_custodian",
    "import_instance_scheduler",
    "next_transition",
    "period_document",
    "preview",
    "schedule_document",
]
