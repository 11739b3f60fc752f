"""Dashboard benchmark: the instances web page against the JSON API, side by side (issue 15).

1. Creates a PostgreSQL database (``SNOOZEQL_TEST_PG_URL``'s server, default the local
   one), migrates it and loads ``--instances`` (default 100,000) synthetic instances in
   batches through the store's COPY path (``store.instances.sync_account``), and gives
   the fleet schedules the way a team would: one assigned to two accounts, one to the
   tag ``env=dev``, one to a selector (mysql in eu-west-1), one named by the instances'
   own ``snoozeql-schedule`` tag on every 7th instance, and one assigned directly to
   every 25th instance (4,000 instance assignments at 100,000), so the page's schedule
   and next-transition columns have real work.
2. Starts the real ``snoozeql serve --no-jobs`` on it (a subprocess on a free port).
3. Signs in to the dashboard like a browser: ``GET /login``, the hidden
   ``csrf_token`` input, ``POST /login`` with ``api_key`` and ``csrf_token``, keeping
   the session cookie.
4. Measures in interleaved rounds (each round: every case, API then web, so both see the
   same server state and the same background load) the latency of

   * ``GET /api/v1/instances?limit=50`` and ``GET /instances?limit=50`` (first page);
   * the same with ``status=running&region=eu-west-1`` (a filtered page).

   and prints p50/p95 per case plus the ratio web p95 / API p95 (target: under 2).
   When more than 1,000 instances match, the page's header offers "count all", a
   request of its own (``GET /instances/count?<filters>``) that counts to the end; it
   is timed in the same rounds and reported apart (it is not part of loading a page).

If the dashboard is not there (``/login`` or ``/instances`` answers 404), the web side is
reported as "web page missing (404)" and the API side is still measured.

``--churn``: before every request an action sets one instance's status through the
store, so nothing the server keeps between requests that follows the inventory (the
page's capped count) can be reused: the worst case of a busy fleet.

Run: ``.venv/bin/python -m benchmarks.bench_dashboard [--instances 100000] [--rounds 200]
[--churn]``.
Prints a Markdown table; the database is dropped at the end.
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx
import sqlalchemy as sa

from benchmarks.bench_inventory import drop_pg, pg_database
from snoozeql.config import Settings
from snoozeql.domain.types import (
    Account,
    DiscoveredInstance,
    InstanceKind,
    InstanceStatus,
    ProviderKind,
)
from snoozeql.providers.registry import ProviderRegistry
from snoozeql.services.apikeys import ApiKeyService
from snoozeql.services.context import Context
from snoozeql.services.schedules import ScheduleService
from snoozeql.store import accounts, db
from snoozeql.store import instances as inst
from snoozeql.store.schedules import schedule_assignments

ENGINES = ("postgres", "mysql", "mariadb", "aurora-postgresql", "aurora-mysql")
REGIONS = ("us-east-1", "us-west-2", "eu-west-1", "eu-central-1", "ap-southeast-2")
FILTER = "status=running&region=eu-west-1"
CASES = (("first page", "limit=50"), ("filtered page", f"limit=50&{FILTER}"))
BATCH = 10_000
COUNT_PATH = "/instances/count"
COUNT_SHOWN = 1_000  # the page counts this far by itself
DIRECT_EVERY = 25  # every 25th instance has a schedule assigned to it directly
OWN_TAG_EVERY = 7  # every 7th names its schedule in its own snoozeql-schedule tag
OFFICE = {"timezone": "Europe/Berlin",
          "periods": [{"begintime": "08:00", "endtime": "19:00", "weekdays": "mon-fri"}]}
_CSRF = re.compile(r'<input[^>]*name="csrf_token"[^>]*>', re.I)
_VALUE = re.compile(r'value="([^"]*)"')


def synthetic(n: int, offset: int, account: int) -> list[DiscoveredInstance]:
    out = []
    for i in range(offset, offset + n):
        region = REGIONS[i % len(REGIONS)]
        out.append(DiscoveredInstance(
            provider=ProviderKind.AWS,
            provider_id=f"arn:aws:rds:{region}:{account:012d}:db:dash-{i:07d}",
            name=f"dash-{i:07d}", kind=InstanceKind.INSTANCE, engine=ENGINES[i % 5],
            engine_version="15.4", instance_class=("db.t3.medium", "db.r6g.large")[i % 2],
            region=region,
            status=InstanceStatus.RUNNING if i % 4 else InstanceStatus.STOPPED,
            raw_status="available" if i % 4 else "stopped",
            tags={"env": ("dev", "staging", "prod")[i % 3], "team": f"team-{i % 40}",
                  **({"snoozeql-schedule": "own-tag"} if i % OWN_TAG_EVERY == 0 else {})},
            endpoint_host=f"dash-{i:07d}.abc.{region}.rds.amazonaws.com", endpoint_port=5432,
        ))
    return out


def load(url: str, n: int, accounts_n: int = 10) -> str:
    """``n`` instances over ``accounts_n`` accounts; returns an admin API key."""
    engine = db.create_engine(url)
    db.upgrade(engine)
    now = datetime.now(UTC)
    per = -(-n // accounts_n)
    started = time.perf_counter()
    for a in range(accounts_n):
        count = min(per, n - a * per)
        if count <= 0:
            break
        account_id = uuid.uuid4()
        with engine.begin() as conn:
            accounts.insert(conn, Account(id=account_id, name=f"bench-{a:02d}",
                                          provider=ProviderKind.AWS,
                                          config={"regions": list(REGIONS)}), now)
        items = [d for start in range(0, count, BATCH)
                 for d in synthetic(min(BATCH, count - start), a * per + start, a)]
        with engine.begin() as conn:
            inst.sync_account(conn, account_id, items, now, {})
            accounts.update(conn, account_id, now, last_sync_at=now, status="connected")
    with engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE")
    print(f"loaded {n:,} instances in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    settings = Settings(database_url=url, jobs_enabled=False, _env_file=None)  # type: ignore[call-arg]
    ctx = Context(settings=settings, engine=engine, providers=ProviderRegistry(settings))
    give_schedules(ctx)
    _, key = ApiKeyService(ctx).create(f"bench-{uuid.uuid4().hex[:6]}", "admin")
    engine.dispose()
    return key


def give_schedules(ctx: Context) -> None:
    """Schedules assigned by account, tag, selector, own tag and directly (see above)."""
    svc = ScheduleService(ctx)
    svc.create_and_assign({**OFFICE, "name": "office-hours"}, accounts=["bench-00", "bench-01"])
    svc.create_and_assign({**OFFICE, "name": "dev-nights", "priority": 5,
                           "periods": [{"begintime": "07:00", "endtime": "20:00"}]},
                          tags=["env=dev"])
    svc.create_and_assign({**OFFICE, "name": "mysql-eu", "timezone": "Europe/Dublin"},
                          selectors=[{"all": [{"engine": "mysql"}, {"region": "eu-west-1"}]}])
    svc.create({**OFFICE, "name": "own-tag", "timezone": "America/New_York"})
    direct, _ = svc.create_and_assign({**OFFICE, "name": "direct", "priority": 10,
                                       "timezone": "Asia/Tokyo"})
    now = datetime.now(UTC)
    with ctx.engine.begin() as conn:
        ids = [r[0] for r in conn.exec_driver_sql(
            "SELECT id FROM (SELECT id, row_number() OVER (ORDER BY name) AS n FROM instances)"
            f" s WHERE n %% {DIRECT_EVERY} = 1")]
        conn.execute(schedule_assignments.insert(), [
            {"id": uuid.uuid4(), "schedule_id": direct.id, "kind": "instance",
             "target": f"instance:{i}", "instance_id": i, "created_at": now} for i in ids])
        conn.exec_driver_sql("ANALYZE")
    print(f"schedules: 5, direct assignments: {len(ids):,}", file=sys.stderr)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve(url: str, data_dir: Path, port: int) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SNOOZEQL_")}
    env.update(SNOOZEQL_DATABASE_URL=url, SNOOZEQL_DATA_DIR=str(data_dir),
               SNOOZEQL_LOG_LEVEL="WARNING")
    exe = str(Path(sys.executable).parent / "snoozeql")
    proc = subprocess.Popen([exe, "serve", "--no-jobs", "--port", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            err = proc.stderr.read().decode() if proc.stderr else ""
            raise SystemExit(f"snoozeql serve did not come up:\n{err}")
        time.sleep(0.2)


def sign_in(web: httpx.Client, key: str) -> str | None:
    """Sign in like a browser; None when done, else why the web side cannot be measured."""
    page = web.get("/login")
    if page.status_code == 404:
        return "web page missing (404)"
    if page.status_code != 200:
        return f"GET /login answered {page.status_code}"
    field = _CSRF.search(page.text)
    token = _VALUE.search(field.group(0)) if field else None
    if token is None:
        return "no csrf_token input on /login"
    done = web.post("/login", data={"api_key": key, "csrf_token": token.group(1)})
    if done.status_code >= 400:
        return f"POST /login answered {done.status_code}"
    probe = web.get(f"/instances?{CASES[0][1]}")
    if probe.status_code == 404:
        return "web page missing (404)"
    if probe.status_code != 200 or "/login" in str(probe.url):
        return f"GET /instances answered {probe.status_code} ({probe.url.path})"
    rows = probe.text.count("<tr data-id=")
    if rows != 50:
        raise SystemExit(f"GET /instances?{CASES[0][1]} shows {rows} rows, not 50")
    return None


def counts_on_request(web: httpx.Client) -> bool:
    """Whether the dashboard has the header's "count all" request (issue 15 follow-up)."""
    return web.get(f"{COUNT_PATH}?{CASES[0][1]}").status_code == 200


def timed(client: httpx.Client, path: str) -> float:
    t = time.perf_counter()
    r = client.get(path)
    elapsed = (time.perf_counter() - t) * 1000
    if r.status_code != 200:
        raise SystemExit(f"GET {path} answered {r.status_code}: {r.text[:200]}")
    return elapsed


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


class Churn:
    """An action landing between requests: one instance's status set through the
    store (as the lifecycle service does), alternating over the first 500 instances."""

    def __init__(self, url: str) -> None:
        self.engine = sa.create_engine(url)
        with self.engine.connect() as conn:
            self.ids = [r[0] for r in conn.execute(
                sa.text("SELECT id FROM instances ORDER BY name LIMIT 500"))]
        self.n = 0

    def step(self) -> None:
        iid = self.ids[self.n % len(self.ids)]
        status = InstanceStatus.STOPPED if self.n % 2 == 0 else InstanceStatus.RUNNING
        self.n += 1
        with self.engine.begin() as conn:
            inst.set_status(conn, iid, status, status.value)

    def close(self) -> None:
        self.engine.dispose()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--instances", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--churn", action="store_true",
                    help="before each page, an action sets one instance's status (as a "
                         "busy fleet would): nothing the page keeps between requests "
                         "that follows the inventory can be reused")
    args = ap.parse_args(argv)

    url, name = pg_database()
    proc = None
    try:
        key = load(url, args.instances)
        port = free_port()
        with tempfile.TemporaryDirectory() as tmp:
            proc = serve(url, Path(tmp), port)
            base = f"http://127.0.0.1:{port}"
            with httpx.Client(base_url=base, headers={"X-API-Key": key}, timeout=60) as api, \
                    httpx.Client(base_url=base, timeout=60, follow_redirects=True) as web:
                web_missing = sign_in(web, key)
                sides = [("API", api, "/api/v1/instances")]
                if web_missing is None:
                    sides.append(("web", web, "/instances"))
                    if counts_on_request(web):
                        sides.append(("count all", web, COUNT_PATH))
                else:
                    print(f"web: {web_missing}; measuring the API only", file=sys.stderr)
                times: dict[tuple[str, str], list[float]] = {}
                churn = Churn(url) if args.churn else None
                load_before = os.getloadavg()
                for r in range(args.warmup + args.rounds):
                    for case, query in CASES:
                        for side, client, path in sides:
                            if churn is not None:
                                churn.step()
                            ms = timed(client, f"{path}?{query}")
                            if r >= args.warmup:
                                times.setdefault((case, side), []).append(ms)
                load_after = os.getloadavg()
                if churn is not None:
                    churn.close()
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=30)
        drop_pg(name)

    print(f"\n{args.instances:,} instances on PostgreSQL, {args.rounds} interleaved rounds "
          f"after {args.warmup} warm-up rounds; one client, keep-alive; load average "
          f"{load_before[0]:.1f} before, {load_after[0]:.1f} after "
          f"({os.cpu_count()} CPUs)"
          f"{'; an instance status set before every request (--churn)' if args.churn else ''}"
          ".\n")
    print("| page | API p50 (ms) | API p95 (ms) | web p50 (ms) | web p95 (ms) | "
          "web p95 / API p95 |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for case, query in CASES:
        a = times[(case, "API")]
        w = times.get((case, "web"))
        if w:
            cells = (f"{pct(w, 50):.1f} | {pct(w, 95):.1f} | "
                     f"{pct(w, 95) / pct(a, 95):.2f}")
        else:
            cells = f"{web_missing} | - | -"
        print(f"| {case} (`{query}`) | {pct(a, 50):.1f} | {pct(a, 95):.1f} | {cells} |")
    if any(side == "count all" for _, side in times):
        print("\nOn request: the header's \"count all\" button (when more than "
              f"{COUNT_SHOWN:,} match), `GET {COUNT_PATH}?...`, in the same rounds:\n")
        print("| filter | p50 (ms) | p95 (ms) | p95 / API p95 of the same page |")
        print("| --- | ---: | ---: | ---: |")
        for case, query in CASES:
            c, a = times[(case, "count all")], times[(case, "API")]
            print(f"| {case} (`{query}`) | {pct(c, 50):.1f} | {pct(c, 95):.1f} | "
                  f"{pct(c, 95) / pct(a, 95):.2f} |")


if __name__ == "__main__":
    main()
