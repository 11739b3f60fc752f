"""The listing's fast lane (``api/fastlane.py``) answers exactly what FastAPI's route
answers: status, body and headers, for plain requests it takes and for every request
it hands on (bad or unusual parameters, keys it cannot vouch for). Both stores."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import pytest
from fastapi.testclient import TestClient

from snoozeql.api import fastlane
from snoozeql.api.app import create_app
from snoozeql.api.routers import instances
from snoozeql.domain.types import (
    Account,
    AccountStatus,
    DiscoveredInstance,
    InstanceKind,
    InstanceStatus,
    ProviderKind,
)
from snoozeql.services.apikeys import ApiKeyService
from snoozeql.store import accounts
from snoozeql.store import instances as inst

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)

QUERIES = [
    "", "limit=100", "limit=1", "limit=1000", "limit=3", "limit=05", "limit=0", "limit=1001",
    "limit=abc", "limit=%2B5", "limit=%205", "limit=-1", "limit=3&limit=4", "limit=",
    "sort=-name&limit=4", "sort=engine", "sort=-hourly_cost&limit=2", "sort=last_seen_at",
    "sort=bogus", "sort=", "cursor=garbage", "cursor=",
    "provider=aws", "provider=nope", "provider=", "region=us-east-1&engine=mysql",
    "status=running&kind=instance", "status=asleep", "kind=", "account=acme",
    "account=no-such-account", "tag=env%3Ddev", "tag=env%3Ddev&tag=team%3Da", "tag=bad",
    "tag=", "q=db-0", "q=%25", "q=", "q=D", "missing=true", "missing=false", "missing=yes",
    "missing=1", "missing=maybe", "missing=", "unknown=1", "limit=2&unknown=x",
    "q=caf%C3%A9", "region=%E6%97%A5", "engine=postgres&q=db&sort=-region&limit=2",
]


def _seed(ctx: Any) -> None:
    with ctx.engine.begin() as conn:
        a = Account(id=uuid4(), name="acme", provider=ProviderKind.AWS, config={})
        accounts.insert(conn, a, T0)
        items = [
            DiscoveredInstance(
                provider=ProviderKind.AWS, provider_id=f"arn:aws:rds:x:1:db:db-{i}",
                kind=InstanceKind.CLUSTER if i % 4 == 0 else InstanceKind.INSTANCE,
                name=f"db-{i:02d}", engine="mysql" if i % 3 else "postgres",
                engine_version="15.4", instance_class="db.t3.micro",
                region="eu-west-1" if i % 2 else "us-east-1",
                status=InstanceStatus.STOPPED if i % 5 == 0 else InstanceStatus.RUNNING,
                raw_status="available", tags={"env": "dev", "team": "a"} if i % 2 else {},
            )
            for i in range(12)
        ]
        inst.sync_account(conn, a.id, items, T0, {})
        accounts.update(conn, a.id, T0, status=AccountStatus.CONNECTED, last_sync_at=T0)
        inst.sync_account(conn, a.id, items[:10], T0 + timedelta(minutes=5), {})


def _answers(client: TestClient, headers: dict[str, str]) -> list[tuple[Any, ...]]:
    out = []
    for query in QUERIES:
        r = client.get(f"/api/v1/instances?{query}", headers=headers)
        out.append((query, r.status_code, sorted(r.headers.multi_items()), r.content))
    return out


@pytest.fixture
def taken(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The query strings the lane answered itself."""
    seen: list[str] = []
    real = fastlane.run_in_threadpool

    async def spy(fn: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append(repr(kwargs))
        return await real(fn, *args, **kwargs)

    monkeypatch.setattr(fastlane, "run_in_threadpool", spy)
    return seen


def test_the_lane_answers_what_the_route_answers(
    ctx: Any, taken: list[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    ctx.clock = lambda: T0
    _seed(ctx)
    svc = ApiKeyService(ctx)
    _, viewer = svc.create("reader", "viewer")
    _, operator = svc.create("op", "operator")
    client = TestClient(create_app(ctx), raise_server_exceptions=False)
    keys = [{"X-API-Key": viewer}, {"X-API-Key": operator}, {"X-API-Key": "sqk_nope"}, {},
            {"Authorization": f"Bearer {viewer}"},
            {"X-API-Key": viewer, "Authorization": "Bearer sqk_other"}]
    for h in keys:  # first uses: the keys' lookups cached
        client.get("/api/v1/instances", headers=h)
    taken.clear()
    with_lane = [_answers(client, h) for h in keys]
    assert len(taken) > 40  # the plain requests of the two good X-API-Key keys
    monkeypatch.setattr(fastlane, "listing_arguments", lambda _qs, _d: None)  # never taken
    taken.clear()
    without = [_answers(client, h) for h in keys]
    assert taken == []
    for lane, route in zip(with_lane, without, strict=True):
        for got, want in zip(lane, route, strict=True):
            assert got == want
    statuses = {status for answers in without for _, status, *_ in answers}
    assert {200, 401, 404, 422}.issubset(statuses) and 500 not in statuses, statuses


def test_a_key_not_cached_goes_through_the_route(ctx: Any, taken: list[str]) -> None:
    _, key = ApiKeyService(ctx).create("reader", "viewer")
    client = TestClient(create_app(ctx))
    assert client.get("/api/v1/instances", headers={"X-API-Key": key}).status_code == 200
    assert taken == []  # the first use looks the key up (in the route's dependency)
    assert client.get("/api/v1/instances", headers={"X-API-Key": key}).status_code == 200
    assert len(taken) == 1


@pytest.mark.parametrize(("query", "args"), [
    (b"", {}),
    (b"limit=7&sort=-name&cursor=abc", {"limit": 7, "sort": "-name", "cursor": "abc"}),
    (b"tag=a%3D1&tag=b%3D&q=x+y&missing=false",
     {"tag": ["a=1", "b="], "q": "x y", "missing": False}),
    (b"provider=&region=%C3%BC", {"provider": "", "region": "ü"}),
])
def test_listing_arguments(query: bytes, args: dict[str, Any]) -> None:
    defaults: dict[str, Any] = {
        "provider": None, "account": None, "region": None, "engine": None,
        "status": None, "kind": None, "tag": None, "q": None, "missing": None,
        "sort": "name", "limit": 100, "cursor": None,
    }
    assert fastlane.route_defaults(instances.list_instances) == defaults
    assert fastlane.listing_arguments(query, defaults) == defaults | args


@pytest.mark.parametrize("query", [
    b"limit=0", b"limit=1001", b"limit=%2B1", b"limit=1_0", b"missing=1", b"missing=True",
    b"sort=a&sort=b", b"other=1", b"limit=",
])
def test_listing_arguments_leaves_the_unusual_to_fastapi(query: bytes) -> None:
    defaults = fastlane.route_defaults(instances.list_instances)
    assert fastlane.listing_arguments(query, defaults) is None


def test_a_route_parameter_the_lane_does_not_know_stops_the_app() -> None:
    def listed(ctx: Any, _: Any, provider: str | None = None, account: str | None = None,
               region: str | None = None, engine: str | None = None,
               status: str | None = None, kind: str | None = None, tag: Any = None,
               q: str | None = None, missing: bool | None = None, sort: str = "name",
               limit: int = 100, cursor: str | None = None, new: str | None = None,
               ) -> Any:
        return None

    with pytest.raises(TypeError, match="teach api/fastlane"):
        fastlane.route_defaults(listed)
