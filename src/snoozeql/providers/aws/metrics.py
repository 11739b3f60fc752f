"""AWS metrics: CloudWatch ``GetMetricData`` for RDS instances and Aurora clusters.

Why it looks the way it does:

* One ``GetMetricData`` call carries up to 500 metric queries, so a cycle costs
  ``ceil(targets x 4 / 500)`` calls per region (plus a page when a call's answer is
  cut, which a 30-minute window at 60 s never is): 1,000 instances take 8 calls, not
  4,000 ``GetMetricStatistics`` calls.
* Instances are queried with the ``DBInstanceIdentifier`` dimension and Aurora (and
  Multi-AZ) clusters with ``DBClusterIdentifier``: CPUUtilization, DatabaseConnections,
  ReadIOPS and WriteIOPS, which CloudWatch also aggregates per cluster.
* The period is 60 s, RDS's own publishing period, so each sample stands for one
  minute and the store's minute masks make re-reading a window harmless.
* Partial results are fine here (unlike discovery): a failing region is reported in
  :attr:`CollectResult.errors` and the other regions' samples are still returned.

History (:meth:`AwsMetricsCollector.history`, the day-one backfill) reads the same
queries with a **3600 s period**: the store keeps hours, CloudWatch keeps 1-hour data
for 455 days (60 s data only 15 days, 5-minute data 63 days), so one period serves
every age a backfill may ask for, and it needs 60 times fewer datapoints than 60 s
(12 times fewer than 300 s). Connections are read twice, ``Average`` and ``Maximum``,
so the stored hour keeps both its mean and its peak (the analysis needs both). A call
holds at most 500 queries and at most 100,800 datapoints (GetMetricData's page), so
14 days (336 hours) put 300 queries in a call and no call needs a second page.
"""

from __future__ import annotations

import logging
from collections.abc import Hashable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from snoozeql.config import Settings
from snoozeql.domain.errors import ProviderError
from snoozeql.domain.metrics import (
    CONNECTIONS,
    CPU,
    READ_IOPS,
    WRITE_IOPS,
    Sample,
    floor_hour,
)
from snoozeql.domain.types import Account, InstanceKind
from snoozeql.observability import Telemetry
from snoozeql.providers.aws.config import AwsAccountConfig
from snoozeql.providers.aws.driver import (
    AwsCredentials,
    client_config,
    describe_error,
    resolve_credentials,
)
from snoozeql.providers.base import (
    CollectResult,
    HistoryResult,
    MetricTarget,
    Progress,
    Sink,
    read_history_by_group,
)

__all__ = [
    "HISTORY_PERIOD",
    "MAX_DATAPOINTS",
    "MAX_QUERIES",
    "AwsMetricsCollector",
    "history_queries_per_call",
]

log = logging.getLogger(__name__)

MAX_QUERIES = 500
"""Metric queries per GetMetricData call (the API's maximum)."""
PERIOD = 60
MAX_PAGES = 100
HISTORY_PERIOD = 3600
"""Period of history reads: one datapoint per hour (valid for any age up to 455 days)."""
MAX_DATAPOINTS = 100_800
"""Datapoints GetMetricData returns in one answer before it pages (its default)."""

# Our metric -> (CloudWatch metric name, statistic).
CLOUDWATCH_METRICS: dict[str, tuple[str, str]] = {
    CPU: ("CPUUtilization", "Average"),
    CONNECTIONS: ("DatabaseConnections", "Maximum"),
    READ_IOPS: ("ReadIOPS", "Average"),
    WRITE_IOPS: ("WriteIOPS", "Average"),
}


# History: (our metric, CloudWatch name, statistic, what the value is for the hour).
HISTORY_QUERIES: tuple[tuple[str, str, str, str], ...] = (
    (CPU, "CPUUtilization", "Average", "avg"),
    (CONNECTIONS, "DatabaseConnections", "Average", "avg"),
    (CONNECTIONS, "DatabaseConnections", "Maximum", "max"),
    (READ_IOPS, "ReadIOPS", "Average", "avg"),
    (WRITE_IOPS, "WriteIOPS", "Average", "avg"),
)


def history_queries_per_call(hours: int) -> int:
    """Queries per GetMetricData call so that its answer fits one page, rounded down to
    whole instances (a call then brings every statistic of the hours it reads)."""
    fit = min(MAX_QUERIES, MAX_DATAPOINTS // max(1, hours))
    per_instance = len(HISTORY_QUERIES)
    return max(per_instance, fit // per_instance * per_instance)


def identifier(provider_id: str) -> str:
    """The DB instance / cluster identifier: the last part of an RDS ARN."""
    return provider_id.rsplit(":", 1)[-1]


def metric_query(qid: str, target: MetricTarget, name: str, stat: str,
                 period: int) -> dict[str, Any]:
    """One GetMetricData query: an RDS metric of one instance or Aurora cluster."""
    dimension = "DBClusterIdentifier" if target.kind is InstanceKind.CLUSTER else (
        "DBInstanceIdentifier"
    )
    return {
        "Id": qid,
        "MetricStat": {
            "Metric": {
                "Namespace": "AWS/RDS",
                "MetricName": name,
                "Dimensions": [{"Name": dimension, "Value": identifier(target.provider_id)}],
            },
            "Period": period,
            "Stat": stat,
        },
        "ReturnData": True,
    }


def build_queries(targets: Sequence[MetricTarget]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Every metric query for ``targets``; and query id -> (target key, metric)."""
    queries: list[dict[str, Any]] = []
    index: dict[str, Any] = {}
    for t in targets:
        for metric, (name, stat) in CLOUDWATCH_METRICS.items():
            qid = f"q{len(queries)}"
            queries.append(metric_query(qid, t, name, stat, PERIOD))
            index[qid] = (t.key, metric)
    return queries, index


def by_region(cfg: AwsAccountConfig, targets: Sequence[MetricTarget]
              ) -> list[tuple[str, list[MetricTarget]]]:
    """Targets grouped by region (an instance without one: the account's first)."""
    groups: dict[str, list[MetricTarget]] = {}
    for t in targets:
        groups.setdefault(t.region or cfg.regions[0], []).append(t)
    return sorted(groups.items())


class AwsMetricsCollector:
    """Reads the four metrics of an account's databases from CloudWatch."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self.telemetry: Telemetry | None = None  # set by the registry: counts API calls

    def collect(
        self, account: Account, targets: Sequence[MetricTarget], start: datetime, end: datetime
    ) -> CollectResult:
        """Samples in [start, end) for ``targets``; per-region failures in ``errors``.

        Raises ProviderError only when nothing can be asked at all (no credentials).
        """
        cfg = AwsAccountConfig.from_account(account)
        creds = resolve_credentials(cfg, self._settings)
        result = CollectResult()
        for region, group in by_region(cfg, targets):
            try:
                self._collect_region(creds, cfg, region, group, start, end, result)
            except ProviderError as exc:
                result.errors.append(exc.message)
        return result

    def _cloudwatch(self, creds: AwsCredentials, cfg: AwsAccountConfig, region: str) -> Any:
        try:
            return creds.client("cloudwatch", region, endpoint_url=cfg.endpoint_url,
                                config=client_config(self._settings), telemetry=self.telemetry)
        except (BotoCoreError, ValueError) as exc:
            raise ProviderError(f"AWS {region}: {describe_error(exc, creds.secrets())}") from None

    @staticmethod
    def _values(
        cw: Any, creds: AwsCredentials, region: str, chunk: list[dict[str, Any]],
        start: datetime, end: datetime, result: CollectResult | HistoryResult,
    ) -> Iterator[tuple[str, datetime, float]]:
        """(query id, timestamp, value) of one chunk of queries, page by page; counts
        each call in ``result`` and skips missing, negative and NaN values."""
        token: str | None = None
        for _page in range(MAX_PAGES):
            kwargs: dict[str, Any] = {
                "MetricDataQueries": chunk, "StartTime": start, "EndTime": end,
                "ScanBy": "TimestampAscending",
            }
            if token:
                kwargs["NextToken"] = token
            try:
                result.api_calls += 1
                answer = cw.get_metric_data(**kwargs)
            except (ClientError, BotoCoreError) as exc:
                msg = describe_error(exc, creds.secrets())
                raise ProviderError(f"AWS {region}: GetMetricData failed: {msg}") from None
            for item in answer.get("MetricDataResults", []):
                for ts, value in zip(
                    item.get("Timestamps", []), item.get("Values", []), strict=False
                ):
                    if value is None or value < 0 or value != value:
                        continue
                    yield item["Id"], ts, float(value)
            token = answer.get("NextToken")
            if not token:
                break

    def _collect_region(
        self,
        creds: AwsCredentials,
        cfg: AwsAccountConfig,
        region: str,
        targets: Sequence[MetricTarget],
        start: datetime,
        end: datetime,
        result: CollectResult,
    ) -> None:
        cw = self._cloudwatch(creds, cfg, region)
        queries, index = build_queries(targets)
        for n in range(0, len(queries), MAX_QUERIES):
            chunk = queries[n : n + MAX_QUERIES]
            for qid, ts, value in self._values(cw, creds, region, chunk, start, end, result):
                key, metric = index[qid]
                result.add(key, Sample(metric, ts, value))

    def history(
        self,
        account: Account,
        targets: Sequence[MetricTarget],
        start: datetime,
        end: datetime,
        progress: Progress | None = None,
        sink: Sink | None = None,
    ) -> HistoryResult:
        """Whole hours in [start, end) (both on the hour) at a 1-hour period.

        Per-region failures land in ``errors``; the other regions' hours are kept.
        """
        cfg = AwsAccountConfig.from_account(account)
        creds = resolve_credentials(cfg, self._settings)
        result = HistoryResult(sink)
        return read_history_by_group(
            by_region(cfg, targets),
            lambda region, group: self._history_region(
                creds, cfg, region, group, start, end, result),
            result, progress, "GetMetricData")

    def _history_region(
        self,
        creds: AwsCredentials,
        cfg: AwsAccountConfig,
        region: str,
        targets: Sequence[MetricTarget],
        start: datetime,
        end: datetime,
        result: HistoryResult,
    ) -> None:
        cw = self._cloudwatch(creds, cfg, region)
        queries: list[dict[str, Any]] = []
        index: dict[str, tuple[Hashable, str, str]] = {}
        for t in targets:
            for metric, name, stat, role in HISTORY_QUERIES:
                qid = f"h{len(queries)}"
                queries.append(metric_query(qid, t, name, stat, HISTORY_PERIOD))
                index[qid] = (t.key, metric, role)
        hours = max(1, int((end - start).total_seconds()) // HISTORY_PERIOD)
        per_call = history_queries_per_call(hours)
        for n in range(0, len(queries), per_call):
            chunk = queries[n : n + per_call]
            values: dict[Hashable, dict[tuple[str, datetime], dict[str, float]]] = {}
            for qid, ts, value in self._values(cw, creds, region, chunk, start, end, result):
                key, metric, role = index[qid]
                hour = floor_hour(ts.astimezone(UTC))
                if start <= hour < end:
                    values.setdefault(key, {}).setdefault((metric, hour), {})[role] = value
            result.deliver(values)  # a call holds whole instances (all their queries)
