"""Operators' view: /metrics (Prometheus text, parsed with prometheus-client's own
parser) after a real sync against moto, a metrics collection, a scheduled stop and a
manual action; who may scrape; and the JSON log lines that join task runs to actions.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from pydantic import ValidationError

from snoozeql.api.app import create_app
from snoozeql.config import Settings
from snoozeql.jobs.catalogue import Job, catalogue
from snoozeql.jobs.runner import JobRunner
from snoozeql.logging import JsonFormatter
from snoozeql.providers.registry import ProviderRegistry
from snoozeql.services.apikeys import ApiKeyService
from snoozeql.store import actions as action_log
from tests.support.moto_server import FAKE_SECRET_KEY, free_port

OFFICE = {"name": "office", "timezone": "UTC",
          "periods": [{"begintime": "08:00", "endtime": "19:00", "weekdays": "mon-fri"}]}
DB_PASSWORD = "hunter2-db-password"
# A Wednesday, 21:00 UTC: outside the office hours, so the schedule wants stopped.
T0 = datetime(2026, 11, 25, 21, 0, tzinfo=UTC)


def samples(body: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a scrape by (name, sorted labels)."""
    out = {}
    for family in text_string_to_metric_families(body):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(scrape: dict, name: str, **labels: str) -> float | None:
    return scrape.get((name, tuple(sorted(labels.items()))))


def h(keys: dict[str, str], role: str) -> dict[str, str]:
    return {"X-API-Key": keys[role]}


def test_metrics_and_log_lines_after_sync_collection_and_actions(
    ctx, aws_env, caplog: pytest.LogCaptureFixture, tmp_path: Path,  # noqa: ANN001
) -> None:
    caplog.set_level(logging.INFO, logger="snoozeql")
    prices = tmp_path / "prices.toml"
    prices.write_text('[[price]]\nprovider = "aws"\ninstance_class = "db.t3.micro"\n'
                      'usd_per_hour = 0.018\n')
    ctx.settings = ctx.settings.model_copy(update={"price_table": prices})
    now = [T0]
    ctx.clock = lambda: now[0]
    keys = {role: ApiKeyService(ctx).create(f"{role}-key", role)[1]
            for role in ("viewer", "operator", "admin")}
    api = TestClient(create_app(ctx), raise_server_exceptions=False,
                     client=("127.0.0.1", 51000))
    aws_env.create_instances("us-east-1", 3, tags={"env": "dev"})
    aws_env.create_instances("us-east-1", 2, prefix="prod", tags={"env": "prod"})
    r = api.post("/api/v1/accounts", headers=h(keys, "admin"), json={
        "provider": "aws", "name": "dev-account",
        "config": {"regions": ["us-east-1"], "endpoint_url": aws_env.endpoint_url}})
    assert r.status_code == 201, r.text
    account_id = r.json()["id"]
    assert api.post("/api/v1/schedules", headers=h(keys, "operator"),
                    json=OFFICE).status_code == 201
    assert api.post("/api/v1/schedules/office/assignments", headers=h(keys, "operator"),
                    json={"tag": "env=dev"}).status_code == 201

    # The periodic tasks, through the real runner: sync, collection, reconcile; and a
    # task that fails once (with a store URL in its error) and succeeds when retried.
    calls = []

    def flaky(_ctx) -> None:  # noqa: ANN001
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError(f"cannot reach postgresql://snoozeql:{DB_PASSWORD}@10.9.9.9/db")

    jobs = {j.name: j for j in catalogue(ctx)}
    runner = JobRunner(ctx, [jobs["sync-accounts"], jobs["collect-metrics"],
                             jobs["reconcile-schedules"],
                             Job("flaky", timedelta(seconds=60), flaky)])
    runner.register()
    ran = runner.run_due()
    assert ran == ["sync-accounts", "collect-metrics", "reconcile-schedules", "flaky"]
    now[0] = T0 + timedelta(seconds=120)
    assert runner.run_due() == ["reconcile-schedules", "flaky"]  # the others: not due yet

    # A manual action through the API, on the instance no schedule governs.
    r = api.post("/api/v1/instances/prod-0000/stop", headers=h(keys, "operator"))
    assert r.status_code == 200, r.text
    listed = api.get("/api/v1/instances?limit=100", headers=h(keys, "viewer")).json()["items"]
    assert api.get("/api/v1/instances/no-such-db", headers=h(keys, "viewer")).status_code == 404

    r = api.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    m = samples(r.text)

    # HTTP: by route template, never the raw path (no series per instance name).
    stop_route = "/api/v1/instances/{instance}/stop"
    assert value(m, "snoozeql_http_request_duration_seconds_count", route=stop_route,
                 method="POST", status="200") == 1
    assert value(m, "snoozeql_http_request_duration_seconds_bucket", route=stop_route,
                 method="POST", status="200", le="+Inf") == 1
    assert value(m, "snoozeql_http_request_duration_seconds_count",
                 route="/api/v1/instances/{instance}", method="GET", status="404") == 1
    assert value(m, "snoozeql_http_request_duration_seconds_count",
                 route="/api/v1/instances", method="GET", status="200") == 1
    assert not [k for k in m if any("prod-0000" in v or "no-such-db" in v for _, v in k[1])]

    # Tasks: started/succeeded/failed/retried and durations by task.
    for task, runs in (("sync-accounts", 1), ("collect-metrics", 1),
                       ("reconcile-schedules", 2)):
        assert value(m, "snoozeql_tasks_started_total", task=task) == runs
        assert value(m, "snoozeql_tasks_succeeded_total", task=task) == runs
        assert value(m, "snoozeql_task_duration_seconds_count", task=task,
                     result="succeeded") == runs
    assert value(m, "snoozeql_tasks_failed_total", task="flaky") == 1
    assert value(m, "snoozeql_tasks_retried_total", task="flaky") == 1
    assert value(m, "snoozeql_tasks_succeeded_total", task="flaky") == 1
    assert value(m, "snoozeql_tasks_retried_total", task="reconcile-schedules") == 0
    assert value(m, "snoozeql_tasks_in_progress", task="sync-accounts") == 0

    # Provider calls by provider/operation/result; throttling counted apart.
    assert value(m, "snoozeql_provider_calls_total", provider="aws",
                 operation="DescribeDBInstances", result="ok") >= 1
    assert value(m, "snoozeql_provider_calls_total", provider="aws",
                 operation="GetMetricData", result="ok") >= 1
    assert value(m, "snoozeql_provider_calls_total", provider="aws",
                 operation="StopDBInstance", result="ok") == 4  # 3 scheduled + 1 manual
    assert not [k for k in m if k[0] == "snoozeql_provider_throttled_total"]

    # Actions by action/result.
    assert value(m, "snoozeql_actions_total", action="stop", result="ok") == 4
    assert value(m, "snoozeql_action_duration_seconds_count", action="stop") == 4

    # The fleet, read from the store at scrape time.
    by_status: dict[str, int] = {}
    for i in listed:
        by_status[i["status"]] = by_status.get(i["status"], 0) + 1
    for status, n in by_status.items():
        assert value(m, "snoozeql_instances", provider="aws", status=status) == n
    assert sum(v for k, v in m.items() if k[0] == "snoozeql_instances") == 5
    assert by_status["running"] == 1  # prod-0001: neither scheduled nor stopped
    assert value(m, "snoozeql_accounts", provider="aws", status="connected") == 1
    assert value(m, "snoozeql_account_last_sync_age_seconds", account="dev-account",
                 provider="aws") == 120
    running_cost = sum(i["hourly_cost_cents"] / 100 for i in listed if i["status"] == "running")
    assert running_cost == pytest.approx(0.018)
    assert value(m, "snoozeql_running_dollars_per_hour", provider="aws") == pytest.approx(
        running_cost)
    dev = [i for i in listed if i["name"].startswith("db-")]
    assert len(dev) == 3 and all(i["hourly_cost_cents"] for i in dev)
    assert value(m, "snoozeql_saved_dollars_per_hour") == pytest.approx(
        sum(i["hourly_cost_cents"] / 100 for i in dev))
    assert value(m, "snoozeql_store_up") == 1

    # Logs: one JSON line per task run and per action, joined by their ids.
    lines = [json.loads(JsonFormatter().format(rec)) for rec in caplog.records]
    tasks = [x for x in lines if x.get("event") == "task"]
    assert [(t["task"], t["result"]) for t in tasks] == [
        ("sync-accounts", "succeeded"), ("collect-metrics", "succeeded"),
        ("reconcile-schedules", "succeeded"), ("flaky", "failed"),
        ("reconcile-schedules", "succeeded"), ("flaky", "succeeded")]
    assert [t["retry"] for t in tasks if t["task"] == "flaky"] == [False, True]
    assert (tasks[0]["accounts"], tasks[0]["failed_accounts"]) == (1, 0)
    syncs = [x for x in lines if x.get("event") == "sync"]
    assert [(x["account"], x["account_id"], x["task_id"], x["result"], x["found"])
            for x in syncs] == [("dev-account", account_id, tasks[0]["task_id"],
                                 "connected", 5)]
    actions = [x for x in lines if x.get("event") == "action"]
    assert len(actions) == 4
    reconcile_id = tasks[2]["task_id"]
    scheduled = [a for a in actions if a["task_id"] == reconcile_id]
    assert sorted(a["instance"] for a in scheduled) == ["db-0000", "db-0001", "db-0002"]
    with ctx.engine.connect() as conn:
        logged = {str(e.id): e for e in action_log.list_recent(conn, limit=100)}
    for a in actions:
        entry = logged[a["action_id"]]  # the line names the action log's own entry
        assert (a["action"], a["result"], a["instance_id"]) == (
            entry.action, entry.result, str(entry.instance_id))
        assert a["account_id"] == account_id
    manual = [a for a in actions if a["instance"] == "prod-0000"]
    assert manual[0]["task_id"] is None and manual[0]["actor"] == "operator-key"

    # No secret in any line: the cloud secret key, API keys, a password in a URL.
    text = "\n".join(JsonFormatter().format(rec) for rec in caplog.records)
    for secret in (FAKE_SECRET_KEY, DB_PASSWORD, *keys.values()):
        assert secret not in text
    assert "postgresql://snoozeql:***@10.9.9.9/db" in tasks[3]["error"]


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_metrics_only_for_loopback_and_allowed_networks(ctx) -> None:  # noqa: ANN001
    def scrape(peer: str, allow: list[str] | None = None, **headers: str) -> int:
        if allow is not None:
            ctx.settings = ctx.settings.model_copy(update={"metrics_allow": allow})
        client = TestClient(create_app(ctx), client=(peer, 40000))
        return client.get("/metrics", headers=headers).status_code

    assert scrape("127.0.0.1") == 200
    assert scrape("127.0.0.5") == 200
    assert scrape("::1") == 200
    r = TestClient(create_app(ctx), client=("10.1.2.3", 40000)).get("/metrics")
    assert r.status_code == 403 and "SNOOZEQL_METRICS_ALLOW" in r.json()["error"]["message"]
    assert "snoozeql_" not in r.text
    # A forwarded-for header does not make a peer local.
    assert scrape("10.1.2.3", **{"X-Forwarded-For": "127.0.0.1", "X-Real-IP": "127.0.0.1"}) \
        == 403
    assert scrape("testclient") == 403  # not an address at all
    assert scrape("10.1.2.3", ["10.0.0.0/8"]) == 200
    assert scrape("::ffff:10.1.2.3", ["10.0.0.0/8"]) == 200
    assert scrape("192.168.1.9", ["10.0.0.0/8", "fd00::/8"]) == 403
    assert scrape("fd00::7", ["10.0.0.0/8", "fd00::/8"]) == 200
    assert scrape("127.0.0.1", ["10.0.0.0/8"]) == 200  # loopback stays allowed


def test_metrics_allow_refuses_what_is_not_a_network() -> None:
    with pytest.raises(ValidationError, match="'10.0.0.0/33' is not a network"):
        Settings(metrics_allow=["10.0.0.0/8", "10.0.0.0/33"], _env_file=None)  # type: ignore[call-arg]
    assert Settings(metrics_allow=["10.1.2.3/8"], _env_file=None  # type: ignore[call-arg]
                    ).metrics_networks[0].with_prefixlen == "10.0.0.0/8"


def test_serve_decides_on_the_tcp_peer_and_logs_json(tmp_path: Path) -> None:
    """A real `snoozeql serve`: a loopback scraper that sends X-Forwarded-For with an
    outside address still gets the metrics (uvicorn would otherwise have taken that
    address as the client), and with SNOOZEQL_LOG_JSON every log line is JSON."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SNOOZEQL_")}
    env.update(SNOOZEQL_DATA_DIR=str(tmp_path / "data"), SNOOZEQL_LOG_JSON="true",
               SNOOZEQL_PORT=str(port), SNOOZEQL_JOBS_ENABLED="false")
    err = open(tmp_path / "serve.err", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([str(Path(sys.executable).parent / "snoozeql"), "serve"],
                            env=env, stdout=subprocess.DEVNULL, stderr=err)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{base}/healthz", timeout=2)
                break
            except (urllib.error.URLError, ConnectionError):
                assert proc.poll() is None, (tmp_path / "serve.err").read_text()
                assert time.monotonic() < deadline, "serve did not come up"
                time.sleep(0.3)
        req = urllib.request.Request(f"{base}/metrics",
                                     headers={"X-Forwarded-For": "203.0.113.9"})
        with urllib.request.urlopen(req, timeout=10) as r:
            assert r.status == 200
            m = samples(r.read().decode())
        assert value(m, "snoozeql_http_request_duration_seconds_count", route="/healthz",
                     method="GET", status="200") >= 1
        assert value(m, "snoozeql_instances", provider="aws", status="running") is None
        assert value(m, "snoozeql_store_up") == 1
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        err.close()
    lines = [ln for ln in (tmp_path / "serve.err").read_text().splitlines() if ln.strip()]
    assert lines
    for ln in lines:
        assert isinstance(json.loads(ln), dict), ln


def test_throttling_is_counted_apart_from_the_calls(aws_env, aws_proxy) -> None:  # noqa: ANN001
    """Through the throttling proxy in front of moto: two throttled answers then one
    that gets through is one ok call and two throttled answers; a call still throttled
    after its retries is a ``throttled`` call."""
    from snoozeql.domain.errors import ProviderError
    from snoozeql.observability import Telemetry
    from snoozeql.providers.aws.driver import AwsProvider

    aws_env.create_instances("us-east-1", 2)
    aws_env.create_instances("eu-west-1", 1, prefix="west")
    telemetry = Telemetry()
    provider = AwsProvider(aws_env.settings.model_copy(update={"aws_max_attempts": 3}))
    provider.telemetry = telemetry
    aws_proxy.throttle(2, action="DescribeDBInstances", region="us-east-1")
    assert len(provider.discover(aws_env.account(endpoint_url=aws_proxy.url))) == 2
    m = samples(telemetry.exposition()[0].decode())
    ops = {k[1]: v for k, v in m.items() if k[0] == "snoozeql_provider_calls_total"}
    assert ops == {
        (("operation", "DescribeDBInstances"), ("provider", "aws"), ("result", "ok")): 1,
        (("operation", "DescribeDBClusters"), ("provider", "aws"), ("result", "ok")): 1}
    assert value(m, "snoozeql_provider_throttled_total", provider="aws",
                 operation="DescribeDBInstances") == 2

    aws_proxy.throttle(100, action="DescribeDBInstances", region="eu-west-1")
    with pytest.raises(ProviderError, match="Throttling"):
        provider.discover(aws_env.account(["eu-west-1"], endpoint_url=aws_proxy.url))
    m = samples(telemetry.exposition()[0].decode())
    assert value(m, "snoozeql_provider_calls_total", provider="aws",
                 operation="DescribeDBInstances", result="throttled") == 1
    assert value(m, "snoozeql_provider_throttled_total", provider="aws",
                 operation="DescribeDBInstances") == 5


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_local_database_actions_are_counted_and_logged_without_the_password(
    local_ctx, caplog: pytest.LogCaptureFixture,  # noqa: ANN001
) -> None:
    """A real local Redis: its create, stop and delete are counted and logged, one
    line each, and its password is in none of them."""
    from snoozeql.services.lifecycle import LifecycleService
    from snoozeql.services.local_databases import LocalDatabaseService

    caplog.set_level(logging.INFO, logger="snoozeql")
    password = "local-redis-pw-7c1e"
    svc = LocalDatabaseService(local_ctx)
    created = svc.create(name="cache1", engine="redis", password=password, actor="dev")
    LifecycleService(local_ctx).act(created.instance.id, "stop", actor="dev")
    svc.delete("cache1", actor="dev")

    m = samples(local_ctx.telemetry.exposition()[0].decode())
    for action in ("create", "stop", "delete"):
        assert value(m, "snoozeql_actions_total", action=action, result="ok") == 1
    lines = [json.loads(JsonFormatter().format(r)) for r in caplog.records]
    actions = [x for x in lines if x.get("event") == "action"]
    assert [(a["action"], a["instance_id"], a["provider"]) for a in actions] == [
        (a, str(created.instance.id), "local") for a in ("create", "stop", "delete")]
    assert password not in "\n".join(JsonFormatter().format(r) for r in caplog.records)


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_gcp_calls_are_counted_by_api_method_and_throttling_apart(
    ctx, gcp_api, gcp_service_account,  # noqa: ANN001
) -> None:
    """Against the Cloud SQL test server: a sync's instances.list calls are ``ok``;
    a project still answering 429 after the client library's retries is ``throttled``."""
    from snoozeql.services.accounts import AccountService
    from snoozeql.services.background_sync import wait_for_history
    from snoozeql.services.discovery import DiscoveryService

    ctx.settings = ctx.settings.model_copy(update={"gcp_num_retries": 0})
    ctx.providers = ProviderRegistry(ctx.settings)  # reports to ctx.telemetry all the same
    gcp_api.add_instances("proj-a", 3)
    AccountService(ctx).add("gcp", "analytics", {
        "projects": "proj-a", "credentials_file": str(gcp_service_account.path),
        "api_endpoint": gcp_api.url})
    assert DiscoveryService(ctx).sync("analytics").error is None
    listed = gcp_api.count("GET", "/v1/projects/{project}/instances", "proj-a")
    assert listed >= 1
    m = samples(ctx.telemetry.exposition()[0].decode())
    assert value(m, "snoozeql_provider_calls_total", provider="gcp",
                 operation="sql.instances.list", result="ok") == listed

    wait_for_history(ctx)  # the new account's history read must not take the 429
    gcp_api.fail_next("proj-a", 429)
    assert "429" in (DiscoveryService(ctx).sync("analytics").error or "")
    m = samples(ctx.telemetry.exposition()[0].decode())
    assert value(m, "snoozeql_provider_calls_total", provider="gcp",
                 operation="sql.instances.list", result="throttled") == 1
    assert value(m, "snoozeql_provider_throttled_total", provider="gcp",
                 operation="sql.instances.list") == 1
