"""Runs of background tasks (``job_runs``): started, finished, listed.

Both ways of running the background work write here: the in-process runner of the
embedded default and the queue workers on PostgreSQL. A run a dead worker left
``running`` is marked ``abandoned`` when the queue hands its job to another worker
(:func:`abandon_job`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import sqlalchemy as sa

from snoozeql.store.schema import metadata
from snoozeql.store.types import JSONType, UTCDateTime

# Runs of background tasks, one row per run, for `snoozeql jobs list` and
# GET /api/v1/jobs: written by the in-process runner (SQLite, or PostgreSQL without a
# queue) and by queue workers alike, so both show the same shape. ``job_id`` is the
# queue's job id (None in process); ``attempt`` counts from 0 (a retry is > 0).
job_runs = sa.Table(
    "job_runs",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("task", sa.String(64), nullable=False),
    sa.Column("args", JSONType, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("worker", sa.String(160), nullable=False),
    sa.Column("job_id", sa.BigInteger),
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("started_at", UTCDateTime, nullable=False),
    sa.Column("finished_at", UTCDateTime),
    sa.Column("error", sa.Text),
    sa.Index("ix_job_runs_started", "started_at"),
    sa.Index("ix_job_runs_job", "job_id"),
)


#: Statuses a run can have. ``queued`` is never stored: the listing shows the queue's
#: waiting jobs with it.
STATUSES = ("queued", "running", "succeeded", "failed", "abandoned")

#: Runs older than this are removed when new ones finish.
KEEP = timedelta(days=7)


@dataclass(frozen=True)
class JobRun:
    id: UUID | None
    task: str
    args: dict[str, Any]
    status: str
    worker: str | None
    job_id: int | None
    attempt: int
    started_at: datetime | None
    finished_at: datetime | None
    error: str | None
    #: When a queued job may run (queued rows only).
    scheduled_at: datetime | None = None

    @property
    def seconds(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()


def start(conn: sa.Connection, *, task: str, args: dict[str, Any], worker: str,
          now: datetime, job_id: int | None = None, attempt: int = 0) -> UUID:
    run_id = uuid4()
    conn.execute(job_runs.insert().values(
        id=run_id, task=task, args=args, status="running", worker=worker[:160],
        job_id=job_id, attempt=attempt, started_at=now,
    ))
    return run_id


def finish(conn: sa.Connection, run_id: UUID, now: datetime, error: str | None) -> None:
    conn.execute(
        job_runs.update()
        .where(job_runs.c.id == run_id, job_runs.c.status == "running")
        .values(status="failed" if error else "succeeded", finished_at=now,
                error=error[:2000] if error else None)
    )
    conn.execute(job_runs.delete().where(job_runs.c.started_at < now - KEEP))


def abandon_job(conn: sa.Connection, job_id: int, now: datetime, note: str) -> int:
    """Mark the running rows of queue job ``job_id`` abandoned (their worker died)."""
    return conn.execute(job_runs.update()
                        .where(job_runs.c.job_id == job_id, job_runs.c.status == "running")
                        .values(status="abandoned", finished_at=now, error=note)).rowcount


def abandon_worker(conn: sa.Connection, worker: str, now: datetime, note: str) -> int:
    """Mark every running row of ``worker`` abandoned (the in-process runner at start)."""
    return conn.execute(job_runs.update()
                        .where(job_runs.c.worker == worker, job_runs.c.status == "running")
                        .values(status="abandoned", finished_at=now, error=note)).rowcount


def abandon_task(conn: sa.Connection, task: str, but: str, now: datetime, note: str) -> int:
    """Mark the running rows of ``task`` not run by ``but`` abandoned (the in-process
    runner, on winning a claim a dead holder left)."""
    return conn.execute(job_runs.update()
                        .where(job_runs.c.task == task, job_runs.c.status == "running",
                               job_runs.c.worker != but)
                        .values(status="abandoned", finished_at=now, error=note)).rowcount


def page(conn: sa.Connection, *, limit: int, before: tuple[datetime, UUID] | None = None,
         task: str | None = None, status: str | None = None) -> list[JobRun]:
    """Runs, newest first (running ones are the newest of theirs), keyset paged."""
    q = sa.select(job_runs)
    if task:
        q = q.where(job_runs.c.task == task)
    if status:
        q = q.where(job_runs.c.status == status)
    if before is not None:
        at, rid = before
        q = q.where(sa.or_(job_runs.c.started_at < at,
                           sa.and_(job_runs.c.started_at == at, job_runs.c.id < rid)))
    q = q.order_by(job_runs.c.started_at.desc(), job_runs.c.id.desc()).limit(limit)
    rows = conn.execute(q).all()
    return [JobRun(r.id, r.task, dict(r.args or {}), r.status, r.worker, r.job_id, r.attempt,
                   r.started_at, r.finished_at, r.error) for r in rows]


def get(conn: sa.Connection, run_id: UUID) -> JobRun | None:
    r = conn.execute(sa.select(job_runs).where(job_runs.c.id == run_id)).first()
    if r is None:
        return None
    return JobRun(r.id, r.task, dict(r.args or {}), r.status, r.worker, r.job_id, r.attempt,
                  r.started_at, r.finished_at, r.error)


def queued(conn: sa.Connection, *, limit: int, task: str | None = None) -> list[JobRun]:
    """Jobs waiting in the queue (PostgreSQL with procrastinate's schema only)."""
    if conn.dialect.name != "postgresql":
        return []
    sql = ("SELECT id, task_name, args, attempts, scheduled_at FROM procrastinate_jobs "
           "WHERE status = 'todo'" + (" AND task_name = :task" if task else "") +
           " ORDER BY coalesce(scheduled_at, now()), id LIMIT :limit")
    params: dict[str, Any] = {"limit": limit}
    if task:
        params["task"] = task
    rows = conn.execute(sa.text(sql), params).all()
    return [JobRun(None, r.task_name, {k: v for k, v in dict(r.args or {}).items()
                                       if k != "timestamp"},
                   "queued", None, r.id, r.attempts, None, None, None, r.scheduled_at)
            for r in rows]


def waiting_job(conn: sa.Connection, queueing_lock: str) -> int | None:
    """The id of the queue's job waiting under ``queueing_lock`` (procrastinate's
    schema), if one still waits."""
    found = conn.execute(sa.text(
        "SELECT id FROM procrastinate_jobs WHERE queueing_lock = :k AND status = 'todo'"),
        {"k": queueing_lock}).scalar()
    return None if found is None else int(found)
