"""Queries on the accounts table."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import sqlalchemy as sa

from snoozeql.domain.errors import ConflictError
from snoozeql.domain.types import Account, AccountStatus, ProviderKind
from snoozeql.store import versions
from snoozeql.store.schema import metadata
from snoozeql.store.types import JSONType, UTCDateTime

accounts = sa.Table(
    "accounts",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("name", sa.String(63), nullable=False, unique=True),
    sa.Column("provider", sa.String(16), nullable=False),
    # Provider settings (regions, profile, role ARN, endpoint, projects, key file
    # path). Never a secret: credentials come from the provider's own chain.
    sa.Column("config", JSONType, nullable=False),
    sa.Column("status", sa.String(16), nullable=False, server_default="unknown"),
    sa.Column("last_sync_at", UTCDateTime),
    sa.Column("last_error", sa.Text),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    # When the metric history was read after the first sync (day-one backfill, claimed
    # once: services/metrics.py); NULL: not yet.
    sa.Column("history_read_at", UTCDateTime),
)


def _row(r: Any) -> Account:
    return Account(
        id=r.id,
        name=r.name,
        provider=ProviderKind(r.provider),
        config=dict(r.config or {}),
        status=AccountStatus(r.status),
        last_sync_at=r.last_sync_at,
        last_error=r.last_error,
        created_at=r.created_at,
        history_read_at=r.history_read_at,
    )


def insert(conn: sa.Connection, account: Account, now: datetime) -> None:
    """Add the account; ConflictError if its name is taken (a concurrent create won)."""
    try:
        conn.execute(
            accounts.insert().values(
                id=account.id,
                name=account.name,
                provider=account.provider.value,
                config=account.config,
                status=account.status.value,
                created_at=now,
                updated_at=now,
            )
        )
    except sa.exc.IntegrityError:
        raise ConflictError(f"an account named {account.name!r} already exists") from None
    versions.bump(conn, versions.ACCOUNTS)


def get(conn: sa.Connection, account_id: UUID) -> Account | None:
    r = conn.execute(sa.select(accounts).where(accounts.c.id == account_id)).first()
    return _row(r) if r else None


def get_by_name(conn: sa.Connection, name: str) -> Account | None:
    r = conn.execute(sa.select(accounts).where(accounts.c.name == name)).first()
    return _row(r) if r else None


def list_all(conn: sa.Connection, provider: str | None = None) -> list[Account]:
    q = sa.select(accounts).order_by(accounts.c.name)
    if provider:
        q = q.where(accounts.c.provider == provider)
    return [_row(r) for r in conn.execute(q)]


def names(conn: sa.Connection) -> list[tuple[UUID, str]]:
    """(id, name) of every account, by name: no config, nothing secret."""
    q = sa.select(accounts.c.id, accounts.c.name).order_by(accounts.c.name)
    return [(r.id, r.name) for r in conn.execute(q)]


def claim_sync(conn: sa.Connection, account_id: UUID, now: datetime,
               stale: timedelta | None) -> bool:
    """Mark the account ``syncing`` unless another sync of it is running (``syncing``,
    and said so less than ``stale`` ago); with ``stale`` None, take it over whatever its
    state. One conditional UPDATE, so of two concurrent syncs one wins; True if this
    call did."""
    where = [accounts.c.id == account_id]
    if stale is not None:
        where.append(sa.or_(accounts.c.status != AccountStatus.SYNCING.value,
                            accounts.c.updated_at < now - stale))
    res = conn.execute(accounts.update().where(*where)
                       .values(status=AccountStatus.SYNCING.value, updated_at=now))
    return bool(res.rowcount == 1)


def mark_syncing(conn: sa.Connection, account_id: UUID, now: datetime) -> None:
    """Say the account is ``syncing`` (a sync split in parts waits for the rest), unless
    it already says so (its ``updated_at`` then keeps the sync's start)."""
    conn.execute(accounts.update().where(
        accounts.c.id == account_id, accounts.c.status != AccountStatus.SYNCING.value,
    ).values(status=AccountStatus.SYNCING.value, updated_at=now))


def update(conn: sa.Connection, account_id: UUID, now: datetime, **values: Any) -> None:
    if "status" in values and isinstance(values["status"], AccountStatus):
        values["status"] = values["status"].value
    conn.execute(
        accounts.update().where(accounts.c.id == account_id).values(updated_at=now, **values)
    )
    if "name" in values:
        versions.bump(conn, versions.ACCOUNTS)


def delete(conn: sa.Connection, account_id: UUID) -> int:
    """Delete the account; its instances go with it (ON DELETE CASCADE)."""
    removed: int = conn.execute(accounts.delete().where(accounts.c.id == account_id)).rowcount
    if removed:  # its instances and its assignments go with it
        for name in (versions.ACCOUNTS, versions.INSTANCES, versions.SCHEDULES):
            versions.bump(conn, name)
    return removed


def claim_history(conn: sa.Connection, account_id: UUID, now: datetime) -> bool:
    """Mark the account's day-one history as read, if nobody did; True if this call did.

    One conditional UPDATE, so of two replicas (or a restart) only one reads it."""
    res = conn.execute(
        accounts.update()
        .where(accounts.c.id == account_id, accounts.c.history_read_at.is_(None))
        .values(history_read_at=now)
    )
    return bool(res.rowcount == 1)
