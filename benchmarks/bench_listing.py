"""Listing overhead, search, filters and sorts at scale (issue 19, items 4 and 5).

Run: ``.venv/bin/python -m benchmarks.bench_listing [--instances 100000] [--rounds 15]``
(PostgreSQL from ``SNOOZEQL_TEST_PG_URL``; it creates and drops its own database, or
with ``--pg-database NAME`` seeds that database on first use and keeps it for the next
runs, which skip the seeding when it holds ``--instances`` rows; ``--serve-only``
runs only the first way of part 1, for quick alternating runs of two versions).

1. Overhead: ``GET /api/v1/instances?limit=100`` over real HTTP (keep-alive) against
   the raw SQL of the same page run through the driver (sqlite3 / psycopg, no
   SQLAlchemy), interleaved request by request, walking pages with the cursor. Two
   ways: a real ``snoozeql serve --no-jobs`` process asked by a plain ``http.client``
   connection (the way a client meets the API; the server's CPU per request is read
   from ``/proc``), and, as in earlier runs, uvicorn in a thread of the benchmark's
   own process asked by an httpx client (client and server then share one GIL).
2. Filters and sorts: for every documented filter and sort key, the median time of a
   100-row page (``InventoryService.list``, in process) minus the median of the
   unfiltered page measured in the same rounds (interleaved): what it adds to a page.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
from tests.support.moto_server import free_port

from benchmarks.bench_inventory import drop_pg, fresh_engine, pg_database, synthetic
from benchmarks.serving import serve_in_thread
from snoozeql.config import Settings
from snoozeql.domain.types import AccountStatus
from snoozeql.providers.registry import ProviderRegistry
from snoozeql.services.apikeys import ApiKeyService
from snoozeql.services.context import Context
from snoozeql.services.inventory import InventoryService
from snoozeql.store import accounts, db
from snoozeql.store import instances as inst


def _seeded(url: str, n: int) -> tuple[sa.Engine, str] | None:
    """A kept database already seeded with ``n`` instances (``--pg-database``)."""
    engine = db.create_engine(url)
    try:
        with engine.connect() as conn:
            have = conn.exec_driver_sql("SELECT count(*) FROM instances").scalar_one()
            names = conn.exec_driver_sql("SELECT name FROM accounts").scalars().all()
    except sa.exc.DBAPIError:
        have, names = None, []
    if have == n and len(names) == 1:
        return engine, names[0]
    engine.dispose()
    return None


def _seed(url: str, n: int, keep: bool = False) -> tuple[sa.Engine, str]:
    if keep and (found := _seeded(url, n)) is not None:
        return found
    engine, account_id = fresh_engine(url)
    seen = datetime.now(UTC) - timedelta(minutes=1)
    for start in range(0, n, 10_000):
        with engine.begin() as conn:
            inst.upsert_discovered(conn, synthetic(min(10_000, n - start), start),
                                   account_id, seen, {})
    # Then a sync that found every instance unchanged but 1% gone (missing): as after
    # any re-sync, the others' last_seen_at is derived from the account's last sync.
    with engine.begin() as conn:
        resync = seen + timedelta(seconds=30)
        inst.sync_account(conn, account_id, [d for i, d in enumerate(synthetic(n)) if i % 100],
                          resync, {})
        accounts.update(conn, account_id, resync, status=AccountStatus.CONNECTED,
                        last_sync_at=resync)
    with engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE" if engine.dialect.name == "sqlite" else
                             "ANALYZE instances")
        name = conn.exec_driver_sql("SELECT name FROM accounts").scalar_one()
    return engine, name


def _raw_sql(ctx: Context, params: dict[str, Any]) -> str:
    """The page's SQL with its values inlined, as the driver gets it."""
    svc = InventoryService(ctx)
    f = svc.build_filter(engine=params.get("engine"))
    with ctx.engine.connect() as conn:
        q = inst.listing_query(conn, f, limit=100, cursor=params.get("cursor"))
        return str(q.compile(conn, compile_kwargs={"literal_binds": True}))


def _pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[max(0, int(round(len(s) * p)) - 1)]


def bench_overhead(ctx: Context, get: Any, rounds: int, per_round: int
                   ) -> tuple[list[float], list[float]]:
    """``get(params) -> body``: one listing request; timed against the raw page."""
    http: list[float] = []
    raw: list[float] = []
    dbapi = ctx.engine.raw_connection()
    try:
        cursor: str | None = None
        for r in range(rounds + 1):
            for i in range(per_round):
                params: dict[str, Any] = {"limit": "100"}
                if cursor and i % 10:
                    params["cursor"] = cursor
                sql = _raw_sql(ctx, params)
                t = time.perf_counter()
                body = get(params)
                dt_http = time.perf_counter() - t
                cursor = json.loads(body)["next_cursor"]
                cur = dbapi.cursor()
                t = time.perf_counter()
                cur.execute(sql)
                rows = cur.fetchall()
                dt_raw = time.perf_counter() - t
                cur.close()
                dbapi.commit()
                assert len(rows) >= 1
                if r:  # round 0 warms up
                    http.append(dt_http * 1000)
                    raw.append(dt_raw * 1000)
    finally:
        dbapi.close()
    return http, raw


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def bench_serve_process(ctx: Context, url: str, data_dir: Path, key: str, rounds: int
                        ) -> tuple[list[float], list[float], float, dict[str, float]]:
    """The listing asked of a real ``snoozeql serve --no-jobs`` over one keep-alive
    ``http.client`` connection; returns the HTTP and raw times, the server's CPU
    per request and the floor under a request (:func:`_floor`), in ms."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SNOOZEQL_")} | {
        "SNOOZEQL_DATABASE_URL": url, "SNOOZEQL_DATA_DIR": str(data_dir),
        "SNOOZEQL_LOG_LEVEL": "WARNING"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "snoozeql.cli.main", "serve", "--no-jobs", "--port", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        for _ in range(300):
            try:
                conn.request("GET", "/healthz")
                conn.getresponse().read()
                break
            except OSError:
                conn.close()
                time.sleep(0.1)
        headers = {"X-API-Key": key}

        def get(params: dict[str, Any]) -> bytes:
            conn.request("GET", "/api/v1/instances?" + urllib.parse.urlencode(params),
                         headers=headers)
            resp = conn.getresponse()
            body = resp.read()
            if resp.status != 200:
                raise RuntimeError(f"HTTP {resp.status}: {body[:300]!r}")
            return body

        bench_overhead(ctx, get, 0, 20)  # warm-up, not counted
        before = _cpu_seconds(proc.pid)
        http_ms, raw_ms = bench_overhead(ctx, get, rounds, 20)
        cpu_ms = (_cpu_seconds(proc.pid) - before) / (len(http_ms) + 20) * 1000
        floor = _floor(conn, headers, 20 * rounds)
        conn.close()
        return http_ms, raw_ms, cpu_ms, floor
    finally:
        proc.terminate()
        proc.wait(20)


def _floor(conn: http.client.HTTPConnection, headers: dict[str, str], n: int
           ) -> dict[str, float]:
    """The floor under any request of the same server and client, p50 of ``n`` each,
    interleaved: a path no route serves (404: no key, no store) and an authenticated
    ``GET`` of an instance that does not exist (the key checked, the id, provider id,
    name and id-prefix lookups, 404)."""
    asks = {"404, no route": ("/api/v1/nosuch", {}),
            "authenticated 404 by id": (f"/api/v1/instances/{uuid.uuid4()}", headers)}
    times: dict[str, list[float]] = {k: [] for k in asks}
    for i in range(n + 10):
        for what, (path, hdrs) in asks.items():
            t = time.perf_counter()
            conn.request("GET", path, headers=hdrs)
            conn.getresponse().read()
            if i >= 10:  # warm-up
                times[what].append((time.perf_counter() - t) * 1000)
    return {k: statistics.median(v) for k, v in times.items()}


def _print_overhead(title: str, http_ms: list[float], raw_ms: list[float],
                    extra: str = "") -> None:
    print(f"\n{title}\n")
    print("| measured | p50 | p99 |")
    print("| --- | ---: | ---: |")
    hp50, hp99 = statistics.median(http_ms), _pct(http_ms, 0.99)
    rp50, rp99 = statistics.median(raw_ms), _pct(raw_ms, 0.99)
    print(f"| HTTP listing | {hp50:.2f} | {hp99:.2f} |")
    print(f"| raw SQL, same page | {rp50:.2f} | {rp99:.2f} |")
    print(f"| ratio | {hp50 / rp50:.2f}x | {hp99 / rp99:.2f}x |")
    if extra:
        print(f"\n{extra}")
    sys.stdout.flush()


CASES: list[tuple[str, dict[str, str]]] = [
    ("provider=aws", {"provider": "aws"}),
    ("account=NAME", {"account": "<account>"}),
    ("region=eu-west-1", {"region": "eu-west-1"}),
    ("engine=mysql", {"engine": "mysql"}),
    ("status=stopped", {"status": "stopped"}),
    ("kind=instance", {"kind": "instance"}),
    ("missing=false", {"missing": "false"}),
    ("tag=env=prod", {"tag": "env=prod"}),
    ("tag=team=team-7", {"tag": "team=team-7"}),
    ("tag=env=dev&tag=cost-center=cc-3", {"tag": ["env=dev", "cost-center=cc-3"]}),  # type: ignore[dict-item]
    ("q=bench-004217 (1 match)", {"q": "bench-004217"}),
    ("q=0042 (~100 matches)", {"q": "0042"}),
    ("q=eu-central (20%)", {"q": "eu-central"}),
    ("q=rds (all)", {"q": "rds"}),
    ("q=77 (2 chars, scan)", {"q": "77"}),
    ("q=nothing-like-this (0)", {"q": "nothing-like-this"}),
    ("engine=postgres&q=bench-01", {"engine": "postgres", "q": "bench-01"}),
]
for _key in inst.SORT_KEYS:
    CASES.append((f"sort={_key}", {"sort": _key}))
    CASES.append((f"sort=-{_key}", {"sort": f"-{_key}"}))
# last_seen_at is derived (merged index walks, store/instances.py): also a page from a
# cursor in the middle of the fleet, and the plain ORDER BY over the derived value.
for _sort in ("last_seen_at", "-last_seen_at"):
    CASES.append((f"sort={_sort}, page at row 50,000", {"sort": _sort, "cursor": "<middle>"}))
    CASES.append((f"sort={_sort}, plain derived ORDER BY", {"sort": _sort, "plain": "1"}))


def bench_filters(ctx: Context, account: str, rounds: int) -> list[tuple[str, float]]:
    """In process (``InventoryService.list``, what the route calls): on this shared
    VM, HTTP round trips add more noise than the filters cost."""
    svc = InventoryService(ctx)
    base: list[float] = []
    times: dict[str, list[float]] = {label: [] for label, _ in CASES}

    middle: dict[str, str | None] = {}
    for sort in ("last_seen_at", "-last_seen_at"):
        with ctx.engine.connect() as conn:
            middle[sort] = inst.list_page(conn, inst.InstanceFilter(), sort=sort,
                                          limit=50_000)[1]

    def one(params: dict[str, Any]) -> float:
        p = dict(params)
        sort = p.pop("sort", "name")
        cursor = middle[sort] if p.pop("cursor", None) else None
        merged = inst.MERGED_ACCOUNTS
        if p.pop("plain", None):
            inst.MERGED_ACCOUNTS = 0  # more accounts than merged: the ORDER BY
        tags = p.pop("tag", None)
        f = svc.build_filter(
            provider=p.get("provider"), account=p.get("account"), region=p.get("region"),
            engine=p.get("engine"), status=p.get("status"), kind=p.get("kind"),
            tags=[tags] if isinstance(tags, str) else tags, text=p.get("q"),
            missing=None if "missing" not in p else p["missing"] == "true",
        )
        t = time.perf_counter()
        try:
            svc.list(f, sort=sort, limit=100, cursor=cursor)
        finally:
            inst.MERGED_ACCOUNTS = merged
        return (time.perf_counter() - t) * 1000

    for r in range(rounds + 1):
        for label, params in CASES:
            p = {k: (account if v == "<account>" else v) for k, v in params.items()}
            b, x = one({}), one(p)
            if r:
                base.append(b)
                times[label].append(x)
    mb = statistics.median(base)
    return [("(unfiltered page)", mb)] + [
        (label, statistics.median(v) - mb) for label, v in times.items()
    ]


def run(url: str, label: str, n: int, rounds: int, keep: bool = False,
        serve_only: bool = False) -> None:
    engine, account = _seed(url, n, keep)
    data_dir = Path(tempfile.mkdtemp(prefix="snoozeql-bench-data-"))
    os.environ["SNOOZEQL_DATA_DIR"] = str(data_dir)  # the served process's too
    settings = Settings(database_url=url, jobs_enabled=False, _env_file=None)  # type: ignore[call-arg]
    ctx = Context(settings=settings, engine=engine, providers=ProviderRegistry(settings))
    _, key = ApiKeyService(ctx).create(f"bench-{uuid.uuid4().hex[:6]}", "viewer")
    try:
        what = (f"`GET /api/v1/instances?limit=100` vs raw SQL of the same page, {rounds} "
                "interleaved rounds x 20 requests (ms)")
        http_ms, raw_ms, cpu_ms, floor = bench_serve_process(ctx, url, data_dir, key, rounds)
        _print_overhead(f"{label}, {n:,} instances, `snoozeql serve` process, http.client: "
                        f"{what}", http_ms, raw_ms,
                        f"server CPU per request: {cpu_ms:.2f} ms\n\nfloor, same server "
                        "and client, p50: " + ", ".join(
                            f"{k} {v:.2f} ms" for k, v in floor.items()))
        if serve_only:
            return
        server, thread, port = serve_in_thread(ctx)
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}",
                              headers={"X-API-Key": key}) as client:

                def get(params: dict[str, Any]) -> bytes:
                    resp = client.get("/api/v1/instances", params=params)
                    resp.raise_for_status()
                    return resp.content

                http_ms, raw_ms = bench_overhead(ctx, get, rounds, 20)
        finally:
            server.should_exit = True
            thread.join(10)
        _print_overhead(f"{label}, {n:,} instances, uvicorn in the benchmark's process, "
                        f"httpx: {what}", http_ms, raw_ms)
        print(f"\n{label}, {n:,} instances: what each filter or sort adds to a 100-row "
              f"page, in process (median of {rounds} interleaved rounds, ms)\n")
        print("| case | added ms |")
        print("| --- | ---: |")
        for case, ms in bench_filters(ctx, account, rounds):
            print(f"| {case} | {ms:+.1f} |")
        sys.stdout.flush()
    finally:
        engine.dispose()
        shutil.rmtree(data_dir, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--instances", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--store", choices=["sqlite", "postgres", "both"], default="both")
    ap.add_argument("--pg-database", metavar="NAME",
                    help="seed this PostgreSQL database once and keep it between runs")
    ap.add_argument("--serve-only", action="store_true",
                    help="only the `snoozeql serve` process part of the overhead (no "
                    "in-process uvicorn, no filters and sorts)")
    args = ap.parse_args()
    if args.store in ("sqlite", "both"):
        tmp = Path(tempfile.mkdtemp(prefix="snoozeql-bench-"))
        try:
            run(f"sqlite:///{tmp / 'list.db'}", "SQLite", args.instances, args.rounds,
                serve_only=args.serve_only)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    if args.store in ("postgres", "both"):
        if args.pg_database:
            run(pg_database(args.pg_database)[0], "PostgreSQL 15", args.instances,
                args.rounds, keep=True, serve_only=args.serve_only)
            return
        pg_url, pg_name = pg_database()
        try:
            run(pg_url, "PostgreSQL 15", args.instances, args.rounds,
                serve_only=args.serve_only)
        finally:
            drop_pg(pg_name)


if __name__ == "__main__":
    main()
