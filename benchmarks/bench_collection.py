"""Collection benchmark: CloudWatch calls per cycle for 1,000 RDS instances (issue 7).

Starts moto's server (a real HTTP peer, as the tests use), puts 30 minutes of 60 s
datapoints for 1,000 DB instances x 4 metrics (120,000 datapoints), then runs one
collection cycle of the AWS collector over them and counts the ``GetMetricData``
calls boto3 really makes (botocore's ``before-call`` event). The target is
ceil(1000 x 4 / 500) = 8. It then writes the samples to an SQLite store through the
batched upsert and reports the statements, and re-applies them (the idempotent no-op).

Run: ``.venv/bin/python -m benchmarks.bench_collection``. Prints a Markdown table.
"""

from __future__ import annotations

import math
import os
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
from tests.support.moto_server import MotoServer

from benchmarks.cloudwatch_bench import counting_get_metric_data, moto_setup
from snoozeql.domain.types import (
    DiscoveredInstance,
    InstanceKind,
    InstanceStatus,
    ProviderKind,
)
from snoozeql.providers.aws.metrics import CLOUDWATCH_METRICS, AwsMetricsCollector
from snoozeql.store import db
from snoozeql.store import instances as instance_store
from snoozeql.store import metrics as metric_store

INSTANCES = 1000
MINUTES = 30
DATA_MINUTES = 2
"""Minutes of data put per series. moto's GetMetricData scans every stored datapoint
for every query, so a fuller window only makes moto slower, not the calls more."""


def main() -> None:
    os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench-secret",
                      AWS_DEFAULT_REGION="us-east-1", AWS_EC2_METADATA_DISABLED="true")
    workdir = Path(tempfile.mkdtemp(prefix="bench-collection-"))
    server = MotoServer(workdir / "moto.log")
    try:
        run(server.url, workdir)
    finally:
        server.stop()


def run(endpoint: str, workdir: Path) -> None:
    end = datetime.now(UTC).replace(second=0, microsecond=0)
    start = end - timedelta(minutes=MINUTES)
    cw = boto3.client("cloudwatch", region_name="us-east-1", endpoint_url=endpoint)
    names = [f"db-{i:04d}" for i in range(INSTANCES)]
    data = [
        {"MetricName": metric, "Dimensions": [{"Name": "DBInstanceIdentifier", "Value": n}],
         "Timestamp": end - timedelta(minutes=1 + k), "Value": float(k % 7)}
        for n in names for metric, _stat in CLOUDWATCH_METRICS.values()
        for k in range(DATA_MINUTES)
    ]
    t0 = time.perf_counter()
    for i in range(0, len(data), 1000):
        cw.put_metric_data(Namespace="AWS/RDS", MetricData=data[i : i + 1000])
    put_s = time.perf_counter() - t0

    settings, account, targets = moto_setup(workdir, endpoint, names)
    with counting_get_metric_data() as calls:
        t0 = time.perf_counter()
        result = AwsMetricsCollector(settings).collect(account, targets, start, end)
        collect_s = time.perf_counter() - t0

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
        ids = {i.name: i.id for i in instance_store.iter_all(conn)}
    by_id = {ids[k]: v for k, v in result.samples.items()}  # type: ignore[index]
    t0 = time.perf_counter()
    changed, statements = metric_store.apply_samples(engine, by_id)
    write_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    again, _ = metric_store.apply_samples(engine, by_id)
    again_s = time.perf_counter() - t0

    queries = INSTANCES * len(CLOUDWATCH_METRICS)
    print("| figure | value |\n|---|---|")
    print(f"| instances x metrics (queries) | {INSTANCES} x {len(CLOUDWATCH_METRICS)} = "
          f"{queries} |")
    print(f"| target GetMetricData calls, ceil({queries}/500) | {math.ceil(queries / 500)} |")
    print(f"| GetMetricData calls made (counted on the wire) | {len(calls)} |")
    print(f"| samples returned | {result.sample_count:,} ({len(result.errors)} errors) |")
    for err in result.errors:
        print(f"| error | {err} |")
    print(f"| collection time against moto | {collect_s:.2f} s |")
    print(f"| hourly buckets written (SQLite) | {changed:,} in {statements} upsert "
          f"statements, {write_s:.2f} s |")
    print(f"| same window written again | {again} buckets changed, {again_s:.2f} s |")
    print(f"| (setup: put {len(data):,} datapoints) | {put_s:.1f} s |")


if __name__ == "__main__":
    main()
