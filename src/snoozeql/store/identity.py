"""The store's id: one row, made when the schema is created (migration 0011)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import sqlalchemy as sa

from snoozeql.store.tables import store_identity as t


def store_id(conn: sa.Connection) -> str:
    """The id, made now if the row is missing (a store emptied by hand)."""
    found = conn.execute(sa.select(t.c.id).order_by(t.c.created_at).limit(1)).scalar()
    if found:
        return str(found)
    new = str(uuid.uuid4())
    conn.execute(t.insert().values(id=new, created_at=datetime.now(UTC)))
    return new
