"""Encrypted secrets, addressed by (scope, owner id, name). Only ciphertext is stored."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID, uuid4

import sqlalchemy as sa

from snoozeql.store.schema import metadata
from snoozeql.store.types import UTCDateTime

# Encrypted secrets (local database passwords, secret env values of stack instances).
# ``ciphertext`` is Fernet output (services/secrets.py); plaintext never reaches the store.
secrets = sa.Table(
    "secrets",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("scope", sa.String(32), nullable=False),
    sa.Column("owner_id", sa.Uuid, nullable=False),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("ciphertext", sa.Text, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.UniqueConstraint("scope", "owner_id", "name"),
)



def put(
    conn: sa.Connection, scope: str, owner_id: UUID, name: str, ciphertext: str, now: datetime
) -> None:
    where = (secrets.c.scope == scope, secrets.c.owner_id == owner_id, secrets.c.name == name)
    res = conn.execute(secrets.update().where(*where).values(ciphertext=ciphertext, updated_at=now))
    if res.rowcount == 0:
        conn.execute(secrets.insert().values(
            id=uuid4(), scope=scope, owner_id=owner_id, name=name, ciphertext=ciphertext,
            created_at=now, updated_at=now,
        ))


def get(conn: sa.Connection, scope: str, owner_id: UUID, name: str) -> str | None:
    return conn.execute(
        sa.select(secrets.c.ciphertext).where(
            secrets.c.scope == scope, secrets.c.owner_id == owner_id, secrets.c.name == name
        )
    ).scalar_one_or_none()


def get_all(conn: sa.Connection, scope: str, owner_id: UUID) -> dict[str, str]:
    rows = conn.execute(
        sa.select(secrets.c.name, secrets.c.ciphertext)
        .where(secrets.c.scope == scope, secrets.c.owner_id == owner_id)
    )
    return {r.name: r.ciphertext for r in rows}


def delete(conn: sa.Connection, scope: str, owner_id: UUID, name: str | None = None) -> int:
    q = secrets.delete().where(secrets.c.scope == scope, secrets.c.owner_id == owner_id)
    if name is not None:
        q = q.where(secrets.c.name == name)
    return conn.execute(q).rowcount


def get_named(conn: sa.Connection, scope: str, name: str) -> dict[UUID, str]:
    """Owner id -> ciphertext of every secret called ``name`` in ``scope`` (one query)."""
    rows = conn.execute(
        sa.select(secrets.c.owner_id, secrets.c.ciphertext)
        .where(secrets.c.scope == scope, secrets.c.name == name)
    )
    return {r.owner_id: r.ciphertext for r in rows}
