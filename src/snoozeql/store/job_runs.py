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

from snoozeql.store.tables import job_runs as t

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
    conn.execute(t.insert().values(
        id=run_id, task=task, args=args, status="running", worker=worker[:160],
        job_id=job_id, attempt=attempt, started_at=now,
    ))
    return run_id


def finish(conn: sa.Connection, run_id: UUID, now: datetime, error: str | None) -> None:
    conn.execute(t.update().where(t.c.id == run_id, t.c.status == "running").values(
        status="failed" if error else "succeeded", finished_at=now,
        error=error[:2000] if error else None,
    ))
    conn.execute(t.delete().where(t.c.started_at < now - KEEP))


def abandon_job(conn: sa.Connection, job_id: int, now: datetime, note: str) -> int:
    """Mark the running rows of queue job ``job_id`` abandoned (their worker died)."""
    return conn.execute(t.update().where(t.c.job_id == job_id, t.c.status == "running")
                        .values(status="abandoned", finished_at=now, error=note)).rowcount


def abandon_worker(conn: sa.Connection, worker: str, now: datetime, note: str) -> int:
    """Mark every running row of ``worker`` abandoned (the in-process runner at start)."""
    return conn.execute(t.update().where(t.c.worker == worker, t.c.status == "running")
                        .values(status="abandoned", finished_at=now, error=note)).rowcount


def abandon_task(conn: sa.Connection, task: str, but: str, now: datetime, note: str) -> int:
    """Mark the running rows of ``task`` not run by ``but`` abandoned (the in-process
    runner, on winning a claim a dead holder left)."""
    return conn.execute(t.update().where(t.c.task == task, t.c.status == "running",
                                         t.c.worker != but)
                        .values(status="abandoned", finished_at=now, error=note)).rowcount


def page(conn: sa.Connection, *, limit: int, before: tuple[datetime, UUID] | None = None,
         task: str | None = None, status: str | None = None) -> list[JobRun]:
    """Runs, newest first (running ones are the newest of theirs), keyset paged."""
    q = sa.select(t)
    if task:
        q = q.where(t.c.task == task)
    if status:
        q = q.where(t.c.status == status)
    if before is not None:
        at, rid = before
        q = q.where(sa.or_(t.c.started_at < at, sa.and_(t.c.started_at == at, t.c.id < rid)))
    rows = conn.execute(q.order_by(t.c.started_at.desc(), t.c.id.desc()).limit(limit)).all()
    return [JobRun(r.id, r.task, dict(r.args or {}), r.status, r.worker, r.job_id, r.attempt,
                   r.started_at, r.finished_at, r.error) for r in rows]


def get(conn: sa.Connection, run_id: UUID) -> JobRun | None:
    r = conn.execute(sa.select(t).where(t.c.id == run_id)).first()
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
