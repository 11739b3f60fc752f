"""The packed copy of the hourly aggregates (``metric_days``) stays equal to the rows on
every write path, on SQLite and PostgreSQL: samples merged into stored hours, history
hours, bulk loads over stored rows, the retention cleanup, concurrent writers, and a
store migrated from before the copy existed."""

from __future__ import annotations

import mmap
import threading
from datetime import UTC, datetime, timedelta
from uuid import UUID

import numpy as np
import pytest
import sqlalchemy as sa

from snoozeql.domain.metrics import (
    CONNECTIONS,
    CPU,
    READ_IOPS,
    WRITE_IOPS,
    HourlyAggregate,
    Sample,
)
from snoozeql.domain.types import DiscoveredInstance, InstanceKind, InstanceStatus, ProviderKind
from snoozeql.services.context import Context
from snoozeql.store import db
from snoozeql.store import instances as instance_store
from snoozeql.store import metrics as store
from snoozeql.store.metrics import metric_days, metric_hours
from tests.store.test_metrics_store import add_instances
from tests.support.store import create_pg_database, drop_pg_database

NOW = datetime(2026, 11, 23, 12, 30, tzinfo=UTC)
DAY0 = datetime(2026, 11, 20, tzinfo=UTC)


def assert_packed_equals_rows(engine: sa.Engine) -> int:
    """Every window over the stored hours (whole days, and windows starting and
    ending inside a day) reads the same keys and the same float bits from the packed
    days as from the rows. Returns how many instances have data."""
    with engine.connect() as conn:
        lo, hi = conn.execute(
            sa.select(sa.func.min(metric_hours.c.epoch_hour),
                      sa.func.max(metric_hours.c.epoch_hour))).one()
        if lo is None:
            assert store.fleet_series(conn, NOW, 48).keys == ()
            return 0
        first = datetime.fromtimestamp(lo // 24 * 24 * 3600, UTC)
        span = (hi // 24 - lo // 24 + 1) * 24
        windows = [(first - timedelta(days=1), span + 48), (first, span),
                   (first + timedelta(hours=5), span - 7), (first + timedelta(hours=23), 3)]
        found = 0
        for start, hours in windows:
            packed = store.fleet_series(conn, start, hours)
            rows = store.fleet_series(conn, start, hours, read="rows")
            assert set(packed.keys) == set(rows.keys), (start, hours)
            for r, key in enumerate(rows.keys):
                p = packed.keys.index(key)
                assert packed.values[:, p].tobytes() == rows.values[:, r].tobytes(), (
                    key, start, hours)
            found = max(found, len(rows.keys))
        return found


def day_rows(engine: sa.Engine) -> list[tuple[UUID, int, int]]:
    with engine.connect() as conn:
        return sorted(
            (r.instance_id, r.day, r.present) for r in conn.execute(
                sa.select(metric_days.c.instance_id, metric_days.c.day, metric_days.c.present))
        )


def test_samples_merged_into_stored_hours_keep_the_packed_days_equal(ctx: Context) -> None:
    ctx.clock = lambda: NOW
    ids = add_instances(ctx, "db1", "db2", "db3")
    late = DAY0 + timedelta(hours=23)  # 23:00, then 00:00 of the next day
    metrics = (CPU, CONNECTIONS, READ_IOPS, WRITE_IOPS)
    for attempt in range(3):  # later batches merge into the stored hours
        samples = {
            ids["db1"]: [Sample(m, late + timedelta(minutes=7 * k + attempt), 1.0 / (k + 3 + n))
                         for n, m in enumerate(metrics) for k in range(20)],
            ids["db2"]: [Sample(CONNECTIONS, late + timedelta(minutes=k * 3 + attempt),
                                float(k % 7) / 3) for k in range(40)],
        }
        store.apply_samples(ctx.engine, samples)
        assert assert_packed_equals_rows(ctx.engine) == 2
    # Samples of minutes already counted change nothing, in the rows or the days.
    before = day_rows(ctx.engine)
    store.apply_samples(ctx.engine, {ids["db2"]: [Sample(CONNECTIONS, late, 99.0)]})
    assert day_rows(ctx.engine) == before
    days = {(i, d) for i, d, _ in before}
    first_day = store.epoch_hour(late) // 24
    assert days == {(ids["db1"], first_day), (ids["db1"], first_day + 1),
                    (ids["db2"], first_day), (ids["db2"], first_day + 1)}
    # The merged mean is the stored one, bit for bit (not recomputed in Python).
    with ctx.engine.connect() as conn:
        stored = {a.hour: a for a in store.series(conn, ids["db1"], late, late
                                                  + timedelta(hours=2), [CPU])}
        block = store.fleet_series(conn, late, 2)
    row = block.keys.index(ids["db1"])
    assert list(block.values[2, row]) == [stored[late].avg,
                                          stored[late + timedelta(hours=1)].avg]


def test_history_hours_and_bulk_loads_keep_the_packed_days_equal(ctx: Context) -> None:
    ctx.clock = lambda: NOW
    ids = add_instances(ctx, "db1", "db2")
    h10 = DAY0 + timedelta(hours=10)
    store.apply_samples(ctx.engine, {ids["db1"]: [Sample(CPU, h10 + timedelta(minutes=m), 1.0)
                                                  for m in range(40, 60)]})
    history = [HourlyAggregate(CPU, h10 + timedelta(hours=h), 4.0 + h / 7, 1.0, 9.5, 60)
               for h in range(30)]
    store.apply_hours(ctx.engine, {ids["db1"]: history, ids["db2"]: history[:3]})
    assert assert_packed_equals_rows(ctx.engine) == 2
    # A bulk load over stored hours leaves those rows alone: the days show the rows,
    # not what was offered.
    offered = [(ids["db1"], HourlyAggregate(m, h10 + timedelta(hours=h), 77.0, 77.0, 78.0, 60))
               for m in (CPU, CONNECTIONS) for h in range(-5, 40)]
    with ctx.engine.begin() as conn:
        store.load_hours(conn, offered)
    assert assert_packed_equals_rows(ctx.engine) == 2
    with ctx.engine.connect() as conn:
        block = store.fleet_series(conn, h10, 1)
    assert block.values[2, block.keys.index(ids["db1"]), 0] != 77.0  # kept as stored
    assert block.values[0, block.keys.index(ids["db1"]), 0] == 77.0  # newly loaded


def test_a_bulk_load_over_many_weeks_packs_every_day(ctx: Context) -> None:
    ids = add_instances(ctx, "db1", "db2")
    rows = [(i, HourlyAggregate(CPU, DAY0 + timedelta(days=d, hours=(d * 5 + k) % 24),
                                d + k / 3, 0.0, d + 1.0, 60))
            for k, i in enumerate(ids.values()) for d in range(-60, 20, 1 + k)]
    with ctx.engine.begin() as conn:  # 80 days: more than one span of the rebuild
        store.load_hours(conn, rows)
    assert assert_packed_equals_rows(ctx.engine) == 2
    assert len(day_rows(ctx.engine)) == len(rows)


def test_retention_cleanup_keeps_the_packed_days_equal(ctx: Context) -> None:
    ctx.clock = lambda: NOW
    ids = add_instances(ctx, "db1", "db2")
    samples = {
        i: [Sample(m, DAY0 + timedelta(hours=h, minutes=5), float(h % 11) + n)
            for h in range(0, 72, 1) for n, m in enumerate((CPU, CONNECTIONS))]
        for i in ids.values()
    }
    store.apply_samples(ctx.engine, samples)
    cutoff = DAY0 + timedelta(days=1, hours=9)  # inside the second day
    with ctx.engine.begin() as conn:
        assert store.delete_before(conn, cutoff) == 2 * 2 * 33
    assert assert_packed_equals_rows(ctx.engine) == 2
    first_kept_day = store.epoch_hour(cutoff) // 24
    assert {d for _, d, _ in day_rows(ctx.engine)} == {first_kept_day, first_kept_day + 1}
    # A late write to a pruned hour (a history read, say): the hour holds only what was
    # written since, never the pruned values of its other metrics.
    pruned = DAY0 + timedelta(days=1, hours=3)
    store.apply_hours(ctx.engine, {ids["db1"]: [HourlyAggregate(CPU, pruned, 5.0, 5.0, 5.0, 60)]})
    assert assert_packed_equals_rows(ctx.engine) == 2
    with ctx.engine.connect() as conn:
        block = store.fleet_series(conn, pruned, 1)
    assert block.keys == (ids["db1"],)
    assert block.values[2, 0, 0] == 5.0 and np.isnan(block.values[0, 0, 0])
    # Pruning a whole day at a day boundary, and then everything.
    with ctx.engine.begin() as conn:
        store.delete_before(conn, DAY0 + timedelta(days=2))
    assert assert_packed_equals_rows(ctx.engine) == 2
    with ctx.engine.begin() as conn:
        store.delete_before(conn, DAY0 + timedelta(days=5))
    assert assert_packed_equals_rows(ctx.engine) == 0
    assert day_rows(ctx.engine) == []


def test_concurrent_writers_of_one_day_keep_the_packed_days_equal(ctx: Context) -> None:
    ctx.clock = lambda: NOW
    ids = add_instances(ctx, "db1", "db2")
    errors: list[BaseException] = []

    def write(k: int) -> None:
        try:
            for step in range(12):  # each thread its own hours of the same day
                hour = DAY0 + timedelta(hours=(k + 4 * step) % 24, minutes=step)
                store.apply_samples(ctx.engine, {
                    ids["db1"]: [Sample(CPU, hour, float(k * 100 + step)),
                                 Sample(CONNECTIONS, hour, float(k))],
                    ids["db2"]: [Sample(READ_IOPS, hour, 0.5 + k)],
                })
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert assert_packed_equals_rows(ctx.engine) == 2
    [(_, _, present)] = [r for r in day_rows(ctx.engine) if r[0] == ids["db1"]]
    assert present == (1 << 24) - 1  # every hour of the day, none lost


def test_a_block_in_memory_of_its_own_reads_the_same(ctx: Context,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A large block's array is anonymous memory of its own (``mmap``): the same
    floats, and an array NumPy can write and read as any other."""
    ctx.clock = lambda: NOW
    ids = add_instances(ctx, "db1", "db2")
    store.apply_samples(ctx.engine, {
        i: [Sample(m, DAY0 + timedelta(hours=h, minutes=k), 1.0 / (h + k + 1))
            for h in range(0, 50, 3) for k in (1, 2) for m in (CPU, CONNECTIONS)]
        for i in ids.values()})
    monkeypatch.setattr(store, "_OWN_MEMORY", 1)
    assert assert_packed_equals_rows(ctx.engine) == 2
    with ctx.engine.connect() as conn:
        block = store.fleet_series(conn, DAY0, 48)
    root = block.values
    while getattr(root, "base", None) is not None:
        root = root.base
    assert isinstance(root.obj if isinstance(root, memoryview) else root, mmap.mmap)
    block.values[0, 0, 0] = 7.0
    assert block.values[0, 0, 0] == 7.0


def test_rows_of_other_metrics_count_as_data_in_both_reads(ctx: Context) -> None:
    ids = add_instances(ctx, "db1")
    with ctx.engine.begin() as conn:
        store.load_hours(conn, [(ids["db1"], HourlyAggregate("free_mb", DAY0, 3.0, 3.0, 3.0,
                                                             60))])
    assert assert_packed_equals_rows(ctx.engine) == 1


@pytest.mark.parametrize("dialect", ["sqlite", "postgres"])
def test_the_migration_builds_the_packed_copy_from_the_stored_rows(
        dialect: str, tmp_path) -> None:  # noqa: ANN001
    url = f"sqlite:///{tmp_path / 'm.db'}" if dialect == "sqlite" else create_pg_database()
    engine = db.create_engine(url)
    try:
        db.upgrade(engine, "0018")  # before the packed copy
        assert "metric_days" not in sa.inspect(engine).get_table_names()
        items = [DiscoveredInstance(
            provider=ProviderKind.AWS, provider_id=f"arn:aws:rds:us-east-1:1:db:db{n}",
            name=f"db{n}", kind=InstanceKind.INSTANCE, engine="postgres", engine_version=None,
            instance_class="db.t3.micro", region="us-east-1", status=InstanceStatus.RUNNING,
            raw_status=None, tags={}) for n in range(3)]
        with engine.begin() as conn:
            instance_store.upsert_discovered(conn, items, None, NOW, {})
            ids = sorted(i.id for i in instance_store.iter_all(conn))
            edge = [5e-324, 1.7976931348623157e308, 1 / 3, 0.1, 2.0 ** 52 + 1]
            rows = [
                {"instance_id": i, "metric": m, "hour": hour,
                 "epoch_hour": store.epoch_hour(hour), "avg": edge[(h + k) % 5], "min": 0.0,
                 "max": edge[(h + 2) % 5], "count": 60, "minutes": (1 << 60) - 1}
                for k, i in enumerate(ids[:2])
                for m in (CPU, CONNECTIONS, WRITE_IOPS, "free_mb")
                for h in range(0, 60, 1 + k)
                if (hour := DAY0 + timedelta(hours=h + k))
            ]
            conn.execute(metric_hours.insert(), rows)
        db.upgrade(engine)
        assert assert_packed_equals_rows(engine) == 2
        days = day_rows(engine)
        assert {(i, d) for i, d, _ in days} == {
            (r["instance_id"], r["epoch_hour"] // 24) for r in rows}
        db.downgrade(engine, "0018")
        assert "metric_days" not in sa.inspect(engine).get_table_names()
    finally:
        engine.dispose()
        if dialect == "postgres":
            drop_pg_database(url)
