"""The job queue of a PostgreSQL deployment, on procrastinate.

Workers (``snoozeql worker``, or the worker inside ``snoozeql serve`` without
``--no-jobs``) run the task functions of :mod:`snoozeql.jobs.tasks`:

* **Periodic jobs** are procrastinate periodic tasks, one per entry of
  :func:`snoozeql.jobs.catalogue.plans`, with a cron made from its interval setting
  (:func:`cron_for`). Every worker runs procrastinate's periodic deferrer, and the
  store keeps one deferral per (task, period) whatever the number of workers. A
  periodic task is a *tick*: it cuts its work into units (``tasks.plan_*``) and defers
  one task per unit, each with a queueing lock (never two of them waiting) and a lock
  (never two of them running).
* **Retries**: a unit that failed while its provider was still throttling
  (``tasks.ProviderThrottled``) is retried with exponential backoff, up to
  ``SNOOZEQL_TASK_MAX_ATTEMPTS`` attempts.
* **Dead workers**: every worker sends a heartbeat each
  ``SNOOZEQL_WORKER_HEARTBEAT_SECONDS``; the ``retry-stalled`` periodic task (every
  few seconds) queues again the running tasks of workers silent for
  ``SNOOZEQL_WORKER_STALLED_SECONDS``, so another worker runs them. A re-run is safe:
  a sync is an upsert, a collection writes hourly aggregates, and a reconcile's actions
  are exactly-once through the claims and intents in the store (a dead worker's
  intents are resolved by the next reconcile).

Every run of a task is written to ``job_runs`` (``snoozeql jobs list``), counted and
timed on the worker's series (``/metrics`` on ``--metrics-port``) and logged as one
line with its task id.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import procrastinate
from procrastinate import exceptions as pexc
from procrastinate.job_context import JobContext
from procrastinate.jobs import Status

from snoozeql.domain.errors import ConflictError, ValidationError
from snoozeql.jobs import tasks
from snoozeql.jobs.catalogue import plans
from snoozeql.services.context import Context
from snoozeql.store import job_runs as run_store

log = logging.getLogger(__name__)

#: How often the ``retry-stalled`` task looks for the tasks of dead workers.
STALLED_CHECK_CRON = "* * * * * */5"
MAINTENANCE = "maintenance"


def queue_enabled(ctx: Context) -> bool:
    """Whether this store has a queue: PostgreSQL only (SQLite runs jobs in process)."""
    return ctx.engine.dialect.name == "postgresql"


def require_queue(ctx: Context | str, what: str) -> None:
    """Refuse ``what`` unless the store has a queue. ``ctx`` may be the store's URL, so a
    command can refuse before it opens (and makes or migrates) the store."""
    if isinstance(ctx, str):
        has_queue = ctx.split(":", 1)[0].split("+", 1)[0] in ("postgresql", "postgres")
    else:
        has_queue = queue_enabled(ctx)
    if not has_queue:
        raise ValidationError(
            f"{what} needs PostgreSQL (SNOOZEQL_DATABASE_URL=postgresql://...): with the "
            "embedded SQLite store, `snoozeql serve` runs the background jobs in its own "
            "process"
        )


def cron_for(interval: timedelta) -> str:
    """A cron (seconds as a 6th field) that fires at least once per ``interval``.

    An interval that divides a minute, an hour or a day fires exactly every interval;
    one that does not (e.g. 45 s) fires on the multiples of it within each minute
    (hour, day), so the last gap of each is shorter, never longer."""
    seconds = max(1, int(interval.total_seconds()))
    if seconds < 60:
        return f"* * * * * */{seconds}"
    if seconds < 3600:
        return f"*/{seconds // 60} * * * *"
    if seconds < 86400:
        return f"0 */{seconds // 3600} * * *"
    return "0 0 * * *"


def conninfo(ctx: Context) -> str:
    """The store's URL in libpq form (procrastinate uses psycopg 3 directly)."""
    url = ctx.engine.url.set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


def worker_label(name: str | None = None) -> str:
    """What ``jobs list`` shows as a run's worker: host:pid[:name]."""
    base = f"{socket.gethostname()}:{os.getpid()}"
    return f"{base}:{name}" if name else base


# ------------------------------------------------------------------ the app


def build_app(ctx: Context, *, pool_size: int = 4) -> procrastinate.App:
    """A procrastinate app with every SnoozeQL task and periodic task registered."""
    s = ctx.settings
    connector = procrastinate.PsycopgConnector(
        conninfo=conninfo(ctx), min_size=1, max_size=max(2, pool_size),
    )
    app = procrastinate.App(connector=connector,
                            periodic_defaults={"max_delay": 600})
    retry = procrastinate.RetryStrategy(
        max_attempts=s.task_max_attempts - 1 if s.task_max_attempts > 1 else 0,
        exponential_wait=3, retry_exceptions={tasks.ProviderThrottled},
    ) if s.task_max_attempts > 1 else None
    periodic = plans(ctx)
    # A tick takes its job's name; a unit of the same name runs in process only
    # (``analyse-activity``: the queue analyses in ``analyse-batch`` tasks instead).
    ticks = {name for name, _, plan in periodic if getattr(plan, "single", None) is None}
    units = {name: app.task(name=name, queue=tasks.UNIT_QUEUES[name], pass_context=True,
                            retry=retry or False)(_unit_task(name))
             for name in tasks.UNITS if name not in ticks}
    for name, interval, plan in periodic:
        cron = cron_for(interval)
        if getattr(plan, "single", None) in units:  # one unit: deferred itself
            app.periodic(cron=cron, periodic_id=name, queueing_lock=name,
                         lock=name)(units[name])  # type: ignore[arg-type]
            continue
        tick = app.task(name=name, queue=_tick_queue(name), pass_context=True,
                        queueing_lock=name, lock=name)(_tick_task(name, plan))
        app.periodic(cron=cron, periodic_id=name)(tick)  # type: ignore[arg-type]
    stalled = app.task(name="retry-stalled", queue=MAINTENANCE, pass_context=True,
                       queueing_lock="retry-stalled", lock="retry-stalled")(_retry_stalled)
    app.periodic(cron=STALLED_CHECK_CRON, periodic_id="retry-stalled")(stalled)  # type: ignore[arg-type]
    return app


def _tick_queue(name: str) -> str:
    return {"sync-accounts": "sync", "collect-metrics": "metrics",
            "analyse-activity": "metrics", "reconcile-schedules": "reconcile"}.get(
        name, MAINTENANCE)


def _ctx_of(job: JobContext) -> Context:
    ctx = job.additional_context.get("snoozeql")
    if ctx is None:  # a worker not started by run_worker
        raise RuntimeError("SnoozeQL task run outside a SnoozeQL worker")
    return ctx  # type: ignore[no-any-return]


def _unit_task(name: str) -> Callable[..., Any]:
    def run(job: JobContext, **kwargs: Any) -> Any:
        ctx = _ctx_of(job)
        kwargs.pop("timestamp", None)  # a periodic deferral's (the unit is the job)
        args = dict(kwargs)
        if name == "sync-account" and job.job.attempts > 0:
            args["takeover"] = True  # the first attempt's worker is gone or failed
        return _recorded(ctx, job, name, kwargs,
                         lambda: tasks.UNITS[name](ctx, **args))

    run.__name__ = run.__qualname__ = name.replace("-", "_")
    return run


def _tick_task(name: str, plan: Callable[[Context], list[tasks.Unit]]) -> Callable[..., Any]:
    def tick(job: JobContext, timestamp: int) -> Any:
        ctx = _ctx_of(job)
        return _recorded(ctx, job, name, {"timestamp": timestamp},
                         lambda: defer_units(ctx, plan(ctx), app=job.app))

    tick.__name__ = tick.__qualname__ = name.replace("-", "_")
    return tick


def _recorded(ctx: Context, job: JobContext, name: str, args: dict[str, Any],
              fn: Callable[[], Any]) -> Any:
    """Run ``fn`` as one run of ``name``: a ``job_runs`` row, series, one log line."""
    worker = worker_label(job.worker_name)
    with ctx.engine.begin() as conn:
        run_id = run_store.start(conn, task=name, args=args, worker=worker, now=ctx.now(),
                                 job_id=job.job.id, attempt=job.job.attempts)
    error: str | None = None
    try:
        with ctx.telemetry.task(name, retry=job.job.attempts > 0) as run:
            run.fields.update(job_id=job.job.id, worker=worker)
            try:
                result = fn()
                if isinstance(result, dict):  # a tick's counts: in the worker's log line
                    run.fields.update(result)
                    return result
                return None  # the run's fields are in our log line already
            except ConflictError as exc:  # e.g. the account is synced from the dashboard
                run.fields["skipped"] = exc.message
                return None
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        with ctx.engine.begin() as conn:
            run_store.finish(conn, run_id, ctx.now(), error)


def defer_units(ctx: Context, units: list[tasks.Unit], *, app: procrastinate.App
                ) -> dict[str, int]:
    """Defer one task per unit; a unit whose task already waits is not deferred again.
    Returns counts: deferred, already queued."""
    counts = {"deferred": 0, "already_queued": 0}
    for unit in units:
        try:
            app.configure_task(name=unit.task, queue=unit.queue, lock=unit.key,
                               queueing_lock=unit.key).defer(**unit.args)
            counts["deferred"] += 1
        except pexc.AlreadyEnqueued:
            counts["already_queued"] += 1
    return counts


async def _retry_stalled(job: JobContext, timestamp: int) -> int:
    """Queue again the running tasks of workers whose heartbeat stopped."""
    ctx = _ctx_of(job)
    manager = job.app.job_manager
    stalled = await manager.get_stalled_jobs(
        seconds_since_heartbeat=ctx.settings.worker_stalled_seconds)
    handed = 0
    for found in stalled:
        if found.id is None or found.id == job.job.id:
            continue
        note = "its worker stopped answering; queued again for another worker"
        try:
            await manager.retry_job(found)
        except pexc.ConnectorException:
            # The same unit already waits (its next period): that one does the work.
            await manager.finish_job_by_id_async(
                found.id, status=Status.FAILED, delete_job=False)
            note = "its worker stopped answering; the next queued run does its work"
        await asyncio.to_thread(_abandon, ctx, found.id, note)
        log.warning("task %s (job %s) of a dead worker: %s", found.task_name, found.id, note)
        handed += 1
    return handed


def _abandon(ctx: Context, job_id: int, note: str) -> None:
    with ctx.engine.begin() as conn:
        run_store.abandon_job(conn, job_id, ctx.now(), note)


# ------------------------------------------------------------------ deferring now


@dataclass(frozen=True)
class Deferred:
    task: str
    job_id: int | None
    already_queued: bool


_DEFERRER = "queue_deferrer"  # ctx.memo key: the opened app that defers from this process
_DEFERRER_LOCK = threading.Lock()


def deferrer(ctx: Context) -> procrastinate.App:
    """An app opened for deferring from synchronous code (API, CLI), made once."""
    with _DEFERRER_LOCK:
        app = ctx.memo.get(_DEFERRER)
        if app is None:
            app = build_app(ctx, pool_size=2)
            app.open()
            ctx.memo[_DEFERRER] = app
        return app  # type: ignore[no-any-return]


def close_deferrer(ctx: Context) -> None:
    with _DEFERRER_LOCK:
        app = ctx.memo.pop(_DEFERRER, None)
    if app is not None:
        app.close()


def defer_unit(ctx: Context, unit: tasks.Unit) -> Deferred:
    """Defer one unit now (``jobs run``); if it already waits, say so with its job."""
    require_queue(ctx, "deferring a task")
    app = deferrer(ctx)
    try:
        job_id = app.configure_task(name=unit.task, queue=unit.queue, lock=unit.key,
                                    queueing_lock=unit.key).defer(**unit.args)
        return Deferred(unit.task, job_id, False)
    except pexc.AlreadyEnqueued:
        with ctx.engine.connect() as conn:
            waiting = run_store.waiting_job(conn, unit.key)
        return Deferred(unit.task, waiting, True)


# ------------------------------------------------------------------ running a worker


def worker_options(ctx: Context, *, concurrency: int, queues: list[str] | None,
                   name: str) -> dict[str, Any]:
    s = ctx.settings
    return {
        "queues": queues or None, "concurrency": concurrency, "name": name,
        "additional_context": {"snoozeql": ctx},
        "update_heartbeat_interval": s.worker_heartbeat_seconds,
        "stalled_worker_timeout": s.worker_stalled_seconds,
        "fetch_job_polling_interval": 1.0, "abort_job_polling_interval": 5.0,
        "delete_jobs": "successful", "shutdown_graceful_timeout": 30.0,
    }


def check_queues(queues: list[str] | None) -> list[str] | None:
    if not queues:
        return None
    known = (*tasks.QUEUES, MAINTENANCE)
    bad = [q for q in queues if q not in known]
    if bad:
        raise ValidationError(f"unknown queue {', '.join(bad)}; queues are "
                              f"{', '.join(dict.fromkeys(known))}")
    return list(dict.fromkeys(queues))


def run_worker(ctx: Context, *, concurrency: int, queues: list[str] | None = None,
               install_signal_handlers: bool = True, name: str = "worker") -> None:
    """Run a worker in the foreground until SIGINT or SIGTERM (graceful stop)."""
    require_queue(ctx, "a worker")
    app = build_app(ctx, pool_size=concurrency + 2)

    async def main() -> None:
        async with app.open_async():
            await app.run_worker_async(
                install_signal_handlers=install_signal_handlers,
                **worker_options(ctx, concurrency=concurrency, queues=queues, name=name))

    asyncio.run(main())


class BackgroundWorker:
    """A worker in a thread of this process (``snoozeql serve`` on PostgreSQL)."""

    def __init__(self, ctx: Context, *, concurrency: int, queues: list[str] | None = None
                 ) -> None:
        self.ctx = ctx
        self.concurrency = concurrency
        self.queues = queues
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="snoozeql-worker",
                                        daemon=True)
        self._thread.start()
        self._ready.wait(10)

    def _run(self) -> None:
        app = build_app(self.ctx, pool_size=self.concurrency + 2)
        loop = asyncio.new_event_loop()
        self._loop = loop

        async def main() -> None:
            async with app.open_async():
                await app.run_worker_async(
                    install_signal_handlers=False,
                    **worker_options(self.ctx, concurrency=self.concurrency,
                                     queues=self.queues, name="serve"))

        self._task = loop.create_task(main())
        self._ready.set()
        try:
            loop.run_until_complete(self._task)
        except asyncio.CancelledError:
            pass
        except Exception:  # noqa: BLE001 - logged; the API goes on serving
            log.exception("the job worker of this process stopped")
        finally:
            loop.close()

    def stop(self, timeout: float = 35.0) -> None:
        if self._loop is not None and self._task is not None and not self._loop.is_closed():
            try:
                self._loop.call_soon_threadsafe(self._task.cancel)
            except RuntimeError:  # the loop closed meanwhile
                pass
        if self._thread is not None:
            self._thread.join(timeout)
