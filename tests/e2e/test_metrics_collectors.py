"""Collectors against real peers: moto's CloudWatch over HTTP, the Cloud Monitoring
test server through Google's client library, and real PostgreSQL / Redis processes
with real client connections held open."""

from __future__ import annotations

import json
import math
import socket
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from snoozeql.domain.engines import LocalDatabaseSpec
from snoozeql.domain.metrics import CONNECTIONS, CPU, READ_IOPS, WRITE_IOPS
from snoozeql.domain.types import InstanceKind
from snoozeql.providers.aws import driver as aws_module
from snoozeql.providers.aws.metrics import AwsMetricsCollector
from snoozeql.providers.base import MetricTarget
from snoozeql.providers.gcp import metrics as gcp_metrics
from snoozeql.providers.gcp.metrics import GcpMetricsCollector
from snoozeql.providers.local.engines.redis import read_line, resp_command
from snoozeql.providers.local.metrics import LocalMetricsCollector, LocalTarget
from snoozeql.providers.local.ports import free_port
from snoozeql.services.accounts import AccountService
from snoozeql.services.background_sync import wait_for_history
from snoozeql.services.context import Context
from snoozeql.services.discovery import DiscoveryService
from snoozeql.services.metrics import MetricsService
from snoozeql.store import metrics as metric_store
from snoozeql.store.instances import find

PASSWORD = "metrics-test-pass-1"


def _now() -> datetime:
    return datetime.now(UTC).replace(second=0, microsecond=0)


def count_get_metric_data(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record every GetMetricData call boto3 really makes (botocore's event hook)."""
    calls: list[str] = []
    original = aws_module.AwsCredentials.client

    def client(self: Any, service: str, region: str, **kwargs: Any) -> Any:
        c = original(self, service, region, **kwargs)
        c.meta.events.register(
            "before-call.cloudwatch.GetMetricData", lambda **_kw: calls.append(region)
        )
        return c

    monkeypatch.setattr(aws_module.AwsCredentials, "client", client)
    return calls


def put(cw: Any, dimension: str, ident: str, metric: str, points: list[tuple[datetime, float]],
        ) -> None:
    cw.put_metric_data(Namespace="AWS/RDS", MetricData=[
        {"MetricName": metric, "Dimensions": [{"Name": dimension, "Value": ident}],
         "Timestamp": t, "Value": v} for t, v in points
    ])


# --------------------------------------------------------------------------- AWS


def test_aws_collection_aggregates_instances_and_aurora_clusters(
    ctx: Context, aws_env: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = _now()
    ctx.clock = lambda: now
    aws_env.create_instances("us-east-1", 2)
    aws_env.create_aurora_cluster("us-east-1", "c1", members=1)
    AccountService(ctx).add("aws", "dev", {"regions": ["us-east-1"],
                                           "endpoint_url": aws_env.endpoint_url})
    assert DiscoveryService(ctx).sync("dev").error is None
    wait_for_history(ctx)  # the first sync's history read (nothing there yet)
    cw = aws_env.client("cloudwatch")
    minutes = [now - timedelta(minutes=k) for k in range(1, 21)]
    put(cw, "DBInstanceIdentifier", "db-0000", "CPUUtilization",
        [(t, float(i)) for i, t in enumerate(minutes)])
    put(cw, "DBInstanceIdentifier", "db-0000", "DatabaseConnections",
        [(t, 3.0) for t in minutes])
    put(cw, "DBInstanceIdentifier", "db-0001", "ReadIOPS", [(minutes[0], 40.0)])
    put(cw, "DBClusterIdentifier", "c1", "WriteIOPS", [(t, 5.0) for t in minutes[:5]])
    calls = count_get_metric_data(monkeypatch)

    report = MetricsService(ctx).collect()
    # 2 instances + 1 Aurora member + 1 cluster, x 4 metrics = 16 queries: one call.
    assert len(calls) == 1 and report.api_calls == 1 and not report.failed
    with ctx.engine.connect() as conn:
        [db0] = find(conn, name="db-0000")
        [db1] = find(conn, name="db-0001")
        [c1] = find(conn, name="c1")
    assert c1.kind is InstanceKind.CLUSTER

    def hours(instance_id: Any) -> dict[str, list[Any]]:
        with ctx.engine.connect() as conn:
            out: dict[str, list[Any]] = {}
            for a in metric_store.series(conn, instance_id, now - timedelta(hours=3), now):
                out.setdefault(a.metric, []).append(a)
            return out

    got = hours(db0.id)
    assert sum(a.count for a in got[CPU]) == 20
    total = sum(a.avg * a.count for a in got[CPU])
    assert math.isclose(total, sum(range(20)))
    assert max(a.max for a in got[CPU]) == 19.0 and min(a.min for a in got[CPU]) == 0.0
    assert {a.max for a in got[CONNECTIONS]} == {3.0}
    assert [(a.avg, a.count) for a in hours(db1.id)[READ_IOPS]] == [(40.0, 1)]
    assert sum(a.count for a in hours(c1.id)[WRITE_IOPS]) == 5

    # The same window again: nothing changes (idempotent), still one call.
    before = {m: list(v) for m, v in got.items()}
    again = MetricsService(ctx).collect()
    assert again.buckets_changed == 0 and hours(db0.id) == before


def test_aws_600_queries_take_exactly_two_calls(aws_env: Any, monkeypatch: pytest.MonkeyPatch
                                                ) -> None:
    now = _now()
    cw = aws_env.client("cloudwatch")
    put(cw, "DBInstanceIdentifier", "db-0149", "CPUUtilization", [(now - timedelta(minutes=2),
                                                                  12.5)])
    targets = [
        MetricTarget(f"k{i}", f"arn:aws:rds:us-east-1:123456789012:db:db-{i:04d}",
                     InstanceKind.INSTANCE, "postgres", "us-east-1")
        for i in range(150)
    ]
    calls = count_get_metric_data(monkeypatch)
    result = AwsMetricsCollector(aws_env.settings).collect(
        aws_env.account(), targets, now - timedelta(minutes=30), now
    )
    assert len(calls) == 2 and result.api_calls == 2 and not result.errors
    # The last instance's queries sit in the second call, and come back to it.
    assert [(s.metric, s.value) for s in result.samples["k149"]] == [(CPU, 12.5)]


def test_a_failing_account_does_not_stop_another_and_is_retried(
    ctx: Context, aws_env: Any
) -> None:
    now = _now()
    ctx.clock = lambda: now
    ctx.settings = ctx.settings.model_copy(update={"aws_max_attempts": 1,
                                                   "aws_connect_timeout": 1.0})
    aws_env.create_instances("us-east-1", 1)
    aws_env.create_instances("us-west-2", 1, prefix="west")
    accounts = AccountService(ctx)
    accounts.add("aws", "good", {"regions": ["us-east-1"], "endpoint_url": aws_env.endpoint_url})
    accounts.add("aws", "bad", {"regions": ["us-west-2"], "endpoint_url": aws_env.endpoint_url})
    for name in ("good", "bad"):
        assert DiscoveryService(ctx).sync(name).error is None
    wait_for_history(ctx)
    # "bad" becomes unreachable (its endpoint now points at a closed port).
    closed = f"http://127.0.0.1:{free_port()}"
    accounts.update("bad", {"regions": ["us-west-2"], "endpoint_url": closed})
    put(aws_env.client("cloudwatch"), "DBInstanceIdentifier", "db-0000", "CPUUtilization",
        [(now - timedelta(minutes=3), 50.0)])
    put(aws_env.client("cloudwatch", "us-west-2"), "DBInstanceIdentifier", "west-0000",
        "CPUUtilization", [(now - timedelta(minutes=3), 20.0)])

    report = MetricsService(ctx).collect()
    by_name = {s.source: s for s in report.sources}
    assert by_name["bad"].errors and "GetMetricData" in by_name["bad"].errors[0]
    assert not by_name["good"].errors and by_name["good"].buckets_changed == 1

    # Next cycle, the account works again: its instance gets its data too.
    accounts.update("bad", {"regions": ["us-west-2"], "endpoint_url": aws_env.endpoint_url})
    retry = {s.source: s for s in MetricsService(ctx).collect().sources}
    assert not retry["bad"].errors and retry["bad"].buckets_changed == 1


# --------------------------------------------------------------------------- GCP


def _seed_gcp(gcp_api: Any, now: datetime) -> None:
    minutes = [now - timedelta(minutes=k) for k in range(1, 11)]
    for project, name, version in (("p1", "pg-a", "POSTGRES_15"), ("p1", "pg-b", "POSTGRES_15"),
                                   ("p1", "my-a", "MYSQL_8_0"), ("p2", "pg-c", "POSTGRES_15")):
        gcp_api.add_instance(project, name, database_version=version)
        gcp_api.add_time_series(project, name, gcp_metrics.PREFIX + "cpu/utilization",
                                [(t, 0.25) for t in minutes])
        gcp_api.add_time_series(project, name, gcp_metrics.PREFIX + "disk/read_ops_count",
                                [(t, 120.0) for t in minutes], kind="DELTA")
        gcp_api.add_time_series(project, name, gcp_metrics.PREFIX + "disk/write_ops_count",
                                [(t, 6.0) for t in minutes], kind="DELTA")
        if version.startswith("POSTGRES"):
            for db, n in (("postgres", 1.0), ("app", 2.0)):
                gcp_api.add_time_series(project, name,
                                        gcp_metrics.PREFIX + "postgresql/num_backends",
                                        [(t, n) for t in minutes], labels={"database": db})
        else:
            gcp_api.add_time_series(project, name, gcp_metrics.PREFIX + "network/connections",
                                    [(t, 7.0) for t in minutes])


def _gcp_targets() -> list[MetricTarget]:
    return [
        MetricTarget(pid, pid, InstanceKind.INSTANCE, engine)
        for pid, engine in (("p1:pg-a", "postgres"), ("p1:pg-b", "postgres"),
                            ("p1:my-a", "mysql"), ("p2:pg-c", "postgres"))
    ]


@pytest.mark.parametrize("page_size", [100_000, 25])
def test_gcp_collection_many_instances_per_call(
    gcp_api: Any, gcp_account: Any, monkeypatch: pytest.MonkeyPatch, page_size: int
) -> None:
    monkeypatch.setattr(gcp_metrics, "PAGE_SIZE", page_size)
    now = _now()
    _seed_gcp(gcp_api, now)
    account = gcp_account("p1", "p2")
    result = GcpMetricsCollector(settings_for_gcp()).collect(
        account, _gcp_targets(), now - timedelta(minutes=30), now
    )
    assert not result.errors
    by_key: dict[str, dict[str, list[float]]] = {}
    for key, samples in result.samples.items():
        for s in samples:
            by_key.setdefault(key, {}).setdefault(s.metric, []).append(s.value)
    for key in ("p1:pg-a", "p1:pg-b", "p2:pg-c"):
        assert by_key[key][CPU] == [25.0] * 10  # a fraction in GCP, percent here
        assert by_key[key][CONNECTIONS] == [3.0] * 10  # both databases' backends
        assert by_key[key][READ_IOPS] == [2.0] * 10  # 120 operations a minute
        assert by_key[key][WRITE_IOPS] == [0.1] * 10
    assert by_key["p1:my-a"][CONNECTIONS] == [7.0] * 10
    list_calls = [r for r in gcp_api.requests if r.path.endswith("/timeSeries")]
    filters = [r.query["filter"][0] for r in list_calls]
    # One call per metric type and project (not per instance), engine-aware connections.
    cpu_p1 = [f for f, r in zip(filters, list_calls, strict=True)
              if r.project == "p1" and "cpu/utilization" in f]
    assert len(set(cpu_p1)) == 1 and all(i in cpu_p1[0] for i in ("p1:pg-a", "p1:pg-b", "p1:my-a"))
    pg_conn = [f for f in filters if "num_backends" in f and "p1:" in f]
    assert len(set(pg_conn)) == 1 and "p1:my-a" not in pg_conn[0]
    assert all(r.query["aggregation.alignmentPeriod"] == ["60s"] for r in list_calls)
    if page_size == 100_000:
        assert len(list_calls) == 5 + 4 == result.api_calls
    else:
        assert len(list_calls) == result.api_calls > 9  # pages were followed


def test_gcp_test_server_aligns_hourly_when_asked(gcp_api: Any, gcp_account: Any) -> None:
    from snoozeql.providers.gcp.config import GcpAccountConfig
    from snoozeql.providers.gcp.driver import GcpProvider

    hour = _now().replace(minute=0) - timedelta(hours=2)
    gcp_api.add_instance("p1", "pg-a")
    gcp_api.add_time_series("p1", "pg-a", gcp_metrics.PREFIX + "cpu/utilization",
                            [(hour + timedelta(minutes=k), k / 100) for k in range(60)])
    account = gcp_account("p1")
    collector = GcpMetricsCollector(settings_for_gcp())
    creds = GcpProvider(settings_for_gcp())._credentials(GcpAccountConfig.from_account(account))
    service = collector._service(creds, gcp_api.url)
    page = service.projects().timeSeries().list(
        name="projects/p1",
        filter=gcp_metrics.build_filter(gcp_metrics.PREFIX + "cpu/utilization", ["p1:pg-a"]),
        interval_startTime=gcp_metrics._rfc3339(hour),
        interval_endTime=gcp_metrics._rfc3339(hour + timedelta(hours=2)),
        aggregation_alignmentPeriod="3600s", aggregation_perSeriesAligner="ALIGN_MEAN",
    ).execute()
    [series] = page["timeSeries"]
    [point] = series["points"]
    assert math.isclose(point["value"]["doubleValue"], sum(range(60)) / 6000)


def settings_for_gcp() -> Any:
    from snoozeql.config import Settings

    return Settings(gcp_num_retries=1, _env_file=None)  # type: ignore[call-arg]


# --------------------------------------------------------------------------- local


def _redis_client(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(resp_command("AUTH", PASSWORD))
    assert read_line(sock, bytearray()).startswith("+")
    return sock


def test_local_collector_counts_real_connections(native_runtime: Any) -> None:
    pg = native_runtime.create(
        LocalDatabaseSpec.build(name="pgm", engine="postgres", port=free_port()), PASSWORD
    )
    rd = native_runtime.create(
        LocalDatabaseSpec.build(name="rdm", engine="redis", port=free_port()), PASSWORD
    )
    targets = [
        LocalTarget("pg", "pgm", "postgres", pg.port, PASSWORD, pg.pid),
        LocalTarget("rd", "rdm", "redis", rd.port, PASSWORD, rd.pid),
        LocalTarget("gone", "gone", "redis", free_port(), PASSWORD, None),
    ]
    held_pg = [psycopg.connect(host="127.0.0.1", port=pg.port, user="postgres",
                               password=PASSWORD, dbname="postgres") for _ in range(3)]
    held_rd = [_redis_client(rd.port) for _ in range(4)]
    try:
        collector = LocalMetricsCollector(first_sample_seconds=0.2)
        now = datetime.now(UTC)
        result = collector.collect(targets, now)
        values = {k: {s.metric: s.value for s in v} for k, v in result.samples.items()}
        assert values["pg"][CONNECTIONS] >= 3 and values["rd"][CONNECTIONS] >= 4
        assert 0.0 <= values["pg"][CPU] <= 100.0 and CPU in values["rd"]
        assert all(s.ts == now.replace(second=0, microsecond=0)
                   for v in result.samples.values() for s in v)
        # A database that cannot be reached is reported; the others were still measured.
        assert "gone" not in values and any(e.startswith("gone:") for e in result.errors)
        assert PASSWORD not in " ".join(result.errors)
    finally:
        for c in held_pg:
            c.close()
        for s in held_rd:
            s.close()
    # Connections closed: the next reading says so.
    again = collector.collect(targets[:2], datetime.now(UTC))
    after = {k: {s.metric: s.value for s in v} for k, v in again.samples.items()}
    assert after["pg"][CONNECTIONS] < 3 and after["rd"][CONNECTIONS] < 4


def test_collection_cycle_measures_local_databases(local_ctx: Context) -> None:
    from snoozeql.services.local_databases import LocalDatabaseService

    created = LocalDatabaseService(local_ctx).create(
        name="cache1", engine="redis", password=PASSWORD, actor="test"
    )
    port = created.instance.endpoint_port
    held = [_redis_client(port) for _ in range(2)]
    try:
        report = MetricsService(local_ctx).collect()
    finally:
        for s in held:
            s.close()
    [local] = report.sources
    assert local.source == "local" and not local.errors and local.buckets_changed == 2
    _, _, _, rows = MetricsService(local_ctx).series("cache1", None, "1h", None)
    values = {a.metric: a.max for a in rows}
    assert values[CONNECTIONS] >= 2 and 0 <= values[CPU] <= 100
    LocalDatabaseService(local_ctx).delete("cache1", actor="test")


def test_cli_metrics_collect_runs_one_collection_with_progress(
    snoozeql_cli: Any, aws_env: Any
) -> None:
    cli = snoozeql_cli
    ctx = cli.ctx()
    now = _now()
    aws_env.create_instances("us-east-1", 2)
    AccountService(ctx).add("aws", "dev", {"regions": ["us-east-1"],
                                           "endpoint_url": aws_env.endpoint_url})
    assert DiscoveryService(ctx).sync("dev").error is None
    wait_for_history(ctx)  # the first sync's history read (nothing there yet)
    put(aws_env.client("cloudwatch"), "DBInstanceIdentifier", "db-0000", "CPUUtilization",
        [(now - timedelta(minutes=k), 7.0) for k in range(1, 6)])
    r = cli("metrics", "collect", "--account", "dev")
    assert r.exit_code == 0, r.output
    assert "collecting dev" in r.output and "dev (aws): 2 instance(s)" in r.output
    assert "done: 1 hours updated" in r.output or "done: 2 hours updated" in r.output
    with ctx.engine.connect() as conn:
        [db0] = find(conn, name="db-0000")
        assert metric_store.series(conn, db0.id, now - timedelta(hours=2), now + timedelta(
            hours=1))
    r = cli("metrics", "collect", "--account", "dev", "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["sources"][0]["buckets_changed"] == 0
    assert cli("metrics", "collect", "--account", "nope").exit_code == 2
