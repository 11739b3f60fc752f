"""GCP metrics: Cloud Monitoring ``timeSeries.list`` for Cloud SQL instances.

Why it looks the way it does:

* Google's client library with the bundled discovery document
  (``build("monitoring", "v3", static_discovery=True)``), the account's credentials as
  the Cloud SQL provider loads them (cached process-wide), and the same retry rules.
* One call covers many instances: the filter names one metric type and up to
  :data:`INSTANCES_PER_CALL` instances with
  ``resource.labels.database_id = one_of("project:a", "project:b", ...)``. Cloud
  Monitoring's ``database_id`` is exactly our ``provider_id`` (``project:instance``).
  A project with 300 instances so costs 3 calls per metric, not 300.
* Points are aligned to 60 s (``aggregation.alignmentPeriod = 60s``): one sample per
  minute, which the store's minute masks de-duplicate when a window is read twice.
  Gauges use ``ALIGN_MEAN`` (connections ``ALIGN_MAX``), the disk operation counts
  (DELTA metrics) ``ALIGN_RATE``, which gives operations per second.
* The connection metric depends on the engine: PostgreSQL reports
  ``database/postgresql/num_backends`` (one series per database, summed here), MySQL
  and SQL Server ``database/network/connections``.
* Partial results are fine: a failing project is reported in ``errors`` and the
  other projects' samples are kept.

History (:meth:`GcpMetricsCollector.history`, the day-one backfill) makes the same
calls with a **3600 s alignment**: one point per instance and hour, so 100 instances x
14 days is 33,600 points, one page. Connections are read with ``ALIGN_MEAN`` and
``ALIGN_MAX`` so the stored hour keeps its mean and its peak.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import google.auth.exceptions
import google_auth_httplib2
import httplib2
from googleapiclient import discovery
from googleapiclient.errors import HttpError

from snoozeql.config import Settings
from snoozeql.domain.errors import ProviderError
from snoozeql.domain.metrics import CONNECTIONS, CPU, READ_IOPS, WRITE_IOPS, Sample, floor_hour
from snoozeql.domain.types import Account
from snoozeql.observability import Telemetry
from snoozeql.providers.base import (
    CollectResult,
    HistoryResult,
    MetricTarget,
    Progress,
    Sink,
    allowed_endpoint,
    read_history_by_group,
)
from snoozeql.providers.gcp.config import GcpAccountConfig
from snoozeql.providers.gcp.driver import (
    GcpProvider,
    _first_line,
    _http_error,
    counted_execute,
    no_redirects_http,
    split_provider_id,
)

__all__ = ["INSTANCES_PER_CALL", "GcpMetricsCollector", "metric_type_for"]

log = logging.getLogger(__name__)

INSTANCES_PER_CALL = 100
"""Instances named in one filter (keeps the filter a few kilobytes long)."""
PAGE_SIZE = 100_000
"""Points per page (the API's maximum)."""
MAX_PAGES = 1000
ALIGNMENT_SECONDS = 60
HISTORY_ALIGNMENT_SECONDS = 3600
PREFIX = "cloudsql.googleapis.com/database/"

# metric -> (Cloud Monitoring type, aligner, scale)
_CPU = (PREFIX + "cpu/utilization", "ALIGN_MEAN", 100.0)  # a fraction; we keep percent
_READ = (PREFIX + "disk/read_ops_count", "ALIGN_RATE", 1.0)
_WRITE = (PREFIX + "disk/write_ops_count", "ALIGN_RATE", 1.0)
_PG_CONN = (PREFIX + "postgresql/num_backends", "ALIGN_MAX", 1.0)
_NET_CONN = (PREFIX + "network/connections", "ALIGN_MAX", 1.0)


def metric_type_for(metric: str, engine: str) -> tuple[str, str, float]:
    """The Cloud Monitoring metric type, aligner and scale of ``metric`` for ``engine``."""
    if metric == CONNECTIONS:
        return _PG_CONN if engine == "postgres" else _NET_CONN
    return {CPU: _CPU, READ_IOPS: _READ, WRITE_IOPS: _WRITE}[metric]


def _rfc3339(ts: datetime) -> str:
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_time(text: str) -> datetime:
    # RFC 3339 with 'Z' and up to nanoseconds; Python takes microseconds at most.
    head, _, frac = text.rstrip("Z").partition(".")
    ts = datetime.fromisoformat(head).replace(tzinfo=UTC)
    if frac:
        ts += timedelta(microseconds=int(frac[:6].ljust(6, "0")))
    return ts


def _point_value(point: dict[str, Any]) -> float | None:
    value = point.get("value") or {}
    for field in ("doubleValue", "int64Value"):
        if field in value:
            try:
                return float(value[field])
            except (TypeError, ValueError):
                return None
    return None


def build_filter(metric_type: str, database_ids: Sequence[str]) -> str:
    names = ", ".join(f'"{d}"' for d in database_ids)
    return (
        f'metric.type = "{metric_type}" AND resource.type = "cloudsql_database" '
        f"AND resource.labels.database_id = one_of({names})"
    )


def _by_project(targets: Sequence[MetricTarget]) -> list[tuple[str, list[MetricTarget]]]:
    groups: dict[str, list[MetricTarget]] = {}
    for t in targets:
        groups.setdefault(split_provider_id(t.provider_id)[0], []).append(t)
    return sorted(groups.items())


class GcpMetricsCollector:
    """Reads CPU, connections and disk operations of Cloud SQL instances."""

    def __init__(self, settings: Settings, provider: GcpProvider | None = None) -> None:
        self._settings = settings
        self._provider = provider or GcpProvider(settings)
        self._num_retries = int(getattr(settings, "gcp_num_retries", 5))
        self._timeout = float(getattr(settings, "gcp_http_timeout_seconds", 30.0))
        self.telemetry: Telemetry | None = None  # set by the registry: counts API calls

    def _service(self, credentials: Any, endpoint: str | None) -> Any:
        http = google_auth_httplib2.AuthorizedHttp(
            credentials, http=no_redirects_http(self._timeout)
        )
        return discovery.build(
            "monitoring", "v3", http=http, static_discovery=True, cache_discovery=False,
            client_options={"api_endpoint": endpoint} if endpoint else None,
        )

    def _monitoring(self, account: Account) -> Any:
        """The Cloud Monitoring client of ``account`` (its endpoint must be allowed)."""
        cfg = GcpAccountConfig.from_account(account)
        endpoint = (account.config or {}).get("monitoring_endpoint") or cfg.api_endpoint
        credentials = self._provider._credentials(cfg)
        allowed_endpoint(endpoint, self._settings, "GCP monitoring endpoint")
        return self._service(credentials, endpoint)

    def collect(
        self, account: Account, targets: Sequence[MetricTarget], start: datetime, end: datetime
    ) -> CollectResult:
        service = self._monitoring(account)
        result = CollectResult()
        for project, group in _by_project(targets):
            try:
                self._collect_project(service, project, group, start, end, result)
            except ProviderError as exc:
                result.errors.append(exc.message)
        return result

    def _collect_project(
        self,
        service: Any,
        project: str,
        targets: Sequence[MetricTarget],
        start: datetime,
        end: datetime,
        result: CollectResult,
    ) -> None:
        # (metric type, aligner, scale, our metric) -> database_id -> target key
        plans: dict[tuple[str, str, float, str], dict[str, Any]] = {}
        for t in targets:
            for metric in (CPU, CONNECTIONS, READ_IOPS, WRITE_IOPS):
                plans.setdefault((*metric_type_for(metric, t.engine), metric), {})[
                    t.provider_id
                ] = t.key
        for (metric_type, aligner, scale, metric), ids in plans.items():
            names = sorted(ids)
            for n in range(0, len(names), INSTANCES_PER_CALL):
                chunk = names[n : n + INSTANCES_PER_CALL]
                sums = self._list(
                    service, project, build_filter(metric_type, chunk), aligner, start, end,
                    result,
                )
                for (database_id, ts), value in sums.items():
                    key = ids.get(database_id)
                    if key is not None and value >= 0:
                        result.add(key, Sample(metric, ts, value * scale))

    def _list(
        self,
        service: Any,
        project: str,
        filter_: str,
        aligner: str,
        start: datetime,
        end: datetime,
        result: CollectResult,
    ) -> dict[tuple[str, datetime], float]:
        """Every page of one timeSeries.list; values summed per (instance, minute)."""
        return self._list_aligned(service, project, filter_, aligner, start, end, result,
                                  ALIGNMENT_SECONDS)

    def _list_aligned(
        self,
        service: Any,
        project: str,
        filter_: str,
        aligner: str,
        start: datetime,
        end: datetime,
        result: CollectResult | HistoryResult,
        seconds: int,
    ) -> dict[tuple[str, datetime], float]:
        what = f"project {project}: reading Cloud Monitoring time series"
        period = timedelta(seconds=seconds)
        sums: dict[tuple[str, datetime], float] = {}
        token: str | None = None
        for _ in range(MAX_PAGES):
            kwargs: dict[str, Any] = {
                "name": f"projects/{project}",
                "filter": filter_,
                "interval_startTime": _rfc3339(start),
                "interval_endTime": _rfc3339(end),
                "aggregation_alignmentPeriod": f"{seconds}s",
                "aggregation_perSeriesAligner": aligner,
                "pageSize": PAGE_SIZE,
            }
            if token:
                kwargs["pageToken"] = token
            result.api_calls += 1
            page = self._execute(service.projects().timeSeries().list(**kwargs), what)
            for series in page.get("timeSeries") or []:
                labels = (series.get("resource") or {}).get("labels") or {}
                database_id = labels.get("database_id")
                if not database_id:
                    continue
                for point in series.get("points") or []:
                    value = _point_value(point)
                    end_time = (point.get("interval") or {}).get("endTime")
                    if value is None or value != value or not end_time:
                        continue
                    # An aligned point covers the period that ends at endTime.
                    ts = _parse_time(end_time) - period
                    if ts < start or ts >= end:
                        continue
                    key = (database_id, ts)
                    sums[key] = sums.get(key, 0.0) + value
            token = page.get("nextPageToken") or None
            if not token:
                break
        return sums

    def history(
        self,
        account: Account,
        targets: Sequence[MetricTarget],
        start: datetime,
        end: datetime,
        progress: Progress | None = None,
        sink: Sink | None = None,
    ) -> HistoryResult:
        """Whole hours in [start, end) (both on the hour), aligned to one hour.

        Per-project failures land in ``errors``; the other projects' hours are kept.
        """
        service = self._monitoring(account)
        result = HistoryResult(sink)
        return read_history_by_group(
            _by_project(targets),
            lambda project, group: self._history_project(
                service, project, group, start, end, result),
            result, progress, "timeSeries.list")

    def _history_project(
        self,
        service: Any,
        project: str,
        targets: Sequence[MetricTarget],
        start: datetime,
        end: datetime,
        result: HistoryResult,
    ) -> None:
        # Per batch of instances (one filter each), every metric: the batch's hours are
        # then complete and go to the sink before the next batch is read.
        ordered = sorted(targets, key=lambda t: t.provider_id)
        for n in range(0, len(ordered), INSTANCES_PER_CALL):
            self._history_batch(service, project, ordered[n : n + INSTANCES_PER_CALL],
                                start, end, result)

    def _history_batch(
        self,
        service: Any,
        project: str,
        targets: Sequence[MetricTarget],
        start: datetime,
        end: datetime,
        result: HistoryResult,
    ) -> None:
        # (metric type, aligner, scale, our metric, avg|max) -> database_id -> target key
        plans: dict[tuple[str, str, float, str, str], dict[str, Any]] = {}
        for t in targets:
            for metric in (CPU, CONNECTIONS, READ_IOPS, WRITE_IOPS):
                metric_type, aligner, scale = metric_type_for(metric, t.engine)
                roles: tuple[tuple[str, str], ...] = (
                    (("ALIGN_MEAN", "avg"), ("ALIGN_MAX", "max")) if metric == CONNECTIONS
                    else ((aligner, "avg"),)
                )
                for how, role in roles:
                    plans.setdefault((metric_type, how, scale, metric, role), {})[
                        t.provider_id
                    ] = t.key
        values: dict[Any, dict[tuple[str, datetime], dict[str, float]]] = {}
        for (metric_type, aligner, scale, metric, role), ids in plans.items():
            sums = self._list_aligned(
                service, project, build_filter(metric_type, sorted(ids)), aligner, start, end,
                result, HISTORY_ALIGNMENT_SECONDS,
            )
            for (database_id, ts), value in sums.items():
                key = ids.get(database_id)
                if key is not None and value >= 0:
                    values.setdefault(key, {}).setdefault(
                        (metric, floor_hour(ts)), {})[role] = value * scale
        result.deliver(values)

    def _execute(self, request: Any, what: str) -> dict[str, Any]:
        try:
            answer = counted_execute(self.telemetry, request, self._num_retries)
        except HttpError as exc:
            raise _http_error(exc, what, self._num_retries, False) from None
        except google.auth.exceptions.GoogleAuthError as exc:
            raise ProviderError(f"{what}: GCP authentication failed: {_first_line(exc)}") from None
        except (OSError, httplib2.HttpLib2Error) as exc:
            raise ProviderError(
                f"{what}: cannot reach Cloud Monitoring after {self._num_retries} retries: "
                f"{type(exc).__name__}: {exc}"
            ) from None
        return answer if isinstance(answer, dict) else {}
