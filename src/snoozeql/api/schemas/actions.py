"""Bodies of ``/api/v1/actions`` (the action log)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel, Field

from snoozeql.store.actions import ActionRecord


class ActionOut(BaseModel):
    id: UUID
    at: datetime
    finished_at: datetime | None
    actor: str
    action: str
    instance_id: UUID | None
    instance_name: str | None
    provider: str | None
    reason: str
    result: str = Field(description="ok | failed | refused | dry_run | unknown, or pending "
                        "while the provider call runs")
    outcome: str = Field(description="the result as people read it, e.g. "
                         "'ok (confirmed after takeover)'")
    error: str | None
    details: dict[str, Any]

    @classmethod
    def of(cls, r: ActionRecord) -> ActionOut:
        fields = {k: v for k, v in r.__dict__.items() if k in cls.model_fields}
        return cls(**fields, outcome=r.outcome)
