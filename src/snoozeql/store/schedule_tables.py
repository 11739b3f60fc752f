"""Tables of schedules and their enforcement.

Defined on the one ``metadata`` of :mod:`snoozeql.store.schema` so migrations and the
schema check see them. Design choices:

- A schedule is stored as its validated dict form (``Schedule.to_dict()``), so the
  store never holds a schedule the evaluator would refuse.
- An assignment names its target once, in ``target`` (``instance:<id>``,
  ``account:<id>``, ``tag:key=value``, ``selector:<digest>``), which makes "the same
  assignment twice" a unique-key violation; the id columns are there for the cascading
  deletes.
- ``reconcile_claims`` is how several replicas act exactly once: a reconciler inserts
  (instance, kind, at) before it acts; the unique key lets only one of them win. The
  row then records the outcome, which also remembers the last transition acted on.
- ``stop_intervals`` are the periods SnoozeQL kept an instance stopped; realized
  savings are computed from them with the cost known at the time of the stop.
"""

from __future__ import annotations

import sqlalchemy as sa

from snoozeql.store.schema import metadata
from snoozeql.store.types import JSONType, UTCDateTime

__all__ = [
    "instance_overrides",
    "reconcile_claims",
    "schedule_assignments",
    "schedules",
    "stop_intervals",
]

schedules = sa.Table(
    "schedules",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("name", sa.String(128), nullable=False, unique=True),
    sa.Column("definition", JSONType, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    # When several schedules match one instance the highest priority wins (0006).
    sa.Column("priority", sa.Integer, nullable=False, server_default="0"),
)

schedule_assignments = sa.Table(
    "schedule_assignments",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column(
        "schedule_id", sa.Uuid, sa.ForeignKey("schedules.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("target", sa.String(600), nullable=False),
    sa.Column("instance_id", sa.Uuid, sa.ForeignKey("instances.id", ondelete="CASCADE")),
    sa.Column("account_id", sa.Uuid, sa.ForeignKey("accounts.id", ondelete="CASCADE")),
    sa.Column("tag_key", sa.String(255)),
    sa.Column("tag_value", sa.String(255)),
    sa.Column("created_at", UTCDateTime, nullable=False),
    # kind ``selector``: the rule tree (domain/selectors.py); ``target`` holds its digest.
    sa.Column("selector", JSONType),
    sa.UniqueConstraint("schedule_id", "target"),
    # A page of instances reads its own assignments (and the rule-based ones, NULL
    # here) without scanning every instance's; deleting an instance finds its rows.
    sa.Index("ix_schedule_assignments_instance_id", "instance_id"),
)

# One override per instance; a new one replaces the old. Expired rows stay until
# replaced: their ``until`` is the instant the schedule takes over again.
instance_overrides = sa.Table(
    "instance_overrides",
    metadata,
    sa.Column(
        "instance_id", sa.Uuid, sa.ForeignKey("instances.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("until", UTCDateTime, nullable=False),
    sa.Column("reason", sa.String(255), nullable=False),
    sa.Column("created_by", sa.String(128), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
)

reconcile_claims = sa.Table(
    "reconcile_claims",
    metadata,
    sa.Column("instance_id", sa.Uuid, primary_key=True),
    # transition | enforce | override | warn
    sa.Column("kind", sa.String(16), primary_key=True),
    sa.Column("at", UTCDateTime, primary_key=True),
    sa.Column("schedule_id", sa.Uuid),
    # claimed (in flight, until lease_until) | done | failed (retried next run)
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("result", sa.String(16)),
    sa.Column("owner", sa.String(128), nullable=False),
    sa.Column("claimed_at", UTCDateTime, nullable=False),
    sa.Column("lease_until", UTCDateTime, nullable=False),
    sa.Column("finished_at", UTCDateTime),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="1"),
    sa.Index("ix_reconcile_claims_claimed_at", "claimed_at"),
)

stop_intervals = sa.Table(
    "stop_intervals",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column(
        "instance_id", sa.Uuid, sa.ForeignKey("instances.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("instance_name", sa.String(255), nullable=False),
    sa.Column("account_id", sa.Uuid),
    sa.Column("schedule_id", sa.Uuid),
    sa.Column("schedule_name", sa.String(128)),
    sa.Column("stopped_at", UTCDateTime, nullable=False),
    sa.Column("started_at", UTCDateTime),
    sa.Column("hourly_cost_cents", sa.Numeric(14, 4)),
    sa.Column("node_count", sa.Integer, nullable=False, server_default="1"),
    sa.Column("details", JSONType, nullable=False),
    sa.Index("ix_stop_intervals_instance_id", "instance_id"),
    sa.Index("ix_stop_intervals_stopped_at", "stopped_at"),
)
