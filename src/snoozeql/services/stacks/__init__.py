"""Stacks and service instances (see :mod:`snoozeql.services.stacks.stacks`).

Split by seam: ``stacks.py`` (stack CRUD, restore, delete preview), ``instances.py``
(instance CRUD and overrides), ``apply.py`` (export, plan, apply, down, live state),
``base.py`` (shared base, constants, host-path rules) and ``views.py`` (what the service
answers with). The runtime glue lives in ``providers/local/runtimes.py``; the runtime
values and protocol in ``domain/stacks/runtime.py``. The public names are re-exported
here, so ``from snoozeql.services.stacks import StackService`` keeps working.
"""

from snoozeql.domain.stacks.runtime import UP_STATES, DesiredUnit, LiveState, StackRuntime
from snoozeql.services.stacks.base import (
    RUNTIME_PASSWORD,
    SECRET_SCOPE,
    _same_time,
    check_host_paths,
    container_prefix,
    local_runtimes,
    stack_data_dir,
)
from snoozeql.services.stacks.stacks import StackService
from snoozeql.services.stacks.views import (
    InstanceView,
    Plan,
    PlanAction,
    PlanItem,
    Progress,
    StackView,
    StepResult,
)

__all__ = [
    "RUNTIME_PASSWORD",
    "SECRET_SCOPE",
    "UP_STATES",
    "DesiredUnit",
    "InstanceView",
    "LiveState",
    "Plan",
    "PlanAction",
    "PlanItem",
    "Progress",
    "StackRuntime",
    "StackService",
    "StackView",
    "StepResult",
    "_same_time",
    "check_host_paths",
    "container_prefix",
    "local_runtimes",
    "stack_data_dir",
]
