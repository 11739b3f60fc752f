"""Hourly aggregates in the store (SQLite and PostgreSQL): exact, idempotent, batched,
late samples in their own hour, retention cleanup, the fleet's column read."""

from __future__ import annotations

import math
import threading
from datetime import UTC, datetime, timedelta
from uuid import UUID

import sqlalchemy as sa

from snoozeql.domain.metrics import (
    CONNECTIONS,
    CPU,
    READ_IOPS,
    HourlyAggregate,
    HourlySeries,
    Sample,
)
from snoozeql.domain.types import DiscoveredInstance, InstanceKind, InstanceStatus, ProviderKind
from snoozeql.services.context import Context
from snoozeql.services.metrics import MetricsService
from snoozeql.store import instances as instance_store
from snoozeql.store import metrics as store
from snoozeql.store.metrics import metric_hours

NOW = datetime(2026, 11, 23, 12, 30, tzinfo=UTC)


def add_instances(ctx: Context, *names: str, status: InstanceStatus = InstanceStatus.RUNNING,
                  provider: ProviderKind = ProviderKind.AWS, account_id: UUID | None = None,
                  engine: str = "postgres", tags: dict[str, str] | None = None,
                  cost: float | None = None) -> dict[str, UUID]:
    items = [
        DiscoveredInstance(
            provider=provider, provider_id=f"arn:aws:rds:us-east-1:123456789012:db:{n}"
            if provider is ProviderKind.AWS else n, name=n, kind=InstanceKind.INSTANCE,
            engine=engine, engine_version=None, instance_class="db.t3.micro",
            region="us-east-1", status=status, raw_status=None, tags=tags or {},
        )
        for n in names
    ]
    from decimal import Decimal

    costs = {d.provider_id: (Decimal(str(cost)) if cost is not None else None) for d in items}
    with ctx.engine.begin() as conn:
        instance_store.upsert_discovered(conn, items, account_id, ctx.now(), costs)
        return {i.name: i.id for n in names for i in instance_store.find(conn, name=n)}


def rows(ctx: Context) -> list[tuple]:
    with ctx.engine.connect() as conn:
        return sorted(
            tuple(r) for r in conn.execute(sa.select(metric_hours).order_by(
                metric_hours.c.metric, metric_hours.c.hour))
        )


def at(minute: int, hour: int = 10) -> datetime:
    return datetime(2026, 11, 23, hour, minute, tzinfo=UTC)


def test_batches_merge_exactly_and_repeats_change_nothing(ctx: Context) -> None:
    ctx.clock = lambda: NOW
    ids = add_instances(ctx, "db1")
    first = [Sample(CPU, at(m), float(m)) for m in range(0, 30)]
    second = [Sample(CPU, at(m), float(m) * 2) for m in range(20, 50)]  # 20..29 overlap
    changed, statements = store.apply_samples(ctx.engine, {ids["db1"]: first})
    assert (changed, statements) == (1, 1)
    store.apply_samples(ctx.engine, {ids["db1"]: second})
    with ctx.engine.connect() as conn:
        [agg] = store.series(conn, ids["db1"], at(0), at(0, 11))
    # Minutes 20..29 were already counted: the first value of a minute wins.
    values = [float(m) for m in range(30)] + [float(m) * 2 for m in range(30, 50)]
    assert agg.count == 50
    assert math.isclose(agg.avg, sum(values) / 50)
    assert (agg.min, agg.max) == (0.0, 98.0)
    before = rows(ctx)
    # Collecting the same windows again changes nothing.
    assert store.apply_samples(ctx.engine, {ids["db1"]: first + second}) == (0, 0)
    assert rows(ctx) == before


def test_push_late_samples_land_in_their_own_hour(ctx: Context) -> None:
    ctx.clock = lambda: NOW
    ids = add_instances(ctx, "db1")
    svc = MetricsService(ctx)
    r = svc.push("db1", [{"metric": "connections", "ts": "2026-11-23T12:05:00Z", "value": 3}])
    assert (r.accepted, r.buckets_changed) == (1, 1)
    late = svc.push("db1", [{"metric": "connections", "ts": "2026-11-23T09:59:00+00:00",
                             "value": 7}, {"metric": "cpu", "ts": at(1, 9), "value": 5.5}])
    assert late.buckets_changed == 2
    _, _, _, series = svc.series("db1", None, "2026-11-23T00:00:00Z", None)
    got = {(a.metric, a.hour.hour, a.avg, a.count) for a in series}
    assert got == {(CONNECTIONS, 12, 3.0, 1), (CONNECTIONS, 9, 7.0, 1), (CPU, 9, 5.5, 1)}
    # The same push again: nothing changes.
    assert svc.push("db1", [{"metric": "connections", "ts": "2026-11-23T12:05:00Z",
                             "value": 9}]).buckets_changed == 0
    _, _, _, cpu_only = svc.series(ids["db1"], "cpu", "1d", None)
    assert [a.metric for a in cpu_only] == [CPU]


def test_retention_cleanup_and_too_old_samples(ctx: Context) -> None:
    ctx.clock = lambda: NOW
    ids = add_instances(ctx, "db1", "db2")
    old = NOW - timedelta(days=15)
    keep = NOW - timedelta(days=13)
    store.apply_samples(ctx.engine, {
        ids["db1"]: [Sample(CPU, old, 1.0), Sample(CPU, keep, 2.0)],
        ids["db2"]: [Sample(READ_IOPS, old, 1.0)],
    })
    assert len(rows(ctx)) == 3
    assert MetricsService(ctx).cleanup() == 2
    [(_, metric, hour, *_rest)] = rows(ctx)
    assert metric == CPU and hour == keep.replace(minute=0)
    # Pushed samples older than the retention are not stored at all.
    r = MetricsService(ctx).push("db2", [{"metric": "cpu", "ts": old.isoformat(), "value": 1}])
    assert (r.accepted, r.ignored_too_old) == (0, 1)
    assert len(rows(ctx)) == 1


def test_batched_writes_one_statement_per_thousand_buckets(ctx: Context) -> None:
    ctx.clock = lambda: NOW
    names = [f"db{i}" for i in range(300)]
    ids = add_instances(ctx, *names)
    samples = {
        ids[n]: [Sample(m, at(k, h), 1.0) for m in (CPU, CONNECTIONS) for h in (9, 10)
                 for k in (0, 1)]
        for n in names
    }
    changed, statements = store.apply_samples(ctx.engine, samples)
    assert (changed, statements) == (1200, 2)
    with ctx.engine.connect() as conn:
        cols = store.fleet_series(conn, at(0, 9), 3)
    assert len(cols) == 300
    one = cols.series(cols.keys.index(ids["db7"]))
    assert list(one.cpu) [:2] == [1.0, 1.0] and math.isnan(one.cpu[2])
    assert list(one.connections_max)[:2] == [1.0, 1.0] and math.isnan(one.read_iops[0])


def test_concurrent_writers_lose_nothing(ctx: Context) -> None:
    ctx.clock = lambda: NOW
    ids = add_instances(ctx, "db1")
    errors: list[BaseException] = []

    def write(minutes: range) -> None:
        try:
            for m in minutes:
                store.apply_samples(ctx.engine, {ids["db1"]: [Sample(CPU, at(m), float(m))]})
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(range(k, 60, 4),)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    with ctx.engine.connect() as conn:
        [agg] = store.series(conn, ids["db1"], at(0), at(0, 11))
    assert agg.count == 60 and math.isclose(agg.avg, sum(range(60)) / 60)
    assert (agg.min, agg.max) == (0.0, 59.0)


def test_the_fleet_block_holds_exactly_what_each_instance_read_holds(ctx: Context) -> None:
    """The fleet read (one block of arrays, used by the recommendations) gives, per
    instance, the same floats as reading that instance's aggregates one by one."""
    ctx.clock = lambda: NOW
    ids = add_instances(ctx, "db1", "db2", "db3")
    start = datetime(2026, 11, 20, tzinfo=UTC)
    samples = {
        ids["db1"]: [Sample(CPU, start + timedelta(minutes=7 * k), 1.0 / (k + 3))
                     for k in range(300)]
        + [Sample(CONNECTIONS, start + timedelta(minutes=11 * k), float(k % 5))
           for k in range(200)],
        ids["db2"]: [Sample(READ_IOPS, start + timedelta(hours=5, minutes=k), 0.1 * k)
                     for k in range(90)],
    }
    store.apply_samples(ctx.engine, samples)
    hours = 72
    with ctx.engine.connect() as conn:
        block = store.fleet_series(conn, start, hours)
        picked = store.fleet_series(conn, start, hours, [ids["db2"], ids["db3"]])
        shifted = store.fleet_series(conn, start + timedelta(hours=30), 10)
        each = {i: store.series(conn, i, start, start + timedelta(hours=hours))
                for i in ids.values()}
    assert set(block.keys) == {ids["db1"], ids["db2"]}  # db3 has no data
    assert picked.keys == (ids["db2"],)
    for r, key in enumerate(block.keys):
        want = HourlySeries.from_aggregates(each[key], start, hours)
        got = block.series(r)
        for name in ("connections_avg", "connections_max", "cpu", "read_iops", "write_iops"):
            assert getattr(got, name).tobytes() == getattr(want, name).tobytes(), (
                name, list(getattr(got, name))[:8], list(getattr(want, name))[:8])
    want = HourlySeries.from_aggregates(each[ids["db1"]], start, hours).window(
        start + timedelta(hours=30), 10)
    got = shifted.series(shifted.keys.index(ids["db1"]))
    assert got.cpu.tobytes() == want.cpu.tobytes()
    assert not math.isnan(got.cpu[0]) and math.isnan(got.read_iops[0])


def test_history_hours_fill_only_uncounted_minutes_and_repeat_as_a_no_op(ctx: Context) -> None:
    db1 = add_instances(ctx, "db1")["db1"]
    h10, h11 = at(0), at(0, hour=11)
    # Collection counted minutes 40..59 of 10:00 first (value 1 each).
    store.apply_samples(ctx.engine, {db1: [Sample(CPU, at(m), 1.0) for m in range(40, 60)]})
    history = [HourlyAggregate(CPU, h10, 4.0, 4.0, 4.0, 60),
               HourlyAggregate(CPU, h11, 2.0, 2.0, 2.0, 60)]
    assert store.apply_hours(ctx.engine, {db1: history}) == (2, 1)
    with ctx.engine.connect() as conn:
        got = {a.hour: a for a in store.series(conn, db1, h10, h11 + timedelta(hours=1))}
    assert got[h10].count == 60 and math.isclose(got[h10].avg, (4.0 * 40 + 1.0 * 20) / 60)
    assert (got[h10].min, got[h10].max) == (1.0, 4.0)
    assert (got[h11].avg, got[h11].count) == (2.0, 60)
    # The same history again, and collection of a minute already counted: nothing.
    assert store.apply_hours(ctx.engine, {db1: history}) == (0, 0)
    assert store.apply_samples(ctx.engine, {db1: [Sample(CPU, at(5, hour=11), 9.0)]})[0] == 0



def test_the_fleet_block_keeps_every_float_bit_for_bit_across_gaps(ctx: Context) -> None:
    """The bulk read (a binary COPY on PostgreSQL, raw rows on SQLite) hands over the
    stored floats exactly, extreme ones included, each in its own hour and column, with
    gaps left empty; the same as each instance's own read."""
    ctx.clock = lambda: NOW
    ids = add_instances(ctx, "db1", "db2", "db3", "db4")
    start = datetime(2026, 11, 20, tzinfo=UTC)
    edge = [5e-324, 2.2250738585072014e-308, 1.7976931348623157e308, 1 / 3, 0.1, 0.0,
            2.0 ** 52 + 1, 123456.789e-7, 99.99999999999999]
    rows_in = []
    for n, (name, metrics) in enumerate(
            (("db1", (CPU, CONNECTIONS)), ("db2", (READ_IOPS, "write_iops")),
             ("db3", (CONNECTIONS,)))):
        for m, metric in enumerate(metrics):
            for k, value in enumerate(edge):
                hour = start + timedelta(hours=3 * k + n + m)  # gaps between the hours
                rows_in.append((ids[name], HourlyAggregate(metric, hour, value, 0.0,
                                                           edge[-1 - k], 1)))
    with ctx.engine.begin() as conn:  # a bulk load: the packed days built from the rows
        store.load_hours(conn, rows_in, minutes=1)
    hours = 40
    for read in ("packed", "rows", "row-by-row"):
        check_block_bit_for_bit(ctx, ids, start, hours, edge, read)


def check_block_bit_for_bit(ctx: Context, ids: dict[str, UUID], start: datetime, hours: int,
                            edge: list[float], read: str) -> None:
    with ctx.engine.connect() as conn:
        block = store.fleet_series(conn, start, hours, read=read)
        picked = store.fleet_series(conn, start, hours, [ids["db3"], ids["db4"]], read=read)
        nothing = store.fleet_series(conn, start, hours, [ids["db4"]], read=read)
        before = store.fleet_series(conn, start - timedelta(hours=hours), hours, read=read)
        each = {i: store.series(conn, i, start, start + timedelta(hours=hours))
                for i in ids.values()}
    # No row at all (on PostgreSQL a COPY of only its header and trailer) is no error,
    # and the connection is still usable after it.
    assert nothing.keys == () and before.keys == ()
    assert set(block.keys) == {ids["db1"], ids["db2"], ids["db3"]}  # db4 has no data
    assert picked.keys == (ids["db3"],)
    for b in (block, picked):
        for r, key in enumerate(b.keys):
            want = HourlySeries.from_aggregates(each[key], start, hours)
            got = b.series(r)
            for name in ("connections_avg", "connections_max", "cpu", "read_iops",
                         "write_iops"):
                assert getattr(got, name).tobytes() == getattr(want, name).tobytes(), name
    db1 = block.series(block.keys.index(ids["db1"]))
    assert [db1.cpu[3 * k] for k in range(len(edge))] == edge
    assert math.isnan(db1.cpu[1]) and math.isnan(db1.cpu[2])
    assert [db1.connections_max[3 * k + 1] for k in range(len(edge))] == edge[::-1]
