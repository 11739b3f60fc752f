"""Recommendations listing: the first request, the ones after, and after one new sample.

Stores N instances (default 1,000) with 14 days of hourly CPU and connection data
(office hours for two thirds of them, idle for the rest), then times
``RecommendationService.list()`` as each ``GET /api/v1/recommendations`` runs it:

* the first call with nothing analysed yet (reads the fleet's lookback, analyses it
  all, stores each instance's analysis);
* the first call of a new process (an empty memo) once the analyses are stored, as the
  analyse-activity job leaves them: only instances changed since are analysed;
* repeated calls with no change (reuse the result, read dismissals);
* the first call after one new sample (a metrics write): per-instance data versions
  say which instance changed, and only that one is analysed again.

Then, on the same store: reading the lookback and analysing it (the packed days, the
block from the hourly rows, the per-row reference), and ``--cold-repeats`` more first
listings with nothing analysed, alternating the packed read with the read of the rows.

On SQLite and PostgreSQL (``--stores``). ``--fast-seed`` writes the hourly aggregates
straight into the store (a few minutes at 10,000 instances instead of an hour of
sample pushing); the analysis reads the same rows either way.

Run: ``.venv/bin/python -m benchmarks.bench_recommendations [--instances N]
[--stores sqlite,postgresql] [--fast-seed] [--cold-repeats 2]``
"""

from __future__ import annotations

import argparse
import functools
import os
import shutil
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID

import sqlalchemy as sa

from benchmarks.bench_inventory import drop_pg, fresh_engine, pg_database, synthetic
from snoozeql.config import Settings
from snoozeql.domain.analysis import BlockAnalysis, Recommendation, analyse
from snoozeql.domain.metrics import (
    CONNECTIONS,
    CPU,
    HourlyAggregate,
    HourlySeries,
    Sample,
    floor_hour,
)
from snoozeql.providers.registry import ProviderRegistry
from snoozeql.services.context import Context
from snoozeql.services.metrics import analysis_settings
from snoozeql.services.recommendations import RecommendationService
from snoozeql.store import instances as inst
from snoozeql.store import metrics as metric_store
from snoozeql.store import versions
from snoozeql.store.instances import InstanceFilter
from snoozeql.store.instances import instances as instance_table
from snoozeql.store.metrics import metric_days, metric_hours

NOW = datetime(2026, 11, 23, 12, 30, tzinfo=UTC)
DAYS = 14


def _busy(k: int, t: datetime) -> bool:
    return k % 3 != 0 and t.weekday() < 5 and 8 <= t.hour < 18


def seed(ctx: Context, account: UUID, n: int, fast: bool) -> list[UUID]:
    with ctx.engine.begin() as conn:
        inst.upsert_discovered(conn, synthetic(n), account, NOW - timedelta(days=DAYS), {})
        ids = [i.id for i in inst.iter_all(conn, InstanceFilter())]
    start = floor_hour(NOW) - timedelta(days=DAYS)
    if fast:
        # Two template instances get their rows through SQLAlchemy; every other
        # instance copies its template's rows in SQL (one statement per 500 ids).
        hours = [start + timedelta(hours=h) for h in range(DAYS * 24)]
        templates = {}
        for k in (0, 1):  # k % 3 == 0: idle; else office hours
            rows: list[tuple[UUID, HourlyAggregate]] = []
            for t in hours:
                busy = _busy(k, t)
                for metric, value in ((CPU, 40.0 if busy else 2.0),
                                      (CONNECTIONS, 6.0 if busy else 0.0)):
                    rows.append((ids[k], HourlyAggregate(metric, t, value, value, value, 1)))
            with ctx.engine.begin() as conn:  # the rows and their packed days
                metric_store.load_hours(conn, rows, minutes=1 << 7)
            templates[k] = ids[k]
        cols = ["metric", "hour", "epoch_hour", "avg", "min", "max", "count", "minutes"]
        m = metric_hours.alias("m")
        d = metric_days.alias("d")
        day_cols = ["day", "present", "cells"]
        for k, template in templates.items():
            group = [i for n, i in enumerate(ids) if (n % 3 != 0) == bool(k) and n > 1]
            for n in range(0, len(group), 500):
                chosen = sa.select(instance_table.c.id.label("instance_id"),
                                   *[m.c[c] for c in cols]).select_from(
                    instance_table.join(m, sa.true())).where(
                    m.c.instance_id == template, instance_table.c.id.in_(group[n : n + 500]))
                days = sa.select(instance_table.c.id.label("instance_id"),
                                 *[d.c[c] for c in day_cols]).select_from(
                    instance_table.join(d, sa.true())).where(
                    d.c.instance_id == template, instance_table.c.id.in_(group[n : n + 500]))
                with ctx.engine.begin() as conn:
                    conn.execute(metric_hours.insert().from_select(["instance_id", *cols],
                                                                   chosen))
                    # The template's packed days too, as the writes would have left them.
                    conn.execute(metric_days.insert().from_select(["instance_id", *day_cols],
                                                                  days))
        with ctx.engine.begin() as conn:
            versions.bump_metrics(conn, ids)
        return ids
    for chunk in range(0, len(ids), 100):
        batch: dict[UUID, list[Sample]] = {}
        for k, instance_id in enumerate(ids[chunk : chunk + 100], chunk):
            samples = []
            for h in range(DAYS * 24):
                t = start + timedelta(hours=h, minutes=7)
                busy = _busy(k, t)
                samples += [Sample(CPU, t, 40.0 if busy else 2.0),
                            Sample(CONNECTIONS, t, 6.0 if busy else 0.0)]
            batch[instance_id] = samples
        metric_store.apply_samples(ctx.engine, batch)
    return ids


def reference_read_and_analyse(ctx: Context) -> int:
    """The cold path as it was before the block read (kept here as the reference):
    every stored hour a SQLAlchemy row, put into one ``HourlySeries`` per instance,
    then ``analyse`` per instance. Returns how many recommendations it made."""
    settings = analysis_settings(ctx)
    hours = settings.lookback_hours
    start = floor_hour(NOW) - timedelta(hours=hours)
    base = metric_store.epoch_hour(start)
    t = metric_hours
    q = sa.select(sa.cast(t.c.instance_id, sa.String), t.c.metric, t.c.epoch_hour, t.c.avg,
                  t.c.max).where(t.c.epoch_hour >= base, t.c.epoch_hour < base + hours)
    out: dict[str, HourlySeries] = {}
    with ctx.engine.connect() as conn:
        for instance_id, metric, hour_no, avg, max_ in conn.execute(q).all():
            cols = out.get(instance_id)
            if cols is None:
                cols = out[instance_id] = HourlySeries.empty(start, hours)
            cols.put(metric, hour_no - base, avg, max_)
    return sum(isinstance(analyse(cols, settings, NOW, "UTC"), Recommendation)
               for cols in out.values())


def block_read_and_analyse(ctx: Context, read: str = "packed") -> int:
    """The same with the block read and ``BlockAnalysis`` (what the service runs);
    ``read``: from the packed days (what the service reads), or from the hourly rows
    (``"rows"``: a binary COPY on PostgreSQL, raw rows on SQLite, the read before the
    packed copy)."""
    settings = analysis_settings(ctx)
    hours = settings.lookback_hours
    start = floor_hour(NOW) - timedelta(hours=hours)
    with ctx.engine.connect() as conn:
        block = metric_store.fleet_series(conn, start, hours, read=read)
    fleet = BlockAnalysis(block, settings, NOW)
    return sum(isinstance(fleet.analyse(r, "UTC"), Recommendation) for r in range(len(block)))


def compare(ctx: Context, label: str, n: int) -> str:
    """Read + analyse side by side on the same store: packed, per-row reference, block
    from the rows, packed again (the packed figure is the mean of its two runs)."""
    counts: list[int] = []
    block_a = timed(lambda: counts.append(block_read_and_analyse(ctx)))
    reference = timed(lambda: counts.append(reference_read_and_analyse(ctx)))
    rows = timed(lambda: counts.append(block_read_and_analyse(ctx, read="rows")))
    block_b = timed(lambda: counts.append(block_read_and_analyse(ctx)))
    assert len(set(counts)) == 1, counts  # the same recommendations
    block = (block_a + block_b) / 2
    return (f"| {label} | {n:,} | {reference:,.0f} | {rows:,.0f} | {block:,.0f} | "
            f"{reference / block:.1f}x | {rows / block:.1f}x |")


def cold_listings(ctx: Context, label: str, n: int, repeats: int) -> str:
    """The whole first listing again on the same store, nothing analysed (the stored
    analyses and recommendations deleted, a new memo), alternating the packed read
    (what the service does) with the read of the hourly rows (what it did before):
    packed, rows, packed, rows ... Medians of ``repeats`` each."""
    packed, rows = [], []
    original = metric_store.fleet_series
    for _ in range(repeats):
        for read, out in (("packed", packed), ("rows", rows)):
            with ctx.engine.begin() as conn:  # as on a store that never analysed
                if conn.dialect.name == "postgresql":  # no dead rows left behind
                    conn.exec_driver_sql("TRUNCATE instance_analyses, recommendations")
                else:
                    conn.exec_driver_sql("DELETE FROM instance_analyses")
                    conn.exec_driver_sql("DELETE FROM recommendations")
            fresh = Context(settings=ctx.settings, engine=ctx.engine, providers=ctx.providers)
            fresh.clock = lambda: NOW
            metric_store.fleet_series = functools.partial(original, read=read)  # type: ignore[assignment]
            try:
                out.append(timed(lambda: RecommendationService(fresh).list()))  # noqa: B023
            finally:
                metric_store.fleet_series = original  # type: ignore[assignment]
    p, r = statistics.median(packed), statistics.median(rows)
    return (f"| {label} | {n:,} | {p:,.0f} ({', '.join(f'{x:,.0f}' for x in packed)}) | "
            f"{r:,.0f} ({', '.join(f'{x:,.0f}' for x in rows)}) | {r / p:.1f}x |")


def timed(fn) -> float:  # noqa: ANN001
    t = time.perf_counter()
    fn()
    return (time.perf_counter() - t) * 1000


def run(url: str, label: str, n: int, fast: bool, side: list[str], cold: list[str],
        repeats: int) -> str:
    engine, account = fresh_engine(url)
    settings = Settings(database_url=url, jobs_enabled=False, _env_file=None)  # type: ignore[call-arg]
    ctx = Context(settings=settings, engine=engine, providers=ProviderRegistry(settings))
    ctx.clock = lambda: NOW
    t0 = time.perf_counter()
    ids = seed(ctx, account, n, fast)
    print(f"  ({label}: seeded {n:,} instances in {time.perf_counter() - t0:,.0f} s)",
          flush=True)
    first = timed(lambda: RecommendationService(ctx).list())
    side.append(compare(ctx, label, n))
    # A new process: the same store, an empty memo; the analyses are stored.
    fresh = Context(settings=settings, engine=engine, providers=ProviderRegistry(settings))
    fresh.clock = lambda: NOW
    new_process = timed(lambda: RecommendationService(fresh).list())
    again = statistics.median(timed(lambda: RecommendationService(fresh).list())
                              for _ in range(20))
    afters = []
    for k in range(5):
        metric_store.apply_samples(
            engine, {ids[k * 7]: [Sample(CPU, NOW - timedelta(hours=3, minutes=-k), 1.0)]}
        )
        afters.append(timed(lambda: RecommendationService(fresh).list()))
    if repeats:
        cold.append(cold_listings(ctx, label, n, repeats))
    engine.dispose()
    return (f"| {label} | {n:,} | {first:,.0f} | {new_process:,.0f} | {again:,.1f} | "
            f"{statistics.median(afters):,.0f} |")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--instances", type=int, default=1_000)
    parser.add_argument("--stores", default="sqlite,postgresql")
    parser.add_argument("--fast-seed", action="store_true")
    parser.add_argument("--cold-repeats", type=int, default=2,
                        help="first listings again, packed read and row read alternated")
    args = parser.parse_args()
    stores = args.stores.split(",")
    tmp = Path(tempfile.mkdtemp(prefix="snoozeql-bench-"))
    pg_url, pg_name = pg_database() if "postgresql" in stores else ("", "")
    try:
        print("| store | instances | first list, nothing analysed (ms) "
              "| first list of a new process (ms) | unchanged, median of 20 (ms) "
              "| after one new sample, median of 5 (ms) |")
        print("| --- | ---: | ---: | ---: | ---: | ---: |")
        side: list[str] = []
        cold: list[str] = []
        if "sqlite" in stores:
            print(run(f"sqlite:///{tmp / 'recs.db'}", "SQLite", args.instances,
                      args.fast_seed, side, cold, args.cold_repeats), flush=True)
        if "postgresql" in stores:
            print(run(pg_url, "PostgreSQL 15", args.instances, args.fast_seed, side, cold,
                      args.cold_repeats), flush=True)
        print("\nRead the lookback and analyse every instance, side by side on the same store"
              " (packed, per-row reference, block read from the rows, packed again; load average"
              f" {' '.join(f'{x:.1f}' for x in os.getloadavg())} at the end):")
        print("| store | instances | per-row reference (ms) | block from the rows (ms) "
              "| block from the packed days (ms) | vs reference | vs block from the rows |")
        print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
        for line in side:
            print(line)
        if cold:
            print("\nThe whole first listing again, nothing analysed, alternated: packed read,"
                  " row read, ... (medians, each run in brackets; load average"
                  f" {' '.join(f'{x:.1f}' for x in os.getloadavg())} at the end):")
            print("| store | instances | first list, packed read (ms) "
                  "| first list, read of the rows (ms) | speed-up |")
            print("| --- | ---: | ---: | ---: | ---: |")
            for line in cold:
                print(line)
    finally:
        if pg_name:
            drop_pg(pg_name)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
