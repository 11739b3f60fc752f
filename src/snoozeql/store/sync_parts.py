"""Parts of a queued sync of one account (one per region or project) until the last.

A part is what one scope's discovery found (the discovered instances with their hourly
costs, kept as JSON) or its error. Parts are keyed by (account, round, scope); writing
a part again (a retried task) replaces it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

import sqlalchemy as sa

from snoozeql.domain.types import DiscoveredInstance, InstanceKind, InstanceStatus, ProviderKind
from snoozeql.store.accounts import accounts as accounts_t
from snoozeql.store.schema import metadata
from snoozeql.store.types import JSONType, UTCDateTime

# The parts of one queued sync of an account, one per region (AWS) or project (GCP),
# each found by its own task; the task that brings the last part writes them all in
# one transaction, as a whole-account sync does (services/discovery.py, sync_scope).
sync_parts = sa.Table(
    "sync_parts",
    metadata,
    sa.Column("account_id", sa.Uuid, sa.ForeignKey("accounts.id", ondelete="CASCADE"),
              primary_key=True),
    sa.Column("round", sa.String(64), primary_key=True),
    sa.Column("scope", sa.String(255), primary_key=True),
    sa.Column("items", JSONType, nullable=False),
    sa.Column("error", sa.Text),
    sa.Column("found_at", UTCDateTime, nullable=False),
)

#: Parts of rounds that never completed (a scope's task was lost) are dropped after this.
KEEP = timedelta(days=1)


@dataclass(frozen=True)
class SyncPart:
    """What one scope's discovery found, or its error."""

    scope: str
    found: list[DiscoveredInstance]
    #: provider_id -> hourly cost in cents (per node), None when unknown.
    costs: dict[str, Decimal | None]
    error: str | None


def put(conn: sa.Connection, account_id: UUID, round_id: str, scope: str,
        found: Sequence[DiscoveredInstance], costs: Mapping[str, Decimal | None],
        error: str | None, now: datetime) -> None:
    """Keep (or replace) the part of ``scope`` in the round."""
    items = [_item_json(d, costs.get(d.provider_id)) for d in found]
    conn.execute(sync_parts.delete().where(sync_parts.c.account_id == account_id,
                                           sync_parts.c.round == round_id,
                                           sync_parts.c.scope == scope))
    conn.execute(sync_parts.insert().values(account_id=account_id, round=round_id, scope=scope,
                                            items=items, error=error, found_at=now))


def lock_account(conn: sa.Connection, account_id: UUID) -> datetime | None | bool:
    """Lock the account's row for this transaction; its ``last_sync_at`` (False: the
    account no longer exists)."""
    row = conn.execute(sa.select(accounts_t.c.last_sync_at)
                       .where(accounts_t.c.id == account_id).with_for_update()).first()
    return False if row is None else row.last_sync_at


def parts(conn: sa.Connection, account_id: UUID, round_id: str,
          exclude: str | None = None) -> list[SyncPart]:
    """The parts of the round kept so far (but the part of scope ``exclude``)."""
    q = sa.select(sync_parts).where(sync_parts.c.account_id == account_id,
                                    sync_parts.c.round == round_id)
    if exclude is not None:
        q = q.where(sync_parts.c.scope != exclude)
    return [_part(r) for r in conn.execute(q)]


def scopes(conn: sa.Connection, account_id: UUID, round_id: str) -> set[str]:
    """The scopes whose parts of the round are kept (their items are not read)."""
    q = sa.select(sync_parts.c.scope).where(sync_parts.c.account_id == account_id,
                                            sync_parts.c.round == round_id)
    return set(conn.execute(q).scalars())


def clear(conn: sa.Connection, account_id: UUID, round_id: str, now: datetime) -> None:
    conn.execute(sync_parts.delete().where(sync_parts.c.account_id == account_id,
                                           sync_parts.c.round == round_id))
    conn.execute(sync_parts.delete().where(sync_parts.c.found_at < now - KEEP))


def _part(r: Any) -> SyncPart:
    items = list(r.items or [])
    return SyncPart(
        scope=r.scope, found=[_item_of(i) for i in items],
        costs={str(i["provider_id"]): Decimal(str(i["cost"])) if i.get("cost") is not None
               else None for i in items},
        error=r.error,
    )


def _item_json(d: DiscoveredInstance, cost: Decimal | None) -> dict[str, object]:
    """A discovered instance as JSON for a sync part (with its hourly cost)."""
    out = json.loads(json.dumps(asdict(d), default=str))
    out.update(provider=d.provider.value, kind=d.kind.value, status=d.status.value,
               cost=str(cost) if cost is not None else None)
    return out  # type: ignore[no-any-return]


def _item_of(data: dict[str, object]) -> DiscoveredInstance:
    fields = {k: v for k, v in data.items() if k != "cost"}
    fields.update(provider=ProviderKind(str(data["provider"])),
                  kind=InstanceKind(str(data["kind"])),
                  status=InstanceStatus(str(data["status"])))
    return DiscoveredInstance(**fields)  # type: ignore[arg-type]
