"""Reading the action log."""

from __future__ import annotations

from datetime import datetime

from snoozeql.domain.errors import ValidationError
from snoozeql.services.context import Context
from snoozeql.services.inventory import InventoryService
from snoozeql.store import actions as store
from snoozeql.store.actions import ActionRecord


class ActionLogService:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def list(
        self,
        *,
        instance: str | None = None,
        action: str | None = None,
        result: str | None = None,
        actor: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
    ) -> list[ActionRecord]:
        if not 1 <= limit <= 1000:
            raise ValidationError("limit must be between 1 and 1000")
        instance_id = InventoryService(self.ctx).get(instance).id if instance else None
        with self.ctx.engine.connect() as conn:
            return store.list_recent(
                conn, instance_id=instance_id, action=action, result=result, actor=actor,
                since=since, until=until, limit=limit,
            )
