"""Reading the action log."""

from __future__ import annotations

from datetime import datetime

from snoozeql.domain.errors import ValidationError
from snoozeql.domain.validation import filter_text, iso_instant
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
        since: datetime | str | None = None,
        until: datetime | str | None = None,
        limit: int = 100,
    ) -> list[ActionRecord]:
        """``since``/``until``: ISO 8601 dates or times (UTC when no offset is given);
        numbers are refused rather than read as Unix timestamps."""
        if not 1 <= limit <= 1000:
            raise ValidationError("limit must be between 1 and 1000")
        for what, value in (("instance", instance), ("action", action), ("result", result),
                            ("actor", actor)):
            filter_text(value, what)
        since = iso_instant(since, "since", naive_is_utc=True) if since is not None else None
        until = iso_instant(until, "until", naive_is_utc=True) if until is not None else None
        instance_id = InventoryService(self.ctx).get(instance).id if instance else None
        with self.ctx.engine.connect() as conn:
            return store.list_recent(
                conn, instance_id=instance_id, action=action, result=result, actor=actor,
                since=since, until=until, limit=limit,
            )
