"""Writes of the instances SnoozeQL makes or is told about, rather than discovers: local
and Docker databases (``services/local_databases.py``) and outside databases registered
by hand (``services/external.py``). They take the domain :class:`Instance`; reads and
status changes are the inventory's (``store/instances.py``).
"""

from __future__ import annotations

import sqlalchemy as sa

from snoozeql.domain.errors import ConflictError
from snoozeql.domain.types import Instance
from snoozeql.store import versions
from snoozeql.store.tables import instances as t


def insert(conn: sa.Connection, i: Instance) -> None:
    """Add the instance; ConflictError when its (provider, provider_id) is taken (a
    concurrent create of the same name won)."""
    try:
        conn.execute(t.insert().values(
            id=i.id, account_id=i.account_id, provider=i.provider.value,
            provider_id=i.provider_id, kind=i.kind.value, name=i.name, engine=i.engine,
            engine_version=i.engine_version, instance_class=i.instance_class,
            region=i.region, status=i.status.value, raw_status=i.raw_status, tags=i.tags,
            endpoint_host=i.endpoint_host, endpoint_port=i.endpoint_port,
            multi_az=i.multi_az, node_count=i.node_count,
            cluster_provider_id=i.cluster_provider_id, hourly_cost_cents=i.hourly_cost_cents,
            extra=i.extra, last_error=i.last_error, first_seen_at=i.first_seen_at,
            last_seen_at=i.last_seen_at, missing_since=i.missing_since,
        ))
    except sa.exc.IntegrityError:
        raise ConflictError(
            f"a {i.provider.value} instance named {i.provider_id!r} already exists"
        ) from None
    versions.bump(conn, versions.INSTANCES)
