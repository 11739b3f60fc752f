"""What the hourly-aggregate writes cost: a collection pass, pushes, a history read, the
retention cleanup (issue 21 item 6: the packed copy the writes keep must not make them
slow).

On a fresh store (SQLite file, or a fresh PostgreSQL database on
``SNOOZEQL_TEST_PG_URL``'s server) with ``--instances`` instances (default 1,000):

* history: 2 days x 4 metrics of whole hours per instance through ``apply_hours``
  (what the day-one backfill writes), in batches of 100 instances;
* collection pass: 5 one-minute samples x 4 metrics of the current hour for every
  instance in one ``apply_samples`` (what a collector cycle writes); ``--rounds``
  passes, each new minutes of the same hours, so from the second on every bucket is a
  merge into a stored hour;
* push: ``--pushes`` single-instance writes of 4 samples (what ``POST
  /instances/{id}/metrics`` writes);
* cleanup: ``delete_before`` a cutoff inside the first day.

It uses only ``store.metrics``' write functions, so the same file times the code
before the packed copy: run it with ``PYTHONPATH`` pointing at that checkout's
``src`` (the first line printed says which ``snoozeql`` was imported).

Run: ``.venv/bin/python -m benchmarks.bench_metric_writes [--instances N]
[--stores sqlite,postgresql] [--rounds 5] [--pushes 200]``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID

import snoozeql
from benchmarks.bench_inventory import drop_pg, fresh_engine, pg_database, synthetic
from snoozeql.domain.metrics import CONNECTIONS, CPU, READ_IOPS, WRITE_IOPS, HourlyAggregate, Sample
from snoozeql.store import instances as inst
from snoozeql.store import metrics as metric_store
from snoozeql.store.instances import InstanceFilter

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
METRICS = (CPU, CONNECTIONS, READ_IOPS, WRITE_IOPS)


def run(url: str, label: str, n: int, rounds: int, pushes: int) -> str:
    engine, account = fresh_engine(url)
    with engine.begin() as conn:
        inst.upsert_discovered(conn, synthetic(n), account, NOW, {})
        ids: list[UUID] = [i.id for i in inst.iter_all(conn, InstanceFilter())]
    start = NOW - timedelta(days=2)
    t = time.perf_counter()
    for k in range(0, n, 100):
        metric_store.apply_hours(engine, {
            i: [HourlyAggregate(m, start + timedelta(hours=h), 1.0 + h % 7, 0.5, 9.0, 60)
                for m in METRICS for h in range(48)]
            for i in ids[k : k + 100]
        })
    history = (time.perf_counter() - t) * 1000
    passes = []
    for r in range(rounds):
        batch = {i: [Sample(m, NOW + timedelta(minutes=5 * r + s), 1.0 + s + r)
                     for m in METRICS for s in range(5)] for i in ids}
        t = time.perf_counter()
        metric_store.apply_samples(engine, batch)
        passes.append((time.perf_counter() - t) * 1000)
    one = []
    for p in range(pushes):
        i = ids[p * 7 % n]
        at = NOW + timedelta(minutes=30 + p // n % 30)
        t = time.perf_counter()
        metric_store.apply_samples(engine, {i: [Sample(m, at, 2.0) for m in METRICS]})
        one.append((time.perf_counter() - t) * 1000)
    t = time.perf_counter()
    with engine.begin() as conn:
        metric_store.delete_before(conn, start + timedelta(hours=5))
    cleanup = (time.perf_counter() - t) * 1000
    engine.dispose()
    return (f"| {label} | {n:,} | {history:,.0f} | {passes[0]:,.0f} | "
            f"{statistics.median(passes[1:] or passes):,.0f} | "
            f"{statistics.median(one):,.2f} | {cleanup:,.0f} |")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--instances", type=int, default=1_000)
    parser.add_argument("--stores", default="sqlite,postgresql")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--pushes", type=int, default=200)
    args = parser.parse_args()
    stores = args.stores.split(",")
    print(f"snoozeql from {Path(snoozeql.__file__).parent}; load average "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print("| store | instances | history, 2 days x 4 metrics (ms) | first collection pass "
          "(ms) | later passes, merges, median (ms) | one push, median (ms) "
          "| cleanup (ms) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    tmp = Path(tempfile.mkdtemp(prefix="snoozeql-bench-"))
    try:
        if "sqlite" in stores:
            print(run(f"sqlite:///{tmp / 'writes.db'}", "SQLite", args.instances,
                      args.rounds, args.pushes), flush=True)
        if "postgresql" in stores:
            url, name = pg_database()
            try:
                print(run(url, "PostgreSQL 15", args.instances, args.rounds, args.pushes),
                      flush=True)
            finally:
                drop_pg(name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
