"""Queries on the accounts table."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import sqlalchemy as sa

from snoozeql.domain.types import Account, AccountStatus, ProviderKind
from snoozeql.store import versions
from snoozeql.store.tables import accounts


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
