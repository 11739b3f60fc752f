"""What the stacks service answers with: stack and instance views, delete previews,
secrets, plans and step results. Plain values: ``api/schemas/stacks.py`` turns them
into JSON (secret values masked) for the API, the CLI and the dashboard.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from snoozeql.domain.stacks import Override


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


@dataclass(frozen=True)
class InstanceView:
    """An instance as shown: its overrides in kind order, derived container name."""

    id: UUID
    stack: str
    name: str
    template: str
    description: str
    enabled: bool
    container_name: str
    override_count: int
    overrides: tuple[Override, ...]
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class PreviewInstance:
    """One instance a stack delete takes away."""

    name: str
    template: str
    enabled: bool
    override_count: int


@dataclass(frozen=True)
class AppliedObject:
    """A runtime object apply brought up; ``state`` measured now (stack preview) or as
    recorded (instance preview, where ``instance`` is None)."""

    runtime_name: str
    runtime: str
    state: str
    instance: str | None = None


@dataclass(frozen=True)
class StackDeletePreview:
    stack: str
    instances: list[PreviewInstance]
    applied: list[AppliedObject]
    running: list[str]
    note: str


@dataclass(frozen=True)
class InstanceDeletePreview:
    stack: str
    instance: str
    container_name: str
    enabled: bool
    overrides: dict[str, int]
    override_count: int
    secret_env_vars: list[str]
    volumes: list[str]
    applied: list[AppliedObject]
    note: str


@dataclass(frozen=True)
class SecretValue:
    key: str
    value: str | None
    source: str


@dataclass(frozen=True)
class InstanceSecrets:
    """An instance's secret values in clear: for the operator who runs it only."""

    stack: str
    instance: str
    container_name: str
    engine: str | None
    env_vars: list[SecretValue]
    database_password: str | None
    database_password_from: str | None


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


@dataclass(frozen=True)
class Plan:
    stack: str
    items: list[PlanItem]

    @property
    def changes(self) -> int:
        return sum(1 for i in self.items if i.action in ("create", "start", "update", "remove"))


@dataclass(frozen=True)
class StepResult:
    action: str
    instance: str
    runtime_name: str
    ok: bool
    status: str | None
    detail: str | None
