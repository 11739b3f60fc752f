"""The job queue on PostgreSQL: sync scaling with workers, and a kill -9 mid-reconcile
(issue 18, item 4).

Part 1, scaling: one PostgreSQL, moto's server behind a loopback proxy that adds
100 ms to every AWS call (``tests/support/latency_proxy.py``), 40 AWS accounts with 2
regions each (us-east-1, eu-west-1; moto holds 2 RDS instances in each). For 1, 2 and
4 `snoozeql worker` processes (``--concurrency 1`` each, queue ``sync``), the periodic
sync's 80 tasks (``sync-scope``: one per account and region; the last of an account's
two writes both) are deferred at once and the wall time from the deferral to the
last finished run is measured (the workers are up before the clock starts), three
rounds in a row: the first is cold (each worker builds an account's AWS credentials
and clients on its first sync of it, then keeps them 5 minutes, as a long-running
worker does), the last is the steady state. Gate: the 4-worker steady-state time is at
most 0.35 of the 1-worker one.

Part 2, failover: two API replicas (`serve --no-jobs`) and three workers (``--concurrency
2``) on one store; moto holds 30 stopped RDS instances that a schedule wants running,
so the next ``reconcile-schedules`` period starts them (4 reconcile shards). The proxy
holds back the ``StartDBInstance`` answers until one worker has starts in flight; that
worker is killed with SIGKILL and the answers are released. Meanwhile both API replicas
answer ``GET /api/v1/jobs``. Checked at the end: no database started twice (one ``ok``
start row each, as many StartDBInstance calls as rows), no call without its row (none
``pending``), and the last start done within two reconcile intervals of the period that
began the transition.

Run: ``.venv/bin/python -m benchmarks.bench_queue`` (PostgreSQL from
``SNOOZEQL_TEST_PG_URL``). Prints Markdown; exits 1 if a gate fails.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from tests.support.latency_proxy import LatencyProxy
from tests.support.moto_server import (
    MotoServer,
    child_aws_env,
    free_port,
    rds_client,
)

from benchmarks.bench_inventory import drop_pg, pg_database
from snoozeql.config import Settings
from snoozeql.jobs import tasks
from snoozeql.jobs.queue import close_deferrer, defer_units, deferrer
from snoozeql.services.accounts import AccountService
from snoozeql.services.apikeys import ApiKeyService
from snoozeql.services.context import Context, build_context
from snoozeql.services.schedules import ScheduleService
from snoozeql.store.actions import actions
from snoozeql.store.job_runs import job_runs

SNOOZEQL = str(Path(sys.executable).parent / "snoozeql")
ACCOUNTS = 40
REGIONS = ("us-east-1", "eu-west-1")
LATENCY = 0.1
RECONCILE_INTERVAL = 15
FLEET = 30


def aws_env(tmp: Path) -> dict[str, str]:
    return child_aws_env(dict(os.environ), tmp / "aws")


def rds(moto: MotoServer, region: str) -> Any:
    return rds_client(moto.url, region)


def wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url}: process exited")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not come up")


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(40)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(10)


def start_workers(n: int, env: dict[str, str], tmp: Path, *, concurrency: int,
                  queues: list[str] | None = None) -> list[subprocess.Popen[bytes]]:
    procs, ports = [], []
    for i in range(n):
        port = free_port()
        cmd = [SNOOZEQL, "worker", "--concurrency", str(concurrency), "--metrics-port",
               str(port)]
        for q in queues or []:
            cmd += ["--queues", q]
        log = tmp / f"worker-{n}-{i}.log"
        procs.append(subprocess.Popen(cmd, env=env | {"SNOOZEQL_DATA_DIR": str(tmp / "d")},
                                      stdout=log.open("wb"), stderr=subprocess.STDOUT))
        ports.append(port)
    for p, port in zip(procs, ports, strict=True):
        wait_http(f"http://127.0.0.1:{port}/healthz", p)
    return procs


# ------------------------------------------------------------------ part 1


ROUNDS = 3


def one_round(ctx: Context, accounts: list[Any]) -> float:
    """Defer the periodic sync's tasks (one per account and region) at once; seconds
    until the last ran and every account was written."""
    with ctx.engine.begin() as conn:
        conn.execute(job_runs.delete())
    began = time.monotonic()
    since = ctx.now()
    units = tasks.plan_sync(ctx)
    assert len(units) == len(accounts) * len(REGIONS)
    defer_units(ctx, units, app=deferrer(ctx))
    deadline = began + 600
    while time.monotonic() < deadline:
        with ctx.engine.connect() as conn:
            done = conn.execute(sa.select(sa.func.count()).select_from(job_runs).where(
                job_runs.c.task == "sync-scope",
                job_runs.c.status.in_(("succeeded", "failed")))).scalar_one()
        if done >= len(units):
            break
        time.sleep(0.05)
    wall = time.monotonic() - began
    with ctx.engine.connect() as conn:
        failed = conn.execute(sa.select(job_runs.c.error).where(
            job_runs.c.status == "failed")).all()
    if failed:
        raise RuntimeError(f"{len(failed)} syncs failed: {failed[0].error}")
    stale = [a.name for a in AccountService(ctx).list()
             if a.last_sync_at is None or a.last_sync_at < since]
    if stale:
        raise RuntimeError(f"{len(stale)} accounts not written by the round: {stale[:3]}")
    return wall


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds of these processes so far (Linux /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


def scaling(ctx: Context, env: dict[str, str], tmp: Path, proxy: LatencyProxy,
            moto_pid: int) -> dict[int, tuple[list[float], int]]:
    """Per worker count: the wall time of each round (the first is cold: a new worker
    builds each account's AWS clients once, then keeps them 5 minutes), and how many
    workers ran syncs."""
    accounts = AccountService(ctx).list()
    results: dict[int, tuple[list[float], int]] = {}
    for workers in (1, 2, 4):
        procs = start_workers(workers, env, tmp, concurrency=1, queues=["sync"])
        try:
            walls = []
            used: set[str] = set()
            for _ in range(ROUNDS):
                calls_before = len(proxy.calls)
                cpu_before = cpu_seconds([p.pid for p in procs])
                moto_before = cpu_seconds([moto_pid])
                walls.append(one_round(ctx, accounts))
                cpu = cpu_seconds([p.pid for p in procs]) - cpu_before
                moto_cpu = cpu_seconds([moto_pid]) - moto_before
                with ctx.engine.connect() as conn:
                    used |= set(conn.execute(sa.select(job_runs.c.worker)).scalars())
                print(f"  {workers} worker(s): {walls[-1]:.2f} s for {len(accounts)} "
                      f"accounts, {len(proxy.calls) - calls_before} AWS calls; CPU: "
                      f"workers {cpu:.1f} s, moto {moto_cpu:.1f} s; load "
                      f"{os.getloadavg()[0]:.1f}", file=sys.stderr)
            results[workers] = (walls, len(used))
        finally:
            stop(procs)
    return results


# ------------------------------------------------------------------ part 2


def failover(moto: MotoServer, pg: str, env: dict[str, str], tmp: Path
             ) -> dict[str, Any]:
    moto.reset()
    client = rds(moto, "us-east-1")
    names = [f"db-{i:03d}" for i in range(FLEET)]
    for name in names:
        client.create_db_instance(DBInstanceIdentifier=name, Engine="postgres",
                                  DBInstanceClass="db.t3.micro", MasterUsername="snooze",
                                  MasterUserPassword="not-a-real-pass", AllocatedStorage=20,
                                  Tags=[{"Key": "env", "Value": "dev"}])
        client.stop_db_instance(DBInstanceIdentifier=name)
    proxy = LatencyProxy(moto.url, latency_seconds=LATENCY)
    settings = Settings(data_dir=tmp / "fo-setup", database_url=pg, aws_price_list=False,
                        allowed_endpoints=["127.0.0.1"], _env_file=None)  # type: ignore[call-arg]
    ctx = build_context(settings)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        AccountService(ctx).add("aws", "fleet", {"regions": "us-east-1",
                                                 "endpoint_url": proxy.url})
        from snoozeql.services.discovery import DiscoveryService

        assert DiscoveryService(ctx).sync("fleet").error is None
        key = ApiKeyService(ctx).create("bench", "viewer")[1]
        wenv = env | {
            "SNOOZEQL_DATABASE_URL": pg, "SNOOZEQL_AWS_PRICE_LIST": "false",
            "SNOOZEQL_ALLOWED_ENDPOINTS": '["127.0.0.1"]', "SNOOZEQL_METRICS_ENABLED": "false",
            "SNOOZEQL_SYNC_INTERVAL_SECONDS": "86400", "SNOOZEQL_STOP_WARNING_MINUTES": "0",
            "SNOOZEQL_RECONCILE_INTERVAL_SECONDS": str(RECONCILE_INTERVAL),
            "SNOOZEQL_WORKER_HEARTBEAT_SECONDS": "1", "SNOOZEQL_WORKER_STALLED_SECONDS": "4",
            "SNOOZEQL_AWS_MAX_ATTEMPTS": "1", "SNOOZEQL_ACTION_CONCURRENCY": "2",
        }
        api_ports = [free_port(), free_port()]
        for n, port in enumerate(api_ports):
            procs.append(subprocess.Popen(
                [SNOOZEQL, "serve", "--no-jobs", "--port", str(port)],
                env=wenv | {"SNOOZEQL_DATA_DIR": str(tmp / f"api-{n}")},
                stdout=(tmp / f"api-{n}.log").open("wb"), stderr=subprocess.STDOUT))
        for p, port in zip(procs, api_ports, strict=True):
            wait_http(f"http://127.0.0.1:{port}/healthz", p)
        proxy.hold("StartDBInstance")
        ScheduleService(ctx).create({"name": "always", "timezone": "UTC",
                                     "override_status": "running", "periods": []})
        ScheduleService(ctx).assign("always", tag="env=dev")
        assigned = datetime.now(UTC)
        workers = start_workers(3, wenv, tmp, concurrency=2)
        procs += workers
        if not proxy.wait_for("StartDBInstance", 2, timeout=3 * RECONCILE_INTERVAL):
            raise RuntimeError("no start reached moto")
        owner = None
        deadline = time.monotonic() + 30
        while owner is None and time.monotonic() < deadline:
            with ctx.engine.connect() as conn:
                pending = conn.execute(sa.select(actions.c.details).where(
                    actions.c.action == "start", actions.c.result == "pending")).all()
            owner = next((r.details["owner"] for r in pending), None)
        if owner is None:
            raise RuntimeError("no pending intent")
        pid = int(owner.rsplit(":", 2)[1])
        victim = next(p for p in workers if p.pid == pid)
        victim.send_signal(signal.SIGKILL)
        killed_at = datetime.now(UTC)
        victim.wait(10)
        in_flight = len(proxy.calls_of("StartDBInstance"))
        proxy.release()
        api_answers = Counter[int]()
        deadline = time.monotonic() + 6 * RECONCILE_INTERVAL
        rows: list[Any] = []
        while time.monotonic() < deadline:
            for port in api_ports:
                req = urllib.request.Request(f"http://127.0.0.1:{port}/api/v1/jobs?limit=20",
                                             headers={"X-API-Key": key})
                with urllib.request.urlopen(req, timeout=10) as r:
                    json.loads(r.read())
                    api_answers[port] += 1
            with ctx.engine.connect() as conn:
                rows = conn.execute(sa.select(actions).where(actions.c.action == "start")).all()
            ok = {r.instance_name for r in rows if r.result == "ok"}
            if ok >= set(names) and all(r.result != "pending" for r in rows):
                break
            time.sleep(0.3)
        ok_rows = [r for r in rows if r.result == "ok"]
        per_instance = Counter(r.instance_name for r in ok_rows)
        calls = proxy.calls_of("StartDBInstance")
        with ctx.engine.connect() as conn:
            first_tick = conn.execute(sa.select(sa.func.min(job_runs.c.started_at)).where(
                job_runs.c.task == "reconcile-schedules",
                job_runs.c.started_at >= assigned)).scalar_one()
        last = max(r.finished_at for r in ok_rows) if ok_rows else None
        statuses = Counter(d["DBInstanceStatus"] for d in
                           client.describe_db_instances()["DBInstances"])
        return {
            "started": len(per_instance), "fleet": FLEET,
            "double": sum(1 for v in per_instance.values() if v > 1),
            "calls": len(calls), "ok_rows": len(ok_rows),
            "missing_rows": max(0, len(calls) - len(ok_rows)),
            "pending": sum(1 for r in rows if r.result == "pending"),
            "unknown": sum(1 for r in rows if r.result == "unknown"),
            "in_flight_at_kill": in_flight,
            "confirmed": sum(1 for r in ok_rows
                             if (r.details or {}).get("resolution") ==
                             "confirmed after takeover"),
            "from_tick": (last - first_tick).total_seconds() if last and first_tick else None,
            "from_kill": (last - killed_at).total_seconds() if last else None,
            "api_answers": dict(api_answers), "moto": dict(statuses),
        }
    finally:
        stop(procs)
        proxy.close()
        ctx.engine.dispose()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--skip-failover", action="store_true")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-queue-"))
    env = aws_env(tmp)
    os.environ.update({k: v for k, v in env.items() if k.startswith("AWS_")})
    moto = MotoServer(tmp / "moto.log")
    pg, name = pg_database()
    pg2, name2 = pg_database()
    code = 0
    try:
        for region in REGIONS:
            client = rds(moto, region)
            for i in range(2):
                client.create_db_instance(
                    DBInstanceIdentifier=f"{region}-db-{i}", Engine="postgres",
                    DBInstanceClass="db.t3.micro", MasterUsername="snooze",
                    MasterUserPassword="not-a-real-pass", AllocatedStorage=20)
        proxy = LatencyProxy(moto.url, latency_seconds=LATENCY)
        settings = Settings(data_dir=tmp / "setup", database_url=pg, aws_price_list=False,
                            allowed_endpoints=["127.0.0.1"], _env_file=None)  # type: ignore[call-arg]
        ctx = build_context(settings)
        for i in range(ACCOUNTS):
            AccountService(ctx).add("aws", f"team-{i:02d}", {
                "regions": ",".join(REGIONS), "endpoint_url": proxy.url})
        wenv = env | {
            "SNOOZEQL_DATABASE_URL": pg, "SNOOZEQL_AWS_PRICE_LIST": "false",
            "SNOOZEQL_ALLOWED_ENDPOINTS": '["127.0.0.1"]', "SNOOZEQL_METRICS_ENABLED": "false",
            "SNOOZEQL_SYNC_INTERVAL_SECONDS": "86400",
            "SNOOZEQL_RECONCILE_INTERVAL_SECONDS": "3600",
        }
        print(f"scaling: {ACCOUNTS} accounts x {len(REGIONS)} regions, "
              f"{LATENCY * 1000:.0f} ms per AWS call", file=sys.stderr)
        results = scaling(ctx, wenv, tmp, proxy, moto._proc.pid)
        close_deferrer(ctx)
        ctx.engine.dispose()
        proxy.close()
        one = results[1][0]
        print("\n| workers | " + " | ".join(f"round {n + 1}" for n in range(ROUNDS))
              + " | last round vs. 1 worker | workers that ran syncs |")
        print("| ---: |" + " ---: |" * ROUNDS + " ---: | ---: |")
        for w, (walls, used) in results.items():
            print(f"| {w} | " + " | ".join(f"{x:.2f} s" for x in walls)
                  + f" | {walls[-1] / one[-1]:.2f} | {used} |")
        ratio = results[4][0][-1] / one[-1]
        cold = results[4][0][0] / one[0]
        print(f"\n4 workers / 1 worker, steady state (last round) = {ratio:.2f} (gate: at "
              f"most 0.35): {'PASS' if ratio <= 0.35 else 'FAIL'}; first (cold) round "
              f"{cold:.2f}")
        if ratio > 0.35:
            code = 1
        if not args.skip_failover:
            f = failover(moto, pg2, env, tmp)
            print("\n| check | figure |")
            print("| --- | ---: |")
            for k, v in f.items():
                print(f"| {k} | {v if not isinstance(v, float) else f'{v:.1f} s'} |")
            ok = (f["double"] == 0 and f["missing_rows"] == 0 and f["pending"] == 0
                  and f["started"] == FLEET and f["from_tick"] is not None
                  and f["from_tick"] <= 2 * RECONCILE_INTERVAL)
            print(f"\nfailover (reconcile interval {RECONCILE_INTERVAL} s, limit "
                  f"{2 * RECONCILE_INTERVAL} s): {'PASS' if ok else 'FAIL'}")
            if not ok:
                code = 1
    finally:
        moto.stop()
        drop_pg(name)
        drop_pg(name2)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
