"""Day-one history benchmark: GetMetricData calls to read 14 days of 1,000 RDS instances
(issue 16 item 8), and the time to store them.

1. Starts moto's server (a real HTTP peer, as the tests use) and reads 14 days x 4
   metrics of 1,000 DB instances with the AWS collector's ``history`` (3600 s period,
   5 queries per instance: connections as mean and peak), counting the calls boto3
   really makes (botocore's ``before-call`` event). moto answers a call in one page
   whatever its size and scans every stored datapoint for every query and period, so
   only three instances carry data there (checked to come back): the call count is
   what is measured on the wire, the page count is the documented rule applied to the
   calls made (CloudWatch pages an answer at 100,800 datapoints; each call is planned
   to stay within that).
2. Prints the calls the same plan needs at 60 s and 300 s periods (computed, the same
   rule), which is why the history is read hourly.
3. Stores 1,000 x 336 x 4 history hours in an SQLite store through the same path the
   service uses (``apply_hours``, a batch per call's instances), then again (a no-op).

Run: ``.venv/bin/python -m benchmarks.bench_backfill [--no-write]``. Prints Markdown.
"""

from __future__ import annotations

import math
import os
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
from tests.support.moto_server import MotoServer

from benchmarks.cloudwatch_bench import counting_get_metric_data, moto_setup
from snoozeql.domain.metrics import METRICS, HourlyAggregate
from snoozeql.domain.types import (
    DiscoveredInstance,
    InstanceKind,
    InstanceStatus,
    ProviderKind,
)
from snoozeql.providers.aws.metrics import (
    HISTORY_QUERIES,
    MAX_DATAPOINTS,
    MAX_QUERIES,
    AwsMetricsCollector,
    history_queries_per_call,
)
from snoozeql.store import db
from snoozeql.store import instances as instance_store
from snoozeql.store import metrics as metric_store

INSTANCES = 1000
DAYS = 14
WITH_DATA = ("db-0000", "db-0500", "db-0999")


def main() -> None:
    os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench-secret",
                      AWS_DEFAULT_REGION="us-east-1", AWS_EC2_METADATA_DISABLED="true")
    workdir = Path(tempfile.mkdtemp(prefix="bench-backfill-"))
    print(f"load average at start: {os.getloadavg()[0]:.1f}\n")
    server = MotoServer(workdir / "moto.log")
    try:
        run(server.url, workdir, write="--no-write" not in sys.argv)
    finally:
        server.stop()
    print(f"\nload average at end: {os.getloadavg()[0]:.1f}")


def calls_for(queries: int, points_per_query: int) -> int:
    """Calls (= pages) to read ``queries`` series of ``points_per_query`` points, with as
    many queries per call as fit in one page (at most 500)."""
    per_call = max(1, min(MAX_QUERIES, MAX_DATAPOINTS // points_per_query))
    return math.ceil(queries / per_call)


def run(endpoint: str, workdir: Path, write: bool) -> None:
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    start = end - timedelta(days=DAYS)
    hours = DAYS * 24
    cw = boto3.client("cloudwatch", region_name="us-east-1", endpoint_url=endpoint)
    for name in WITH_DATA:
        cw.put_metric_data(Namespace="AWS/RDS", MetricData=[
            {"MetricName": metric, "Timestamp": start + timedelta(hours=5, minutes=10),
             "Dimensions": [{"Name": "DBInstanceIdentifier", "Value": name}], "Value": 3.0}
            for metric in ("CPUUtilization", "DatabaseConnections", "ReadIOPS", "WriteIOPS")
        ])

    names = [f"db-{i:04d}" for i in range(INSTANCES)]
    settings, account, targets = moto_setup(workdir, endpoint, names)
    with counting_get_metric_data() as calls:
        t0 = time.perf_counter()
        result = AwsMetricsCollector(settings).history(account, targets, start, end)
        read_s = time.perf_counter() - t0

    per_call = history_queries_per_call(hours)
    queries = INSTANCES * len(HISTORY_QUERIES)
    came_back = sorted(k for k in result.hours)  # type: ignore[type-var]
    print("| figure | value |\n|---|---|")
    print(f"| instances x days x metrics | {INSTANCES} x {DAYS} x {len(METRICS)} "
          f"({queries} queries: connections read as Average and Maximum) |")
    print(f"| datapoints per query at 3600 s | {hours} |")
    print(f"| queries per call (whole instances, answer <= {MAX_DATAPOINTS:,} datapoints) "
          f"| {per_call} ({per_call * hours:,} datapoints) |")
    print(f"| GetMetricData calls made against moto (counted on the wire) | {len(calls)} |")
    pages = math.ceil(per_call * hours / MAX_DATAPOINTS)
    print(f"| pages per call under CloudWatch's 100,800-datapoint rule (computed) | {pages} |")
    print(f"| instances with data that came back | {', '.join(map(str, came_back))} "
          f"({result.hour_count} hours, {len(result.errors)} errors) |")
    print(f"| history read time against moto | {read_s:.1f} s |")
    print()
    print("| period | datapoints per query (14 days) | calls (pages) for the same "
          "5,000 queries (computed) |\n|---|---|---|")
    for period in (60, 300, 3600):
        points = DAYS * 86400 // period
        print(f"| {period} s | {points:,} | {calls_for(queries, points):,} |")

    if not write:
        return
    engine = db.create_engine(f"sqlite:///{workdir / 'store.db'}")
    db.upgrade(engine)
    items = [
        DiscoveredInstance(ProviderKind.AWS, t.provider_id, str(t.key), InstanceKind.INSTANCE,
                           "postgres", None, "db.t3.micro", "us-east-1", InstanceStatus.RUNNING,
                           "available")
        for t in targets
    ]
    with engine.begin() as conn:
        instance_store.upsert_discovered(conn, items, None, end, {})
        ids = [i.id for i in instance_store.iter_all(conn)]
    per_batch = per_call // len(HISTORY_QUERIES)

    def batches() -> Any:
        for n in range(0, len(ids), per_batch):
            yield {
                iid: [HourlyAggregate(m, start + timedelta(hours=h), float(h % 24),
                                      float(h % 24), float(h % 24), 60)
                      for m in METRICS for h in range(hours)]
                for iid in ids[n : n + per_batch]
            }

    def write_all() -> tuple[int, int, float]:
        changed = statements = 0
        t0 = time.perf_counter()
        for batch in batches():
            c, s = metric_store.apply_hours(engine, batch)
            changed += c
            statements += s
        return changed, statements, time.perf_counter() - t0

    changed, statements, write_s = write_all()
    again, _, again_s = write_all()
    print()
    print("| store (SQLite) | value |\n|---|---|")
    print(f"| history hours written | {changed:,} in {statements:,} upsert statements, "
          f"{write_s:.1f} s ({per_batch} instances per batch) |")
    print(f"| the same history again | {again} hours changed, {again_s:.1f} s |")


if __name__ == "__main__":
    main()
