"""The store's id: one row, made when the schema is created (migration 0011)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import sqlalchemy as sa

from snoozeql.store.schema import metadata
from snoozeql.store.types import UTCDateTime

# The store's own id (one row, made by migration 0011): files kept outside the database
# carry it in a marker so two stores never share them (services/datadir.py).
store_identity = sa.Table(
    "store_identity",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
)



def store_id(conn: sa.Connection) -> str:
    """The id, made now if the row is missing (a store emptied by hand)."""
    found = conn.execute(
        sa.select(store_identity.c.id).order_by(store_identity.c.created_at).limit(1)
    ).scalar()
    if found:
        return str(found)
    new = str(uuid.uuid4())
    conn.execute(store_identity.insert().values(id=new, created_at=datetime.now(UTC)))
    return new
