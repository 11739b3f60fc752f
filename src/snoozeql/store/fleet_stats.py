"""The few aggregates an operator's scrape asks for, each one cheap query.

Read at every Prometheus scrape (``services/telemetry.py``), so nothing here loads
the fleet: instances are counted and priced by one ``GROUP BY`` in the database,
accounts are read as four narrow columns (hundreds of rows), and the savings rate
sums the open stop intervals (one per instance a schedule keeps stopped now).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import sqlalchemy as sa

from snoozeql.store.accounts import accounts
from snoozeql.store.instances import instances
from snoozeql.store.schedules import stop_intervals

#: The status label of instances the last sync of their account did not see.
MISSING = "missing"


@dataclass(frozen=True)
class InstanceGroup:
    provider: str
    status: str
    count: int
    #: What the running ones cost per hour, in cents (clusters count once, with all
    #: their nodes; their member instances are not counted again). 0 when not running.
    hourly_cost_cents: Decimal


@dataclass(frozen=True)
class AccountSync:
    name: str
    provider: str
    status: str
    last_sync_at: datetime | None


@dataclass(frozen=True)
class FleetStats:
    instances: list[InstanceGroup]
    accounts: list[AccountSync]
    #: Per hour, in cents, of the instances a schedule keeps stopped right now.
    saving_cents_per_hour: Decimal


def read(conn: sa.Connection) -> FleetStats:
    i = instances.c
    status = sa.case((i.missing_since.is_not(None), sa.literal(MISSING)), else_=i.status)
    # A cluster's row carries its nodes' cost (per node x node_count); its members
    # carry theirs too, so only clusters and stand-alone instances are summed.
    billed = sa.and_(i.status == "running", i.missing_since.is_(None),
                     sa.or_(i.kind == "cluster", i.cluster_provider_id.is_(None)))
    cost = sa.func.sum(sa.case((billed, i.hourly_cost_cents * i.node_count), else_=None))
    groups = [
        InstanceGroup(r.provider, r.status, int(r.n), Decimal(r.cost or 0))
        for r in conn.execute(
            sa.select(i.provider, status.label("status"), sa.func.count().label("n"),
                      cost.label("cost")).group_by(i.provider, status)
        )
    ]
    a = accounts.c
    syncs = [
        AccountSync(r.name, r.provider, r.status, r.last_sync_at)
        for r in conn.execute(
            sa.select(a.name, a.provider, a.status, a.last_sync_at).order_by(a.name))
    ]
    s = stop_intervals.c
    saving = conn.execute(
        sa.select(sa.func.sum(s.hourly_cost_cents * s.node_count)).where(s.started_at.is_(None))
    ).scalar()
    return FleetStats(groups, syncs, Decimal(saving or 0))
