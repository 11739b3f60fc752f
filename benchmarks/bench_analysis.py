"""Benchmark the activity analysis: speed at fleet size, and quality against labels.

Speed: analyse 10,000 instances x 14 days x 4 metrics (13.4 million hourly aggregates;
target under 5 s). Inputs are built from a pool of labelled synthetic traces, but every
instance gets *fresh* aggregate and datetime objects, as rows read from the store would
be (shared objects would flatter the figure: a datetime caches its hash and stays in
the CPU cache). Only the ``analyse`` calls are timed; building the inputs is not.

Quality: over many generated traces, analyse 14 days and score the recommendation on
the following held-out week: precision (hours slept that were truly idle) and recall
(truly idle recurring hours slept).

Run: ``.venv/bin/python benchmarks/bench_analysis.py [--instances N] [--traces N]``
"""

from __future__ import annotations

import argparse
import gc
import platform
import sys
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.synthetic_traces import Score, Trace, random_trace, score  # noqa: E402

from snoozeql.domain.analysis import (  # noqa: E402
    AnalysisSettings,
    BlockAnalysis,
    NoRecommendation,
    Recommendation,
    analyse,
)
from snoozeql.domain.metrics import (  # noqa: E402
    BLOCK_COLUMNS,
    HourlyAggregate,
    HourlySeries,
    SeriesBlock,
)

LOOKBACK_DAYS = 14


def _now(trace: Trace) -> datetime:
    return trace.start + timedelta(days=LOOKBACK_DAYS, minutes=17)


def _fresh(aggregates: list[HourlyAggregate]) -> list[HourlyAggregate]:
    """New objects with equal values, as a store read would give."""
    out = []
    for m, h, av, lo, hi, n in aggregates:
        hour = datetime(h.year, h.month, h.day, h.hour, tzinfo=UTC)
        out.append(HourlyAggregate(m, hour, av + 0.0, lo + 0.0, hi + 0.0, n))
    return out


def bench_speed(instances: int, pool_size: int, chunk: int) -> None:
    settings = AnalysisSettings(lookback_days=LOOKBACK_DAYS)
    # One "now" for the whole run, as the service analyses every instance at once:
    # every pool trace is shifted so that its lookback ends at the same hour.
    now = datetime(2026, 3, 30, 9, 17, tzinfo=UTC)  # the lookback spans a DST change
    start = now.replace(minute=0) - timedelta(days=LOOKBACK_DAYS)
    pool: list[tuple[list[HourlyAggregate], str]] = []
    for seed in range(pool_size):
        trace = random_trace(seed, days=LOOKBACK_DAYS, complete=True)
        shift = start - trace.start
        pool.append(([a._replace(hour=a.hour + shift) for a in trace.aggregates], trace.timezone))

    wall = {"columns": 0.0, "aggregates": 0.0, "block": 0.0}
    cpu = {"columns": 0.0, "aggregates": 0.0, "block": 0.0}
    aggregates = 0
    kinds: Counter[str] = Counter()
    done = 0
    while done < instances:
        ids = range(done, min(instances, done + chunk))
        for form in ("aggregates", "columns", "block"):
            batch: list[tuple[list[HourlyAggregate] | HourlySeries, str]] = []
            for j in ids:
                aggs, zone = pool[j % pool_size]
                fresh = _fresh(aggs)
                if form == "aggregates":
                    aggregates += len(fresh)
                    batch.append((fresh, zone))
                else:
                    columns = HourlySeries.from_aggregates(fresh, start, LOOKBACK_DAYS * 24)
                    batch.append((columns, zone))
            gc.collect()
            if form == "block":  # the whole chunk as one block, as the store reads it
                block = SeriesBlock.empty(start, LOOKBACK_DAYS * 24, range(len(batch)))
                for r, (series, _) in enumerate(batch):
                    for c, name in enumerate(BLOCK_COLUMNS):
                        block.values[c, r] = getattr(series, name)
                t0, c0 = time.perf_counter(), time.process_time()
                fleet = BlockAnalysis(block, settings, now)
                for r, (_, zone) in enumerate(batch):
                    fleet.analyse(r, zone, Decimal("12.5"), 1)
                wall[form] += time.perf_counter() - t0
                cpu[form] += time.process_time() - c0
                continue
            t0, c0 = time.perf_counter(), time.process_time()
            for series, zone in batch:
                r = analyse(series, settings, now, zone, Decimal("12.5"), 1)
                if form == "columns":
                    kinds[r.kind.value if isinstance(r, Recommendation) else r.code.value] += 1
            wall[form] += time.perf_counter() - t0
            cpu[form] += time.process_time() - c0
            del batch
        done += len(ids)
    print(f"speed: {instances} instances x {LOOKBACK_DAYS} days x 4 metrics")
    print(f"  hourly aggregates: {aggregates:,}")
    for form, what in (
        ("block", "BlockAnalysis(SeriesBlock), the fleet path of the recommendations"),
        ("columns", "analyse(HourlySeries), columns as the store would pivot them"),
        ("aggregates", "analyse(list[HourlyAggregate]), building the columns inside"),
    ):
        print(
            f"  {what}: {wall[form]:.2f} s wall, {cpu[form]:.2f} s CPU "
            f"({wall[form] / instances * 1e6:.0f} us per instance)"
        )
    print(f"  results: {dict(sorted(kinds.items()))}")


def bench_quality(traces: int) -> None:
    settings = AnalysisSettings(lookback_days=LOOKBACK_DAYS)
    total = Score()
    by_kind: dict[str, Score] = defaultdict(Score)
    for seed in range(traces):
        trace = random_trace(seed, days=LOOKBACK_DAYS + 7)
        now = _now(trace)
        result: Recommendation | NoRecommendation = analyse(
            trace.until(now), settings, now, trace.timezone
        )
        s = score(trace, result, LOOKBACK_DAYS * 24)
        total.add(s)
        by_kind[trace.kind].add(s)
    print(f"quality: {traces} traces, {LOOKBACK_DAYS} days analysed, the next 7 days scored")
    print(f"  all: {total.summary()}")
    for kind in sorted(by_kind):
        print(f"  {kind}: {by_kind[kind].summary()}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--instances", type=int, default=10_000)
    p.add_argument("--pool", type=int, default=300, help="distinct traces behind the instances")
    p.add_argument("--chunk", type=int, default=1_000, help="instances built at a time")
    p.add_argument("--traces", type=int, default=3_000, help="traces for precision/recall")
    args = p.parse_args()
    print(f"python {platform.python_version()} on {platform.machine()}, {platform.system()}")
    bench_speed(args.instances, args.pool, args.chunk)
    bench_quality(args.traces)


if __name__ == "__main__":
    main()
