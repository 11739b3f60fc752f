"""Metric samples and their exact hourly aggregates.

SnoozeQL keeps, per instance, metric and UTC hour, one :class:`HourlyAggregate`
(mean, minimum, maximum and sample count). Everything here is pure, so the store,
the collectors and the push API all aggregate the same way.

Exactness. Merging a batch of ``n`` samples into an hour that already holds ``m``
gives the weighted mean ``(avg*m + batch_avg*n) / (m+n)``, the min and max of both
and the count ``m+n`` (:func:`merge`). Merging in any split therefore equals
aggregating all samples at once, up to float rounding.

Idempotence. A collector that runs twice over the same window, or a client that posts
the same samples twice, must not change the stored hour. Aggregates cannot "subtract"
a sample again (a min or max cannot be undone), so instead each stored hour remembers
*which* samples it already holds: an :class:`HourBucket` is the aggregate plus a 60-bit
mask with bit ``k`` set once a sample for minute ``k`` of the hour has been counted.
:func:`absorb` and :func:`apply_samples` skip samples whose minute is already in the
mask. The rule this gives: **one value per (instance, metric, minute); the first value
counted wins**. Collectors sample at most once a minute (CloudWatch and Cloud
Monitoring periods are 60 s or more), so this loses nothing. Late samples carry their
own timestamp and land in their own hour.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final, NamedTuple

from snoozeql.domain.errors import ValidationError

if TYPE_CHECKING:  # numpy is imported where blocks are made: most commands need none
    import numpy as np

__all__ = [
    "BLOCK_COLUMNS",
    "CONNECTIONS",
    "CPU",
    "METRICS",
    "METRIC_UNITS",
    "READ_IOPS",
    "WRITE_IOPS",
    "BucketKey",
    "HourBucket",
    "HourlyAggregate",
    "HourlySeries",
    "SeriesBlock",
    "Sample",
    "FULL_HOUR",
    "absorb",
    "absorb_hour",
    "aggregate_samples",
    "apply_samples",
    "bucket_keys",
    "floor_hour",
    "merge",
    "minute_bit",
    "parse_metric",
    "retention_cutoff",
]

# Metric names are plain strings (not an Enum): they are compared millions of times in
# the analysis, and a str compares and hashes in C where an Enum member does not.
CPU: Final = "cpu"
CONNECTIONS: Final = "connections"
READ_IOPS: Final = "read_iops"
WRITE_IOPS: Final = "write_iops"
METRICS: Final[tuple[str, ...]] = (CPU, CONNECTIONS, READ_IOPS, WRITE_IOPS)
METRIC_UNITS: Final[Mapping[str, str]] = {
    CPU: "percent",
    CONNECTIONS: "count",
    READ_IOPS: "operations/s",
    WRITE_IOPS: "operations/s",
}

_HOUR = timedelta(hours=1)


def parse_metric(name: object) -> str:
    """The metric called ``name``, or a ValidationError listing the known ones."""
    if isinstance(name, str) and name in METRICS:
        return name
    raise ValidationError(f"metric: unknown metric {name!r} (one of {', '.join(METRICS)})")


def floor_hour(ts: datetime) -> datetime:
    """The UTC hour that holds ``ts``, as an aware datetime. Naive input is refused."""
    if ts.tzinfo is None or ts.utcoffset() is None:
        raise ValidationError(f"timestamp {ts.isoformat()} has no time zone; use UTC")
    return ts.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def minute_bit(ts: datetime) -> int:
    """The bit that stands for ``ts``'s minute within its UTC hour (1 << minute)."""
    # astimezone: zones with a 30- or 45-minute offset have other minutes than UTC.
    return 1 << ts.astimezone(UTC).minute


@dataclass(frozen=True, slots=True)
class Sample:
    """One measured value at an instant, as a collector or the push API gives it.

    Validated on construction because samples come from outside (the push API):
    a known metric, an aware timestamp (kept in UTC) and a finite value >= 0.
    """

    metric: str
    ts: datetime
    value: float

    def __post_init__(self) -> None:
        parse_metric(self.metric)
        if not isinstance(self.ts, datetime):
            raise ValidationError(f"ts: expected a timestamp, got {self.ts!r}")
        if self.ts.tzinfo is None or self.ts.utcoffset() is None:
            raise ValidationError(f"ts: {self.ts.isoformat()} has no time zone; use UTC")
        if isinstance(self.value, bool) or not isinstance(self.value, int | float):
            raise ValidationError(f"value: expected a number, got {self.value!r}")
        if not math.isfinite(self.value) or self.value < 0:
            raise ValidationError(f"value: {self.value!r} is not a finite number >= 0")
        object.__setattr__(self, "ts", self.ts.astimezone(UTC))
        object.__setattr__(self, "value", float(self.value))

    @property
    def hour(self) -> datetime:
        return self.ts.replace(minute=0, second=0, microsecond=0)


class HourlyAggregate(NamedTuple):
    """avg, min, max and sample count of one metric over one UTC hour.

    ``hour`` is aware UTC, truncated to the hour. A NamedTuple rather than a frozen
    dataclass: the analysis reads millions of these per run, and a tuple is built five
    times faster and unpacks in one step (``HourlyAggregate._make(row)`` takes a store
    row as it comes). Not validated on construction, for the same reason: rows were
    validated on the way in.
    """

    metric: str
    hour: datetime
    avg: float
    min: float
    max: float
    count: int  # type: ignore[assignment]  # a field, shadowing tuple.count on purpose


def _aggregate(metric: str, hour: datetime, values: list[float]) -> HourlyAggregate:
    # fsum: the mean of a large hour does not drift with the order of the values.
    return HourlyAggregate(
        metric, hour, math.fsum(values) / len(values), min(values), max(values), len(values)
    )


def aggregate_samples(samples: Iterable[Sample]) -> list[HourlyAggregate]:
    """One aggregate per (metric, UTC hour) of ``samples``, sorted by metric then hour.

    Every sample is counted, duplicates included: this is plain aggregation. For the
    de-duplicating, idempotent path the store uses, see :func:`apply_samples`.
    """
    groups: dict[tuple[str, datetime], list[float]] = {}
    for s in samples:
        groups.setdefault((s.metric, s.hour), []).append(s.value)
    return [_aggregate(m, h, groups[(m, h)]) for m, h in sorted(groups)]


def merge(existing: HourlyAggregate, batch: HourlyAggregate) -> HourlyAggregate:
    """Fold ``batch`` into ``existing`` exactly (same metric and hour required).

    The mean is weighted by the counts, so merging in any split equals aggregating all
    samples at once. An aggregate with count 0 is the neutral element.
    """
    if existing.metric != batch.metric or existing.hour != batch.hour:
        raise ValueError(
            f"cannot merge {batch.metric}@{batch.hour.isoformat()} into "
            f"{existing.metric}@{existing.hour.isoformat()}"
        )
    m, n = existing.count, batch.count
    if n <= 0:
        return existing
    if m <= 0:
        return batch
    total = m + n
    return HourlyAggregate(
        existing.metric,
        existing.hour,
        (existing.avg * m + batch.avg * n) / total,
        min(existing.min, batch.min),
        max(existing.max, batch.max),
        total,
    )


# -- columns for the analysis ----------------------------------------------------------

_NAN = math.nan


@dataclass(frozen=True)
class HourlySeries:
    """One instance's hours as columns: position ``i`` is the UTC hour ``start + i h``.

    What the analysis reads. Missing data is NaN. Connections keep both mean and max
    (the analysis uses the max by default); CPU and IOPS keep their mean. The columns
    are ``array('d')``: compact, and built either from aggregates
    (:meth:`from_aggregates`) or straight from store rows with :meth:`put` (one row per
    metric) or :meth:`set_hour` (one pivoted row per hour). A store that computes the
    hour offset in SQL so skips datetime objects, the costliest part of a fleet run.
    """

    start: datetime
    connections_avg: array[float]
    connections_max: array[float]
    cpu: array[float]
    read_iops: array[float]
    write_iops: array[float]

    @classmethod
    def empty(cls, start: datetime, hours: int) -> HourlySeries:
        """``hours`` hours from ``start`` (an aware UTC hour), all missing."""
        blank = array("d", [_NAN]) * hours
        return cls(
            floor_hour(start),
            array("d", blank),
            array("d", blank),
            array("d", blank),
            array("d", blank),
            array("d", blank),
        )

    @property
    def hours(self) -> int:
        return len(self.cpu)

    def put(self, metric: str, index: int, avg: float, max_: float) -> None:
        """Record hour ``index``'s aggregate of ``metric`` (a builder step)."""
        if metric == CONNECTIONS:
            self.connections_avg[index] = avg
            self.connections_max[index] = max_
        elif metric == CPU:
            self.cpu[index] = avg
        elif metric == READ_IOPS:
            self.read_iops[index] = avg
        elif metric == WRITE_IOPS:
            self.write_iops[index] = avg

    def set_hour(
        self,
        index: int,
        connections_avg: float | None,
        connections_max: float | None,
        cpu: float | None,
        read_iops: float | None,
        write_iops: float | None,
    ) -> None:
        """Record all metrics of hour ``index`` at once (None: no data), e.g. from a
        store query that pivots the metrics of an hour into one row."""
        for column, value in (
            (self.connections_avg, connections_avg),
            (self.connections_max, connections_max),
            (self.cpu, cpu),
            (self.read_iops, read_iops),
            (self.write_iops, write_iops),
        ):
            column[index] = _NAN if value is None else value

    @classmethod
    def from_aggregates(
        cls, aggregates: Iterable[HourlyAggregate], start: datetime, hours: int
    ) -> HourlySeries:
        """The columns for ``hours`` hours from ``start``; aggregates outside are ignored.

        Runs once per stored aggregate of the fleet, so it is kept tight: the hour's
        position comes from its date fields (hashing or subtracting aware datetimes
        costs several times more).
        """
        series = cls.empty(start, hours)
        c_avg, c_max = series.connections_avg, series.connections_max
        cpu, rd, wr = series.cpu, series.read_iops, series.write_iops
        first = series.start
        base = first.toordinal() * 24 + first.hour
        utc = UTC
        for m, h, av, _lo, hi, _count in aggregates:
            if h.tzinfo is not utc:
                if h.tzinfo is None:
                    raise ValueError(f"naive hour {h.isoformat()}: hours are aware UTC")
                h = h.astimezone(utc)
            i = h.toordinal() * 24 + h.hour - base
            if i < 0 or i >= hours:
                continue
            if m == CONNECTIONS:
                c_avg[i] = av
                c_max[i] = hi
            elif m == CPU:
                cpu[i] = av
            elif m == READ_IOPS:
                rd[i] = av
            elif m == WRITE_IOPS:
                wr[i] = av
        return series

    def window(self, start: datetime, hours: int) -> HourlySeries:
        """The same data re-cut to ``hours`` hours from ``start`` (missing outside)."""
        start = floor_hour(start)
        if start == self.start and hours == self.hours:
            return self
        out = HourlySeries.empty(start, hours)
        shift = int((self.start - start) / _HOUR)
        lo, hi = max(0, shift), min(hours, shift + self.hours)
        if lo < hi:
            for name in ("connections_avg", "connections_max", "cpu", "read_iops", "write_iops"):
                getattr(out, name)[lo:hi] = getattr(self, name)[lo - shift : hi - shift]
        return out


# -- idempotent collection -------------------------------------------------------------

BucketKey = tuple[str, datetime]
"""(metric, UTC hour): with the instance id, the primary key of a stored hour."""


@dataclass(frozen=True, slots=True)
class HourBucket:
    """A stored hour: its aggregate and the minutes of the hour it already counts.

    ``minutes`` is a bit mask (bit ``k`` = minute ``k``); it fits a signed 64-bit
    column. The aggregate's ``count`` equals the number of bits set.
    """

    aggregate: HourlyAggregate
    minutes: int

    @property
    def key(self) -> BucketKey:
        return (self.aggregate.metric, self.aggregate.hour)


def _first_per_minute(samples: Iterable[Sample], skip: int) -> tuple[list[float], int]:
    """Values of the earliest sample of each minute not in ``skip``, and their mask.

    The earliest timestamp wins inside a minute (ties: the smaller value), so the
    result does not depend on the order the samples arrive in.
    """
    chosen: dict[int, tuple[datetime, float]] = {}
    for s in samples:
        minute = s.ts.minute
        if skip >> minute & 1:
            continue
        seen = chosen.get(minute)
        if seen is None or (s.ts, s.value) < seen:
            chosen[minute] = (s.ts, s.value)
    mask = 0
    for minute in chosen:
        mask |= 1 << minute
    return [v for _, v in chosen.values()], mask


def absorb(bucket: HourBucket | None, key: BucketKey, samples: Iterable[Sample]) -> HourBucket:
    """Fold the samples of one (metric, hour) into ``bucket`` (``None``: a new hour).

    Samples of minutes the bucket already counts are skipped, which makes re-collecting
    a window a no-op: when nothing is new, ``bucket`` itself is returned (the caller
    can test ``result is bucket`` and skip the write). Raises ValueError for a sample
    of another metric or hour: that is a bug in the caller, not bad input.
    """
    metric, hour = key
    batch = list(samples)
    for s in batch:
        if s.metric != metric or s.hour != hour:
            raise ValueError(f"sample {s.metric}@{s.ts.isoformat()} is not in {key!r}")
    if bucket is not None and bucket.key != key:
        raise ValueError(f"bucket {bucket.key!r} is not {key!r}")
    values, mask = _first_per_minute(batch, bucket.minutes if bucket else 0)
    if not values:
        if bucket is None:
            raise ValueError("no samples for a new bucket")
        return bucket
    fresh = _aggregate(metric, hour, values)
    if bucket is None:
        return HourBucket(fresh, mask)
    return HourBucket(merge(bucket.aggregate, fresh), bucket.minutes | mask)


FULL_HOUR: Final = (1 << 60) - 1
"""The minute mask of an hour whose every minute is counted."""


def absorb_hour(bucket: HourBucket | None, history: HourlyAggregate) -> HourBucket:
    """Fold one whole hour read from a provider's history (a 1-hour period) into
    ``bucket`` (``None``: a new hour).

    The hour's value stands for every minute of the hour, so it is counted for each
    minute the bucket does not count yet, and for no other: the rule stays one value
    per minute, the first counted wins. An hour already complete is returned as is
    (``result is bucket``); an hour partly collected gets the history's mean for its
    missing minutes (its max and min merge as usual). ``history.count`` is ignored:
    the count is the number of minutes taken.
    """
    key = (history.metric, history.hour)
    if bucket is not None and bucket.key != key:
        raise ValueError(f"bucket {bucket.key!r} is not {key!r}")
    taken = bucket.minutes if bucket is not None else 0
    free = FULL_HOUR & ~taken
    if not free:
        if bucket is None:  # pragma: no cover - a fresh hour always has free minutes
            raise ValueError("no minutes for a new bucket")
        return bucket
    fresh = HourlyAggregate(history.metric, history.hour, history.avg, history.min,
                            history.max, free.bit_count())
    if bucket is None:
        return HourBucket(fresh, free)
    return HourBucket(merge(bucket.aggregate, fresh), taken | free)


def bucket_keys(samples: Iterable[Sample]) -> set[BucketKey]:
    """The (metric, hour) keys ``samples`` touch: what the store must read first."""
    return {(s.metric, s.hour) for s in samples}


def apply_samples(
    existing: Mapping[BucketKey, HourBucket], samples: Iterable[Sample]
) -> dict[BucketKey, HourBucket]:
    """The buckets that change when ``samples`` (of one instance) are collected.

    ``existing`` holds the stored buckets for (at least) :func:`bucket_keys` of the
    samples. The result holds only buckets whose content changed, ready for one
    batched upsert keyed on (instance, metric, hour). Collecting the same samples
    again returns an empty dict.
    """
    groups: dict[BucketKey, list[Sample]] = {}
    for s in samples:
        groups.setdefault((s.metric, s.hour), []).append(s)
    changed: dict[BucketKey, HourBucket] = {}
    for key, batch in groups.items():
        before = existing.get(key)
        after = absorb(before, key, batch)
        if after is not before:
            changed[key] = after
    return changed


def retention_cutoff(now: datetime, retention_days: int) -> datetime:
    """The first hour to keep: hours before it are removed by the cleanup job.

    Samples older than this are also not worth storing (they would be deleted at once).
    """
    if retention_days < 1:
        raise ValidationError(f"retention must be at least 1 day, not {retention_days}")
    return floor_hour(now) - timedelta(days=retention_days)


# Row of each column in a SeriesBlock's ``values``.
BLOCK_COLUMNS: Final = ("connections_avg", "connections_max", "cpu", "read_iops", "write_iops")


@dataclass(frozen=True)
class SeriesBlock:
    """Many instances' hours at once: ``values[c, r, i]`` is column ``c``
    (:data:`BLOCK_COLUMNS`) of row ``r``'s instance (``keys[r]``) at the UTC hour
    ``start + i h``; NaN where there is no data.

    What a whole fleet's analysis reads: the store fills it in bulk (no Python object
    per stored hour) and the analysis classifies every hour of every row in a few
    array operations (:func:`snoozeql.domain.analysis.analyse_block`).
    """

    start: datetime
    keys: tuple[Any, ...]
    values: np.ndarray

    @classmethod
    def empty(cls, start: datetime, hours: int, keys: Iterable[Any]) -> SeriesBlock:
        import numpy as np

        ks = tuple(keys)
        values = np.full((len(BLOCK_COLUMNS), len(ks), hours), np.nan, dtype=np.float64)
        return cls(floor_hour(start), ks, values)

    @property
    def hours(self) -> int:
        return int(self.values.shape[2])

    def __len__(self) -> int:
        return len(self.keys)

    def series(self, row: int) -> HourlySeries:
        """Row ``row`` as one instance's :class:`HourlySeries` (the same floats)."""
        cols = [array("d", self.values[c, row].tobytes()) for c in range(len(BLOCK_COLUMNS))]
        return HourlySeries(self.start, *cols)
