"""Runs the job catalogue in a background thread of `snoozeql serve`.

Each run is recorded in ``job_runs`` (``snoozeql jobs list``). This runner is the
embedded default's (SQLite); on PostgreSQL the queue (``jobs/queue.py``) runs the same
task functions on workers. Several replicas may run this runner against one
PostgreSQL: each job run is claimed through
:mod:`snoozeql.store.jobs` first, so exactly one replica runs it per interval. The
claim is a lease no longer than the job's interval, renewed by the process's heartbeat
(:mod:`snoozeql.services.leases`) while the job runs: if the replica dies (kill -9),
another takes the job over within one lease and one poll.
"""

from __future__ import annotations

import logging
import threading

from snoozeql.jobs.catalogue import Job, catalogue
from snoozeql.services.context import Context
from snoozeql.services.leases import keeper, new_owner
from snoozeql.store import job_runs as run_store
from snoozeql.store import jobs as store

log = logging.getLogger(__name__)


class JobRunner:
    def __init__(self, ctx: Context, jobs: list[Job] | None = None) -> None:
        self.ctx = ctx
        self.jobs = jobs if jobs is not None else catalogue(ctx)
        self.owner = new_owner()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def register(self) -> None:
        now = self.ctx.now()
        with self.ctx.engine.begin() as conn:
            for job in self.jobs:
                store.ensure(conn, job.name, now)

    def run_due(self) -> list[str]:
        """Run every job that is due and that this replica wins; returns their names."""
        ran = []
        for job in self.jobs:
            if self._stop.is_set():
                break
            now = self.ctx.now()
            lease = job.lease_for(self.ctx.settings)
            with self.ctx.engine.begin() as conn:
                retry = store.last_run_failed(conn, job.name)
                won = store.claim(conn, job.name, self.owner, now, lease)
            if not won:
                continue
            error = None
            leases = keeper(self.ctx)
            with self.ctx.engine.begin() as conn:
                # Winning the claim proves an earlier holder's run of it is over.
                run_store.abandon_task(conn, job.name, self.owner, now,
                                       "its runner stopped before the run ended")
                run_id = run_store.start(conn, task=job.name, args={}, worker=self.owner,
                                         now=now, attempt=1 if retry else 0)
            try:
                log.debug("job %s started", job.name)
                # One log line per run (observability.Telemetry.task), failures with
                # their traceback; counted and timed on the process's series.
                with self.ctx.telemetry.task(job.name, retry=retry), \
                        leases.hold(leases.job(job.name, self.owner, lease)):
                    job.run(self.ctx)
            except Exception as exc:  # noqa: BLE001 - a failing job must not kill the runner
                error = f"{type(exc).__name__}: {exc}"[:2000]
            finished = self.ctx.now()
            with self.ctx.engine.begin() as conn:
                run_store.finish(conn, run_id, finished, error)
                if not store.finish(conn, job.name, self.owner, finished, now + job.interval,
                                    error):
                    log.warning("job %s: its lease ran out and another replica took it over",
                                job.name)
            ran.append(job.name)
        return ran

    def start(self) -> None:
        self.register()
        self._thread = threading.Thread(target=self._loop, name="snoozeql-jobs", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_due()
            except Exception:  # noqa: BLE001 - e.g. the database is briefly unreachable
                log.exception("job runner cycle failed")
            self._stop.wait(self.ctx.settings.job_poll_seconds)
