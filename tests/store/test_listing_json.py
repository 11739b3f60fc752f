"""The listing rendered by the database (``list_page_json``, what ``GET /instances``
returns) is, row for row and key for key, what the API's ``InstanceOut`` makes of
``list_page``'s instances, with the same next cursor: every sort key in both
directions, filters, a search, pages followed to the end, and the values that could
render differently (times with and without microseconds, derived and stored
``last_seen_at``, costs, NULLs, quotes, control characters and non-ASCII text). Both
stores."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import uuid4

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from snoozeql.api.app import create_app
from snoozeql.api.schemas.instances import InstanceOut
from snoozeql.domain.types import (
    Account,
    AccountStatus,
    DiscoveredInstance,
    InstanceKind,
    InstanceStatus,
    ProviderKind,
)
from snoozeql.services.apikeys import ApiKeyService
from snoozeql.services.inventory import InventoryService
from snoozeql.store import accounts, db
from snoozeql.store import instances as inst
from snoozeql.store.instances import InstanceFilter

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
TEXTS = ["plain", "quote\"d", "back\\slash", "tab\there", "new\nline", "ünïcødé", "日本",
         "emoji 🐘", "'single'", "</script>", "ctl\x01char", ""]
COSTS = [None, Decimal("0"), Decimal("12"), Decimal("12.5"), Decimal("0.0001"),
         Decimal("1234567890.1234"), Decimal("7.3333")]


def _item(rng: random.Random, n: int, region: str | None = "us-east-1") -> DiscoveredInstance:
    text = rng.choice(TEXTS)
    return DiscoveredInstance(
        provider=ProviderKind.AWS, provider_id=f"arn:aws:rds:x:1:db:{text}-{n}",
        kind=rng.choice([InstanceKind.INSTANCE, InstanceKind.CLUSTER]),
        name=f"{text}-{n:03d}", engine=rng.choice(["postgres", "mysql", "aurora-mysql"]),
        engine_version=rng.choice([None, "15.4"]),
        instance_class=rng.choice([None, "db.t3.micro"]), region=region,
        status=rng.choice(list(InstanceStatus)), raw_status=rng.choice([None, text]),
        tags=rng.choice([{}, {"env": "dev"}, {text: text, "ü": "\"q\""}, {"a": ""}]),
        endpoint_host=rng.choice([None, f"{n}.example"]),
        endpoint_port=rng.choice([None, 5432]), multi_az=rng.random() < 0.5,
        node_count=rng.choice([1, 3]),
        cluster_provider_id=rng.choice([None, f"arn:aws:rds:x:1:cluster:c{n}"]),
    )


def _expected(conn: sa.Connection, **kw: Any) -> tuple[list[dict[str, Any]], str | None]:
    items, nxt = inst.list_page(conn, InstanceFilter(**kw.pop("f", {})), **kw)
    return [InstanceOut.of(i).model_dump(mode="json") for i in items], nxt


def _rendered(conn: sa.Connection, **kw: Any) -> tuple[list[dict[str, Any]], str | None]:
    items, nxt = inst.list_page_json(conn, InstanceFilter(**kw.pop("f", {})), **kw)
    return [json.loads(i) for i in items], nxt


def _same_pages(ctx: Any, **kw: Any) -> int:
    """Walk every page of one listing both ways; returns the rows seen."""
    cursor: str | None = None
    seen = 0
    while True:
        with db.read_connection(ctx.engine) as conn:
            want, want_next = _expected(conn, cursor=cursor, **kw)
            got, got_next = _rendered(conn, cursor=cursor, **kw)
        assert got == want, kw
        assert [list(g) for g in got] == [list(InstanceOut.model_fields)] * len(got)
        assert got_next == want_next
        seen += len(got)
        if want_next is None:
            return seen
        cursor = want_next


@pytest.fixture
def fleet(ctx: Any) -> int:
    """Two accounts (one synced again later: its unchanged rows read as seen then, and
    a sixth of its rows went missing), instances with no account, times with and
    without microseconds, and every cost and text above."""
    rng = random.Random(20)
    with ctx.engine.begin() as conn:
        a = Account(id=uuid4(), name="a", provider=ProviderKind.AWS, config={})
        b = Account(id=uuid4(), name="b", provider=ProviderKind.AWS, config={})
        for acct in (a, b):
            accounts.insert(conn, acct, T0)
        items_a = [_item(rng, n, rng.choice(["us-east-1", "eu-west-1", None]))
                   for n in range(60)]
        items_b = [_item(rng, n) for n in range(60, 90)]
        costs = {d.provider_id: rng.choice(COSTS) for d in items_a + items_b}
        first = T0 + timedelta(microseconds=123456)
        inst.sync_account(conn, a.id, items_a, first, costs)
        accounts.update(conn, a.id, first, status=AccountStatus.CONNECTED, last_sync_at=first)
        inst.sync_account(conn, b.id, items_b, T0, costs)  # whole seconds
        accounts.update(conn, b.id, T0, status=AccountStatus.CONNECTED, last_sync_at=T0)
        later = T0 + timedelta(hours=2, microseconds=7)
        inst.sync_account(conn, a.id, [d for n, d in enumerate(items_a) if n % 6], later, costs)
        accounts.update(conn, a.id, later, status=AccountStatus.CONNECTED, last_sync_at=later)
        loose = [_item(rng, n) for n in range(90, 100)]
        inst.upsert_discovered(conn, loose, None, T0 + timedelta(seconds=1, microseconds=1),
                               costs | {d.provider_id: rng.choice(COSTS) for d in loose})
        ids = conn.execute(sa.select(inst.instances.c.id).limit(5)).scalars().all()
        for n, i in enumerate(ids):
            inst.set_status(conn, i, InstanceStatus.FAILED, "failed",
                            last_error=rng.choice(TEXTS) if n % 2 else None)
    return 100


def test_every_sort_renders_what_the_model_serialises(ctx: Any, fleet: int) -> None:
    for key in inst.SORT_KEYS:
        for sort in (key, f"-{key}"):
            assert _same_pages(ctx, sort=sort, limit=7) == fleet, sort


def test_the_merged_and_the_plain_last_seen_pages_render_alike(
    ctx: Any, fleet: int, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(inst, "MERGED_ACCOUNTS", 0)  # the plain derived ORDER BY
    for sort in ("last_seen_at", "-last_seen_at"):
        assert _same_pages(ctx, sort=sort, limit=9) == fleet


def test_filters_and_search_render_what_the_model_serialises(ctx: Any, fleet: int) -> None:
    for f in ({"region": "eu-west-1"}, {"missing": True}, {"missing": False},
              {"status": "failed"}, {"tags": {"env": "dev"}}, {"text": "ünï"},
              {"text": "quote\"d"}, {"text": "no such text"}, {"kind": "cluster"}):
        for sort in ("name", "-last_seen_at", "hourly_cost"):
            _same_pages(ctx, f=f, sort=sort, limit=4)


def test_statements_made_once_per_shape_render_what_the_model_serialises(
    ctx: Any, fleet: int,
) -> None:
    """list_page_json runs a statement made once per shape of the request (which
    filters, sort, cursor) with the values as parameters: several filters at once,
    twice the same shape with other values, and every parameter it has."""
    with ctx.engine.connect() as conn:
        a_id = conn.execute(sa.select(accounts.accounts.c.id)
                            .where(accounts.accounts.c.name == "a")).scalar_one()
    for f in ({"provider": "aws", "region": "us-east-1", "engine": "mysql"},
              {"provider": "aws", "region": "eu-west-1", "engine": "postgres"},
              {"account_id": a_id, "missing": False}, {"account_id": a_id, "missing": True},
              {"status": "running", "kind": "instance", "region": "us-east-1"},
              {"tags": {"env": "dev"}, "engine": "mysql"},
              {"tags": {"ü": "\"q\"", "plain": "plain"}, "region": "us-east-1"},
              {"text": "-0", "engine": "postgres", "missing": False},
              {"text": "back\\slash", "kind": "cluster"}, {"text": "%"}):
        for sort in ("name", "-name", "hourly_cost", "-first_seen_at", "region"):
            _same_pages(ctx, f=f, sort=sort, limit=3)
    assert any(shape[0] == ctx.engine.dialect.name for shape in inst._TEMPLATES)
    with db.read_connection(ctx.engine) as conn:  # an empty cursor is no cursor
        assert _rendered(conn, cursor="", f={"missing": True}) == _expected(
            conn, cursor="", f={"missing": True})


def test_the_api_listing_is_the_response_model_of_each_row(ctx: Any, fleet: int) -> None:
    _, key = ApiKeyService(ctx).create("reader", "viewer")
    client = TestClient(create_app(ctx))
    svc = InventoryService(ctx)
    names: list[str] = []
    cursor = None
    while True:
        params = {"limit": "30", "sort": "-last_seen_at"} | ({"cursor": cursor} if cursor else {})
        r = client.get("/api/v1/instances", params=params, headers={"X-API-Key": key})
        assert r.status_code == 200 and r.headers["content-type"] == "application/json"
        body = r.json()
        page = svc.list(svc.build_filter(), sort="-last_seen_at", limit=30, cursor=cursor)
        assert body == {
            "items": [InstanceOut.of(i).model_dump(mode="json") for i in page.items],
            "next_cursor": page.next_cursor,
        }
        names += [i["name"] for i in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert len(names) == len(set(names)) == fleet
