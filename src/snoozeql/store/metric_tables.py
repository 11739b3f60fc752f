"""Tables of metrics and recommendations.

Defined on the one ``metadata`` of :mod:`snoozeql.store.tables` so migrations and the
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
- ``recommendations`` keeps the recommendations last shown, keyed by a fingerprint
  id (the same windows for the same instance give the same id), so a dismissal refers
  to exactly what the user saw and a changed pattern comes back as a new one.
"""

from __future__ import annotations

import sqlalchemy as sa

from snoozeql.store.tables import metadata
from snoozeql.store.types import JSONType, UTCDateTime

__all__ = ["instance_analyses", "metric_hours", "recommendations"]

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
