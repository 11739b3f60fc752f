"""The job queue on the real PostgreSQL with real worker processes (issue 18).

Three `snoozeql worker` processes share one store. Four AWS accounts live in moto;
one of them ("slow") is reached through a loopback proxy that holds back its
``DescribeDBInstances`` answers, so the worker that runs its sync is busy in it when it
is killed with SIGKILL. The others must:

* defer every periodic task once per period, whatever the number of workers, and sync
  every account once per period (a ``sync-scope`` task per account and region; no
  double syncs);
* run the dead worker's sync again within two sync intervals (plus the sync's time),
  the dead run listed as ``abandoned`` and the re-run as a retry;
* show their task series on ``--metrics-port`` (parsed with prometheus-client's parser).

An API replica (`serve --no-jobs`) then lists the runs and defers a sync through
``/api/v1/jobs`` and the CLI, with the roles checked.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families

from snoozeql.config import Settings
from snoozeql.services.accounts import AccountService
from snoozeql.services.apikeys import ApiKeyService
from snoozeql.services.context import build_context
from snoozeql.store.job_runs import job_runs
from tests.support.latency_proxy import LatencyProxy
from tests.support.moto_server import (
    MotoServer,
    child_aws_env,
    free_port,
    rds_client,
)
from tests.support.store import create_pg_database, drop_pg_database

SNOOZEQL = str(Path(sys.executable).parent / "snoozeql")
SYNC_INTERVAL = 10  # SNOOZEQL_SYNC_INTERVAL_SECONDS (its smallest value)
RECONCILE_INTERVAL = 5
WORKERS = 3
ACCOUNTS = ["acct-1", "acct-2", "acct-3", "slow"]


@dataclass
class Cluster:
    pg: str
    env: dict[str, str]
    tmp: Path
    killed_at: datetime
    killed_pid: int
    account_ids: dict[str, str]
    runs: list[Any]  # job_runs rows when the workers were stopped
    defers: list[Any]  # procrastinate_periodic_defers rows
    metrics_text: str  # a surviving worker's /metrics after its syncs
    api_port: int
    keys: dict[str, str]
    logs: list[Path]


def _get(url: str, headers: dict[str, str] | None = None, timeout: float = 5
         ) -> tuple[int, bytes]:
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def _post(url: str, body: dict[str, Any], headers: dict[str, str]) -> tuple[int, Any]:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={**headers, "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def _wait_http(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        assert proc.poll() is None, f"process exited: {log.read_text()[-3000:]}"
        try:
            if _get(url, timeout=1)[0] == 200:
                return
        except OSError:
            pass
        assert time.monotonic() < deadline, f"{url} did not come up: {log.read_text()[-2000:]}"
        time.sleep(0.2)


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(40)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(10)


@pytest.fixture(scope="module")
def cluster(moto_server: MotoServer, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[Cluster]:
    tmp = tmp_path_factory.mktemp("queue")
    env = child_aws_env(dict(os.environ), tmp / "aws")
    moto_server.reset()
    rds = rds_client(moto_server.url)
    for n in range(2):
        rds.create_db_instance(DBInstanceIdentifier=f"db-{n}", Engine="postgres",
                               DBInstanceClass="db.t3.micro", MasterUsername="snooze",
                               MasterUserPassword="not-a-real-pass", AllocatedStorage=20)
    proxy = LatencyProxy(moto_server.url)
    pg = create_pg_database("snoozeql_queue")
    procs: list[subprocess.Popen[bytes]] = []
    saved = {k: os.environ.get(k) for k in env if k.startswith("AWS_")}
    os.environ.update({k: v for k, v in env.items() if k.startswith("AWS_")})
    try:
        settings = Settings(data_dir=tmp / "setup", database_url=pg, aws_price_list=False,
                            allowed_endpoints=["127.0.0.1"], _env_file=None)  # type: ignore[call-arg]
        ctx = build_context(settings)  # migrates: procrastinate's schema too
        ids = {}
        for name in ACCOUNTS:
            url = proxy.url if name == "slow" else moto_server.url
            ids[name] = str(AccountService(ctx).add(
                "aws", name, {"regions": "us-east-1", "endpoint_url": url}).id)
        keys = {role: ApiKeyService(ctx).create(f"k-{role}", role)[1]
                for role in ("viewer", "operator")}
        proxy.hold("DescribeDBInstances")
        worker_env = env | {
            "SNOOZEQL_DATABASE_URL": pg, "SNOOZEQL_AWS_PRICE_LIST": "false",
            "SNOOZEQL_SYNC_INTERVAL_SECONDS": str(SYNC_INTERVAL),
            "SNOOZEQL_RECONCILE_INTERVAL_SECONDS": str(RECONCILE_INTERVAL),
            "SNOOZEQL_METRICS_ENABLED": "false", "SNOOZEQL_STOP_WARNING_MINUTES": "0",
            "SNOOZEQL_ALLOWED_ENDPOINTS": '["127.0.0.1"]', "SNOOZEQL_AWS_MAX_ATTEMPTS": "1",
            # six missed heartbeats before a worker counts as dead: on a busy machine a live
            # worker's heartbeat can lag a few seconds, and then its sync would be abandoned
            "SNOOZEQL_WORKER_HEARTBEAT_SECONDS": "1", "SNOOZEQL_WORKER_STALLED_SECONDS": "6",
            "SNOOZEQL_LOG_LEVEL": "INFO",
        }
        logs = [tmp / f"worker-{n}.log" for n in range(WORKERS)]
        ports = [free_port() for _ in range(WORKERS)]
        for n in range(WORKERS):
            procs.append(subprocess.Popen(
                [SNOOZEQL, "worker", "--concurrency", "2", "--metrics-port", str(ports[n])],
                env=worker_env | {"SNOOZEQL_DATA_DIR": str(tmp / f"data-{n}")},
                stdout=logs[n].open("wb"), stderr=subprocess.STDOUT,
            ))
        for n in range(WORKERS):
            _wait_http(f"http://127.0.0.1:{ports[n]}/healthz", procs[n], logs[n])

        # The worker syncing "slow" is inside its DescribeDBInstances call: kill it.
        assert proxy.wait_for("DescribeDBInstances", 1, timeout=60), "no sync of slow"
        deadline = time.monotonic() + 30
        holder = None
        while holder is None and time.monotonic() < deadline:
            with ctx.engine.connect() as conn:
                rows = conn.execute(sa.select(job_runs).where(
                    job_runs.c.task == "sync-scope", job_runs.c.status == "running")).all()
            holder = next((r for r in rows if r.args["account_id"] == ids["slow"]), None)
            time.sleep(0.05)
        assert holder is not None, "the slow sync has no running row"
        pid = int(holder.worker.split(":")[1])
        victim = next(p for p in procs if p.pid == pid)
        victim.send_signal(signal.SIGKILL)
        killed_at = datetime.now(UTC)
        victim.wait(10)
        proxy.release()

        # Bounded wait: the slow account synced again by a survivor, and a few periods.
        deadline = time.monotonic() + 2 * SYNC_INTERVAL + 30
        while time.monotonic() < deadline:
            with ctx.engine.connect() as conn:
                done = conn.execute(sa.select(job_runs).where(
                    job_runs.c.task == "sync-scope", job_runs.c.status == "succeeded",
                    job_runs.c.started_at > killed_at)).all()
            if any(r.args["account_id"] == ids["slow"] for r in done):
                break
            time.sleep(0.2)
        time.sleep(max(0.0, 2.5 * SYNC_INTERVAL - (datetime.now(UTC) - killed_at)
                       .total_seconds()))
        survivor_port = ports[next(n for n, p in enumerate(procs) if p is not victim)]
        status, body = _get(f"http://127.0.0.1:{survivor_port}/metrics")
        assert status == 200
        _stop(procs)  # graceful: their running tasks finish first
        with ctx.engine.connect() as conn:
            runs = conn.execute(sa.select(job_runs).order_by(job_runs.c.started_at)).all()
            defers = conn.execute(sa.text(
                "SELECT task_name, periodic_id, defer_timestamp, job_id "
                "FROM procrastinate_periodic_defers")).all()

        # An API replica (no jobs) for the listing and deferral by API and CLI.
        api_port = free_port()
        api_log = tmp / "api.log"
        procs.append(subprocess.Popen(
            [SNOOZEQL, "serve", "--no-jobs", "--port", str(api_port)],
            env=worker_env | {"SNOOZEQL_DATA_DIR": str(tmp / "data-api")},
            stdout=api_log.open("wb"), stderr=subprocess.STDOUT,
        ))
        _wait_http(f"http://127.0.0.1:{api_port}/healthz", procs[-1], api_log)
        ctx.engine.dispose()
        yield Cluster(pg, worker_env, tmp, killed_at, pid, ids, runs, defers,
                      body.decode(), api_port, keys, logs)
    finally:
        _stop(procs)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        proxy.close()
        drop_pg_database(pg)


def test_periodic_tasks_are_deferred_once_per_period_by_three_workers(cluster: Cluster
                                                                      ) -> None:
    ticks = [r for r in cluster.runs if r.task == "sync-accounts"]
    stamps = [r.args["timestamp"] for r in ticks]
    # Three workers each run the periodic deferrer: still one tick per period...
    assert len(ticks) >= 3, [r.task for r in cluster.runs]
    assert len(stamps) == len(set(stamps)), sorted(stamps)
    # Period after period (a period is skipped only if its tick still waited).
    assert all((b - a) % SYNC_INTERVAL == 0 and b > a
               for a, b in zip(sorted(stamps), sorted(stamps)[1:], strict=False))
    per_period = Counter((d.task_name, d.defer_timestamp) for d in cluster.defers)
    assert per_period and max(per_period.values()) == 1
    reconciles = [r.args["timestamp"] for r in cluster.runs
                  if r.task == "reconcile-schedules"]
    assert len(reconciles) >= 5 and len(reconciles) == len(set(reconciles))
    # Each reconcile tick deferred its shards once: shard runs = ticks x shards.
    shards = Counter(r.args["shard"] for r in cluster.runs if r.task == "reconcile-shard")
    assert set(shards) == {0, 1, 2, 3}
    assert all(len(reconciles) - 1 <= n <= len(reconciles) for n in shards.values()), shards
    # ... and every period's tick is run by one of the workers, on more than one worker.
    assert len({r.worker for r in cluster.runs}) >= 2


def test_each_account_is_synced_once_per_period(cluster: Cluster) -> None:
    # One task per (account, region): each account here has one region.
    syncs = [r for r in cluster.runs if r.task == "sync-scope"]
    for name in ("acct-1", "acct-2", "acct-3"):
        mine = sorted(r.started_at for r in syncs
                      if r.args["account_id"] == cluster.account_ids[name])
        assert len(mine) >= 3
        assert all(r.status == "succeeded" for r in syncs
                   if r.args["account_id"] == cluster.account_ids[name])
        # At most one sync of each account per tick (the last tick's may still wait at
        # the stop; a busy VM may leave one waiting past a tick), never two at once.
        ticks = sum(1 for r in cluster.runs if r.task == "sync-accounts")
        assert ticks - 2 <= len(mine) <= ticks, (len(mine), ticks)
        runs = sorted((r for r in syncs if r.args["account_id"] == cluster.account_ids[name]),
                      key=lambda r: r.started_at)
        for a, b in zip(runs, runs[1:], strict=False):
            assert b.started_at >= a.finished_at


def test_a_killed_workers_sync_runs_again_elsewhere_within_two_intervals(cluster: Cluster
                                                                         ) -> None:
    slow = [r for r in cluster.runs if r.task == "sync-scope"
            and r.args["account_id"] == cluster.account_ids["slow"]]
    dead = [r for r in slow if f":{cluster.killed_pid}:" in r.worker]
    assert len(dead) == 1 and dead[0].status == "abandoned", [(r.worker, r.status)
                                                                for r in slow]
    assert "stopped answering" in dead[0].error
    again = [r for r in slow if r.started_at > cluster.killed_at and r.status == "succeeded"]
    assert again, [(r.worker, r.status, r.error) for r in slow]
    first = min(again, key=lambda r: r.started_at)
    assert f":{cluster.killed_pid}:" not in first.worker
    redone = (first.finished_at - cluster.killed_at).total_seconds()
    print(f"\nqueue: the killed worker's sync was done again {redone:.1f} s after kill -9 "
          f"(sync interval {SYNC_INTERVAL} s)")
    own = (first.finished_at - first.started_at).total_seconds()
    assert redone <= 2 * SYNC_INTERVAL + own
    # No sync of it ran twice at once: each run started after the one before finished
    # (the dead one excepted: it never finished).
    live = sorted((r for r in slow if r is not dead[0]), key=lambda r: r.started_at)
    for a, b in zip(live, live[1:], strict=False):
        assert a.finished_at is not None and b.started_at >= a.finished_at


def test_worker_metrics_show_task_series(cluster: Cluster) -> None:
    families = {f.name: f for f in text_string_to_metric_families(cluster.metrics_text)}

    def value(family: str, suffix: str, **labels: str) -> float:
        for s in families[family].samples:
            if s.name == family + suffix and all(s.labels.get(k) == v
                                                 for k, v in labels.items()):
                return float(s.value)
        raise AssertionError(f"no {family}{suffix} {labels}")

    assert value("snoozeql_tasks_started", "_total", task="sync-scope") >= 1
    assert value("snoozeql_tasks_succeeded", "_total", task="sync-scope") >= 1
    assert value("snoozeql_tasks_started", "_total", task="reconcile-shard") >= 1
    assert value("snoozeql_task_duration_seconds", "_count", task="sync-scope",
                 result="succeeded") >= 1
    assert "snoozeql_tasks_retried" in families
    # The fleet gauges come from the store: every worker reports the same instances.
    assert sum(s.value for s in families["snoozeql_instances"].samples
               if s.labels.get("provider") == "aws") >= 2


def test_jobs_list_and_run_through_the_api(cluster: Cluster) -> None:
    base = f"http://127.0.0.1:{cluster.api_port}/api/v1/jobs"
    viewer = {"X-API-Key": cluster.keys["viewer"]}
    operator = {"X-API-Key": cluster.keys["operator"]}
    assert _get(base)[0] == 401
    status, body = _get(f"{base}?limit=5", viewer)
    assert status == 200
    page = json.loads(body)
    assert len(page["items"]) == 5 and page["next_cursor"]
    item = page["items"][0]
    assert {"task", "status", "worker", "duration_s", "error", "retries", "started_at",
            "job_id"} <= set(item)
    status, body = _get(f"{base}?limit=5&cursor={urllib.parse.quote(page['next_cursor'])}",
                        viewer)
    second = json.loads(body)["items"]
    assert status == 200 and not {i["id"] for i in second} & {i["id"] for i in page["items"]}
    status, body = _get(f"{base}?status=abandoned", viewer)
    assert [i["task"] for i in json.loads(body)["items"]] == ["sync-scope"]
    assert _get(f"{base}?cursor=nonsense", viewer)[0] == 400

    # A viewer may read, not run; an operator queues a sync (no worker runs now).
    assert _post(base, {"kind": "sync", "account": "acct-1"}, viewer)[0] == 403
    assert _post(base, {"kind": "sync", "account": "nope"}, operator)[0] == 404
    status, started = _post(base, {"kind": "sync", "account": "acct-1"}, operator)
    assert status == 202 and started["status"] == "queued" and started["job_id"]
    status, again = _post(base, {"kind": "sync", "account": "acct-1"}, operator)
    assert again["status"] == "already_queued" and again["job_id"] == started["job_id"]
    status, body = _get(f"{base}?status=queued", viewer)
    queued = json.loads(body)["items"]
    assert [(q["task"], q["job_id"]) for q in queued] == [("sync-account",
                                                           started["job_id"])]


def test_jobs_list_and_run_through_the_cli(cluster: Cluster) -> None:
    env = cluster.env | {"SNOOZEQL_DATA_DIR": str(cluster.tmp / "data-cli")}
    r = subprocess.run([SNOOZEQL, "jobs", "run", "sync", "acct-2"], env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "sync-account queued (job" in r.stdout
    r = subprocess.run([SNOOZEQL, "jobs", "list", "--json", "--limit", "200"], env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    items = json.loads(r.stdout)["items"]
    assert {i["status"] for i in items} >= {"queued", "succeeded", "abandoned"}
    assert any(i["task"] == "sync-account" and i["args"]["account_id"] ==
               cluster.account_ids["acct-2"] and i["status"] == "queued" for i in items)
    r = subprocess.run([SNOOZEQL, "jobs", "run", "sync", "nope"], env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "nope" in r.stderr and "Traceback" not in r.stderr
    # The table: queued first, then the runs with their worker and status.
    r = subprocess.run([SNOOZEQL, "jobs", "list", "--limit", "100"], env=env | {
        "COLUMNS": "220"}, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert "queued" in lines[3] and "sync-account" in lines[3]
    assert "abandoned" in r.stdout and f":{cluster.killed_pid}:" in r.stdout
    r = subprocess.run([SNOOZEQL, "jobs", "list", "--status", "nonsense"], env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "unknown status" in r.stderr


def test_worker_on_sqlite_says_it_needs_postgresql(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SNOOZEQL_")}
    env["SNOOZEQL_DATA_DIR"] = str(tmp_path)
    r = subprocess.run([SNOOZEQL, "worker"], env=env, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "needs PostgreSQL" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "snoozeql.db").exists()  # refused before a store was made


def test_a_throttled_sync_is_retried_by_the_queue_with_backoff(
        moto_server: MotoServer, tmp_path: Path) -> None:
    """AWS throttles the account's DescribeDBInstances once, past botocore's retries
    (one attempt here): the task fails as throttled and the queue runs it again ~3 s
    later (exponential backoff), on the same worker, which then succeeds."""
    env = child_aws_env(dict(os.environ), tmp_path / "aws")
    proxy = LatencyProxy(moto_server.url)
    pg = create_pg_database("snoozeql_throttle")
    procs: list[subprocess.Popen[bytes]] = []
    saved = {k: os.environ.get(k) for k in env if k.startswith("AWS_")}
    os.environ.update({k: v for k, v in env.items() if k.startswith("AWS_")})
    try:
        settings = Settings(data_dir=tmp_path / "setup", database_url=pg,
                            aws_price_list=False, allowed_endpoints=["127.0.0.1"],
                            _env_file=None)  # type: ignore[call-arg]
        ctx = build_context(settings)
        account = AccountService(ctx).add("aws", "busy", {"regions": "us-east-1",
                                                          "endpoint_url": proxy.url})
        wenv = env | {
            "SNOOZEQL_DATABASE_URL": pg, "SNOOZEQL_AWS_PRICE_LIST": "false",
            "SNOOZEQL_SYNC_INTERVAL_SECONDS": "86400", "SNOOZEQL_METRICS_ENABLED": "false",
            "SNOOZEQL_RECONCILE_INTERVAL_SECONDS": "3600",
            "SNOOZEQL_ALLOWED_ENDPOINTS": '["127.0.0.1"]', "SNOOZEQL_AWS_MAX_ATTEMPTS": "1",
            "SNOOZEQL_DATA_DIR": str(tmp_path / "data"),
        }
        port = free_port()
        log = tmp_path / "worker.log"
        procs.append(subprocess.Popen(
            [SNOOZEQL, "worker", "--concurrency", "1", "--queues", "sync", "--metrics-port",
             str(port)], env=wenv, stdout=log.open("wb"), stderr=subprocess.STDOUT))
        _wait_http(f"http://127.0.0.1:{port}/healthz", procs[0], log)
        proxy.throttle("DescribeDBInstances", 1)
        r = subprocess.run([SNOOZEQL, "jobs", "run", "sync", "busy"], env=wenv,
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0 and "queued" in r.stdout, r.stdout + r.stderr
        deadline = time.monotonic() + 60
        runs: list[Any] = []
        while time.monotonic() < deadline:
            with ctx.engine.connect() as conn:
                runs = conn.execute(sa.select(job_runs).where(
                    job_runs.c.task == "sync-account").order_by(job_runs.c.started_at)).all()
            if any(r.status == "succeeded" for r in runs):
                break
            time.sleep(0.1)
        assert [(r.attempt, r.status) for r in runs] == [(0, "failed"), (1, "succeeded")], (
            [(r.attempt, r.status, r.error) for r in runs], log.read_text()[-3000:])
        assert "ProviderThrottled" in runs[0].error and "Rate exceeded" in runs[0].error
        waited = (runs[1].started_at - runs[0].finished_at).total_seconds()
        assert waited >= 2.5, waited  # 3 s backoff before the second attempt
        assert runs[0].job_id == runs[1].job_id and runs[0].worker == runs[1].worker
        assert [c.throttled for c in proxy.calls_of("DescribeDBInstances")] == [True, False]
        status, body = _get(f"http://127.0.0.1:{port}/metrics")
        families = {f.name: f for f in text_string_to_metric_families(body.decode())}
        retried = {s.labels["task"]: s.value for s in families["snoozeql_tasks_retried"].samples
                   if s.name.endswith("_total")}
        assert retried["sync-account"] == 1
        throttled = [s for s in families["snoozeql_provider_calls"].samples
                     if s.labels.get("result") == "throttled"]
        assert throttled and throttled[0].labels["operation"] == "DescribeDBInstances"
        with ctx.engine.connect() as conn:
            from snoozeql.store.accounts import accounts

            state = conn.execute(sa.select(accounts.c.status).where(
                accounts.c.id == account.id)).scalar_one()
        assert state == "connected"
        ctx.engine.dispose()
    finally:
        _stop(procs)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        proxy.close()
        drop_pg_database(pg)


def test_a_sync_split_per_region_is_written_whole_by_its_last_part(
        moto_server: MotoServer, tmp_path: Path) -> None:
    """The queue's sync of an account with two regions is two tasks: the first keeps
    its part, the last writes both in one transaction (and flags what neither saw);
    a round older than the account's last sync is dropped."""
    from snoozeql.jobs import tasks
    from snoozeql.services.inventory import InventoryService
    from snoozeql.store.instances import InstanceFilter

    env = child_aws_env(dict(os.environ), tmp_path / "aws")
    saved = {k: os.environ.get(k) for k in env if k.startswith("AWS_")}
    os.environ.update({k: v for k, v in env.items() if k.startswith("AWS_")})
    try:
        for region in ("us-east-1", "eu-west-1"):
            rds_client(moto_server.url, region).create_db_instance(
                DBInstanceIdentifier=f"split-{region}", Engine="postgres",
                DBInstanceClass="db.t3.micro", MasterUsername="snooze",
                MasterUserPassword="not-a-real-pass", AllocatedStorage=20)
        settings = Settings(data_dir=tmp_path / "data", aws_price_list=False,
                            allowed_endpoints=["127.0.0.1"], _env_file=None)  # type: ignore[call-arg]
        ctx = build_context(settings)
        acc = AccountService(ctx).add("aws", "two", {"regions": "us-east-1,eu-west-1",
                                                     "endpoint_url": moto_server.url})

        def names() -> set[str]:
            found = InventoryService(ctx).list_all(InstanceFilter(account_id=acc.id))
            return {i.name for i in found if i.missing_since is None}

        older = [u for u in tasks.plan_sync(ctx) if u.args["account_id"] == str(acc.id)]
        units = [u for u in tasks.plan_sync(ctx) if u.args["account_id"] == str(acc.id)]
        assert [(u.task, u.args["scope"]) for u in units] == [
            ("sync-scope", "us-east-1"), ("sync-scope", "eu-west-1")]
        assert len({u.args["round"] for u in units}) == 1 and len({u.key for u in units}) == 2
        assert tasks.sync_scope(ctx, **units[0].args) is None  # waits for the other part
        assert AccountService(ctx).get("two").status.value == "syncing" and names() == set()
        report = tasks.sync_scope(ctx, **units[1].args)
        assert report is not None and report.status.value == "connected"  # type: ignore[attr-defined]
        assert {"split-us-east-1", "split-eu-west-1"} <= names()
        synced = AccountService(ctx).get("two")
        assert synced.status.value == "connected" and synced.last_sync_at is not None
        # The older round's parts arrive late: dropped, nothing written over the newer.
        assert tasks.sync_scope(ctx, **older[0].args) is None
        assert tasks.sync_scope(ctx, **older[1].args) is None
        assert AccountService(ctx).get("two").last_sync_at == synced.last_sync_at
        ctx.engine.dispose()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
