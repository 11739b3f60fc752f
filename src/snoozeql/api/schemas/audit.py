"""Bodies of ``/api/v1/audit`` (and of ``snoozeql audit list --json``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel, Field

from snoozeql.store.actions import ActionRecord


class AuditEntryOut(BaseModel):
    """One change: who made it, to which object, and the object's redacted JSON form
    before and after it (services/audit.py redacts it when the entry is written)."""

    id: UUID
    at: datetime
    actor: str = Field(description="API key name, or cli")
    action: str = Field(examples=["update"])
    object_kind: str | None = Field(examples=["account"])
    object_id: str | None
    object_name: str | None
    reason: str
    before: Any = Field(description="the object before the change; null for a create")
    after: Any = Field(description="the object after the change; null for a delete")

    @classmethod
    def of(cls, r: ActionRecord) -> AuditEntryOut:
        return cls(
            id=r.id, at=r.at, actor=r.actor, action=r.action, object_kind=r.object_kind,
            object_id=r.object_id, object_name=r.object_name, reason=r.reason,
            before=r.before, after=r.after,
        )
