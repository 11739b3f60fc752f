"""Dashboard sign-in: an API key exchanged for a server-side session.

The browser gets a random 256-bit session token (in an HttpOnly, SameSite=Strict
cookie); the store keeps its SHA-256 only, with the key it came from and an expiry.
Revoking a key deletes its sessions. A session lookup is reused for
``AUTH_CACHE_SECONDS`` within a process, as API key lookups are: a sign-out or a
revocation in this process applies at once (the revocation moves the key cache's
generation, which every cached session was taken under); one made by another process
(another replica, the CLI) within those seconds.

The CSRF token of a session is derived from its secret token (an HMAC-like SHA-256 with
a fixed label): only the holder of the cookie can know it, and nothing more is stored.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from threading import Lock
from uuid import UUID, uuid4

from snoozeql.domain.types import Role
from snoozeql.services.apikeys import AUTH_CACHE_SECONDS, ApiKeyService
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


@dataclass
class _SessionCache:
    """Per-process memo of recent session lookups (by token hash), in ``ctx.memo``:
    token hash -> (session, its expiry, monotonic time of the lookup, the key cache's
    generation then)."""

    lock: Lock = field(default_factory=Lock)
    found: dict[str, tuple[WebSession, datetime, float, int]] = field(default_factory=dict)
    # Moved by every sign-out in this process: a lookup that read the store before it
    # committed does not cache what it read.
    epoch: int = 0


class WebSessionService:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def _cache(self) -> _SessionCache:
        with self.ctx.memo_lock:
            cache = self.ctx.memo.get("web_sessions.lookups")
            if cache is None:
                cache = self.ctx.memo["web_sessions.lookups"] = _SessionCache()
            return cache  # type: ignore[no-any-return]

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
        digest = _hash(token)
        cache = self._cache()
        tick = time.monotonic()
        generation = ApiKeyService(self.ctx).cache_generation()
        with cache.lock:
            hit = cache.found.get(digest)
            epoch = cache.epoch
        if hit is not None:
            session, expires_at, at, taken_under = hit
            if tick - at < AUTH_CACHE_SECONDS and taken_under == generation and expires_at > now:
                return session
        with self.ctx.engine.begin() as conn:
            rec = store.get_by_hash(conn, digest)
            if rec is None or rec.key_revoked or rec.expires_at <= now:
                if rec is not None:
                    store.delete(conn, rec.id)
                with cache.lock:
                    cache.found.pop(digest, None)
                return None
            if now - rec.last_seen_at > TOUCH_EVERY:
                store.touch(conn, rec.id, now)
        session = WebSession(rec.id, rec.key_id, rec.key_name, rec.role, csrf_token_for(token))
        with cache.lock:
            # Cached under the key cache's generation read before the store was: a
            # revocation that committed meanwhile moved it, so this entry is never used;
            # a sign-out meanwhile moved the epoch, so it is not cached at all.
            if cache.epoch == epoch:
                cache.found[digest] = (session, rec.expires_at, tick, generation)
        return session

    def sign_out(self, token: str | None) -> bool:
        if not token:
            return False
        cache = self._cache()
        with self.ctx.engine.begin() as conn:
            rec = store.get_by_hash(conn, _hash(token))
            ended = rec is not None and store.delete(conn, rec.id) > 0
        with cache.lock:
            cache.found.pop(_hash(token), None)
            cache.epoch += 1
        return ended

    def end_sessions_of(self, key_id: UUID) -> int:
        with self.ctx.engine.begin() as conn:
            ended = store.delete_for_key(conn, key_id)
        cache = self._cache()
        with cache.lock:
            for digest, (session, *_rest) in list(cache.found.items()):
                if session.key_id == key_id:
                    del cache.found[digest]
            cache.epoch += 1
        return ended
