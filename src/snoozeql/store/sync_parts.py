"""Parts of a queued sync of one account (one per region or project) until the last.

A part is what one scope's discovery found (the items as JSON, with their hourly
costs) or its error. Parts are keyed by (account, round, scope); writing a part again
(a retried task) replaces it.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import sqlalchemy as sa

from snoozeql.store.tables import accounts as accounts_t
from snoozeql.store.tables import sync_parts as t

#: Parts of rounds that never completed (a scope's task was lost) are dropped after this.
KEEP = timedelta(days=1)


def put(conn: sa.Connection, account_id: UUID, round_id: str, scope: str,
        items: list[dict[str, Any]], error: str | None, now: datetime) -> None:
    conn.execute(t.delete().where(t.c.account_id == account_id, t.c.round == round_id,
                                  t.c.scope == scope))
    conn.execute(t.insert().values(account_id=account_id, round=round_id, scope=scope,
                                   items=items, error=error, found_at=now))


def lock_account(conn: sa.Connection, account_id: UUID) -> datetime | None | bool:
    """Lock the account's row for this transaction; its ``last_sync_at`` (False: the
    account no longer exists)."""
    row = conn.execute(sa.select(accounts_t.c.last_sync_at)
                       .where(accounts_t.c.id == account_id).with_for_update()).first()
    return False if row is None else row.last_sync_at


def parts(conn: sa.Connection, account_id: UUID, round_id: str) -> list[Any]:
    return list(conn.execute(sa.select(t).where(t.c.account_id == account_id,
                                                t.c.round == round_id)).all())


def clear(conn: sa.Connection, account_id: UUID, round_id: str, now: datetime) -> None:
    conn.execute(t.delete().where(t.c.account_id == account_id, t.c.round == round_id))
    conn.execute(t.delete().where(t.c.found_at < now - KEEP))
