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
from snoozeql.api.schemas import InstanceOut
from snoozeql.domain.types import (
    DiscoveredInstance,
    InstanceKind,
    InstanceStatus,
    ProviderKind,
)
from snoozeql.services import apikeys as apikeys_service
from snoozeql.services.apikeys import ApiKeyService
from snoozeql.services.inventory import InventoryService
from snoozeql.store import apikeys as key_store
from snoozeql.store import instances as inst
from snoozeql.store.tables import api_keys

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
