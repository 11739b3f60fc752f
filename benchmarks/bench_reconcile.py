"""Reconcile cost at 100,000 instances (issue 19, item 2).

Stores 100,000 AWS instances (synthetic, 5 regions, 40 teams; through
``store.instances.sync_account``, the sync's write path) and times
``Reconciler.run()``:

1. no schedule at all;
2. 10,000 governed instances (4 tag assignments of a schedule that wants them
   running, which they are): the first run (a transition: 10,000 claims recorded as
   acted on, no provider call), then the steady state (every later run);
3. a dry-run transition of 10,000 instances (a dry-run schedule that wants them
   stopped: 10,000 ``dry_run`` rows in the action log), then its steady state.

Each with the statements the run sent. The reference in the same run is the
reconciler before issue 19 (``git show REV:src/snoozeql/services/reconciler.py``,
REV from ``--reference``, default ``main``; ``none`` to skip it), run on the same
store; when the old module no longer imports or fails against today's code the
benchmark says so and runs without it. A floor that needs no old code is measured in
the same run: reading the 10,000 governed rows (the narrow columns, same tag
condition) through the driver's own cursor.

``--stops``: 1,000 real stops of RDS instances in moto's server behind a proxy that
adds 100 ms to every request (``tests/support/latency_proxy.py``), with the default
``SNOOZEQL_ACTION_CONCURRENCY`` (16 in flight per account and region). It prints the
CPU time the benchmark's process (the reconciler, boto3, the store; and the proxy's
threads unless ``--proxy-process`` runs the proxy in a process of its own) and moto's
server used during the run. The reference in the same run: the same 1,000 stops sent
by a bare boto3 client from 16 threads through the same proxy (no store, no
reconciler), which is what moto's server allows on this machine.

Run: ``.venv/bin/python -m benchmarks.bench_reconcile [--sqlite-only] [--stops
[--proxy-process]]``
(PostgreSQL from ``SNOOZEQL_TEST_PG_URL``). Prints Markdown tables.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import types
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from benchmarks.bench_inventory import PG_ADMIN, drop_pg, pg_database, synthetic
from snoozeql.config import Settings
from snoozeql.domain.types import Account, ProviderKind
from snoozeql.providers.registry import ProviderRegistry
from snoozeql.services.context import Context
from snoozeql.services.reconciler import Reconciler
from snoozeql.services.schedules import ScheduleService
from snoozeql.store import accounts, db
from snoozeql.store import instances as inst

ROOT = Path(__file__).resolve().parents[1]
N = 100_000


def old_reconciler(rev: str) -> tuple[type | None, str]:
    """The reconciler class as of ``rev``, or None and why not (git cannot show it, or
    the old module no longer imports against today's code)."""
    if rev == "none":
        return None, "not asked for (--reference none)"
    try:
        source = subprocess.run(
            ["git", "show", f"{rev}:src/snoozeql/services/reconciler.py"], cwd=ROOT,
            check=True, capture_output=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        return None, f"git cannot show it ({exc})"
    path = Path(tempfile.mkdtemp()) / "old_reconciler.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("snoozeql_old_reconciler", path)
    assert spec and spec.loader
    module = types.ModuleType(spec.name)
    module.__file__ = str(path)
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # noqa: BLE001 - old code against today's modules
        return None, f"it no longer imports ({type(exc).__name__}: {exc})"
    if hasattr(module, "store") and not hasattr(module.store, "open_interval_ids"):
        module.store = _OldStore(module.store)
        return module.Reconciler, ("loaded (its `store.open_interval_ids`, gone since, "
                                   "given back by the benchmark with the same query)")
    return module.Reconciler, "loaded"


class _OldStore:
    """Today's ``store/schedules.py`` plus what the old reconciler still calls."""

    def __init__(self, store: types.ModuleType) -> None:
        self._store = store

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def open_interval_ids(self, conn: sa.Connection) -> set[uuid.UUID]:
        c = self._store.stop_intervals.c
        return set(conn.execute(sa.select(c.instance_id).where(c.started_at.is_(None)))
                   .scalars())


#: The tag values the governed 10,000 carry (``assign_teams``' teams).
GOVERNED_TEAMS = ("team-1", "team-2", "team-3", "team-5")


def read_floor(engine: sa.Engine) -> tuple[float, int]:
    """A floor that needs no old code: the time to read the governed instances' rows
    (the reconciler's narrow columns, by the same tag condition) through the driver
    itself (its cursor, no SQLAlchemy, no conversion to objects)."""
    from snoozeql.store.governed import NARROW

    cols = ", ".join(NARROW)
    values = ", ".join(f"'{v}'" for v in GOVERNED_TEAMS)
    tag = ("json_extract(tags, '$.team')" if engine.dialect.name == "sqlite"
           else "tags->>'team'")
    sql = f"SELECT {cols} FROM instances WHERE missing_since IS NULL AND {tag} IN ({values})"
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        t0 = time.perf_counter()
        cur.execute(sql)
        rows = cur.fetchall()
        took = time.perf_counter() - t0
        cur.close()
    finally:
        raw.close()
    return took, len(rows)


def make_store(url: str, tmp: Path) -> Context:
    engine = db.create_engine(url)
    db.upgrade(engine)
    account_id = uuid.uuid4()
    now = datetime.now(UTC)
    with engine.begin() as conn:
        accounts.insert(conn, Account(id=account_id, name="bench", provider=ProviderKind.AWS,
                                      config={"regions": ["us-east-1"]}), now)
        inst.sync_account(conn, account_id, synthetic(N), now, {})
        accounts.update(conn, account_id, now, last_sync_at=now)
    settings = Settings(data_dir=tmp, database_url=url, aws_price_list=False,
                        stop_warning_minutes=0, _env_file=None)  # type: ignore[call-arg]
    return Context(settings=settings, engine=engine, providers=ProviderRegistry(settings))


class Counter:
    def __init__(self, engine: sa.Engine) -> None:
        self.n = 0
        sa.event.listen(engine, "before_cursor_execute", self._count)

    def _count(self, *args: Any) -> None:
        self.n += 1


def timed(fn: Callable[[], Any], counter: Counter) -> tuple[float, int, Any]:
    before = counter.n
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, counter.n - before, out


def median_runs(fn: Callable[[], Any], counter: Counter, rounds: int) -> tuple[float, int]:
    got = [timed(fn, counter) for _ in range(rounds)]
    return statistics.median(t for t, _, _ in got), max(n for _, n, _ in got)


def assign_teams(ctx: Context, schedule: dict[str, Any], teams: list[int]) -> None:
    svc = ScheduleService(ctx)
    svc.create(schedule)
    for k in teams:
        svc.assign(schedule["name"], tag=f"team=team-{k}")


def bench_store(url: str, label: str, old: type | None, rounds: int) -> list[str]:
    rows: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        ctx = make_store(url, Path(tmp))
        counter = Counter(ctx.engine)

        def new() -> Any:
            return Reconciler(ctx).run()

        def ref() -> Any:
            assert old is not None
            return old(ctx).run()

        def timed_ref() -> tuple[float | None, int | None, Any]:
            """The reference run, or nothing if the old code fails on today's store."""
            if old is None:
                return None, None, None
            try:
                return timed(ref, counter)
            except Exception as exc:  # noqa: BLE001 - old code against today's modules
                rows.append(f"<!-- reference failed: {type(exc).__name__}: {exc} -->")
                return None, None, None

        def line(case: str, t: float, n: int, governed: int, ref_t: float | None,
                 ref_n: int | None) -> None:
            ref_txt = f"{ref_t:.3f} s, {ref_n} statements" if ref_t is not None else "-"
            ratio = f"{ref_t / t:.0f}x" if ref_t else "-"
            rows.append(f"| {label} | {case} | {governed:,} | {t:.3f} s | {n} | {ref_txt} | "
                        f"{ratio} |")

        # 1. no schedule
        new()
        t, n = median_runs(new, counter, rounds)
        rt, rn, _ = timed_ref()
        line("no schedule", t, n, 0, rt, rn)

        # 2. 10k governed, wanting the state they are in
        assign_teams(ctx, {"name": "always", "timezone": "UTC", "override_status": "running",
                           "periods": []}, [1, 2, 3, 5])
        t, n, report = timed(new, counter)
        line("10k governed: first run (transition, all already running)", t, n,
             report.considered, None, None)
        t, n = median_runs(new, counter, rounds)
        rt, rn, _ = timed_ref()
        line("10k governed: steady state", t, n, 10_000, rt, rn)
        floors = [read_floor(ctx.engine) for _ in range(rounds)]
        assert all(k == 10_000 for _, k in floors), floors
        line("floor: read the 10k governed rows through the driver", statistics.median(
            f for f, _ in floors), 1, 10_000, None, None)
        ScheduleService(ctx).delete("always")

        # 3. a dry-run transition of 10k (stop wanted, all running)
        assign_teams(ctx, {"name": "dry", "timezone": "UTC", "override_status": "stopped",
                           "periods": [], "dry_run": True}, [13, 14, 15, 17])
        t, n, report = timed(new, counter)
        assert report.count("stop", "dry_run") == 10_000, report.count("stop", "dry_run")
        rt = rn = None
        if old:  # the old code on another 10k, so it has a transition of its own
            assign_teams(ctx, {"name": "dry-old", "timezone": "UTC",
                               "override_status": "stopped", "periods": [],
                               "dry_run": True}, [21, 22, 23, 25])
            ScheduleService(ctx).delete("dry")
            rt, rn, rep = timed_ref()
            assert rep is None or rep.count("stop", "dry_run") == 10_000
            ScheduleService(ctx).delete("dry-old")
            assign_teams(ctx, {"name": "dry", "timezone": "UTC", "override_status": "stopped",
                               "periods": [], "dry_run": True}, [13, 14, 15, 17])
        line("10k dry-run transition", t, n, 10_000, rt, rn)
        new()  # the re-created schedule's first run (a new transition) is not timed
        t, n = median_runs(new, counter, rounds)
        line("10k dry run: steady state", t, n, 10_000, None, None)
        ctx.engine.dispose()
    return rows


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class _ProxyProcess:
    """``tests.support.latency_proxy`` in a process of its own (``--proxy-process``)."""

    def __init__(self, target: str, latency: float) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "tests.support.latency_proxy", target, str(latency)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT)
        assert self._proc.stdout is not None
        self.url = self._proc.stdout.readline().strip()
        self.pid = self._proc.pid

    def _ask(self, line: str) -> str:
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._proc.stdin.write(line + "\n")
        self._proc.stdin.flush()
        return self._proc.stdout.readline()

    def reset_in_flight(self) -> None:
        self._ask("reset")

    def stats(self) -> tuple[int, int]:
        """(requests forwarded so far, most in flight for us-east-1)."""
        got = json.loads(self._ask("stats"))
        return sum(got["calls"].values()), int(got["max_in_flight"].get("us-east-1", 0))

    def close(self) -> None:
        assert self._proc.stdin is not None
        self._proc.stdin.close()
        self._proc.wait(timeout=30)


def _bare_stops(rds: Any, proxy_url: str, moto_pid: int, n: int, limit: int) -> str:
    """The reference: the same stops sent by a bare boto3 client from a pool of
    ``limit`` threads through the same proxy (no store, no reconciler), then
    every instance started again (straight to moto, not timed)."""
    import boto3
    from botocore.config import Config

    bare = boto3.client("rds", endpoint_url=proxy_url, region_name="us-east-1",
                        config=Config(max_pool_connections=limit))
    moto_cpu = cpu_seconds(moto_pid)
    cpu = time.process_time()
    t0 = time.perf_counter()
    with ThreadPoolExecutor(limit) as pool:
        list(pool.map(lambda i: bare.stop_db_instance(DBInstanceIdentifier=f"db-{i:04d}"),
                      range(n)))
    took = time.perf_counter() - t0
    cpu = time.process_time() - cpu
    moto_cpu = cpu_seconds(moto_pid) - moto_cpu
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda i: rds.start_db_instance(DBInstanceIdentifier=f"db-{i:04d}"),
                      range(n)))
    return (f"| {n:,} (bare boto3, {limit} threads, the reference) | {n:,} | "
            f"{limit} | - | {took:.1f} s | {n / limit * 0.1:.1f} s | "
            f"{cpu:.1f} s ({cpu / n * 1000:.1f} ms/stop) | "
            f"{moto_cpu:.1f} s | same proxy |")


def bench_stops(n: int = 1_000, latency: float = 0.1, proxy_process: bool = False) -> list[str]:
    """1,000 stops against moto behind a 100 ms proxy, the default concurrency."""
    os.environ.setdefault("SNOOZEQL_ALLOWED_ENDPOINTS", '["127.0.0.1"]')  # moto's proxy
    os.environ.update({"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"})
    import boto3
    from tests.support.latency_proxy import LatencyProxy
    from tests.support.moto_server import MotoServer

    from snoozeql.services.accounts import AccountService
    from snoozeql.services.background_sync import wait_for_history
    from snoozeql.services.discovery import DiscoveryService

    rows: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        moto = MotoServer(Path(tmp) / "moto.log")
        proxy: Any = None
        try:
            rds = boto3.client("rds", endpoint_url=moto.url, region_name="us-east-1")
            for i in range(n):
                rds.create_db_instance(
                    DBInstanceIdentifier=f"db-{i:04d}", Engine="postgres",
                    DBInstanceClass="db.t3.micro", MasterUsername="snooze",
                    MasterUserPassword="not-a-real-pass", AllocatedStorage=20,
                    Tags=[{"Key": "env", "Value": "dev"}])
            proxy = (_ProxyProcess(moto.url, latency) if proxy_process
                     else LatencyProxy(moto.url, latency_seconds=latency))

            def stats() -> tuple[int, int]:
                if proxy_process:
                    return proxy.stats()  # type: ignore[no-any-return]
                return len(proxy.calls), proxy.max_in_flight("us-east-1")

            url = f"sqlite:///{Path(tmp) / 'store.db'}"
            settings = Settings(data_dir=Path(tmp), database_url=url, aws_price_list=False,
                                stop_warning_minutes=0, _env_file=None)  # type: ignore[call-arg]
            rows.append(_bare_stops(rds, proxy.url, moto.pid, n, settings.action_concurrency))
            engine = db.create_engine(url)
            db.upgrade(engine)
            ctx = Context(settings=settings, engine=engine,
                          providers=ProviderRegistry(settings))
            AccountService(ctx).add("aws", "dev", {"regions": "us-east-1",
                                                   "endpoint_url": proxy.url})
            assert DiscoveryService(ctx).sync("dev").error is None
            # The account's first sync starts its day-one metric history (CloudWatch,
            # services/background_sync.py) in a thread of this process: let it end, so
            # that the run measures the stops alone, as the reference does (overlapping
            # the run, it cost about 4 s more of moto's CPU, and some of this process's).
            wait_for_history(ctx, timeout=600)
            ScheduleService(ctx).create({"name": "night", "timezone": "UTC",
                                         "override_status": "stopped", "periods": []})
            ScheduleService(ctx).assign("night", tag="env=dev")
            calls_before = stats()[0]
            proxy.reset_in_flight()
            moto_cpu = cpu_seconds(moto.pid)
            proxy_cpu = cpu_seconds(proxy.pid) if proxy_process else 0.0
            cpu = time.process_time()
            t0 = time.perf_counter()
            report = Reconciler(ctx).run()
            took = time.perf_counter() - t0
            cpu = time.process_time() - cpu
            moto_cpu = cpu_seconds(moto.pid) - moto_cpu
            proxy_cpu = cpu_seconds(proxy.pid) - proxy_cpu if proxy_process else 0.0
            stopped = report.count("stop", "ok")
            calls, most = stats()
            calls -= calls_before
            floor = calls / settings.action_concurrency * latency
            where = ("own process" if proxy_process else "in the benchmark's process")
            rows.append(f"| {stopped:,} | {calls:,} | {settings.action_concurrency} | "
                        f"{most} | {took:.1f} s | {floor:.1f} s | "
                        f"{cpu:.1f} s ({cpu / max(stopped, 1) * 1000:.1f} ms/stop) | "
                        f"{moto_cpu:.1f} s | {where}"
                        + (f", {proxy_cpu:.1f} s" if proxy_process else "") + " |")
            engine.dispose()
        finally:
            if proxy is not None:
                proxy.close()
            moto.stop()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sqlite-only", action="store_true")
    parser.add_argument("--postgres-only", action="store_true")
    parser.add_argument("--stops", action="store_true")
    parser.add_argument("--proxy-process", action="store_true",
                        help="with --stops: run the latency proxy in a process of its own")
    parser.add_argument("--reference", default="main",
                        help="a git revision, or 'none' to run without the reference")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    if args.stops:
        print("| stops ok | AWS requests | limit | most in flight | took | floor "
              "(requests / limit x 100 ms) | CPU of the benchmark's process | CPU of moto | "
              "proxy (its CPU) |")
        print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
        for r in bench_stops(proxy_process=args.proxy_process):
            print(r, flush=True)
        return
    old, why = old_reconciler(args.reference)
    print(f"Reference: the reconciler of {args.reference}: {why}."
          + ("" if old else " Runs without it; compare with the earlier runs' figures."))
    print()
    print(f"| store | case | governed | run | statements | reference ({args.reference}) | "
          "faster |")
    print("| --- | --- | ---: | ---: | ---: | --- | ---: |")
    if not args.postgres_only:
        with tempfile.TemporaryDirectory() as tmp:
            for r in bench_store(f"sqlite:///{Path(tmp) / 'bench.db'}", "SQLite", old,
                                 args.rounds):
                print(r, flush=True)
    if not args.sqlite_only:
        url, name = pg_database()
        try:
            for r in bench_store(url, "PostgreSQL", old, args.rounds):
                print(r, flush=True)
        finally:
            drop_pg(name)
    _ = PG_ADMIN


if __name__ == "__main__":
    main()
