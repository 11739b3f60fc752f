"""Metrics as a use case: collect, accept pushed samples, read series, clean up.

Collection (the ``collect-metrics`` job, every ``metrics_interval_seconds``):

* every running instance of the inventory is measured: cloud instances per account
  through the provider's collector (CloudWatch, Cloud Monitoring), local databases
  through the engines themselves;
* each cycle reads the last two intervals (30 minutes by default), so a cycle that
  failed or ran late is covered by the next; the store's minute masks make the overlap
  harmless (collection is idempotent);
* accounts are collected in parallel threads, and each account's failure is logged
  and reported, never raised: the next cycle retries it, the other accounts' samples
  are stored;
* samples are written per account in batched upserts (:mod:`snoozeql.store.metrics`).

Pushed samples (``POST /api/v1/instances/{id}/metrics``) take the same path, so they
are aggregated exactly the same way.

Day-one history (:meth:`MetricsService.backfill`): the hours the provider already
keeps, read in the collectors' batched calls at a 1-hour period and folded into the
stored hours by the same minute-mask rule, so recommendations are there minutes after
an account is added. It runs by itself once after an account's first successful sync
(:func:`snoozeql.services.background_sync.start_history`), and on request.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Hashable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, cast
from uuid import UUID

from snoozeql.domain.analysis import ActivityProfile, AnalysisSettings, activity_profile
from snoozeql.domain.errors import SnoozeError, ValidationError
from snoozeql.domain.metrics import (
    METRICS,
    HourlyAggregate,
    Sample,
    floor_hour,
    parse_metric,
    retention_cutoff,
)
from snoozeql.domain.types import Account, Instance, InstanceStatus, ProviderKind
from snoozeql.domain.validation import iso_instant
from snoozeql.providers import registry
from snoozeql.providers.base import (
    CollectResult,
    HostMetricsCollector,
    MetricHistory,
    MetricTarget,
)
from snoozeql.services.accounts import AccountService
from snoozeql.services.context import Context
from snoozeql.services.inventory import InventoryService
from snoozeql.store import accounts as account_store
from snoozeql.store import instances as instance_store
from snoozeql.store import metrics as store
from snoozeql.store.instances import InstanceFilter

__all__ = [
    "MAX_PUSH_SAMPLES",
    "AccountCollection",
    "BackfillReport",
    "CollectionReport",
    "MetricsService",
    "analysis_settings",
    "parse_instant",
    "timezone_of",
]

log = logging.getLogger(__name__)

MAX_BACKFILL_DAYS = 63
"""The longest history a backfill reads (CloudWatch keeps 5-minute data this long)."""
DEFAULT_BACKFILL_DAYS = 14
MAX_PUSH_SAMPLES = 10_000
"""Samples one push request may carry."""
FUTURE_TOLERANCE = timedelta(minutes=5)
"""Pushed samples may be this far ahead of our clock (clock skew), no further."""
TIMEZONE_TAGS = ("snoozeql:timezone", "timezone")

CloudCollector = Callable[[Account, Sequence[MetricTarget], datetime, datetime], CollectResult]


def analysis_settings(ctx: Context) -> AnalysisSettings:
    """The analysis settings from configuration (validated by the domain)."""
    s = ctx.settings
    return AnalysisSettings(
        lookback_days=s.analysis_lookback_days,
        min_hours=s.analysis_min_hours,
        min_weeks=s.analysis_min_weeks,
        required_idle_share=s.analysis_required_idle_share,
        idle_connections=s.analysis_idle_connections,
        connections_statistic=s.analysis_connections_statistic,
        idle_cpu_percent=s.analysis_idle_cpu_percent,
        idle_read_iops=s.analysis_idle_read_iops,
        idle_write_iops=s.analysis_idle_write_iops,
        min_window_hours=s.analysis_min_window_hours,
        margin_minutes=s.analysis_margin_minutes,
        background_connections=s.analysis_background_connections,
        change_hold_days=s.analysis_change_hold_days,
    )


def timezone_of(ctx: Context, instance: Instance) -> str:
    """The instance's zone: its ``timezone`` tag, else the configured default."""
    for tag in TIMEZONE_TAGS:
        value = instance.tags.get(tag)
        if value:
            return value
    return ctx.settings.analysis_timezone


_RELATIVE = re.compile(r"^\s*(\d+)\s*([mhdw])\s*$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_instant(text: str | datetime | None, now: datetime, name: str) -> datetime | None:
    """An ISO 8601 instant (UTC if no offset) or a span back from now (``3d``, ``12h``)."""
    if text is None or text == "":
        return None
    if isinstance(text, datetime):
        value = text
    else:
        m = _RELATIVE.match(text)
        if m:
            return now - timedelta(**{_UNITS[m.group(2)]: int(m.group(1))})
        try:
            value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
        except ValueError:
            raise ValidationError(
                f"{name}: {text!r} is neither an ISO 8601 time nor a span like 3d or 12h"
            ) from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _iso(value: object) -> object:
    """An ISO 8601 string as an aware datetime (UTC if no offset); anything else as is."""
    return iso_instant(value, "ts", naive_is_utc=True) if isinstance(value, str) else value


@dataclass(frozen=True)
class AccountCollection:
    """How one account's (or the local databases') collection went."""

    source: str
    provider: str
    instances: int
    samples: int = 0
    buckets_changed: int = 0
    api_calls: int = 0
    errors: tuple[str, ...] = ()


#: Metric queries one instance costs a cloud collector per cycle (CPU, connections,
#: read and write IOPS): a batch of N queries holds N // this instances.
QUERIES_PER_INSTANCE = 4


@dataclass(frozen=True)
class CollectionBatch:
    """Instances of one account and region collected together (at most a batch)."""

    account_id: UUID
    region: str
    instance_ids: tuple[UUID, ...]


@dataclass(frozen=True)
class CollectionReport:
    start: datetime
    end: datetime
    sources: tuple[AccountCollection, ...] = ()

    @property
    def api_calls(self) -> int:
        return sum(s.api_calls for s in self.sources)

    @property
    def buckets_changed(self) -> int:
        return sum(s.buckets_changed for s in self.sources)

    @property
    def failed(self) -> list[AccountCollection]:
        return [s for s in self.sources if s.errors]


@dataclass(frozen=True)
class BackfillReport:
    """How one account's history read went."""

    account: str
    provider: str
    days: int
    start: datetime
    end: datetime
    instances: int = 0
    api_calls: int = 0
    hours_read: int = 0
    hours_written: int = 0
    errors: tuple[str, ...] = ()
    note: str | None = None

    @property
    def failed(self) -> bool:
        return bool(self.errors)

@dataclass
class _Collectors:
    """Collectors built once per context."""

    cloud: dict[ProviderKind, CloudCollector] = field(default_factory=dict)


def _collectors(ctx: Context) -> _Collectors:
    found = ctx.__dict__.get("_metric_collectors")
    if found is None:
        found = ctx.__dict__["_metric_collectors"] = _Collectors()
    return found  # type: ignore[no-any-return]


def _target(i: Instance) -> MetricTarget:
    return MetricTarget(i.id, i.provider_id, i.kind, i.engine, i.region, i.name)


@dataclass(frozen=True)
class PushResult:
    accepted: int
    buckets_changed: int
    ignored_too_old: int


class MetricsService:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    # ------------------------------------------------------------------ collectors

    def cloud_collector(self, kind: ProviderKind) -> CloudCollector:
        """The collector of a cloud provider (built once per context; tests may set it)."""
        cache = _collectors(self.ctx).cloud
        if kind not in cache:
            cache[kind] = self.ctx.providers.metrics_collector(kind).collect
        return cache[kind]

    def host_collector(self, kind: ProviderKind) -> HostMetricsCollector:
        """The collector of a provider measured on this host (it lives as long as the
        context: it keeps CPU readings between cycles)."""
        return self.ctx.providers.host_collector(kind)

    # ------------------------------------------------------------------ collection

    def window(self, now: datetime | None = None) -> tuple[datetime, datetime]:
        """[start, end) a cycle reads: the last two intervals, whole minutes."""
        now = now or self.ctx.now()
        end = now.astimezone(UTC).replace(second=0, microsecond=0)
        return end - timedelta(seconds=2 * self.ctx.settings.metrics_interval_seconds), end

    def collect(
        self,
        now: datetime | None = None,
        account: str | UUID | None = None,
        progress: Callable[[str, AccountCollection | None], None] | None = None,
    ) -> CollectionReport:
        """One collection cycle over every running instance; never raises for a source.

        ``account`` (id or name; NotFoundError if unknown) limits it to that account's
        instances. ``progress(source, None)`` is called as each source starts and
        ``progress(source, result)`` as it ends."""
        now = now or self.ctx.now()
        start, end = self.window(now)
        only = AccountService(self.ctx).get(account).id if account is not None else None
        with self.ctx.engine.connect() as conn:
            running = list(
                instance_store.iter_all(conn, InstanceFilter(status=InstanceStatus.RUNNING.value))
            )
        running = [i for i in running if i.missing_since is None]
        accounts = {a.id: a for a in AccountService(self.ctx).list()}
        jobs: list[tuple[str, Callable[[], AccountCollection]]] = []
        by_account: dict[UUID, list[Instance]] = {}
        local: list[Instance] = []
        if only is not None:
            running = [i for i in running if i.account_id == only]
        for i in running:
            if registry.measured_on_host(i.provider):
                local.append(i)
            elif i.account_id in accounts:
                by_account.setdefault(i.account_id, []).append(i)  # type: ignore[arg-type]
        for account_id, group in by_account.items():
            acc = accounts[account_id]
            jobs.append((acc.name, partial(self._collect_account, acc, group, start, end)))
        if local:
            jobs.append(("local", lambda: self._collect_local(local, now)))
        if not jobs:
            return CollectionReport(start, end)
        workers = min(self.ctx.settings.metrics_workers, len(jobs))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="metrics") as pool:
            if progress is not None:
                for name, _ in jobs:
                    progress(name, None)
            futures = [(name, pool.submit(fn)) for name, fn in jobs]
            results = []
            for name, fut in futures:
                try:
                    results.append(fut.result())
                except Exception as exc:  # noqa: BLE001 - the job must go on
                    log.exception("metrics collection for %s failed unexpectedly", name)
                    results.append(AccountCollection(name, "?", 0, errors=(
                        f"internal error ({type(exc).__name__}); see the server log",)))
                if progress is not None:
                    progress(name, results[-1])
        report = CollectionReport(start, end, tuple(results))
        log.info(
            "collected metrics for %d instances: %d hours updated, %d API calls, %d failing",
            len(running), report.buckets_changed, report.api_calls, len(report.failed),
        )
        return report

    def batches(self, max_queries: int) -> tuple[list[CollectionBatch], bool]:
        """The work of one collection cycle cut for a queue: running cloud instances
        grouped per (account, region) in batches of at most ``max_queries`` metric
        queries (``QUERIES_PER_INSTANCE`` each), and whether local instances run."""
        per_batch = max(1, max_queries // QUERIES_PER_INSTANCE)
        with self.ctx.engine.connect() as conn:
            running = [i for i in instance_store.iter_all(
                conn, InstanceFilter(status=InstanceStatus.RUNNING.value))
                if i.missing_since is None]
        groups: dict[tuple[UUID, str], list[UUID]] = {}
        local = False
        for i in running:
            if registry.measured_on_host(i.provider):
                local = True
            elif i.account_id is not None:
                groups.setdefault((i.account_id, i.region or ""), []).append(i.id)
        out = []
        for (account_id, region), ids in sorted(groups.items(), key=lambda kv: str(kv[0])):
            for n in range(0, len(ids), per_batch):
                out.append(CollectionBatch(account_id, region, tuple(ids[n:n + per_batch])))
        return out, local

    def collect_batch(self, account_id: UUID, instance_ids: Iterable[UUID],
                      now: datetime | None = None) -> AccountCollection:
        """Collect one batch (``batches``): the given instances of one account that
        still run; never raises for the provider (its error is in the result)."""
        now = now or self.ctx.now()
        start, end = self.window(now)
        account = AccountService(self.ctx).get(account_id)
        wanted = set(instance_ids)
        with self.ctx.engine.connect() as conn:
            group = [i for i in instance_store.iter_all(
                conn, InstanceFilter(status=InstanceStatus.RUNNING.value))
                if i.id in wanted and i.missing_since is None and i.account_id == account.id]
        if not group:
            return AccountCollection(account.name, account.provider.value, 0)
        return self._collect_account(account, group, start, end)

    def collect_local(self, now: datetime | None = None) -> AccountCollection | None:
        """Collect the running local and Docker instances (one batch of its own)."""
        now = now or self.ctx.now()
        with self.ctx.engine.connect() as conn:
            local = [i for i in instance_store.iter_all(
                conn, InstanceFilter(status=InstanceStatus.RUNNING.value))
                if i.missing_since is None
                and registry.measured_on_host(i.provider)]
        return self._collect_local(local, now) if local else None

    def _collect_account(
        self, account: Account, instances: list[Instance], start: datetime, end: datetime
    ) -> AccountCollection:
        try:
            collector = self.cloud_collector(account.provider)
            result = collector(account, [_target(i) for i in instances], start, end)
        except SnoozeError as exc:
            log.warning("metrics of account %s: %s (retried next cycle)", account.name,
                        exc.message)
            return AccountCollection(account.name, account.provider.value, len(instances),
                                     errors=(exc.message,))
        except Exception as exc:  # noqa: BLE001 - one account must not stop the others
            log.exception("metrics of account %s failed unexpectedly", account.name)
            return AccountCollection(
                account.name, account.provider.value, len(instances),
                errors=(f"internal error ({type(exc).__name__}); see the server log",),
            )
        for err in result.errors:
            log.warning("metrics of account %s: %s (retried next cycle)", account.name, err)
        changed = self._write(result.samples)
        return AccountCollection(
            account.name, account.provider.value, len(instances), result.sample_count,
            changed, result.api_calls, tuple(result.errors),
        )

    def _collect_local(self, instances: list[Instance], now: datetime) -> AccountCollection:
        from snoozeql.providers.local.metrics import LocalTarget
        from snoozeql.services.local_databases import LocalDatabaseService

        svc = LocalDatabaseService(self.ctx, bind=False)
        # the instances of each collector (the local and docker providers share one)
        groups: dict[int, tuple[HostMetricsCollector, list[LocalTarget]]] = {}
        errors: list[str] = []
        for i in instances:
            try:
                password = svc.password(i)
                pid = None
                if registry.plugin(i.provider).process_cpu:
                    pid = svc.runtime(i.provider).status(i.provider_id, None).pid
                collector = self.host_collector(i.provider)
                groups.setdefault(id(collector), (collector, []))[1].append(LocalTarget(
                    i.id, i.name, i.engine, i.endpoint_port or 0, password, pid,
                    i.endpoint_host or "127.0.0.1",
                ))
            except SnoozeError as exc:
                errors.append(f"{i.name}: {exc.message}")
        result = CollectResult()
        for collector, targets in groups.values():
            part = collector.collect(targets, now)
            result.samples.update(part.samples)
            result.errors.extend(part.errors)
        errors.extend(result.errors)
        for err in errors:
            log.warning("local metrics: %s (retried next cycle)", err)
        changed = self._write(result.samples)
        return AccountCollection("local", "local", len(instances), result.sample_count,
                                 changed, 0, tuple(errors))

    def _write(self, samples: dict[Hashable, list[Sample]]) -> int:
        cutoff = retention_cutoff(self.ctx.now(), self.ctx.settings.metrics_retention_days)
        kept = {
            k: [s for s in v if s.ts >= cutoff] for k, v in samples.items()  # type: ignore[misc]
        }
        kept = {k: v for k, v in kept.items() if v}
        if not kept:
            return 0
        changed, _ = store.apply_samples(self.ctx.engine, kept)  # type: ignore[arg-type]
        return changed

    # ------------------------------------------------------------------ history

    def backfill(
        self,
        account: str | UUID,
        days: int = DEFAULT_BACKFILL_DAYS,
        progress: Callable[[str], None] | None = None,
    ) -> BackfillReport:
        """Read the history the provider keeps for the account's instances and store it.

        ``days`` back from the current hour (the hour under way is left to collection),
        cut to the metrics retention. A provider failure is in the report's ``errors``,
        never raised; an unknown account is a NotFoundError, bad ``days`` a
        ValidationError. ``local`` (the local databases) has nothing to read.
        """
        self.check_backfill_days(days)
        now = self.ctx.now()
        end = floor_hour(now)
        cutoff = retention_cutoff(now, self.ctx.settings.metrics_retention_days)
        start = max(end - timedelta(days=days), cutoff)
        note = None
        if start > end - timedelta(days=days):
            note = (f"limited to the metrics retention of "
                    f"{self.ctx.settings.metrics_retention_days} days "
                    f"(SNOOZEQL_METRICS_RETENTION_DAYS)")
        if str(account) == "local" and not self._account_named(str(account)):
            return BackfillReport(
                "local", "local", days, start, end,
                note="local databases keep no history: nothing to read (their metrics "
                     "start with the first collection)",
            )
        acc = AccountService(self.ctx).get(account)
        with self.ctx.engine.connect() as conn:
            instances = [
                i for i in instance_store.iter_all(conn, InstanceFilter(account_id=acc.id))
                if i.missing_since is None
            ]
        base = BackfillReport(acc.name, acc.provider.value, days, start, end, len(instances),
                              note=note)
        if not instances:
            return replace(base, note="no databases in this account yet: nothing to read")
        found = registry.find(acc.provider)
        if found is None or not found.metric_history:
            return replace(base, note=f"{acc.provider.value} keeps no metric history: "
                                      "nothing to read")
        collector = cast(MetricHistory, self.ctx.providers.metrics_collector(acc.provider))
        written = 0

        def write(batch: dict[Hashable, list[HourlyAggregate]]) -> None:
            nonlocal written
            kept = {k: [a for a in v if a.hour >= cutoff] for k, v in batch.items()}
            kept = {k: v for k, v in kept.items() if v}
            if kept:
                written += store.apply_hours(self.ctx.engine, kept)[0]  # type: ignore[arg-type]

        try:
            result = collector.history(acc, [_target(i) for i in instances], start, end,
                                       progress, write)
        except SnoozeError as exc:
            log.warning("metric history of account %s: %s", acc.name, exc.message)
            return replace(base, hours_written=written, errors=(exc.message,))
        except Exception as exc:  # noqa: BLE001 - reported like a provider failure
            log.exception("metric history of account %s failed unexpectedly", acc.name)
            return replace(base, hours_written=written, errors=(
                f"internal error ({type(exc).__name__}); see the server log",))
        for err in result.errors:
            log.warning("metric history of account %s: %s", acc.name, err)
        if not result.errors:
            with self.ctx.engine.begin() as conn:  # done: the first sync need not read it
                account_store.claim_history(conn, acc.id, now)
        log.info("read %d days of metric history of account %s: %d hours, %d written, "
                 "%d API calls, %d errors", days, acc.name, result.hour_count, written,
                 result.api_calls, len(result.errors))
        return replace(base, api_calls=result.api_calls, hours_read=result.hour_count,
                       hours_written=written, errors=tuple(result.errors))

    def check_backfill_days(self, days: object) -> None:
        """A ValidationError unless ``days`` is a whole number of days from 1 to 63."""
        if isinstance(days, bool) or not isinstance(days, int) or not (
            1 <= days <= MAX_BACKFILL_DAYS
        ):
            raise ValidationError(
                f"days: {days!r} is not between 1 and {MAX_BACKFILL_DAYS}: CloudWatch keeps "
                f"5-minute data for {MAX_BACKFILL_DAYS} days, and the analysis reads "
                f"{self.ctx.settings.analysis_lookback_days}"
            )

    def _account_named(self, name: str) -> bool:
        with self.ctx.engine.connect() as conn:
            return account_store.get_by_name(conn, name) is not None

    def first_history(self, account_id: UUID) -> BackfillReport | None:
        """The automatic day-one backfill of a newly synced account, at most once.

        Claims the account first (one conditional UPDATE): a second call, a restart or
        another replica finds it claimed and returns None. A failure is logged; it is
        not retried (the regular collection goes on as for any account)."""
        with self.ctx.engine.begin() as conn:
            if not account_store.claim_history(conn, account_id, self.ctx.now()):
                return None
        report = self.backfill(account_id, min(DEFAULT_BACKFILL_DAYS,
                                               self.ctx.settings.metrics_retention_days))
        if report.failed:
            log.warning("day-one metric history of account %s failed: %s (not retried; "
                        "the regular collection goes on, or run `snoozeql metrics backfill`)",
                        report.account, "; ".join(report.errors))
        return report

    # ------------------------------------------------------------------ push

    def push(self, ref: str | UUID, samples: Iterable[dict[str, Any] | Sample]) -> PushResult:
        """Store samples from an outside source; aggregated like collected ones.

        Validated as a whole first (nothing is written when one sample is bad).
        """
        instance = InventoryService(self.ctx).get(ref)
        now = self.ctx.now()
        parsed: list[Sample] = []
        for n, raw in enumerate(samples):
            if n >= MAX_PUSH_SAMPLES:
                raise ValidationError(f"at most {MAX_PUSH_SAMPLES} samples per request")
            try:
                if isinstance(raw, Sample):
                    s = raw
                else:
                    if not isinstance(raw, dict):
                        raise ValidationError("expected an object {metric, ts, value}")
                    s = Sample(raw.get("metric"), _iso(raw.get("ts")), raw.get("value"))  # type: ignore[arg-type]
            except ValidationError as exc:
                raise ValidationError(f"samples[{n}].{exc.message}") from None
            if s.ts > now + FUTURE_TOLERANCE:
                raise ValidationError(f"samples[{n}].ts: {s.ts.isoformat()} is in the future")
            parsed.append(s)
        cutoff = retention_cutoff(now, self.ctx.settings.metrics_retention_days)
        kept = [s for s in parsed if s.ts >= cutoff]
        changed = 0
        if kept:
            changed, _ = store.apply_samples(self.ctx.engine, {instance.id: kept})
        return PushResult(len(kept), changed, len(parsed) - len(kept))

    # ------------------------------------------------------------------ reading

    def series(
        self,
        ref: str | UUID,
        metric: str | None = None,
        start: str | datetime | None = None,
        end: str | datetime | None = None,
    ) -> tuple[Instance, datetime, datetime, list[HourlyAggregate]]:
        """Hourly aggregates of one instance (default: every metric, the last 24 h)."""
        instance = InventoryService(self.ctx).get(ref)
        metrics = [parse_metric(metric)] if metric else list(METRICS)
        now = self.ctx.now()
        e = parse_instant(end, now, "end") or now
        s = parse_instant(start, now, "start") or (e - timedelta(hours=24))
        if s >= e:
            raise ValidationError("start must be before end")
        with self.ctx.engine.connect() as conn:
            rows = store.series(conn, instance.id, floor_hour(s), e, metrics)
        return instance, s, e, rows

    def activity(self, ref: str | UUID) -> tuple[Instance, ActivityProfile, int]:
        """A week-by-hour profile over the lookback, in the instance's zone."""
        instance = InventoryService(self.ctx).get(ref)
        now = self.ctx.now()
        # The analysis' lookback (full hours) plus the hour under way.
        end = floor_hour(now) + timedelta(hours=1)
        start = floor_hour(now) - timedelta(days=self.ctx.settings.analysis_lookback_days)
        with self.ctx.engine.connect() as conn:
            rows = store.series(conn, instance.id, start, end)
        hours = len({a.hour for a in rows})
        return instance, activity_profile(rows, timezone_of(self.ctx, instance)), hours

    # ------------------------------------------------------------------ retention

    def cleanup(self) -> int:
        """Remove hours older than the retention; returns how many rows went."""
        cutoff = retention_cutoff(self.ctx.now(), self.ctx.settings.metrics_retention_days)
        with self.ctx.engine.begin() as conn:
            removed = store.delete_before(conn, cutoff)
        log.info("removed %d metric hours before %s", removed, cutoff.isoformat())
        return removed
