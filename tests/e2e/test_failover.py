"""Failover: two real `snoozeql serve` replicas on one PostgreSQL, one killed mid-run.

On PostgreSQL each `serve` runs a queue worker (procrastinate) in its process; the
reconcile is a periodic task deferred once per interval, run by one of them.

Six RDS databases in moto are stopped and a schedule wants them running, so the
``reconcile-schedules`` job starts them. A loopback proxy between SnoozeQL and moto
holds back the answers to ``StartDBInstance``: the replica holding the job has its
calls in flight (moto has started those databases) when it is killed with SIGKILL.
The surviving replica must take the job over and finish the transition within two
reconcile intervals (issue 13, item 1), and every StartDBInstance call moto received
must have its row in the action log, the dead replica's ones completed by the
survivor as ``ok (confirmed after takeover)`` (item 2).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from snoozeql.config import Settings
from snoozeql.services.accounts import AccountService
from snoozeql.services.context import build_context
from snoozeql.services.discovery import DiscoveryService
from snoozeql.services.schedules import ScheduleService
from snoozeql.store.actions import actions
from tests.support.latency_proxy import Call, LatencyProxy
from tests.support.moto_server import (
    MotoServer,
    child_aws_env,
    free_port,
    rds_client,
)
from tests.support.store import create_pg_database, drop_pg_database

SNOOZEQL = str(Path(sys.executable).parent / "snoozeql")
INTERVAL = 8  # SNOOZEQL_RECONCILE_INTERVAL_SECONDS for both replicas
WORKERS = 2
NAMES = [f"db-{i:04d}" for i in range(6)]


@dataclass
class Outcome:
    killed_at: datetime
    killed_owner: str
    in_flight: list[Call]  # StartDBInstance calls moto had received at the kill
    calls: list[Call]  # every StartDBInstance call moto received
    rows: list[Any]  # the action log's start entries
    moto: dict[str, str]  # DBInstanceStatus per database at the end
    survivor_log: str


def _wait_healthy(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    import urllib.request

    deadline = time.monotonic() + 60
    while True:
        assert proc.poll() is None, f"serve exited: {log.read_text()[-3000:]}"
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                return
        except OSError:
            assert time.monotonic() < deadline, "serve did not come up"
            time.sleep(0.2)


@pytest.fixture(scope="module")
def failover(moto_server: MotoServer, tmp_path_factory: pytest.TempPathFactory
             ) -> Iterator[Outcome]:
    tmp = tmp_path_factory.mktemp("failover")
    env = child_aws_env(dict(os.environ), tmp / "aws")
    moto_server.reset()
    rds = rds_client(moto_server.url)
    for name in NAMES:
        rds.create_db_instance(DBInstanceIdentifier=name, Engine="postgres",
                               DBInstanceClass="db.t3.micro", MasterUsername="snooze",
                               MasterUserPassword="not-a-real-pass", AllocatedStorage=20,
                               Tags=[{"Key": "env", "Value": "dev"}])
        rds.stop_db_instance(DBInstanceIdentifier=name)
    proxy = LatencyProxy(moto_server.url)
    pg = create_pg_database("snoozeql_failover")
    procs: list[subprocess.Popen[bytes]] = []
    saved = {k: os.environ.get(k) for k in env if k.startswith("AWS_")}
    os.environ.update({k: v for k, v in env.items() if k.startswith("AWS_")})
    try:
        settings = Settings(data_dir=tmp / "setup", database_url=pg, aws_price_list=False,
                            _env_file=None)  # type: ignore[call-arg]
        ctx = build_context(settings)
        AccountService(ctx).add("aws", "dev", {"regions": "us-east-1",
                                               "endpoint_url": proxy.url})
        assert DiscoveryService(ctx).sync("dev").error is None
        ScheduleService(ctx).create({"name": "always", "timezone": "UTC",
                                     "override_status": "running", "periods": []})
        ScheduleService(ctx).assign("always", tag="env=dev")

        proxy.hold("StartDBInstance")
        serve_env = env | {
            "SNOOZEQL_DATABASE_URL": pg, "SNOOZEQL_AWS_PRICE_LIST": "false",
            "SNOOZEQL_RECONCILE_INTERVAL_SECONDS": str(INTERVAL),
            "SNOOZEQL_JOB_POLL_SECONDS": "0.2", "SNOOZEQL_METRICS_ENABLED": "false",
            "SNOOZEQL_DISCOVERY_WORKERS": str(WORKERS), "SNOOZEQL_STOP_WARNING_MINUTES": "0",
            "SNOOZEQL_ACTION_CONCURRENCY": str(WORKERS),  # provider calls in flight at once
            "SNOOZEQL_ALLOWED_ENDPOINTS": '["127.0.0.1"]',  # the proxy (main's allowlist)
            "SNOOZEQL_AWS_MAX_ATTEMPTS": "1", "SNOOZEQL_LOG_LEVEL": "INFO",
            # On PostgreSQL `serve` runs a queue worker: one reconcile shard, so that the
            # killed process holds every transition; a dead worker is noticed fast.
            "SNOOZEQL_RECONCILE_SHARDS": "1", "SNOOZEQL_SYNC_INTERVAL_SECONDS": "3600",
            "SNOOZEQL_WORKER_HEARTBEAT_SECONDS": "1", "SNOOZEQL_WORKER_STALLED_SECONDS": "4",
        }
        logs, ports = [tmp / "serve-0.log", tmp / "serve-1.log"], [free_port(), free_port()]
        for n in range(2):
            procs.append(subprocess.Popen(
                [SNOOZEQL, "serve", "--port", str(ports[n])],
                env=serve_env | {"SNOOZEQL_DATA_DIR": str(tmp / f"data-{n}")},
                stdout=logs[n].open("wb"), stderr=subprocess.STDOUT,
            ))
        for n in range(2):
            _wait_healthy(ports[n], procs[n], logs[n])

        # The job's holder has its StartDBInstance calls in flight: kill it now.
        assert proxy.wait_for("StartDBInstance", WORKERS, timeout=60), "no start was made"
        # The holder is the process whose intents (written before the calls) pend.
        deadline = time.monotonic() + 30
        owner = None
        while owner is None and time.monotonic() < deadline:
            with ctx.engine.connect() as conn:
                pending = conn.execute(sa.select(actions.c.details).where(
                    actions.c.action == "start", actions.c.result == "pending")).all()
            owner = next((r.details["owner"] for r in pending), None)
            time.sleep(0.05)
        assert owner is not None, "no pending intent names its holder"
        pid = int(owner.rsplit(":", 2)[1])
        victim = next(p for p in procs if p.pid == pid)
        victim.send_signal(signal.SIGKILL)
        killed_at = datetime.now(UTC)
        victim.wait(10)
        in_flight = proxy.calls_of("StartDBInstance")
        proxy.release()
        survivor = next(p for p in procs if p is not victim)

        # Wait (bounded) until no intent is pending and every database has a started row.
        deadline = time.monotonic() + 120  # a bound for a broken build; see the asserts
        while time.monotonic() < deadline:
            with ctx.engine.connect() as conn:
                rows = conn.execute(sa.select(actions).where(
                    actions.c.action == "start").order_by(actions.c.at)).all()
            done = {r.instance_name for r in rows if r.result == "ok"}
            if done >= set(NAMES) and all(r.result != "pending" for r in rows):
                break
            time.sleep(0.2)
        assert survivor.poll() is None
        statuses = {d["DBInstanceIdentifier"]: d["DBInstanceStatus"]
                    for d in rds.describe_db_instances()["DBInstances"]}
        ctx.engine.dispose()
        yield Outcome(killed_at, owner, in_flight, proxy.calls_of("StartDBInstance"), rows,
                      statuses, logs[procs.index(survivor)].read_text())
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(10)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        proxy.close()
        drop_pg_database(pg)


def test_the_survivor_finishes_the_transition_within_two_intervals(failover: Outcome) -> None:
    assert failover.moto == dict.fromkeys(NAMES, "available")
    started = [r for r in failover.rows if r.result == "ok"]
    assert sorted(r.instance_name for r in started) == NAMES, (  # each started exactly once
        [(r.instance_name, r.result, r.error, r.details) for r in failover.rows],
        failover.survivor_log[-4000:])
    finished = max(r.finished_at for r in started)
    taken_over = (finished - failover.killed_at).total_seconds()
    print(f"\nfailover: the killed replica's transition finished {taken_over:.1f} s after "
          f"kill -9 (reconcile interval {INTERVAL} s)")
    assert taken_over <= 2 * INTERVAL, failover.survivor_log[-3000:]
    # The rows the survivor wrote name it, not the dead replica.
    pid = failover.killed_owner.rsplit(":", 2)[1]
    mine = [r for r in started if r.details.get("resolution") is None]
    assert mine and all(f":{pid}:" not in r.details["owner"] for r in mine)


def test_every_provider_call_has_its_row_in_the_action_log(failover: Outcome) -> None:
    assert len(failover.in_flight) >= 1
    # No action without a row: one completed row per StartDBInstance moto received.
    assert not [r for r in failover.rows if r.result == "pending"]
    ok = [r for r in failover.rows if r.result == "ok"]
    assert len(ok) == len(failover.calls)
    assert sorted(r.instance_name for r in ok) == sorted(c.identifier for c in failover.calls)
    # The calls the dead replica had in flight were completed by the survivor from the
    # databases' real state.
    pid = failover.killed_owner.rsplit(":", 2)[1]
    confirmed = {r.instance_name for r in ok
                 if r.details.get("resolution") == "confirmed after takeover"}
    assert confirmed == {c.identifier for c in failover.in_flight}
    for r in ok:
        if r.instance_name in confirmed:
            assert f":{pid}:" in r.details["owner"] and r.details["resolved_by"]
            assert r.details["schedule"] == "always" and r.actor == "reconciler"
    # Intents the dead replica wrote without reaching moto (if any) are `unknown`, and
    # their databases were started by the survivor.
    for r in failover.rows:
        if r.result == "unknown":
            assert f":{pid}:" in r.details["owner"] and "may not have happened" in r.error
