"""Tables of metrics and recommendations.

Defined on the one ``metadata`` of :mod:`snoozeql.store.schema` so migrations and the
schema check see them. Design choices:

- ``metric_hours`` holds one row per (instance, metric, UTC hour): the exact hourly
  aggregate (avg, min, max, count) plus ``minutes``, the 60-bit mask of the minutes
  already counted (:class:`snoozeql.domain.metrics.HourBucket`). The mask is what
  makes collection idempotent: re-reading a window skips minutes already in it. It
  fits a signed 64-bit integer.
- ``epoch_hour`` (hours since 1970-01-01 UTC) repeats ``hour`` as an integer so the
  fleet analysis can place each row in its column without building a datetime per row
  (the costliest part of reading 13 million aggregates), the same way on both stores.
- The primary key (instance, metric, hour) is the upsert key of the batched writes; the
  index on ``hour`` serves the retention cleanup (``DELETE ... WHERE hour < cutoff``).
- ``metric_days`` is a packed copy of ``metric_hours`` for the fleet analysis: one row
  per (instance, UTC day) holding the day's 24 hours of the five columns the analysis
  reads (connections avg and max, cpu, read and write IOPS avg) as 120 little-endian
  float64 (NaN: no row of that metric), and ``present``, the 24-bit mask of the hours
  with any row. A cell counts only if its hour's bit is set. Every write of
  ``metric_hours`` keeps it equal to the rows in the same transaction
  (``store/metrics.py``), so the cold read of a fleet's lookback is one small row per
  instance and day instead of one per instance, metric and hour.
- ``recommendations`` keeps the recommendations last shown, keyed by a fingerprint
  id (the same windows for the same instance give the same id), so a dismissal refers
  to exactly what the user saw and a changed pattern comes back as a new one.
"""

from __future__ import annotations

import sqlalchemy as sa

from snoozeql.store.schema import metadata
from snoozeql.store.types import JSONType, UTCDateTime

__all__ = ["instance_analyses", "metric_days", "metric_hours", "recommendations"]

metric_hours = sa.Table(
    "metric_hours",
    metadata,
    sa.Column(
        "instance_id", sa.Uuid, sa.ForeignKey("instances.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("metric", sa.String(16), primary_key=True),
    sa.Column("hour", UTCDateTime, primary_key=True),
    sa.Column("epoch_hour", sa.Integer, nullable=False),
    sa.Column("avg", sa.Float, nullable=False),
    sa.Column("min", sa.Float, nullable=False),
    sa.Column("max", sa.Float, nullable=False),
    sa.Column("count", sa.Integer, nullable=False),
    sa.Column("minutes", sa.BigInteger, nullable=False),
    sa.Index("ix_metric_hours_hour", "hour"),
)

metric_days = sa.Table(
    "metric_days",
    metadata,
    sa.Column(
        "instance_id", sa.Uuid, sa.ForeignKey("instances.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("day", sa.Integer, primary_key=True),  # epoch_hour // 24
    sa.Column("present", sa.Integer, nullable=False),
    sa.Column("cells", sa.LargeBinary, nullable=False),
    sa.Index("ix_metric_days_day", "day"),
)

recommendations = sa.Table(
    "recommendations",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column(
        "instance_id", sa.Uuid, sa.ForeignKey("instances.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("body", JSONType, nullable=False),
    sa.Column("computed_at", UTCDateTime, nullable=False),
    sa.Column("dismissed_at", UTCDateTime),
    sa.Column("dismissed_by", sa.String(128)),
    sa.Index("ix_recommendations_instance_id", "instance_id"),
)

# The last analysis of each instance, so a new process (or a listing after a few new
# samples) analyses only the instances whose metrics changed (services/recommendations).
instance_analyses = sa.Table(
    "instance_analyses",
    metadata,
    sa.Column("instance_id", sa.Uuid, primary_key=True),
    sa.Column("analysed_hour", sa.BigInteger, nullable=False),
    sa.Column("settings_key", sa.String(64), nullable=False),
    sa.Column("data_version", sa.BigInteger, nullable=False),
    sa.Column("instances_version", sa.BigInteger, nullable=False),
    sa.Column("fingerprint", sa.String(64), nullable=False),
    sa.Column("rec_id", sa.Uuid),
    sa.Column("body", JSONType, nullable=False),
)
