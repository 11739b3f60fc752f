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
"""

from __future__ import annotations

import logging
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from snoozeql.config import Settings
from snoozeql.domain.errors import ProviderError
from snoozeql.domain.metrics import CONNECTIONS, CPU, READ_IOPS, WRITE_IOPS, Sample
from snoozeql.domain.types import Account, InstanceKind
from snoozeql.observability import Telemetry
from snoozeql.providers.aws import (
    AwsAccountConfig,
    AwsCredentials,
    client_config,
    counted,
    describe_error,
    resolve_credentials,
)

__all__ = ["MAX_QUERIES", "AwsMetricsCollector", "CollectResult", "MetricTarget"]

log = logging.getLogger(__name__)

MAX_QUERIES = 500
"""Metric queries per GetMetricData call (the API's maximum)."""
PERIOD = 60
MAX_PAGES = 100

# Our metric -> (CloudWatch metric name, statistic).
CLOUDWATCH_METRICS: dict[str, tuple[str, str]] = {
    CPU: ("CPUUtilization", "Average"),
    CONNECTIONS: ("DatabaseConnections", "Maximum"),
    READ_IOPS: ("ReadIOPS", "Average"),
    WRITE_IOPS: ("WriteIOPS", "Average"),
}


@dataclass(frozen=True)
class MetricTarget:
    """One database to measure: ``key`` is the caller's (the instance id)."""

    key: Hashable
    provider_id: str
    kind: InstanceKind
    engine: str
    region: str | None = None
    name: str | None = None


@dataclass
class CollectResult:
    """What one collection of one account brought back."""

    samples: dict[Hashable, list[Sample]] = field(default_factory=dict)
    api_calls: int = 0
    errors: list[str] = field(default_factory=list)

    def add(self, key: Hashable, sample: Sample) -> None:
        self.samples.setdefault(key, []).append(sample)

    @property
    def sample_count(self) -> int:
        return sum(len(v) for v in self.samples.values())


def identifier(provider_id: str) -> str:
    """The DB instance / cluster identifier: the last part of an RDS ARN."""
    return provider_id.rsplit(":", 1)[-1]


def build_queries(targets: Sequence[MetricTarget]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Every metric query for ``targets``; and query id -> (target key, metric)."""
    queries: list[dict[str, Any]] = []
    index: dict[str, Any] = {}
    for t in targets:
        dimension = "DBClusterIdentifier" if t.kind is InstanceKind.CLUSTER else (
            "DBInstanceIdentifier"
        )
        for metric, (name, stat) in CLOUDWATCH_METRICS.items():
            qid = f"q{len(queries)}"
            queries.append({
                "Id": qid,
                "MetricStat": {
                    "Metric": {
                        "Namespace": "AWS/RDS",
                        "MetricName": name,
                        "Dimensions": [{"Name": dimension, "Value": identifier(t.provider_id)}],
                    },
                    "Period": PERIOD,
                    "Stat": stat,
                },
                "ReturnData": True,
            })
            index[qid] = (t.key, metric)
    return queries, index


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
        by_region: dict[str, list[MetricTarget]] = {}
        for t in targets:
            by_region.setdefault(t.region or cfg.regions[0], []).append(t)
        for region, group in sorted(by_region.items()):
            try:
                self._collect_region(creds, cfg, region, group, start, end, result)
            except ProviderError as exc:
                result.errors.append(exc.message)
        return result

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
        try:
            cw = counted(creds.session(region), self.telemetry).client(
                "cloudwatch", endpoint_url=cfg.endpoint_url, config=client_config(self._settings)
            )
        except (BotoCoreError, ValueError) as exc:
            raise ProviderError(f"AWS {region}: {describe_error(exc, creds.secrets())}") from None
        queries, index = build_queries(targets)
        for n in range(0, len(queries), MAX_QUERIES):
            chunk = queries[n : n + MAX_QUERIES]
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
                    key, metric = index[item["Id"]]
                    for ts, value in zip(
                        item.get("Timestamps", []), item.get("Values", []), strict=False
                    ):
                        if value is None or value < 0 or value != value:
                            continue
                        result.add(key, Sample(metric, ts, float(value)))
                token = answer.get("NextToken")
                if not token:
                    break
