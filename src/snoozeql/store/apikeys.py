"""Queries on API keys. Only hashes are stored."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import sqlalchemy as sa

from snoozeql.domain.errors import ConflictError
from snoozeql.domain.types import Role
from snoozeql.store.schema import metadata
from snoozeql.store.types import UTCDateTime

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("name", sa.String(63), nullable=False, unique=True),
    sa.Column("role", sa.String(16), nullable=False),
    # SHA-256 of the whole key; the key itself is shown once and never stored.
    sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("prefix", sa.String(16), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("last_used_at", UTCDateTime),
    sa.Column("revoked_at", UTCDateTime),
)


@dataclass(frozen=True)
class ApiKeyRecord:
    id: UUID
    name: str
    role: Role
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


def _row(r: Any) -> ApiKeyRecord:
    return ApiKeyRecord(
        id=r.id,
        name=r.name,
        role=Role(r.role),
        prefix=r.prefix,
        created_at=r.created_at,
        last_used_at=r.last_used_at,
        revoked_at=r.revoked_at,
    )


def insert(
    conn: sa.Connection, *, key_id: UUID, name: str, role: Role, key_hash: str, prefix: str,
    now: datetime,
) -> None:
    """Add the key; ConflictError if its name is taken (a concurrent create won)."""
    try:
        conn.execute(
            api_keys.insert().values(
                id=key_id, name=name, role=role.value, key_hash=key_hash, prefix=prefix,
                created_at=now,
            )
        )
    except sa.exc.IntegrityError:
        raise ConflictError(f"an API key named {name!r} already exists") from None


def get_by_hash(conn: sa.Connection, key_hash: str) -> ApiKeyRecord | None:
    r = conn.execute(sa.select(api_keys).where(api_keys.c.key_hash == key_hash)).first()
    return _row(r) if r else None


def get_by_name(conn: sa.Connection, name: str) -> ApiKeyRecord | None:
    r = conn.execute(sa.select(api_keys).where(api_keys.c.name == name)).first()
    return _row(r) if r else None


def list_all(conn: sa.Connection) -> list[ApiKeyRecord]:
    return [_row(r) for r in conn.execute(sa.select(api_keys).order_by(api_keys.c.name))]


def touch(conn: sa.Connection, key_id: UUID, now: datetime) -> None:
    conn.execute(api_keys.update().where(api_keys.c.id == key_id).values(last_used_at=now))


def revoke(conn: sa.Connection, key_id: UUID, now: datetime) -> None:
    conn.execute(api_keys.update().where(api_keys.c.id == key_id).values(revoked_at=now))
