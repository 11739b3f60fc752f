"""Dashboard sign-in: an API key exchanged for a server-side session.

The browser gets a random 256-bit session token (in an HttpOnly, SameSite=Strict
cookie); the store keeps its SHA-256 only, with the key it came from and an expiry.
Every request re-reads the key, so a revoked key (or one whose role changed) applies at
once, and revoking a key deletes its sessions.

The CSRF token of a session is derived from its secret token (an HMAC-like SHA-256 with
a fixed label): only the holder of the cookie can know it, and nothing more is stored.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta
from uuid import UUID, uuid4

from snoozeql.domain.types import Role
from snoozeql.services.apikeys import ApiKeyService
from snoozeql.services.context import Context
from snoozeql.store import web_sessions as store

SESSION_TTL = timedelta(hours=12)
TOUCH_EVERY = timedelta(minutes=1)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def csrf_token_for(session_token: str) -> str:
    """The CSRF token that goes with a session (or a pre-login nonce)."""
    return hashlib.sha256(f"snoozeql-csrf:{session_token}".encode()).hexdigest()


def csrf_matches(session_token: str, given: str | None) -> bool:
    return bool(given) and hmac.compare_digest(csrf_token_for(session_token), given or "")


@dataclass(frozen=True)
class WebSession:
    id: UUID
    key_id: UUID
    key_name: str
    role: Role
    csrf_token: str


class WebSessionService:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def sign_in(self, api_key: str) -> tuple[str, WebSession] | None:
        """A new session for a valid, unrevoked key: (cookie token, session); else None."""
        record = ApiKeyService(self.ctx).authenticate(api_key.strip())
        if record is None:
            return None
        token = secrets.token_urlsafe(32)
        now = self.ctx.now()
        session_id = uuid4()
        with self.ctx.engine.begin() as conn:
            store.delete_expired(conn, now)
            store.insert(conn, session_id=session_id, token_hash=_hash(token),
                         key_id=record.id, now=now, expires_at=now + SESSION_TTL)
        return token, WebSession(session_id, record.id, record.name, record.role,
                                 csrf_token_for(token))

    def resolve(self, token: str | None) -> WebSession | None:
        """The live session of a cookie token, or None (unknown, expired, key revoked)."""
        if not token:
            return None
        now = self.ctx.now()
        with self.ctx.engine.begin() as conn:
            rec = store.get_by_hash(conn, _hash(token))
            if rec is None:
                return None
            if rec.key_revoked or rec.expires_at <= now:
                store.delete(conn, rec.id)
                return None
            if now - rec.last_seen_at > TOUCH_EVERY:
                store.touch(conn, rec.id, now)
        return WebSession(rec.id, rec.key_id, rec.key_name, rec.role, csrf_token_for(token))

    def sign_out(self, token: str | None) -> bool:
        if not token:
            return False
        with self.ctx.engine.begin() as conn:
            rec = store.get_by_hash(conn, _hash(token))
            return rec is not None and store.delete(conn, rec.id) > 0

    def end_sessions_of(self, key_id: UUID) -> int:
        with self.ctx.engine.begin() as conn:
            return store.delete_for_key(conn, key_id)
