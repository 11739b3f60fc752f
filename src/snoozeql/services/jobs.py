"""What the background work did and does: runs of tasks, newest first, paged.

One shape for both ways of running it: the in-process runner of the embedded default
and the queue's workers on PostgreSQL write their runs to ``job_runs``; on PostgreSQL
the tasks waiting in the queue are listed first (status ``queued``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from snoozeql.domain.errors import ValidationError
from snoozeql.services.context import Context
from snoozeql.store import job_runs as store
from snoozeql.store.job_runs import STATUSES, JobRun

__all__ = ["JobPage", "JobRun", "JobService"]


@dataclass(frozen=True)
class JobPage:
    items: list[JobRun]
    next_cursor: str | None


class JobService:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def list(self, *, limit: int = 50, cursor: str | None = None, task: str | None = None,
             status: str | None = None) -> JobPage:
        """Queued tasks (first page only), then runs newest first."""
        if not 1 <= limit <= 500:
            raise ValidationError("limit must be between 1 and 500")
        if status is not None and status not in STATUSES:
            raise ValidationError(f"unknown status {status!r}; statuses are "
                                  f"{', '.join(STATUSES)}")
        before = _parse_cursor(cursor) if cursor else None
        items: list[JobRun] = []
        with self.ctx.engine.connect() as conn:
            if before is None and status in (None, "queued"):
                items.extend(store.queued(conn, limit=limit, task=task))
            if status != "queued" and len(items) < limit:
                items.extend(store.page(conn, limit=limit - len(items) + 1, before=before,
                                        task=task, status=status))
        more = len(items) > limit
        items = items[:limit]
        last = items[-1] if items else None
        next_cursor = (f"{last.started_at.isoformat()}|{last.id}"
                       if more and last is not None and last.id and last.started_at
                       else None)
        return JobPage(items, next_cursor)


def _parse_cursor(text: str) -> tuple[datetime, UUID]:
    try:
        at, rid = text.rsplit("|", 1)
        return datetime.fromisoformat(at), UUID(rid)
    except ValueError:
        raise ValidationError("cursor is not a next_cursor of this listing") from None
