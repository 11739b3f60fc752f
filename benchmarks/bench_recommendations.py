"""Recommendations listing: the first request after data changed, and the ones after.

Stores N instances (default 1,000) with 14 days of hourly CPU and connection data
(office hours for two thirds of them, idle for the rest), then times
``RecommendationService.list()`` as each ``GET /api/v1/recommendations`` runs it:
the first call (reads the fleet's lookback and analyses it), repeated calls with no
change (reuse the result, read dismissals), and the first call after one new sample
(a metrics write: analyses again). On SQLite and PostgreSQL.

Run: ``.venv/bin/python -m benchmarks.bench_recommendations [--instances N]``
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID

from benchmarks.bench_inventory import drop_pg, fresh_engine, pg_database, synthetic
from snoozeql.config import Settings
from snoozeql.domain.metrics import CONNECTIONS, CPU, Sample
from snoozeql.providers.registry import ProviderRegistry
from snoozeql.services.context import Context
from snoozeql.services.recommendations import RecommendationService
from snoozeql.store import instances as inst
from snoozeql.store import metrics as metric_store
from snoozeql.store.instances import InstanceFilter

NOW = datetime(2026, 11, 23, 12, 30, tzinfo=UTC)
DAYS = 14


def seed(ctx: Context, account: UUID, n: int) -> None:
    with ctx.engine.begin() as conn:
        inst.upsert_discovered(conn, synthetic(n), account, NOW - timedelta(days=DAYS), {})
        ids = [i.id for i in inst.iter_all(conn, InstanceFilter())]
    start = NOW.replace(minute=0) - timedelta(days=DAYS)
    for chunk in range(0, len(ids), 100):
        batch: dict = {}
        for k, instance_id in enumerate(ids[chunk : chunk + 100], chunk):
            samples = []
            for h in range(DAYS * 24):
                t = start + timedelta(hours=h, minutes=7)
                busy = k % 3 != 0 and t.weekday() < 5 and 8 <= t.hour < 18
                samples += [Sample(CPU, t, 40.0 if busy else 2.0),
                            Sample(CONNECTIONS, t, 6.0 if busy else 0.0)]
            batch[instance_id] = samples
        metric_store.apply_samples(ctx.engine, batch)


def timed(fn) -> float:  # noqa: ANN001
    t = time.perf_counter()
    fn()
    return (time.perf_counter() - t) * 1000


def run(url: str, label: str, n: int) -> str:
    engine, account = fresh_engine(url)
    settings = Settings(database_url=url, jobs_enabled=False, _env_file=None)  # type: ignore[call-arg]
    ctx = Context(settings=settings, engine=engine, providers=ProviderRegistry(settings))
    ctx.clock = lambda: NOW
    seed(ctx, account, n)
    first = timed(lambda: RecommendationService(ctx).list())
    again = statistics.median(timed(lambda: RecommendationService(ctx).list())
                              for _ in range(20))
    some = next(iter(ctx.memo["recommendations"][1])).instance.id
    metric_store.apply_samples(engine, {some: [Sample(CPU, NOW - timedelta(hours=3), 1.0)]})
    after_write = timed(lambda: RecommendationService(ctx).list())
    engine.dispose()
    return f"| {label} | {n:,} | {first:,.0f} | {again:,.1f} | {after_write:,.0f} |"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--instances", type=int, default=1_000)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="snoozeql-bench-"))
    pg_url, pg_name = pg_database()
    try:
        print("| store | instances | first list (ms) | unchanged, median of 20 (ms) "
              "| after a new sample (ms) |")
        print("| --- | ---: | ---: | ---: | ---: |")
        print(run(f"sqlite:///{tmp / 'recs.db'}", "SQLite", args.instances), flush=True)
        print(run(pg_url, "PostgreSQL 15", args.instances), flush=True)
    finally:
        drop_pg(pg_name)


if __name__ == "__main__":
    main()
