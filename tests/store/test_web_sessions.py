"""Dashboard sessions (service level, SQLite and PostgreSQL): only hashes are stored,
expiry and revocation end a session, sign-out deletes it, CSRF tokens are per session."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa

from snoozeql.services.apikeys import ApiKeyService
from snoozeql.services.context import Context
from snoozeql.services.web_sessions import (
    SESSION_TTL,
    WebSessionService,
    csrf_matches,
)
from snoozeql.store.web_sessions import web_sessions


def test_sign_in_stores_only_a_hash_and_resolves_the_key_and_role(ctx: Context) -> None:
    _, key = ApiKeyService(ctx).create("lead", "operator")
    svc = WebSessionService(ctx)
    assert svc.sign_in("sqk_wrong") is None
    assert svc.sign_in("") is None
    token, session = svc.sign_in(key)  # type: ignore[misc]
    assert (session.key_name, session.role.value) == ("lead", "operator")
    with ctx.engine.connect() as conn:
        stored = conn.execute(sa.select(web_sessions)).one()
    assert token not in str(stored) and key not in str(stored)
    assert stored.expires_at - stored.created_at == SESSION_TTL
    again = svc.resolve(token)
    assert again is not None and again.id == session.id
    assert csrf_matches(token, session.csrf_token)
    other, _ = svc.sign_in(key)  # type: ignore[misc]
    assert not csrf_matches(other, session.csrf_token)
    assert not csrf_matches(token, None) and not csrf_matches(token, "")


def test_sign_out_expiry_and_revocation_end_sessions(ctx: Context) -> None:
    keys = ApiKeyService(ctx)
    _, key = keys.create("someone", "viewer")
    svc = WebSessionService(ctx)
    a, _ = svc.sign_in(key)  # type: ignore[misc]
    b, _ = svc.sign_in(key)  # type: ignore[misc]
    assert svc.sign_out(a) is True
    assert svc.resolve(a) is None
    assert svc.sign_out(a) is False

    real_clock = ctx.clock
    ctx.clock = lambda: real_clock() + SESSION_TTL + timedelta(seconds=1)
    try:
        assert svc.resolve(b) is None  # expired, and removed
    finally:
        ctx.clock = real_clock
    with ctx.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(web_sessions)).scalar() == 0

    c, _ = svc.sign_in(key)  # type: ignore[misc]
    keys.revoke("someone")
    assert svc.resolve(c) is None
    with ctx.engine.connect() as conn:  # revoking deleted the key's sessions
        assert conn.execute(sa.select(sa.func.count()).select_from(web_sessions)).scalar() == 0
