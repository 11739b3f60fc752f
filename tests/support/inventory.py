"""Putting instances in a test's store as a sync would have found them."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from uuid import UUID, uuid4

import sqlalchemy as sa

from snoozeql.domain.types import DiscoveredInstance, Instance
from snoozeql.store import instances as instance_store


def discovered_instance(d: DiscoveredInstance, account_id: UUID | None, seen_at: datetime,
                        cost_cents: Decimal | None = None, *,
                        missing_since: datetime | None = None) -> Instance:
    """The inventory instance a sync of ``account_id`` at ``seen_at`` makes of ``d``."""
    return Instance(
        id=uuid4(), account_id=account_id, provider=d.provider, provider_id=d.provider_id,
        kind=d.kind, name=d.name, engine=d.engine, engine_version=d.engine_version,
        instance_class=d.instance_class, region=d.region, status=d.status,
        raw_status=d.raw_status, tags=dict(d.tags), endpoint_host=d.endpoint_host,
        endpoint_port=d.endpoint_port, multi_az=d.multi_az, node_count=d.node_count,
        cluster_provider_id=d.cluster_provider_id, hourly_cost_cents=cost_cents,
        first_seen_at=seen_at, last_seen_at=seen_at, missing_since=missing_since,
        extra=dict(d.extra),
    )


def add_discovered(conn: sa.Connection, d: DiscoveredInstance, account_id: UUID | None,
                   seen_at: datetime, cost_cents: Decimal | None = None, *,
                   missing_since: datetime | None = None) -> UUID:
    """Store ``d`` as found by a sync (store.instances.add); its id."""
    made = discovered_instance(d, account_id, seen_at, cost_cents,
                               missing_since=missing_since)
    instance_store.add(conn, made)
    return made.id
