"""API keys: created with a role, shown once, stored only as a SHA-256 hash.

Keys are 256-bit random tokens, so a fast hash is safe here (there is nothing to
brute-force); a slow password hash would only add latency to every request.
"""

from __future__ import annotations

import hashlib
import secrets
from uuid import uuid4

from snoozeql.domain import validation as v
from snoozeql.domain.errors import ConflictError, NotFoundError, ValidationError
from snoozeql.domain.types import Role
from snoozeql.services import audit
from snoozeql.services.context import Context
from snoozeql.store import apikeys as store
from snoozeql.store import web_sessions
from snoozeql.store.apikeys import ApiKeyRecord

KEY_PREFIX = "sqk_"


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

    def authenticate(self, key: str) -> ApiKeyRecord | None:
        if not key.startswith(KEY_PREFIX):
            return None
        with self.ctx.engine.begin() as conn:
            record = store.get_by_hash(conn, hash_key(key))
            if record is None or record.revoked_at is not None:
                return None
            now = self.ctx.now()
            if record.last_used_at is None or (now - record.last_used_at).total_seconds() > 60:
                store.touch(conn, record.id, now)
            return record

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
            return store.get_by_name(conn, name)  # type: ignore[return-value]
