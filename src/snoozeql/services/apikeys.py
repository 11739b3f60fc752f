"""API keys: created with a role, shown once, stored only as a SHA-256 hash.

Keys are 256-bit random tokens, so a fast hash is safe here (there is nothing to
brute-force); a slow password hash would only add latency to every request.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass, field
from datetime import datetime
from threading import Lock
from uuid import UUID, uuid4

from snoozeql.domain import validation as v
from snoozeql.domain.errors import ConflictError, NotFoundError, ValidationError
from snoozeql.domain.types import Role
from snoozeql.services import audit
from snoozeql.services.context import Context
from snoozeql.store import apikeys as store
from snoozeql.store import web_sessions
from snoozeql.store.apikeys import ApiKeyRecord

KEY_PREFIX = "sqk_"

# How long a successful key lookup is reused without asking the store again. A key
# revoked in this process stops working at once (the revocation clears the cache); one
# revoked by another process (another replica, or the CLI while `serve` runs) stops
# working within this many seconds.
AUTH_CACHE_SECONDS = 2.0
# ``last_used_at`` is written at most once per this many seconds per key (and process).
TOUCH_INTERVAL_SECONDS = 60.0


@dataclass
class _AuthCache:
    """Per-process memo of recent key lookups (by hash), kept in ``ctx.memo``."""

    lock: Lock = field(default_factory=Lock)
    # key hash -> (record, monotonic time of the lookup)
    found: dict[str, tuple[ApiKeyRecord, float]] = field(default_factory=dict)
    # key id -> the last_used_at this process wrote (or read)
    touched: dict[UUID, datetime] = field(default_factory=dict)
    # Moved by every revocation in this process: a lookup that read the store before
    # a revocation committed does not cache what it read (it may be the unrevoked key).
    generation: int = 0


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class ApiKeyService:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def create(self, name: str, role: str, *, actor: str = "cli") -> tuple[ApiKeyRecord, str]:
        v.dns_label(name, "key name")
        try:
            r = Role(role)
        except ValueError:
            raise ValidationError(f"unknown role {role!r}; use viewer, operator or admin") from None
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        with self.ctx.engine.begin() as conn:
            if store.get_by_name(conn, name):
                raise ConflictError(f"an API key named {name!r} already exists")
            store.insert(
                conn, key_id=uuid4(), name=name, role=r, key_hash=hash_key(key),
                prefix=key[: len(KEY_PREFIX) + 6], now=self.ctx.now(),
            )
            record = store.get_by_name(conn, name)
            assert record is not None
            # Never the key or its hash: the audit trail names the key, not its material.
            audit.record(conn, at=self.ctx.now(), actor=actor, action="create", kind="apikey",
                         object_id=record.id, name=name,
                         after={"name": name, "role": r.value, "revoked": False})
        return record, key

    def _cache(self) -> _AuthCache:
        with self.ctx.memo_lock:
            cache = self.ctx.memo.get("apikeys.auth")
            if cache is None:
                cache = self.ctx.memo["apikeys.auth"] = _AuthCache()
            return cache  # type: ignore[no-any-return]

    def cached(self, key: str) -> ApiKeyRecord | None:
        """What :meth:`authenticate` returns when it needs no store access: the key's
        record while a lookup of it is cached and its ``last_used_at`` is not due for a
        write. None otherwise (then call :meth:`authenticate`). Pure memory, so the API
        calls it on the event loop and sends only a miss to a worker thread."""
        if not key.startswith(KEY_PREFIX):
            return None
        cache = self._cache()
        now = self.ctx.now()
        with cache.lock:
            record = _fresh(cache, hash_key(key), time.monotonic())
            if record is None or _touch_due(cache, record.id, now):
                return None
        return record

    def authenticate(self, key: str) -> ApiKeyRecord | None:
        """The key's record if it is valid and not revoked, else None.

        A request costs no store access while the lookup is cached
        (``AUTH_CACHE_SECONDS``), and a write only when the key's ``last_used_at`` is
        older than ``TOUCH_INTERVAL_SECONDS``. Unknown keys are never cached.
        """
        if not key.startswith(KEY_PREFIX):
            return None
        digest = hash_key(key)
        cache = self._cache()
        tick = time.monotonic()
        with cache.lock:
            cached = _fresh(cache, digest, tick)
            generation = cache.generation
        if cached is not None:
            record = cached
        else:
            while True:
                with self.ctx.engine.connect() as conn:
                    found = store.get_by_hash(conn, digest)
                with cache.lock:
                    if found is None or found.revoked_at is not None:
                        cache.found.pop(digest, None)
                        return None
                    if cache.generation == generation:
                        cache.found[digest] = (found, tick)
                        if found.last_used_at is not None:
                            seen = cache.touched.get(found.id)
                            if seen is None or found.last_used_at > seen:
                                cache.touched[found.id] = found.last_used_at
                        break
                    # A key was revoked in this process while this lookup ran: what
                    # it read may predate the revocation, so read it again.
                    generation = cache.generation
            record = found
        now = self.ctx.now()
        with cache.lock:
            due = _touch_due(cache, record.id, now)
            if due:
                cache.touched[record.id] = now
        if due:
            with self.ctx.engine.begin() as conn:
                store.touch(conn, record.id, now)
        return record

    def cache_generation(self) -> int:
        """Moves with every revocation in this process: caches built on key lookups (the
        dashboard's sessions) compare it to drop what they hold."""
        cache = self._cache()
        with cache.lock:
            return cache.generation

    def forget_cached(self) -> None:
        """Drop every cached lookup (after a revocation in this process)."""
        cache = self._cache()
        with cache.lock:
            cache.found.clear()
            cache.generation += 1

    def list(self) -> list[ApiKeyRecord]:
        with self.ctx.engine.connect() as conn:
            return store.list_all(conn)

    def revoke(self, name: str, *, actor: str = "cli") -> ApiKeyRecord:
        with self.ctx.engine.begin() as conn:
            record = store.get_by_name(conn, name)
            if record is None:
                raise NotFoundError(f"no API key named {name!r}")
            store.revoke(conn, record.id, self.ctx.now())
            web_sessions.delete_for_key(conn, record.id)  # its dashboard sign-ins end now
            audit.record(conn, at=self.ctx.now(), actor=actor, action="revoke", kind="apikey",
                         object_id=record.id, name=name,
                         before={"name": name, "role": record.role.value,
                                 "revoked": record.revoked_at is not None},
                         after={"name": name, "role": record.role.value, "revoked": True})
            revoked = store.get_by_name(conn, name)
        # After the commit, so no request can cache the key again as still valid.
        self.forget_cached()
        return revoked  # type: ignore[return-value]


def _fresh(cache: _AuthCache, digest: str, tick: float) -> ApiKeyRecord | None:
    """The cached lookup of ``digest`` while it is younger than AUTH_CACHE_SECONDS
    (called with ``cache.lock`` held)."""
    hit = cache.found.get(digest)
    return hit[0] if hit is not None and tick - hit[1] < AUTH_CACHE_SECONDS else None


def _touch_due(cache: _AuthCache, key_id: UUID, now: datetime) -> bool:
    """Whether the key's ``last_used_at`` is due for a write (``cache.lock`` held)."""
    last = cache.touched.get(key_id)
    return last is None or (now - last).total_seconds() >= TOUCH_INTERVAL_SECONDS
