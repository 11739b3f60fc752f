"""``snoozeql jobs run`` and ``POST /api/v1/jobs``: a task now, on the queue or here.

On PostgreSQL the task is deferred to the queue (a worker runs it, usually within a
second); if the same task already waits there, nothing more is queued and the waiting
job is named. On the embedded SQLite store there is no queue: the task runs in this
process (the CLI waits for it; the API answers at once and runs it in a thread), and
its run is recorded like the runner's.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from snoozeql.domain.errors import ValidationError
from snoozeql.jobs import tasks
from snoozeql.jobs.queue import defer_unit, queue_enabled
from snoozeql.services.accounts import AccountService
from snoozeql.services.context import Context
from snoozeql.services.leases import new_owner
from snoozeql.store import job_runs as run_store

log = logging.getLogger(__name__)

#: What can be run now: kind -> whether it names an account.
KINDS = {"sync": True}


@dataclass(frozen=True)
class Started:
    task: str
    args: dict[str, Any]
    #: ``queued`` (deferred to the queue), ``already_queued``, ``running`` (in a thread
    #: here), ``succeeded`` or ``failed`` (ran here, waited for).
    status: str
    job_id: int | None = None
    run_id: UUID | None = None
    error: str | None = None


def unit_for(ctx: Context, kind: str, account: str | None) -> tasks.Unit:
    if kind not in KINDS:
        raise ValidationError(f"unknown task kind {kind!r}; one of: {', '.join(KINDS)}")
    if not account:
        raise ValidationError(f"`{kind}` needs an account (name or id)")
    acc = AccountService(ctx).get(account)  # NotFoundError if unknown
    return tasks.Unit("sync-account", {"account_id": str(acc.id)}, f"sync:{acc.id}", "sync")


def run_now(ctx: Context, kind: str, account: str | None, *, wait: bool) -> Started:
    unit = unit_for(ctx, kind, account)
    if queue_enabled(ctx):
        d = defer_unit(ctx, unit)
        return Started(unit.task, unit.args, "already_queued" if d.already_queued
                       else "queued", job_id=d.job_id)
    worker = new_owner()
    with ctx.engine.begin() as conn:
        run_id = run_store.start(conn, task=unit.task, args=unit.args, worker=worker,
                                 now=ctx.now())

    def run() -> str | None:
        error = None
        try:
            with ctx.telemetry.task(unit.task):
                tasks.UNITS[unit.task](ctx, **unit.args)
        except Exception as exc:  # noqa: BLE001 - recorded on the run
            error = f"{type(exc).__name__}: {exc}"
        with ctx.engine.begin() as conn:
            run_store.finish(conn, run_id, ctx.now(), error)
        return error

    if wait:
        error = run()
        return Started(unit.task, unit.args, "failed" if error else "succeeded",
                       run_id=run_id, error=error)
    threading.Thread(target=run, name=f"run-{unit.task}", daemon=True).start()
    return Started(unit.task, unit.args, "running", run_id=run_id)
