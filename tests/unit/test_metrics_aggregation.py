"""Hourly aggregation: exact merges, idempotent re-collection, late samples."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from snoozeql.domain.errors import ValidationError
from snoozeql.domain.metrics import (
    CONNECTIONS,
    CPU,
    FULL_HOUR,
    READ_IOPS,
    WRITE_IOPS,
    HourBucket,
    HourlyAggregate,
    HourlySeries,
    Sample,
    absorb,
    absorb_hour,
    aggregate_samples,
    apply_samples,
    bucket_keys,
    floor_hour,
    merge,
    parse_metric,
    retention_cutoff,
)

H10 = datetime(2026, 3, 2, 10, tzinfo=UTC)


def at(minute: int, hour: datetime = H10, second: int = 0) -> datetime:
    return hour + timedelta(minutes=minute, seconds=second)


def close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)


# -- samples and plain aggregation -----------------------------------------------------


def test_aggregate_samples_per_metric_and_hour() -> None:
    samples = [
        Sample(CPU, at(0), 10.0),
        Sample(CPU, at(15), 20.0),
        Sample(CPU, at(59, second=59), 60.0),
        Sample(CPU, at(0, H10 + timedelta(hours=1)), 5.0),  # the next hour
        Sample(CONNECTIONS, at(30), 3),
    ]
    got = aggregate_samples(samples)
    assert got == [
        HourlyAggregate(CONNECTIONS, H10, 3.0, 3.0, 3.0, 1),
        HourlyAggregate(CPU, H10, 30.0, 10.0, 60.0, 3),
        HourlyAggregate(CPU, H10 + timedelta(hours=1), 5.0, 5.0, 5.0, 1),
    ]


def test_hours_are_utc_even_for_samples_with_another_offset() -> None:
    # 15:45 at +05:30 is 10:15 UTC: it belongs to the 10:00 UTC hour.
    ts = datetime(2026, 3, 2, 15, 45, tzinfo=timezone(timedelta(hours=5, minutes=30)))
    s = Sample(CPU, ts, 1.0)
    assert s.ts.tzinfo is UTC and s.hour == H10
    assert floor_hour(ts) == H10
    (agg,) = aggregate_samples([s])
    assert agg.hour == H10 and agg.hour.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    ("metric", "ts", "value", "fragment"),
    [
        ("memory", H10, 1.0, "unknown metric"),
        (CPU, datetime(2026, 3, 2, 10), 1.0, "no time zone"),
        (CPU, H10, -1.0, ">= 0"),
        (CPU, H10, math.nan, "finite"),
        (CPU, H10, math.inf, "finite"),
        (CPU, H10, True, "number"),
        (CPU, H10, "3", "number"),
    ],
)
def test_bad_samples_are_refused(metric: str, ts: datetime, value: object, fragment: str) -> None:
    with pytest.raises(ValidationError) as e:
        Sample(metric, ts, value)  # type: ignore[arg-type]
    assert fragment in e.value.message


def test_parse_metric() -> None:
    assert [parse_metric(m) for m in ("cpu", "connections", "read_iops", "write_iops")] == [
        CPU,
        CONNECTIONS,
        READ_IOPS,
        WRITE_IOPS,
    ]
    with pytest.raises(ValidationError, match="one of cpu, connections"):
        parse_metric("iops")


# -- merge ------------------------------------------------------------------------------


def test_merge_is_the_weighted_mean() -> None:
    existing = HourlyAggregate(CPU, H10, 10.0, 4.0, 20.0, 3)
    batch = HourlyAggregate(CPU, H10, 2.0, 1.0, 3.0, 1)
    assert merge(existing, batch) == HourlyAggregate(CPU, H10, 8.0, 1.0, 20.0, 4)


def test_merge_refuses_another_hour_or_metric() -> None:
    a = HourlyAggregate(CPU, H10, 1.0, 1.0, 1.0, 1)
    with pytest.raises(ValueError):
        merge(a, a._replace(hour=H10 + timedelta(hours=1)))
    with pytest.raises(ValueError):
        merge(a, a._replace(metric=CONNECTIONS))


def test_an_empty_aggregate_is_neutral() -> None:
    a = HourlyAggregate(CPU, H10, 7.0, 1.0, 9.0, 5)
    empty = HourlyAggregate(CPU, H10, 0.0, 0.0, 0.0, 0)
    assert merge(a, empty) == a
    assert merge(empty, a) == a


values = st.lists(
    st.floats(min_value=0, max_value=1e6, allow_nan=False, allow_infinity=False),
    min_size=1,
    max_size=80,
)


@settings(max_examples=300, deadline=None)
@given(values, st.randoms(use_true_random=False))
def test_merging_in_any_split_equals_aggregating_at_once(
    vals: list[float], rnd: random.Random
) -> None:
    samples = [Sample(CPU, at(i % 60, second=i // 60), v) for i, v in enumerate(vals)]
    (whole,) = aggregate_samples(samples)
    # Cut the samples into random consecutive batches, and merge them in random order.
    cuts = sorted(rnd.sample(range(1, len(samples)), k=rnd.randint(0, len(samples) - 1)))
    parts = [samples[a:b] for a, b in zip([0, *cuts], [*cuts, len(samples)], strict=True)]
    rnd.shuffle(parts)
    acc = aggregate_samples(parts[0])[0]
    for part in parts[1:]:
        acc = merge(acc, aggregate_samples(part)[0])
    assert acc.count == whole.count == len(vals)
    assert acc.min == whole.min == min(vals)
    assert acc.max == whole.max == max(vals)
    assert math.isclose(acc.avg, whole.avg, rel_tol=1e-9, abs_tol=1e-6)
    assert math.isclose(whole.avg, math.fsum(vals) / len(vals), rel_tol=1e-12, abs_tol=1e-9)


# -- idempotent collection ---------------------------------------------------------------


def collect(store: dict, samples: list[Sample]) -> dict:
    """What the store does: read the touched buckets, apply, upsert the changed ones."""
    touched = {k: store[k] for k in bucket_keys(samples) if k in store}
    changed = apply_samples(touched, samples)
    store.update(changed)
    return changed


def test_collecting_the_same_window_twice_changes_nothing() -> None:
    window = [Sample(CPU, at(m), float(m)) for m in range(0, 15)]
    store: dict = {}
    first = collect(store, window)
    assert set(first) == {(CPU, H10)}
    bucket = store[(CPU, H10)]
    assert bucket.aggregate == HourlyAggregate(CPU, H10, 7.0, 0.0, 14.0, 15)
    assert bucket.minutes == (1 << 15) - 1
    assert collect(store, window) == {}  # nothing to write
    assert store[(CPU, H10)] == bucket


def test_overlapping_windows_count_each_minute_once() -> None:
    # A collector that reaches back 20 minutes every 15 minutes overlaps by 5.
    all_samples = [Sample(CONNECTIONS, at(m), float(m % 7)) for m in range(60)]
    store: dict = {}
    for end in (15, 30, 45, 60):
        collect(store, [s for s in all_samples if end - 20 <= s.ts.minute < end])
    (expected,) = aggregate_samples(all_samples)
    got = store[(CONNECTIONS, H10)].aggregate
    assert got.count == 60 and got.min == expected.min and got.max == expected.max
    assert close(got.avg, expected.avg)


def test_first_value_of_a_minute_wins_whatever_the_order() -> None:
    a = Sample(CPU, at(5, second=10), 50.0)
    b = Sample(CPU, at(5, second=40), 90.0)
    for batch in ([a, b], [b, a]):
        bucket = absorb(None, (CPU, H10), batch)
        assert bucket.aggregate == HourlyAggregate(CPU, H10, 50.0, 50.0, 50.0, 1)
    # A revised value for a minute already counted is ignored.
    stored = absorb(None, (CPU, H10), [a])
    assert absorb(stored, (CPU, H10), [b]) is stored


def test_late_samples_land_in_their_own_hour() -> None:
    store: dict = {}
    collect(store, [Sample(CPU, at(m), 10.0) for m in range(45, 60)])
    h11 = H10 + timedelta(hours=1)
    # The next cycle brings the 11:00 window and a sample from 10:20 that came late.
    changed = collect(
        store, [Sample(CPU, at(m, h11), 30.0) for m in range(15)] + [Sample(CPU, at(20), 40.0)]
    )
    assert set(changed) == {(CPU, H10), (CPU, h11)}
    assert store[(CPU, H10)].aggregate.count == 16
    assert close(store[(CPU, H10)].aggregate.avg, (15 * 10.0 + 40.0) / 16)
    assert store[(CPU, h11)].aggregate == HourlyAggregate(CPU, h11, 30.0, 30.0, 30.0, 15)


def test_absorb_refuses_samples_of_another_bucket() -> None:
    with pytest.raises(ValueError):
        absorb(None, (CPU, H10), [Sample(CPU, at(0, H10 + timedelta(hours=1)), 1.0)])
    with pytest.raises(ValueError):
        absorb(None, (CPU, H10), [Sample(CONNECTIONS, at(0), 1.0)])


minute_sets = st.lists(
    st.tuples(st.integers(0, 119), st.floats(0, 500, allow_nan=False)),
    min_size=1,
    max_size=120,
    unique_by=lambda t: t[0],
)


@settings(max_examples=200, deadline=None)
@given(minute_sets, st.randoms(use_true_random=False))
def test_recollection_in_any_order_equals_one_clean_aggregation(
    minutes: list[tuple[int, float]], rnd: random.Random
) -> None:
    """However windows overlap, repeat and arrive, each minute is counted exactly once."""
    samples = [Sample(WRITE_IOPS, H10 + timedelta(minutes=m), v) for m, v in minutes]
    batches = []
    for _ in range(rnd.randint(1, 6)):
        a = rnd.randrange(120)
        b = rnd.randrange(a, 121)
        batches.append([s for s in samples if a <= (s.ts - H10).total_seconds() / 60 < b])
    batches.append(samples)  # in the end, everything was collected at least once
    rnd.shuffle(batches)
    store: dict[tuple[str, datetime], HourBucket] = {}
    for batch in batches:
        collect(store, batch)
    expected = {(a.metric, a.hour): a for a in aggregate_samples(samples)}
    assert set(store) == set(expected)
    for key, want in expected.items():
        got = store[key]
        assert got.aggregate.count == want.count == bin(got.minutes).count("1")
        assert (got.aggregate.min, got.aggregate.max) == (want.min, want.max)
        assert math.isclose(got.aggregate.avg, want.avg, rel_tol=1e-9, abs_tol=1e-9)
    for batch in batches:  # and collecting anything again writes nothing
        assert collect(store, batch) == {}


def test_retention_cutoff() -> None:
    now = datetime(2026, 3, 20, 10, 42, tzinfo=UTC)
    assert retention_cutoff(now, 14) == datetime(2026, 3, 6, 10, tzinfo=UTC)
    with pytest.raises(ValidationError):
        retention_cutoff(now, 0)


# -- columns for the analysis ------------------------------------------------------------


def test_hourly_series_from_aggregates() -> None:
    paris = ZoneInfo("Europe/Paris")
    aggs = [
        HourlyAggregate(CONNECTIONS, H10, 0.5, 0.0, 2.0, 4),
        HourlyAggregate(CPU, H10, 12.0, 1.0, 40.0, 4),
        # the same instant written in another zone still lands at position 1
        HourlyAggregate(READ_IOPS, (H10 + timedelta(hours=1)).astimezone(paris), 7.0, 0, 9, 4),
        HourlyAggregate(WRITE_IOPS, H10 - timedelta(hours=1), 1.0, 0, 1, 4),  # before: ignored
        HourlyAggregate(CPU, H10 + timedelta(hours=3), 1.0, 0, 1, 4),  # after: ignored
    ]
    cols = HourlySeries.from_aggregates(aggs, H10, 3)
    assert cols.hours == 3
    assert list(cols.connections_max)[0] == 2.0 and list(cols.connections_avg)[0] == 0.5
    assert list(cols.cpu)[0] == 12.0
    assert list(cols.read_iops)[1] == 7.0
    assert all(math.isnan(v) for v in cols.write_iops)
    assert math.isnan(cols.cpu[1]) and math.isnan(cols.cpu[2])
    shifted = cols.window(H10 + timedelta(hours=1), 3)
    assert list(shifted.read_iops)[0] == 7.0 and math.isnan(shifted.cpu[0])
    with pytest.raises(ValueError):
        HourlySeries.from_aggregates(
            [HourlyAggregate(CPU, datetime(2026, 3, 2, 10), 1, 1, 1, 1)], H10, 3
        )


def test_hourly_series_from_pivoted_rows() -> None:
    cols = HourlySeries.empty(H10, 2)
    cols.set_hour(1, 0.25, 1.0, 3.0, None, 4.0)
    assert (cols.connections_avg[1], cols.connections_max[1], cols.cpu[1]) == (0.25, 1.0, 3.0)
    assert math.isnan(cols.read_iops[1]) and cols.write_iops[1] == 4.0
    assert math.isnan(cols.cpu[0])
    built = HourlySeries.from_aggregates(
        [
            HourlyAggregate(CONNECTIONS, H10 + timedelta(hours=1), 0.25, 0.0, 1.0, 4),
            HourlyAggregate(CPU, H10 + timedelta(hours=1), 3.0, 0.0, 5.0, 4),
            HourlyAggregate(WRITE_IOPS, H10 + timedelta(hours=1), 4.0, 0.0, 5.0, 4),
        ],
        H10,
        2,
    )
    for name in ("connections_avg", "connections_max", "cpu", "read_iops", "write_iops"):
        a, b = getattr(cols, name), getattr(built, name)
        assert [str(v) for v in a] == [str(v) for v in b], name  # str: nan equals nan


# -- whole hours from a provider's history (day-one backfill) ----------------------------


def test_a_history_hour_counts_for_every_minute_of_a_new_hour() -> None:
    hour = absorb_hour(None, HourlyAggregate(CPU, H10, 12.0, 12.0, 12.0, 1))
    assert hour.minutes == FULL_HOUR and hour.aggregate == HourlyAggregate(
        CPU, H10, 12.0, 12.0, 12.0, 60)
    # The same hour read again, or collected afterwards: nothing changes (first wins).
    assert absorb_hour(hour, HourlyAggregate(CPU, H10, 99.0, 99.0, 99.0, 60)) is hour
    assert absorb(hour, (CPU, H10), [Sample(CPU, at(5), 70.0)]) is hour


def test_a_history_hour_fills_only_the_minutes_collection_has_not_counted() -> None:
    # Collection counted minutes 40..59 at 60 s first; the hour's history (mean 10,
    # peak 4 connections) then stands for minutes 0..39 only.
    collected = absorb(None, (CONNECTIONS, H10),
                       [Sample(CONNECTIONS, at(m), 1.0) for m in range(40, 60)])
    merged = absorb_hour(collected, HourlyAggregate(CONNECTIONS, H10, 2.5, 2.5, 4.0, 60))
    assert merged.minutes == FULL_HOUR and merged.aggregate.count == 60
    assert math.isclose(merged.aggregate.avg, (2.5 * 40 + 1.0 * 20) / 60)
    assert merged.aggregate.max == 4.0 and merged.aggregate.min == 1.0
    # One value per minute, whichever came first: the total is never over 60.
    assert absorb(merged, (CONNECTIONS, H10), [Sample(CONNECTIONS, at(3), 9.0)]) is merged


def test_absorb_hour_refuses_another_bucket() -> None:
    bucket = absorb(None, (CPU, H10), [Sample(CPU, at(1), 1.0)])
    with pytest.raises(ValueError):
        absorb_hour(bucket, HourlyAggregate(CPU, H10 + timedelta(hours=1), 1.0, 1.0, 1.0, 60))


@pytest.mark.parametrize(("hours", "per_call"), [
    (336, 300),  # 14 days: 300 x 336 = 100,800 datapoints, exactly one page
    (24, 500),  # a day: the 500-query cap
    (63 * 24, 65),  # 63 days: 66 would fit, 65 keeps an instance's 5 queries together
    (10**6, 5),  # never fewer than one instance
])
def test_history_calls_hold_whole_instances_within_one_page(hours: int, per_call: int) -> None:
    from snoozeql.providers.aws.metrics import (
        HISTORY_QUERIES,
        MAX_DATAPOINTS,
        history_queries_per_call,
    )

    assert history_queries_per_call(hours) == per_call
    assert per_call % len(HISTORY_QUERIES) == 0
    assert per_call * hours <= MAX_DATAPOINTS or per_call == len(HISTORY_QUERIES)
