"""``/api/v1/jobs``: runs of background tasks, and a task now (operator)."""

from __future__ import annotations

from fastapi import APIRouter, Query

from snoozeql.api.deps import CtxDep, Operator, Viewer
from snoozeql.api.schemas.jobs import JobPageOut, JobRunIn, JobRunOut, JobStartedOut
from snoozeql.services.jobs import JobService

router = APIRouter(prefix="/jobs", tags=["jobs"])


@router.get("", response_model=JobPageOut,
            summary="Queued tasks (PostgreSQL), then runs newest first")
def list_jobs(
    ctx: CtxDep,
    _: Viewer,
    task: str | None = Query(None, max_length=64, description="only this task",
                             examples=["sync-account"]),
    status: str | None = Query(None, description="queued, running, succeeded, failed, "
                               "abandoned"),
    limit: int = Query(50, ge=1, le=500),
    cursor: str | None = Query(None, max_length=200,
                               description="next_cursor of the previous page"),
) -> JobPageOut:
    page = JobService(ctx).list(limit=limit, cursor=cursor, task=task, status=status)
    return JobPageOut(items=[JobRunOut.of(r) for r in page.items],
                      next_cursor=page.next_cursor)


@router.post("", response_model=JobStartedOut, status_code=202,
             summary="Run a task now: queued for a worker, or run in this process (SQLite)")
def run_job(body: JobRunIn, ctx: CtxDep, _: Operator) -> JobStartedOut:
    from snoozeql.jobs.dispatch import run_now

    return JobStartedOut.of(run_now(ctx, body.kind, body.account, wait=False))
