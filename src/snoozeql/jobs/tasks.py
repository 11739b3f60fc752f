"""The background work, as task functions both ways of running it share.

Each periodic job is a *plan* that cuts its work into *units* (one task each):

============================  ==========================================  ==========
periodic job                  units                                       queue
============================  ==========================================  ==========
``sync-accounts``             ``sync-scope`` per (account, region or      ``sync``
                              project) on the queue (``sync-account``
                              per account in process)
``collect-metrics``           ``collect-metrics-batch`` per (account,     ``metrics``
                              region) batch of at most
                              ``SNOOZEQL_METRICS_BATCH_QUERIES`` queries,
                              and ``collect-local-metrics``
``reconcile-schedules``       ``reconcile-shard`` per shard of the        ``reconcile``
                              governed instances
                              (``SNOOZEQL_RECONCILE_SHARDS``)
``analyse-activity``          ``analyse-batch`` per 1,000 instances whose ``metrics``
                              analysis is stale (queue); in process
                              ``analyse-activity`` (incremental)
``refresh-local-databases``   ``refresh-local-databases``                 ``maintenance``
``cleanup-metrics``           ``cleanup-metrics``                         ``maintenance``
============================  ==========================================  ==========

On PostgreSQL the queue (``jobs/queue.py``) defers the plan's units as tasks that any
worker runs; in process (``jobs/catalogue.py``, the SQLite default) the same unit
functions run one after another. A unit takes the context and JSON-able keyword
arguments, and raises :class:`ProviderThrottled` when its provider was still throttling
after the provider's own retries, so that the queue retries it later with backoff.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

from snoozeql.domain.errors import ConflictError, ProviderError
from snoozeql.observability import current_task, in_context
from snoozeql.services.context import Context

log = logging.getLogger(__name__)


class ProviderThrottled(ProviderError):
    """A unit failed while its provider throttled: retried later (the queue)."""


@dataclass(frozen=True)
class Unit:
    """One task of a plan: a unit's name and its keyword arguments (JSON)."""

    task: str
    args: dict[str, Any] = field(default_factory=dict)
    #: Two units with the same key never wait in the queue twice, nor run at once.
    key: str = ""
    queue: str = "default"


# ---------------------------------------------------------------- sync


def plan_sync(ctx: Context) -> list[Unit]:
    """The queue's sync: one ``sync-scope`` per (account, region or project), the
    parts of one round written together by the last of them; accounts of other
    providers whole (``sync-account``)."""
    from snoozeql.services.accounts import AccountService
    from snoozeql.services.discovery import DiscoveryService

    svc = DiscoveryService(ctx)
    round_id, started = uuid4().hex, ctx.now().isoformat()
    units = []
    for a in AccountService(ctx).list():
        scopes = svc.scopes(a)
        if not scopes:
            units.append(Unit("sync-account", {"account_id": str(a.id)}, f"sync:{a.id}",
                              "sync"))
            continue
        units.extend(
            Unit("sync-scope", {"account_id": str(a.id), "scope": scope, "round": round_id,
                                "scopes": scopes, "started_at": started},
                 f"sync:{a.id}:{scope}", "sync")
            for scope in scopes)
    return units


def plan_sync_whole(ctx: Context) -> list[Unit]:
    """The in-process runner's sync: one unit per account (its regions or projects
    scanned in parallel threads inside)."""
    from snoozeql.services.accounts import AccountService

    return [Unit("sync-account", {"account_id": str(a.id)}, f"sync:{a.id}", "sync")
            for a in AccountService(ctx).list()]


def sync_scope(ctx: Context, account_id: str, scope: str, round: str, scopes: list[str],
               started_at: str) -> object:
    """One region or project of an account's sync (``DiscoveryService.sync_scope``)."""
    from snoozeql.domain.errors import SnoozeError
    from snoozeql.services.discovery import DiscoveryService

    run = current_task()
    try:
        report = DiscoveryService(ctx).sync_scope(
            account_id, scope, round, list(scopes), datetime.fromisoformat(started_at),
            throttled=lambda: bool(run is not None and run.throttled))
    except SnoozeError as exc:
        if run is not None and run.throttled:
            raise ProviderThrottled(exc.message) from None
        raise
    if run is not None:
        run.fields.update(account_id=account_id, scope=scope, round=round,
                          last_part=report is not None)
        if report is not None:
            run.fields.update(account=report.account_name, found=report.found,
                              result_status=report.status.value)
    if report is not None and report.error:
        raise ProviderError(report.error)
    return report


def sync_account(ctx: Context, account_id: str, takeover: bool = False) -> object:
    """Sync one account. ``takeover``: the queue gives this account's sync to another
    worker after the one running it died, so its ``syncing`` mark is not a live sync."""
    from snoozeql.services.discovery import DiscoveryService

    report = DiscoveryService(ctx).sync(account_id, takeover=takeover)
    run = current_task()
    if run is not None:
        run.fields.update(account=report.account_name, account_id=str(report.account_id),
                          found=report.found, result_status=report.status.value)
    if report.error:  # recorded on the account already; the task run fails with it
        if run is not None and run.throttled:
            raise ProviderThrottled(report.error)
        raise ProviderError(report.error)
    return report


# ---------------------------------------------------------------- metrics


def plan_collect(ctx: Context) -> list[Unit]:
    from snoozeql.services.metrics import MetricsService

    batches, local = MetricsService(ctx).batches(ctx.settings.metrics_batch_queries)
    units = [
        Unit("collect-metrics-batch",
             {"account_id": str(b.account_id), "region": b.region,
              "instance_ids": [str(i) for i in b.instance_ids]},
             f"metrics:{b.account_id}:{b.region}:{n}", "metrics")
        for n, b in enumerate(batches)
    ]
    if local:
        units.append(Unit("collect-local-metrics", {}, "metrics:local", "metrics"))
    return units


def collect_metrics_batch(ctx: Context, account_id: str, region: str,
                          instance_ids: list[str]) -> object:
    from snoozeql.services.metrics import MetricsService

    result = MetricsService(ctx).collect_batch(UUID(account_id),
                                               [UUID(i) for i in instance_ids])
    run = current_task()
    if run is not None:
        run.fields.update(account_id=account_id, region=region, instances=len(instance_ids),
                          api_calls=result.api_calls)
        if result.errors and run.throttled:
            raise ProviderThrottled("; ".join(result.errors))
    return result


def collect_local_metrics(ctx: Context) -> object:
    from snoozeql.services.metrics import MetricsService

    return MetricsService(ctx).collect_local()


def cleanup_metrics(ctx: Context) -> object:
    from snoozeql.services.metrics import MetricsService

    return MetricsService(ctx).cleanup()


#: Instances one queued analysis task analyses.
ANALYSIS_BATCH = 1000


def plan_analyse(ctx: Context) -> list[Unit]:
    """The queue's analysis: the instances whose stored analysis is not valid now, in
    batches of ``ANALYSIS_BATCH`` (in process: ``analyse-activity``, incremental)."""
    from snoozeql.services.recommendations import RecommendationService

    ids = RecommendationService(ctx).stale_ids()
    return [Unit("analyse-batch", {"instance_ids": [str(i) for i in ids[n:n + ANALYSIS_BATCH]]},
                 f"analysis:{n // ANALYSIS_BATCH}", "metrics")
            for n in range(0, len(ids), ANALYSIS_BATCH)]


def analyse_batch(ctx: Context, instance_ids: list[str]) -> object:
    from snoozeql.services.recommendations import RecommendationService

    done = RecommendationService(ctx).analyse_batch([UUID(i) for i in instance_ids])
    run = current_task()
    if run is not None:
        run.fields.update(instances=len(instance_ids), analysed=done)
    return done


def analyse_activity(ctx: Context) -> object:
    from snoozeql.services.recommendations import RecommendationService

    # Analyses again only if instances or metrics changed (or a new hour began).
    return len(RecommendationService(ctx).current())


# ---------------------------------------------------------------- schedules


def plan_reconcile(ctx: Context) -> list[Unit]:
    n = ctx.settings.reconcile_shards
    return [Unit("reconcile-shard", {"shard": k, "shards": n}, f"reconcile:{k}:{n}",
                 "reconcile") for k in range(n)]


def reconcile_shard(ctx: Context, shard: int = 0, shards: int = 1) -> object:
    from snoozeql.services.reconciler import Reconciler

    report = Reconciler(ctx, shard=(shard, shards)).run()
    run = current_task()
    if run is not None:
        run.fields.update(shard=shard, shards=shards, considered=report.considered)
    return report


def refresh_local_databases(ctx: Context) -> object:
    from snoozeql.services.local_databases import LocalDatabaseService

    return LocalDatabaseService(ctx).refresh_all()


#: Every unit by name.
UNITS: dict[str, Callable[..., object]] = {
    "sync-account": sync_account,
    "sync-scope": sync_scope,
    "collect-metrics-batch": collect_metrics_batch,
    "collect-local-metrics": collect_local_metrics,
    "cleanup-metrics": cleanup_metrics,
    "analyse-activity": analyse_activity,
    "analyse-batch": analyse_batch,
    "reconcile-shard": reconcile_shard,
    "refresh-local-databases": refresh_local_databases,
}

#: The queue each unit runs on (``snoozeql worker --queues``).
UNIT_QUEUES: dict[str, str] = {
    "sync-account": "sync", "sync-scope": "sync", "collect-metrics-batch": "metrics",
    "collect-local-metrics": "metrics", "analyse-activity": "metrics",
    "analyse-batch": "metrics",
    "cleanup-metrics": "maintenance", "reconcile-shard": "reconcile",
    "refresh-local-databases": "maintenance",
}

QUEUES = ("sync", "metrics", "reconcile", "maintenance")


def single(task: str) -> Callable[[Context], list[Unit]]:
    """The plan of a periodic job that is one unit."""
    def plan(_ctx: Context) -> list[Unit]:
        return [Unit(task, {}, task, UNIT_QUEUES[task])]

    plan.single = task  # type: ignore[attr-defined]
    return plan


def run_plan(ctx: Context, plan: Callable[[Context], list[Unit]], *,
             errors: list[Exception] | None = None, workers: int = 1) -> list[object]:
    """Run a plan's units here (the in-process runner), ``workers`` at a time; a failing
    unit is logged and the others still run. The first error is raised at the end,
    unless ``errors`` is given: then the errors are put there."""
    results: list[object] = []
    failed: list[Exception] = []

    def one(unit: Unit) -> None:
        try:
            results.append(UNITS[unit.task](ctx, **unit.args))
        except ConflictError as exc:  # e.g. a sync of the account started elsewhere
            log.info("%s skipped: %s", unit.task, exc.message)
        except Exception as exc:  # noqa: BLE001 - one unit must not stop the others
            log.warning("%s failed: %s", unit.task, exc)
            failed.append(exc)

    units = plan(ctx)
    if workers > 1 and len(units) > 1:
        with ThreadPoolExecutor(max_workers=min(workers, len(units)),
                                thread_name_prefix="unit") as pool:
            list(pool.map(in_context(one), units))
    else:
        for unit in units:
            one(unit)
    if errors is not None:
        errors.extend(failed)
    elif failed:
        raise failed[0]
    return results
