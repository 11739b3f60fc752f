"""Day-one history: the metric history CloudWatch (moto's server over HTTP) and Cloud
Monitoring (the GCP API test server) already keep is read after an account's first
sync, and on request (CLI, API), so recommendations come minutes after adding it."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from snoozeql.api.app import create_app
from snoozeql.domain.metrics import CONNECTIONS, CPU
from snoozeql.providers.gcp import metrics as gcp_metrics
from snoozeql.providers.registry import ProviderRegistry
from snoozeql.services.accounts import AccountService
from snoozeql.services.apikeys import ApiKeyService
from snoozeql.services.background_sync import wait_for_history
from snoozeql.services.context import Context
from snoozeql.services.discovery import DiscoveryService
from snoozeql.services.recommendations import RecommendationService
from snoozeql.store import metrics as metric_store
from snoozeql.store.instances import find
from tests.e2e.test_metrics_collectors import count_get_metric_data

DAYS = 14


def _now() -> datetime:
    # Fixed at 20 past the hour: the backfill reads up to the hour under way.
    return datetime.now(UTC).replace(minute=20, second=0, microsecond=0)


def office(hour: datetime) -> bool:
    return hour.weekday() < 5 and 8 <= hour.hour < 18


def history_hours(now: datetime) -> list[datetime]:
    end = now.replace(minute=0)
    return [end - timedelta(hours=k) for k in range(DAYS * 24, 0, -1)]


def put_office_history(cw: Any, ident: str, now: datetime) -> None:
    """14 days of an office-hours database (Mon-Fri 08-18 UTC busy), two datapoints an
    hour per metric (at :10 and :40), put into CloudWatch with their past timestamps."""
    data: list[dict[str, Any]] = []
    dim = [{"Name": "DBInstanceIdentifier", "Value": ident}]
    for hour in history_hours(now):
        busy = office(hour)
        for minute, conns in ((10, 3.0), (40, 6.0)):
            ts = hour + timedelta(minutes=minute)
            for name, value in (
                ("CPUUtilization", 40.0 if busy else 2.0),
                ("DatabaseConnections", conns if busy else 0.0),
                ("ReadIOPS", 30.0 if busy else 1.0),
                ("WriteIOPS", 25.0 if busy else 1.0),
            ):
                data.append({"MetricName": name, "Dimensions": dim, "Timestamp": ts,
                             "Value": value})
    for n in range(0, len(data), 1000):
        cw.put_metric_data(Namespace="AWS/RDS", MetricData=data[n : n + 1000])


def recommendation_for(ctx: Context, name: str) -> dict[str, Any]:
    [rec] = [r for r in RecommendationService(ctx).list() if r["instance_name"] == name]
    return rec


def assert_office_hours_recommended(rec: dict[str, Any]) -> None:
    assert rec["status"] == "open" and rec["kind"] == "sleep", rec
    # Awake on weekdays across the office hours, asleep at night and at the weekend.
    [period] = rec["schedule"]["periods"]
    assert period["weekdays"] == "mon-fri"
    assert period["begintime"] <= "08:00" and period["endtime"] >= "18:00"
    assert rec["hours_observed"] >= DAYS * 24 - 1


def stored_hour(ctx: Context, name: str, metric: str, hour: datetime) -> Any:
    with ctx.engine.connect() as conn:
        [inst] = find(conn, name=name)
        [a] = metric_store.series(conn, inst.id, hour, hour + timedelta(hours=1), [metric])
    return a


def _aws_account(ctx: Context, aws_env: Any, name: str = "dev") -> None:
    AccountService(ctx).add("aws", name, {"regions": ["us-east-1"],
                                          "endpoint_url": aws_env.endpoint_url})


# --------------------------------------------------------------------------- AWS


def test_first_sync_reads_the_history_once_and_recommends_at_once(
    ctx: Context, aws_env: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = _now()
    ctx.clock = lambda: now
    aws_env.create_instances("us-east-1", 2)
    put_office_history(aws_env.client("cloudwatch"), "db-0000", now)
    calls = count_get_metric_data(monkeypatch)
    _aws_account(ctx, aws_env)

    assert DiscoveryService(ctx).sync("dev").error is None
    wait_for_history(ctx)
    # 2 databases x 5 queries (connections twice: mean and peak) at 3600 s: one call.
    assert len(calls) == 1
    assert AccountService(ctx).get("dev").history_read_at == now
    busy = next(h for h in reversed(history_hours(now)) if office(h))
    conn = stored_hour(ctx, "db-0000", CONNECTIONS, busy)
    assert (conn.avg, conn.max, conn.count) == (4.5, 6.0, 60)
    assert stored_hour(ctx, "db-0000", CPU, busy).avg == 40.0
    assert_office_hours_recommended(recommendation_for(ctx, "db-0000"))
    assert recommendation_for(ctx, "db-0001")["status"] == "none"  # no data, no advice

    # Later syncs, and a restarted process on the same store, do not read it again.
    assert DiscoveryService(ctx).sync("dev").error is None
    wait_for_history(ctx)
    restarted = Context(settings=ctx.settings, engine=ctx.engine,
                        providers=ProviderRegistry(ctx.settings))
    restarted.clock = ctx.clock
    assert DiscoveryService(restarted).sync("dev").error is None
    wait_for_history(restarted)
    assert len(calls) == 1


def test_regular_collection_after_the_history_counts_each_minute_once(
    ctx: Context, aws_env: Any
) -> None:
    now = _now()
    ctx.clock = lambda: now
    aws_env.create_instances("us-east-1", 1)
    cw = aws_env.client("cloudwatch")
    put_office_history(cw, "db-0000", now)
    _aws_account(ctx, aws_env)
    assert DiscoveryService(ctx).sync("dev").error is None
    wait_for_history(ctx)
    last = now.replace(minute=0) - timedelta(hours=1)
    before = stored_hour(ctx, "db-0000", CPU, last)
    assert before.count == 60

    # 60 s datapoints of the same hour and of the hour under way, then a collection
    # whose window reaches back into the backfilled hour.
    cw.put_metric_data(Namespace="AWS/RDS", MetricData=[
        {"MetricName": "CPUUtilization", "Timestamp": now - timedelta(minutes=k),
         "Dimensions": [{"Name": "DBInstanceIdentifier", "Value": "db-0000"}], "Value": 90.0}
        for k in range(1, 30)
    ])
    from snoozeql.services.metrics import MetricsService

    report = MetricsService(ctx).collect(now)
    assert not report.failed
    assert stored_hour(ctx, "db-0000", CPU, last) == before  # first value per minute won
    current = stored_hour(ctx, "db-0000", CPU, now.replace(minute=0))
    assert current.count == 20 and current.avg == 90.0  # minutes 00..19 of this hour
    # Reading the history again writes nothing either.
    assert MetricsService(ctx).backfill("dev").hours_written == 0


def test_cli_metrics_backfill(snoozeql_cli: Any, aws_env: Any) -> None:
    cli = snoozeql_cli
    ctx = cli.ctx()
    now = _now()
    ctx.clock = lambda: now
    aws_env.create_instances("us-east-1", 2)
    _aws_account(ctx, aws_env)
    # The first sync read the (then empty) history; the data arrives afterwards.
    assert DiscoveryService(ctx).sync("dev").error is None
    wait_for_history(ctx)
    put_office_history(aws_env.client("cloudwatch"), "db-0000", now)

    r = cli("metrics", "backfill", "dev", "--days", "14")
    assert r.exit_code == 0, r.output
    assert "dev: us-east-1: 2 database(s), 1 GetMetricData call(s)" in r.output
    # 336 hours x 4 metrics of db-0000 (db-0001 has none)
    assert "done: 1344 hours written from 1344 hourly values of 2 database(s)" in r.output
    recs = json.loads(cli("recommendations", "list", "--json").stdout)
    [rec] = [x for x in recs if x["instance_name"] == "db-0000"]
    assert_office_hours_recommended(rec)

    again = cli("metrics", "backfill", "dev", "--json")
    assert again.exit_code == 0, again.output
    body = json.loads(again.stdout)
    assert (body["api_calls"], body["samples"], body["hours_written"], body["errors"]) == (
        1, 1344, 0, [])

    # Bounds, unknown accounts, local databases, a failing source.
    bad = cli("metrics", "backfill", "dev", "--days", "64")
    said = " ".join(bad.output.split())
    assert bad.exit_code == 2 and "reading" not in said
    assert "64 is not between 1 and 63: CloudWatch keeps 5-minute data for 63 days" in said
    assert cli("metrics", "backfill", "nope").exit_code == 2
    local = cli("metrics", "backfill", "local")
    assert local.exit_code == 0 and "local databases keep no history" in local.output
    AccountService(ctx).update("dev", {"regions": ["us-east-1"],
                                       "endpoint_url": "http://127.0.0.1:9"})
    ctx.settings = ctx.settings.model_copy(update={"aws_max_attempts": 1,
                                                   "aws_connect_timeout": 1.0})
    failed = cli("metrics", "backfill", "dev", "--json")
    assert failed.exit_code == 1
    assert "GetMetricData failed" in json.loads(failed.stdout)["errors"][0]


def test_api_metrics_backfill(ctx: Context, aws_env: Any) -> None:
    now = _now()
    ctx.clock = lambda: now
    aws_env.create_instances("us-east-1", 1)
    _aws_account(ctx, aws_env)
    assert DiscoveryService(ctx).sync("dev").error is None
    wait_for_history(ctx)
    put_office_history(aws_env.client("cloudwatch"), "db-0000", now)
    keys = {role: ApiKeyService(ctx).create(f"{role}-key", role)[1]
            for role in ("viewer", "operator")}
    api = TestClient(create_app(ctx), raise_server_exceptions=False)

    def post(body: Any, role: str = "operator") -> Any:
        return api.post("/api/v1/metrics/backfill", json=body,
                        headers={"X-API-Key": keys[role]})

    assert post({"account": "dev"}, "viewer").status_code == 403
    assert post({"account": "nope"}).status_code == 404
    assert post({"account": "dev", "days": 0}).status_code == 422
    assert post({"account": "dev", "days": 64}).status_code == 422
    r = post({"account": "dev", "days": 14})
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["account"], body["provider"], body["instances"], body["api_calls"]) == (
        "dev", "aws", 1, 1)
    assert body["hours_written"] == body["samples"] == DAYS * 24 * 4 and body["errors"] == []
    recs = api.get("/api/v1/recommendations", headers={"X-API-Key": keys["viewer"]}).json()
    [rec] = [x for x in recs["items"] if x["instance_name"] == "db-0000"]
    assert_office_hours_recommended(rec)


# --------------------------------------------------------------------------- GCP


def test_gcp_first_sync_reads_cloud_monitoring_history(
    ctx: Context, gcp_api: Any, gcp_service_account: Any
) -> None:
    ctx.settings = ctx.settings.model_copy(update={"gcp_num_retries": 1})
    ctx.providers = ProviderRegistry(ctx.settings)
    now = _now()
    ctx.clock = lambda: now
    gcp_api.add_instance("proj-a", "pg-a", database_version="POSTGRES_15")
    gcp_api.add_instance("proj-a", "pg-b", database_version="POSTGRES_15")
    points: dict[str, list[tuple[datetime, float]]] = {}
    for hour in history_hours(now):
        busy = office(hour)
        for minute, share in ((10, 0.5), (40, 1.0)):
            ts = hour + timedelta(minutes=minute)
            points.setdefault("cpu", []).append((ts, 0.4 if busy else 0.02))
            points.setdefault("app", []).append((ts, 4.0 * share if busy else 0.0))
            points.setdefault("postgres", []).append((ts, 0.0))
            points.setdefault("ops", []).append((ts, 60.0 if busy else 6.0))
    prefix = gcp_metrics.PREFIX
    gcp_api.add_time_series("proj-a", "pg-a", prefix + "cpu/utilization", points["cpu"])
    for db in ("app", "postgres"):
        gcp_api.add_time_series("proj-a", "pg-a", prefix + "postgresql/num_backends", points[db],
                                labels={"database": db})
    for kind in ("read", "write"):
        gcp_api.add_time_series("proj-a", "pg-a", prefix + f"disk/{kind}_ops_count",
                                points["ops"], kind="DELTA")
    AccountService(ctx).add("gcp", "analytics", {
        "projects": "proj-a", "credentials_file": str(gcp_service_account.path),
        "api_endpoint": gcp_api.url,
    })

    assert DiscoveryService(ctx).sync("analytics").error is None
    wait_for_history(ctx)
    history = [r for r in gcp_api.requests if r.path.endswith("/timeSeries")
               and r.query["aggregation.alignmentPeriod"] == ["3600s"]]
    # One call per metric type and aligner for the project's two instances: CPU,
    # connections mean and max, reads, writes.
    assert len(history) == 5
    busy = next(h for h in reversed(history_hours(now)) if office(h))
    conn = stored_hour(ctx, "pg-a", CONNECTIONS, busy)
    assert (conn.avg, conn.max, conn.count) == (3.0, 4.0, 60)  # summed over databases
    assert abs(stored_hour(ctx, "pg-a", CPU, busy).avg - 40.0) < 1e-9
    assert_office_hours_recommended(recommendation_for(ctx, "pg-a"))
