"""What the stacks service answers with: stack and instance views, plans, step results.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal
from uuid import UUID


@dataclass(frozen=True)
class StackView:
    id: UUID
    name: str
    description: str
    instance_count: int
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None
    last_applied_at: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": str(self.id), "name": self.name, "description": self.description,
            "instance_count": self.instance_count, "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
            "deleted_at": self.deleted_at.isoformat() if self.deleted_at else None,
            "last_applied_at": (self.last_applied_at.isoformat()
                                if self.last_applied_at else None),
        }


@dataclass(frozen=True)
class InstanceView:
    """An instance as shown: overrides redacted, derived container name."""

    id: UUID
    stack: str
    name: str
    template: str
    description: str
    enabled: bool
    container_name: str
    override_count: int
    overrides: list[dict[str, Any]]
    created_at: datetime
    updated_at: datetime

    def to_dict(self, with_overrides: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": str(self.id), "stack": self.stack, "name": self.name,
            "template": self.template, "description": self.description,
            "enabled": self.enabled, "container_name": self.container_name,
            "override_count": self.override_count,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
        }
        if with_overrides:
            out["overrides"] = self.overrides
        return out



# "stop" is a step of down, never a plan item
PlanAction = Literal["create", "start", "update", "remove", "unchanged", "refused", "stop"]
# progress(event, data): ("plan", [PlanItem]), ("begin", PlanItem), ("end", StepResult)
Progress = Callable[[str, Any], None]


@dataclass(frozen=True)
class PlanItem:
    action: PlanAction
    instance: str
    runtime_name: str
    runtime: str | None
    reason: str
    changes: dict[str, Any] = field(default_factory=dict)
    # the runtime object's state measured while planning (None: nothing applied yet)
    state: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "action": self.action, "instance": self.instance,
            "runtime_name": self.runtime_name, "runtime": self.runtime,
            "reason": self.reason, "changes": self.changes, "state": self.state,
        }


@dataclass(frozen=True)
class Plan:
    stack: str
    items: list[PlanItem]

    @property
    def changes(self) -> int:
        return sum(1 for i in self.items if i.action in ("create", "start", "update", "remove"))

    def to_dict(self) -> dict[str, Any]:
        return {
            "stack": self.stack, "changes": self.changes,
            "items": [i.to_dict() for i in self.items],
        }


@dataclass(frozen=True)
class StepResult:
    action: str
    instance: str
    runtime_name: str
    ok: bool
    status: str | None
    detail: str | None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)
