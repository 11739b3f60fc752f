"""Queries on dashboard sessions. Only the SHA-256 of a session token is stored."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import sqlalchemy as sa

from snoozeql.domain.types import Role
from snoozeql.store.apikeys import api_keys
from snoozeql.store.schema import metadata
from snoozeql.store.types import UTCDateTime

# Dashboard sessions: a browser's sign-in, exchanged for an API key. Only the SHA-256
# of the session token is kept; the key's role and revocation apply on every request.
web_sessions = sa.Table(
    "web_sessions",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column(
        "key_id", sa.Uuid, sa.ForeignKey("api_keys.id", ondelete="CASCADE"), nullable=False,
        index=True,
    ),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("expires_at", UTCDateTime, nullable=False),
    sa.Column("last_seen_at", UTCDateTime, nullable=False),
)


@dataclass(frozen=True)
class SessionRecord:
    id: UUID
    key_id: UUID
    key_name: str
    role: Role
    key_revoked: bool
    created_at: datetime
    expires_at: datetime
    last_seen_at: datetime


def insert(
    conn: sa.Connection, *, session_id: UUID, token_hash: str, key_id: UUID, now: datetime,
    expires_at: datetime,
) -> None:
    conn.execute(web_sessions.insert().values(
        id=session_id, token_hash=token_hash, key_id=key_id, created_at=now,
        expires_at=expires_at, last_seen_at=now,
    ))


def get_by_hash(conn: sa.Connection, token_hash: str) -> SessionRecord | None:
    s, k = web_sessions, api_keys
    r = conn.execute(
        sa.select(s, k.c.name.label("key_name"), k.c.role, k.c.revoked_at)
        .join(k, k.c.id == s.c.key_id)
        .where(s.c.token_hash == token_hash)
    ).first()
    if r is None:
        return None
    return SessionRecord(
        id=r.id, key_id=r.key_id, key_name=r.key_name, role=Role(r.role),
        key_revoked=r.revoked_at is not None, created_at=r.created_at,
        expires_at=r.expires_at, last_seen_at=r.last_seen_at,
    )


def touch(conn: sa.Connection, session_id: UUID, now: datetime) -> None:
    conn.execute(web_sessions.update().where(web_sessions.c.id == session_id)
                 .values(last_seen_at=now))


def delete(conn: sa.Connection, session_id: UUID) -> int:
    return conn.execute(web_sessions.delete().where(web_sessions.c.id == session_id)).rowcount


def delete_for_key(conn: sa.Connection, key_id: UUID) -> int:
    return conn.execute(web_sessions.delete().where(web_sessions.c.key_id == key_id)).rowcount


def delete_expired(conn: sa.Connection, now: datetime) -> int:
    return conn.execute(web_sessions.delete().where(web_sessions.c.expires_at <= now)).rowcount
