"""Request and response bodies of /api/v1/jobs."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field

from snoozeql.services.jobs import JobRun

if TYPE_CHECKING:
    from snoozeql.jobs.dispatch import Started


class JobRunOut(BaseModel):
    id: str | None = Field(description="the run's id; null for a task still queued")
    task: str = Field(examples=["sync-account"])
    args: dict[str, Any]
    status: Literal["queued", "running", "succeeded", "failed", "abandoned"]
    worker: str | None = Field(description="host:pid[:name] of the process that ran it")
    job_id: int | None = Field(description="the queue's job id (PostgreSQL)")
    retries: int = Field(description="earlier attempts of this task (0: first)")
    started_at: datetime | None
    finished_at: datetime | None
    duration_s: float | None
    error: str | None
    scheduled_at: datetime | None = Field(description="queued: not before this time")

    @classmethod
    def of(cls, r: JobRun) -> JobRunOut:
        return cls(
            id=str(r.id) if r.id else None, task=r.task, args=r.args,
            status=r.status,  # type: ignore[arg-type]
            worker=r.worker, job_id=r.job_id, retries=r.attempt, started_at=r.started_at,
            finished_at=r.finished_at,
            duration_s=round(r.seconds, 3) if r.seconds is not None else None,
            error=r.error, scheduled_at=r.scheduled_at,
        )


class JobPageOut(BaseModel):
    items: list[JobRunOut]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page")


class JobRunIn(BaseModel):
    kind: Literal["sync"] = Field(description="what to run: `sync` an account")
    account: str = Field(min_length=1, max_length=255, description="account name or id")


class JobStartedOut(BaseModel):
    task: str
    args: dict[str, Any]
    status: Literal["queued", "already_queued", "running", "succeeded", "failed"] = Field(
        description="queued for a worker (PostgreSQL), already waiting there, or running "
        "in the API's process (SQLite)")
    job_id: int | None
    run_id: str | None

    @classmethod
    def of(cls, s: Started) -> JobStartedOut:
        return cls(task=s.task, args=s.args, status=s.status,  # type: ignore[arg-type]
                   job_id=s.job_id, run_id=str(s.run_id) if s.run_id else None)
