"""The periodic jobs `snoozeql serve` runs, and how often."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from snoozeql.config import Settings
from snoozeql.observability import current_task
from snoozeql.services.context import Context
from snoozeql.services.discovery import DiscoveryService
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
    reports = DiscoveryService(ctx).sync_all()
    run = current_task()
    if run is not None:  # shown in the task run's log line (one line per account too)
        run.fields.update(accounts=len(reports),
                          failed_accounts=sum(1 for r in reports if r.error))
    return reports


def _refresh_local_databases(ctx: Context) -> object:
    from snoozeql.services.local_databases import LocalDatabaseService

    return LocalDatabaseService(ctx).refresh_all()


def _reconcile_schedules(ctx: Context) -> object:
    from snoozeql.services.reconciler import Reconciler

    return Reconciler(ctx).run()


def _collect_metrics(ctx: Context) -> object:
    from snoozeql.services.metrics import MetricsService

    return MetricsService(ctx).collect()


def _cleanup_metrics(ctx: Context) -> object:
    from snoozeql.services.metrics import MetricsService

    return MetricsService(ctx).cleanup()


def _analyse_activity(ctx: Context) -> object:
    from snoozeql.services.recommendations import RecommendationService

    # Analyses again only if instances or metrics changed (or a new hour began), so the
    # first listing after a collection is served from the result kept in this process.
    return len(RecommendationService(ctx).current())


def catalogue(ctx: Context) -> list[Job]:
    s = ctx.settings
    return [
        Job("sync-accounts", timedelta(seconds=s.sync_interval_seconds), _sync_accounts),
        # Local databases: a crash or a reboot shows up within a minute.
        Job("refresh-local-databases", timedelta(seconds=60), _refresh_local_databases),
        # Schedules: stop and start at transitions, warn before stops.
        Job("reconcile-schedules", timedelta(seconds=s.reconcile_interval_seconds),
            _reconcile_schedules),
        # Metrics: every running instance each interval; old hours removed daily.
        *([Job("collect-metrics", timedelta(seconds=s.metrics_interval_seconds),
               _collect_metrics),
           Job("cleanup-metrics", timedelta(days=1), _cleanup_metrics),
           # Recommendations: refreshed after each collection rather than on a request.
           Job("analyse-activity", timedelta(seconds=s.metrics_interval_seconds),
               _analyse_activity)] if s.metrics_enabled else []),
    ]
