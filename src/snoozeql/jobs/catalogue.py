"""The periodic jobs `snoozeql serve` runs, and how often."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from snoozeql.config import Settings
from snoozeql.jobs import tasks
from snoozeql.jobs.tasks import run_plan
from snoozeql.observability import current_task
from snoozeql.services.context import Context
from snoozeql.services.leases import job_lease


@dataclass(frozen=True)
class Job:
    name: str
    interval: timedelta
    run: Callable[[Context], object]
    # How long a claim on a run lasts without a heartbeat: the runner renews it while
    # the run goes on, so only a dead holder's run is claimed again, after at most this.
    # None: half the interval, capped by SNOOZEQL_LEASE_SECONDS (``leases.job_lease``).
    lease: timedelta | None = None

    def lease_for(self, settings: Settings) -> timedelta:
        """Never longer than the interval: a dead holder is taken over within two."""
        return min(self.lease, self.interval) if self.lease else job_lease(settings,
                                                                            self.interval)


def _sync_accounts(ctx: Context) -> object:
    # A failed account is on the account (status, last_error) and in its own log line;
    # the job itself fails only if it cannot run.
    errors: list[Exception] = []
    reports = run_plan(ctx, tasks.plan_sync_whole, errors=errors)
    run = current_task()
    if run is not None:  # shown in the task run's log line (one line per account too)
        run.fields.clear()
        run.fields.update(accounts=len(reports) + len(errors), failed_accounts=len(errors))
    return reports


def _planned(plan: Callable[[Context], list[tasks.Unit]], workers: int = 1
             ) -> Callable[[Context], object]:
    return lambda ctx: run_plan(ctx, plan, workers=workers)


#: The periodic jobs: name -> (plan, interval setting or fixed seconds). The queue
#: (jobs/queue.py) defers each plan's units; the in-process runner runs them here.
def plans(ctx: Context) -> list[tuple[str, timedelta, Callable[[Context], list[tasks.Unit]]]]:
    s = ctx.settings
    return [
        ("sync-accounts", timedelta(seconds=s.sync_interval_seconds), tasks.plan_sync),
        # Local databases: a crash or a reboot shows up within a minute.
        ("refresh-local-databases", timedelta(seconds=60),
         tasks.single("refresh-local-databases")),
        # Schedules: stop and start at transitions, warn before stops.
        ("reconcile-schedules", timedelta(seconds=s.reconcile_interval_seconds),
         tasks.plan_reconcile),
        # Metrics: every running instance each interval; old hours removed daily.
        *([("collect-metrics", timedelta(seconds=s.metrics_interval_seconds),
            tasks.plan_collect),
           ("cleanup-metrics", timedelta(days=1), tasks.single("cleanup-metrics")),
           # Recommendations: refreshed after each collection rather than on a request.
           ("analyse-activity", timedelta(seconds=s.metrics_interval_seconds),
            tasks.plan_analyse)] if s.metrics_enabled else []),
    ]


def catalogue(ctx: Context) -> list[Job]:
    """The periodic jobs the in-process runner runs (the same units as the queue's;
    the reconcile in process is one shard: the whole fleet at once)."""
    jobs = []
    for name, interval, plan in plans(ctx):
        if name == "sync-accounts":
            jobs.append(Job(name, interval, _sync_accounts))
        elif name in tasks.UNITS:  # a job that is one unit: the unit itself
            jobs.append(Job(name, interval, tasks.UNITS[name]))
        elif name == "reconcile-schedules":
            jobs.append(Job(name, interval,
                            lambda c: tasks.reconcile_shard(c, shard=0, shards=1)))
        elif name == "collect-metrics":  # batches side by side, as before the queue
            jobs.append(Job(name, interval,
                            _planned(plan, workers=ctx.settings.metrics_workers)))
        else:
            jobs.append(Job(name, interval, _planned(plan)))
    return jobs
