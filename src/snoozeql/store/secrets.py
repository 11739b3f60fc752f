"""Encrypted secrets, addressed by (scope, owner id, name). Only ciphertext is stored."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID, uuid4

import sqlalchemy as sa

from snoozeql.store.tables import secrets as t


def put(
    conn: sa.Connection, scope: str, owner_id: UUID, name: str, ciphertext: str, now: datetime
) -> None:
    where = (t.c.scope == scope, t.c.owner_id == owner_id, t.c.name == name)
    res = conn.execute(t.update().where(*where).values(ciphertext=ciphertext, updated_at=now))
    if res.rowcount == 0:
        conn.execute(t.insert().values(
            id=uuid4(), scope=scope, owner_id=owner_id, name=name, ciphertext=ciphertext,
            created_at=now, updated_at=now,
        ))


def get(conn: sa.Connection, scope: str, owner_id: UUID, name: str) -> str | None:
    return conn.execute(
        sa.select(t.c.ciphertext).where(
            t.c.scope == scope, t.c.owner_id == owner_id, t.c.name == name
        )
    ).scalar_one_or_none()


def get_all(conn: sa.Connection, scope: str, owner_id: UUID) -> dict[str, str]:
    rows = conn.execute(
        sa.select(t.c.name, t.c.ciphertext).where(t.c.scope == scope, t.c.owner_id == owner_id)
    )
    return {r.name: r.ciphertext for r in rows}


def delete(conn: sa.Connection, scope: str, owner_id: UUID, name: str | None = None) -> int:
    q = t.delete().where(t.c.scope == scope, t.c.owner_id == owner_id)
    if name is not None:
        q = q.where(t.c.name == name)
    return conn.execute(q).rowcount


def get_named(conn: sa.Connection, scope: str, name: str) -> dict[UUID, str]:
    """Owner id -> ciphertext of every secret called ``name`` in ``scope`` (one query)."""
    rows = conn.execute(
        sa.select(t.c.owner_id, t.c.ciphertext).where(t.c.scope == scope, t.c.name == name)
    )
    return {r.owner_id: r.ciphertext for r in rows}
