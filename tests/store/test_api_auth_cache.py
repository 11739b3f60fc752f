"""API key lookups are cached briefly; revocation still takes effect within the bound;
``last_used_at`` is written at most once a minute; the listing body is what the
response model describes. Both stores."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from snoozeql.api.app import create_app
from snoozeql.api.schemas.instances import InstanceOut
from snoozeql.domain.types import (
    DiscoveredInstance,
    InstanceKind,
    InstanceStatus,
    ProviderKind,
)
from snoozeql.services import apikeys as apikeys_service
from snoozeql.services.apikeys import ApiKeyService
from snoozeql.services.inventory import InventoryService
from snoozeql.services.web_sessions import WebSessionService
from snoozeql.store import apikeys as key_store
from snoozeql.store import db
from snoozeql.store import instances as inst
from snoozeql.store.apikeys import api_keys

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


class _Ticks:
    """A stand-in for time.monotonic that the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def ticks(monkeypatch: pytest.MonkeyPatch) -> _Ticks:
    t = _Ticks()
    monkeypatch.setattr(apikeys_service.time, "monotonic", t)
    return t


@pytest.fixture
def client(ctx: Any) -> TestClient:
    ctx.clock = lambda: T0
    return TestClient(create_app(ctx), raise_server_exceptions=False)


def _count_statements(engine: sa.Engine, needle: str) -> list[str]:
    seen: list[str] = []

    @sa.event.listens_for(engine, "before_cursor_execute")
    def _seen(_c: Any, _cur: Any, statement: str, *_a: Any) -> None:
        if needle in statement.lower():
            seen.append(statement)

    return seen


def test_revoked_elsewhere_stops_working_within_the_cache_bound(
    ctx: Any, client: TestClient, ticks: _Ticks,
) -> None:
    _, key = ApiKeyService(ctx).create("reader", "viewer")
    h = {"X-API-Key": key}
    assert client.get("/api/v1/instances", headers=h).status_code == 200
    # Revoked by another process (a replica, the CLI): straight in the store.
    with ctx.engine.begin() as conn:
        conn.execute(api_keys.update().where(api_keys.c.name == "reader")
                     .values(revoked_at=T0))
    selects = _count_statements(ctx.engine, "from api_keys")
    ticks.now += apikeys_service.AUTH_CACHE_SECONDS / 2
    # Within the bound the cached lookup may still answer, without asking the store.
    assert client.get("/api/v1/instances", headers=h).status_code == 200
    assert selects == []
    ticks.now += apikeys_service.AUTH_CACHE_SECONDS / 2 + 0.01
    r = client.get("/api/v1/instances", headers=h)
    assert r.status_code == 401, r.text
    assert client.get("/api/v1/instances", headers=h).status_code == 401


def test_revoked_in_this_process_stops_at_once(
    ctx: Any, client: TestClient, ticks: _Ticks,
) -> None:
    svc = ApiKeyService(ctx)
    _, key = svc.create("reader", "viewer")
    h = {"Authorization": f"Bearer {key}"}
    assert client.get("/api/v1/instances", headers=h).status_code == 200
    svc.revoke("reader")
    assert client.get("/api/v1/instances", headers=h).status_code == 401


def test_unknown_keys_are_not_cached(ctx: Any, client: TestClient, ticks: _Ticks) -> None:
    assert client.get("/api/v1/instances", headers={"X-API-Key": "sqk_nope"}).status_code == 401
    _, key = ApiKeyService(ctx).create("later", "viewer")
    assert client.get("/api/v1/instances", headers={"X-API-Key": key}).status_code == 200


def test_last_used_at_is_written_at_most_once_a_minute(
    ctx: Any, client: TestClient, ticks: _Ticks,
) -> None:
    _, key = ApiKeyService(ctx).create("reader", "viewer")
    h = {"X-API-Key": key}
    updates = _count_statements(ctx.engine, "update api_keys")
    now = T0
    ctx.clock = lambda: now
    for step in range(12):  # a request every 5 s for a minute, the cache expiring often
        now = T0 + timedelta(seconds=5 * step)
        ticks.now += 5
        assert client.get("/api/v1/instances", headers=h).status_code == 200
    assert len(updates) == 1
    with ctx.engine.connect() as conn:
        assert key_store.get_by_name(conn, "reader").last_used_at == T0  # type: ignore[union-attr]
    now = T0 + timedelta(seconds=61)
    ticks.now += 5
    assert client.get("/api/v1/instances", headers=h).status_code == 200
    assert len(updates) == 2
    with ctx.engine.connect() as conn:
        assert key_store.get_by_name(conn, "reader").last_used_at == now  # type: ignore[union-attr]


def test_a_request_with_a_cached_key_does_not_write(
    ctx: Any, client: TestClient, ticks: _Ticks,
) -> None:
    _, key = ApiKeyService(ctx).create("reader", "viewer")
    h = {"X-API-Key": key}
    assert client.get("/api/v1/instances", headers=h).status_code == 200
    writes = _count_statements(ctx.engine, "update")
    begins = _count_statements(ctx.engine, "from api_keys")
    for _ in range(5):
        assert client.get("/api/v1/instances", headers=h).status_code == 200
    assert writes == [] and begins == []


def test_listing_body_is_the_response_model(ctx: Any, client: TestClient) -> None:
    _, key = ApiKeyService(ctx).create("reader", "viewer")
    items = [
        DiscoveredInstance(
            provider=ProviderKind.AWS, provider_id=f"arn:aws:rds:us-east-1:1:db:d{i}",
            kind=InstanceKind.INSTANCE, name=f"d{i}", engine="postgres", engine_version="15.4",
            instance_class=None if i % 2 else "db.t3.micro", region="us-east-1",
            status=InstanceStatus.RUNNING, raw_status="available",
            tags={"env": "dev", "ü": "ñ"}, endpoint_host=None if i % 3 else "h.example",
            endpoint_port=5432, multi_az=bool(i % 2), node_count=1,
        )
        for i in range(7)
    ]
    with ctx.engine.begin() as conn:
        inst.upsert_discovered(conn, items, None, T0 + timedelta(microseconds=1234),
                               {items[0].provider_id: None, items[1].provider_id: Decimal("12.5")})
    r = client.get("/api/v1/instances?limit=5", headers={"X-API-Key": key})
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    body = r.json()
    page = InventoryService(ctx).list(InventoryService(ctx).build_filter(), limit=5)
    expected = {
        "items": [InstanceOut.of(i).model_dump(mode="json") for i in page.items],
        "next_cursor": page.next_cursor,
    }
    assert body == expected
    assert body["next_cursor"]
    assert [i["name"] for i in body["items"]] == ["d0", "d1", "d2", "d3", "d4"]
    assert body["items"][1]["hourly_cost_cents"] == 12.5


def test_a_lookup_racing_a_revocation_does_not_cache_the_key(
    ctx: Any, client: TestClient, ticks: _Ticks, monkeypatch: pytest.MonkeyPatch,
) -> None:
    svc = ApiKeyService(ctx)
    _, key = svc.create("reader", "viewer")
    real = key_store.get_by_hash
    raced: list[bool] = []

    def read_then_revoked(conn: sa.Connection, digest: str) -> Any:  # noqa: ANN401
        record = real(conn, digest)
        if not raced:  # the revocation commits after this lookup read the key
            raced.append(True)
            svc.revoke("reader")
        return record

    monkeypatch.setattr(apikeys_service.store, "get_by_hash", read_then_revoked)
    assert svc.authenticate(key) is None
    # Nothing was cached from the stale read: the clock has not moved, yet it is refused.
    assert client.get("/api/v1/instances", headers={"X-API-Key": key}).status_code == 401


def test_role_changed_elsewhere_applies_within_the_cache_bound(
    ctx: Any, client: TestClient, ticks: _Ticks,
) -> None:
    _, key = ApiKeyService(ctx).create("boss", "admin")
    h = {"X-API-Key": key}
    assert client.get("/api/v1/apikeys", headers=h).status_code == 200
    with ctx.engine.begin() as conn:  # demoted by another process, straight in the store
        conn.execute(api_keys.update().where(api_keys.c.name == "boss").values(role="viewer"))
    ticks.now += apikeys_service.AUTH_CACHE_SECONDS + 0.01
    assert client.get("/api/v1/apikeys", headers=h).status_code == 403
    assert client.get("/api/v1/instances", headers=h).status_code == 200


def test_dashboard_sign_in_and_sessions_follow_a_revocation_at_once(
    ctx: Any, client: TestClient, ticks: _Ticks,
) -> None:
    keys = ApiKeyService(ctx)
    _, key = keys.create("lead", "operator")
    sessions = WebSessionService(ctx)
    assert client.get("/api/v1/instances", headers={"X-API-Key": key}).status_code == 200
    token, _ = sessions.sign_in(key)  # type: ignore[misc]  # the lookup is cached now
    keys.revoke("lead")  # in this process; the clock does not move
    assert sessions.resolve(token) is None
    assert sessions.sign_in(key) is None
    client.cookies.set("snoozeql_session", token)
    r = client.get("/instances", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/login")


def test_a_session_of_a_key_revoked_elsewhere_ends_within_the_cache_bound(
    ctx: Any, client: TestClient, ticks: _Ticks,
) -> None:
    _, key = ApiKeyService(ctx).create("lead", "operator")
    sessions = WebSessionService(ctx)
    token, _ = sessions.sign_in(key)  # type: ignore[misc]
    assert sessions.resolve(token) is not None
    with ctx.engine.begin() as conn:  # revoked by another process
        conn.execute(api_keys.update().where(api_keys.c.name == "lead")
                     .values(revoked_at=T0))
    # Session lookups are cached as key lookups are: another process's revocation
    # applies within AUTH_CACHE_SECONDS, and then for good.
    ticks.now += apikeys_service.AUTH_CACHE_SECONDS / 2
    assert sessions.resolve(token) is not None
    ticks.now += apikeys_service.AUTH_CACHE_SECONDS / 2 + 0.01
    assert sessions.resolve(token) is None
    ticks.now += apikeys_service.AUTH_CACHE_SECONDS + 0.01
    assert sessions.resolve(token) is None


def test_a_session_lookup_is_cached_and_a_sign_out_here_ends_it_at_once(
    ctx: Any, client: TestClient, ticks: _Ticks,
) -> None:
    _, key = ApiKeyService(ctx).create("lead", "operator")
    sessions = WebSessionService(ctx)
    token, _ = sessions.sign_in(key)  # type: ignore[misc]
    assert sessions.resolve(token) is not None
    statements: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        statements.append(statement)

    sa.event.listen(ctx.engine, "before_cursor_execute", seen)
    try:
        assert sessions.resolve(token) is not None  # cached: asks the store nothing
    finally:
        sa.event.remove(ctx.engine, "before_cursor_execute", seen)
    assert statements == []
    assert sessions.sign_out(token)
    assert sessions.resolve(token) is None  # at once, although the lookup was cached
    other_token, _ = sessions.sign_in(key)  # type: ignore[misc]
    assert sessions.resolve(other_token) is not None
    ApiKeyService(ctx).revoke("lead")
    assert sessions.resolve(other_token) is None  # a revocation here: at once too


def _left_in_transaction(engine: sa.Engine) -> list[bool]:
    """Per statement: whether the connection was left inside a transaction after it
    (one that a BEGIN opened and a ROLLBACK or COMMIT must close)."""
    seen: list[bool] = []

    @sa.event.listens_for(engine, "after_cursor_execute")
    def _after(conn: sa.Connection, *_a: Any) -> None:
        dbapi = conn.connection.dbapi_connection
        if engine.dialect.name == "postgresql":
            import psycopg

            assert isinstance(dbapi, psycopg.Connection)
            seen.append(dbapi.info.transaction_status != psycopg.pq.TransactionStatus.IDLE)
        else:
            seen.append(bool(dbapi.in_transaction))  # type: ignore[union-attr]

    return seen


def test_a_listing_request_is_one_statement_and_no_transaction(
    ctx: Any, client: TestClient, ticks: _Ticks, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With its key's lookup cached, a listing request sends the page's statement and
    nothing else: no key lookup, no connection check, no BEGIN / ROLLBACK."""
    _, key = ApiKeyService(ctx).create("reader", "viewer")
    h = {"X-API-Key": key}
    with ctx.engine.begin() as conn:
        inst.upsert_discovered(conn, [
            DiscoveredInstance(
                provider=ProviderKind.AWS, provider_id=f"arn:aws:rds:us-east-1:1:db:d{i}",
                kind=InstanceKind.INSTANCE, name=f"d{i}", engine="postgres",
                engine_version="15.4", instance_class=None, region="us-east-1",
                status=InstanceStatus.RUNNING, raw_status="available",
            )
            for i in range(3)
        ], None, T0, {})
    assert client.get("/api/v1/instances?limit=2", headers=h).status_code == 200
    statements = _count_statements(ctx.engine, "")
    in_transaction = _left_in_transaction(ctx.engine)
    pings: list[Any] = []
    real_ping = ctx.engine.dialect.do_ping
    monkeypatch.setattr(ctx.engine.dialect, "do_ping",
                        lambda c: pings.append(c) or real_ping(c))
    page: dict[str, Any] = {}
    for follow in (False, True, False, True):  # first page, next page, twice
        params = {"limit": "2"} | ({"cursor": page["next_cursor"]} if follow else {})
        r = client.get("/api/v1/instances", params=params, headers=h)
        assert r.status_code == 200
        page = r.json()
    assert [i["name"] for i in page["items"]] == ["d2"]
    assert len(statements) == 4
    assert all(s.lower().lstrip().startswith("select") and "from instances" in s.lower()
               for s in statements)
    assert in_transaction == [False] * 4
    assert pings == []


@pytest.mark.parametrize("store_url", ["postgres"], indirect=True)  # SQLite: no server
def test_an_idle_pooled_connection_is_checked_and_a_dead_one_replaced(
    ctx: Any, client: TestClient, ticks: _Ticks, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """PostgreSQL: a pooled connection unused for PING_IDLE_SECONDS is checked before
    use; one that fails the check is dropped and a new one serves the request."""
    assert ctx.engine.dialect.name == "postgresql"
    _, key = ApiKeyService(ctx).create("reader", "viewer")
    h = {"X-API-Key": key}
    assert client.get("/api/v1/instances", headers=h).status_code == 200
    pings: list[Any] = []
    real_ping = ctx.engine.dialect.do_ping
    monkeypatch.setattr(ctx.engine.dialect, "do_ping",
                        lambda c: pings.append(c) or real_ping(c))
    assert client.get("/api/v1/instances", headers=h).status_code == 200
    assert pings == []
    ticks.now += db.PING_IDLE_SECONDS + 0.01
    assert client.get("/api/v1/instances", headers=h).status_code == 200
    # The key's lookup (its cache expired too) checked the idle connection; the page
    # then took it again at once, unchecked.
    assert len(pings) == 1

    def dead(c: Any) -> bool:  # noqa: ANN401
        pings.append(c)
        raise OSError("server closed the connection unexpectedly")

    monkeypatch.setattr(ctx.engine.dialect, "do_ping", dead)
    ticks.now += db.PING_IDLE_SECONDS + 0.01
    connected: list[Any] = []
    sa.event.listen(ctx.engine, "connect", lambda c, _r: connected.append(c))
    assert client.get("/api/v1/instances", headers=h).status_code == 200
    assert len(pings) == 2 and len(connected) == 1
