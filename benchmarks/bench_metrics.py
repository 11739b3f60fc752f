"""Operators' metrics benchmark: what instrumentation costs (issue 18, item 5).

1. The request path. A one-route FastAPI app (the route included under ``/api/v1``,
   as the API's are) called straight through ASGI (no
   network, no server), with and without ``api.instrument.HttpMetrics``, in
   interleaved rounds; reported as microseconds per request and the difference, next
   to the cost of one bare ``Histogram.observe`` on a labelled child measured in the
   same run (the reference: the brief is "no measurable cost beyond a histogram
   observe").
2. A scrape. ``--instances`` (default 100,000) synthetic instances over 10 accounts
   in a fresh PostgreSQL database (``SNOOZEQL_TEST_PG_URL``'s server, default the local
   one): the time of ``GET /metrics``'s store read (``store.fleet_stats.read``) and of
   the whole exposition (``services.telemetry.exposition``), next to the time of
   loading the fleet's rows (``SELECT * FROM instances``: what a scrape must not do),
   medians of ``--scrapes`` interleaved rounds.
3. The real request path on that store: ``GET /api/v1/instances?limit=50`` with an API
   key through ``api.app.create_app``, with and without ``HttpMetrics`` (taken out of
   the app's middleware list), interleaved rounds of ``--page-requests``.

Run: ``.venv/bin/python -m benchmarks.bench_metrics [--instances 100000] [--requests
20000] [--scrapes 7]``. Prints Markdown tables; the database is dropped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal

import sqlalchemy as sa
from fastapi import APIRouter, FastAPI
from fastapi.responses import PlainTextResponse

from benchmarks.bench_inventory import drop_pg, pg_database, synthetic
from snoozeql.api.app import create_app
from snoozeql.api.instrument import HttpMetrics
from snoozeql.config import Settings
from snoozeql.domain.types import Account, ProviderKind
from snoozeql.observability import Telemetry
from snoozeql.providers.registry import ProviderRegistry
from snoozeql.services.apikeys import ApiKeyService
from snoozeql.services.context import Context
from snoozeql.services.telemetry import exposition
from snoozeql.store import accounts, db, fleet_stats
from snoozeql.store import instances as inst


def _app() -> FastAPI:
    """A route included under a prefix, like the API's (``api/app.py``)."""
    router = APIRouter()

    @router.get("/things/{thing}")
    async def one(thing: str) -> PlainTextResponse:
        return PlainTextResponse(thing)

    app = FastAPI()
    app.include_router(router, prefix="/api/v1")
    return app


async def _drive(app: object, n: int, path: str = "/api/v1/things/abc", query: bytes = b"",
                 headers: list[tuple[bytes, bytes]] | None = None) -> float:
    """Seconds for ``n`` GET requests through the ASGI app."""
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "GET", "scheme": "http", "path": path,
             "raw_path": path.encode(), "root_path": "", "query_string": query,
             "headers": headers or [], "client": ("127.0.0.1", 5000),
             "server": ("127.0.0.1", 80)}

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(_message: dict) -> None:
        return None

    began = time.perf_counter()
    for _ in range(n):
        await app(dict(scope), receive, send)  # type: ignore[operator]
    return time.perf_counter() - began


def bench_request_path(requests: int, rounds: int = 7) -> list[str]:
    plain = _app()
    telemetry = Telemetry()
    wrapped = HttpMetrics(_app(), telemetry, routes=list)
    bare = Telemetry().http_duration.labels("/api/v1/things/{thing}", "GET", "200")
    per_plain, per_wrapped, per_observe = [], [], []
    for _ in range(rounds):  # interleaved: both see the same background load
        per_plain.append(asyncio.run(_drive(plain, requests)) / requests * 1e6)
        per_wrapped.append(asyncio.run(_drive(wrapped, requests)) / requests * 1e6)
        began = time.perf_counter()
        for _ in range(requests):
            bare.observe(0.001)
        per_observe.append((time.perf_counter() - began) / requests * 1e6)
    series = [x for x in telemetry.registry.collect() if x.name.startswith("snoozeql_http")]
    assert {s.labels["route"] for f in series for s in f.samples} == {"/api/v1/things/{thing}"}
    rows = [
        "| request path | median µs per request | fastest round µs |",
        "| --- | ---: | ---: |",
    ]
    stats = {}
    for label, xs in (("app without HttpMetrics", per_plain),
                      ("app with HttpMetrics", per_wrapped),
                      ("one bare `Histogram.observe` (reference)", per_observe)):
        stats[label] = (statistics.median(xs), min(xs))
        rows.append(f"| {label} | {stats[label][0]:.1f} | {stats[label][1]:.1f} |")
    (pm, pf), (wm, wf) = stats["app without HttpMetrics"], stats["app with HttpMetrics"]
    rows.append(f"| difference (the middleware's cost) | {wm - pm:.1f} | {wf - pf:.1f} |")
    return rows


def _load(url: str, n: int, accounts_n: int = 10) -> None:
    engine = db.create_engine(url)
    db.upgrade(engine)
    now = datetime.now(UTC)
    per = -(-n // accounts_n)
    for a in range(accounts_n):
        count = min(per, n - a * per)
        if count <= 0:
            break
        account_id = uuid.uuid4()
        items = synthetic(count, a * per)
        with engine.begin() as conn:
            accounts.insert(conn, Account(id=account_id, name=f"bench-{a:02d}",
                                          provider=ProviderKind.AWS,
                                          config={"regions": ["us-east-1"]}), now)
            inst.sync_account(conn, account_id, items, now,
                              {d.provider_id: Decimal("6.8") for d in items})
            accounts.update(conn, account_id, now, last_sync_at=now, status="connected")
    with engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE")
    engine.dispose()


def bench_api_page(url: str, requests: int, rounds: int = 7) -> list[str]:
    """The real app: ``GET /api/v1/instances?limit=50`` with and without HttpMetrics."""
    settings = Settings(database_url=url, jobs_enabled=False, _env_file=None)  # type: ignore[call-arg]
    engine = db.create_engine(settings.effective_database_url)
    ctx = Context(settings=settings, engine=engine, providers=ProviderRegistry(settings))
    _, key = ApiKeyService(ctx).create(f"bench-{uuid.uuid4().hex[:6]}", "viewer")
    with_metrics = create_app(ctx)
    without = create_app(ctx)
    without.user_middleware = [m for m in without.user_middleware if m.cls is not HttpMetrics]
    headers = [(b"x-api-key", key.encode())]
    times: dict[str, list[float]] = {"without": [], "with": []}
    for _ in range(rounds):
        for label, app in (("without", without), ("with", with_metrics)):
            seconds = asyncio.run(_drive(app, requests, "/api/v1/instances", b"limit=50",
                                         headers))
            times[label].append(seconds / requests * 1e6)
    engine.dispose()
    a, b = (statistics.median(times[k]) for k in ("without", "with"))
    return [
        f"| `GET /api/v1/instances?limit=50` (real app, median of {rounds}) | µs per request |",
        "| --- | ---: |",
        f"| without HttpMetrics | {a:,.0f} |",
        f"| with HttpMetrics | {b:,.0f} |",
        f"| with / without | {b / a:.3f} |",
    ]


def bench_scrape(url: str, n: int, scrapes: int) -> list[str]:
    settings = Settings(database_url=url, jobs_enabled=False, _env_file=None)  # type: ignore[call-arg]
    engine = db.create_engine(settings.effective_database_url)
    ctx = Context(settings=settings, engine=engine, providers=ProviderRegistry(settings))
    read, whole, fleet = [], [], []
    for _ in range(scrapes):
        began = time.perf_counter()
        with engine.connect() as conn:
            stats = fleet_stats.read(conn)
        read.append(time.perf_counter() - began)
        began = time.perf_counter()
        body, _ = exposition(ctx)
        whole.append(time.perf_counter() - began)
        began = time.perf_counter()
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT * FROM instances")).fetchall()
        fleet.append(time.perf_counter() - began)
    assert sum(g.count for g in stats.instances) == n == len(rows)
    engine.dispose()
    r, w, f = (statistics.median(x) * 1000 for x in (read, whole, fleet))
    return [
        f"| scrape, {n:,} instances on PostgreSQL (median of {scrapes}) | ms |",
        "| --- | ---: |",
        f"| `fleet_stats.read` (the scrape's store read) | {r:.1f} |",
        f"| whole `/metrics` exposition ({len(body):,} bytes) | {w:.1f} |",
        f"| loading every instance row (reference) | {f:.1f} |",
        f"| exposition / loading the fleet | {w / f:.2f} |",
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--scrapes", type=int, default=7)
    parser.add_argument("--page-requests", type=int, default=200)
    args = parser.parse_args(argv)
    print(f"load average before: {os.getloadavg()[0]:.2f}", file=sys.stderr)
    for line in bench_request_path(args.requests):
        print(line)
    print()
    url, name = pg_database()
    try:
        began = time.perf_counter()
        _load(url, args.instances)
        print(f"loaded {args.instances:,} instances in {time.perf_counter() - began:.1f} s",
              file=sys.stderr)
        for line in bench_scrape(url, args.instances, args.scrapes):
            print(line)
        print()
        for line in bench_api_page(url, args.page_requests):
            print(line)
    finally:
        drop_pg(name)
    print(f"load average after: {os.getloadavg()[0]:.2f}", file=sys.stderr)


if __name__ == "__main__":
    main()
