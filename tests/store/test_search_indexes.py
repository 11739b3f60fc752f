"""Search, tag filters and sorts through the indexes of migration 0017 give the answers
of the plain (unindexed) queries, on SQLite (FTS5 trigram, tag table) and PostgreSQL
(pg_trgm, JSONB GIN), also after syncs change and remove instances."""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest
import sqlalchemy as sa

from snoozeql.domain.types import (
    Account,
    AccountStatus,
    DiscoveredInstance,
    InstanceKind,
    InstanceStatus,
    ProviderKind,
)
from snoozeql.services.inventory import InventoryService
from snoozeql.store import accounts
from snoozeql.store import instances as inst
from snoozeql.store.instances import InstanceFilter
from snoozeql.store.instances import instances as t

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
# ASCII letters in both cases, LIKE's wildcards and escape, quotes (FTS5 syntax),
# spaces, and non-ASCII letters with case (é/É, ü/Ü, ñ) or without a one-letter upper
# case (ß).
ALPHABET = "abcAB%_\\\"' -.éÉüÜñßx1"


def _word(rng: random.Random, lo: int, hi: int) -> str:
    return "".join(rng.choice(ALPHABET) for _ in range(rng.randint(lo, hi)))


def _item(rng: random.Random, n: int) -> DiscoveredInstance:
    return DiscoveredInstance(
        provider=ProviderKind.AWS, provider_id=f"arn:{_word(rng, 0, 6)}:{n}",
        name=_word(rng, 1, 10), kind=InstanceKind.INSTANCE,
        engine=rng.choice(["postgres", "mysql", "aurora-PostgreSQL", "mariadb"]),
        engine_version="1", instance_class="db.t3.micro",
        region=rng.choice(["us-east-1", "eu-west-1", None]), status=InstanceStatus.RUNNING,
        raw_status="available",
        tags={rng.choice(["env", "team", "é%_"]): rng.choice(["dev", "prod", "Ü_%", ""])
              for _ in range(rng.randint(0, 3))},
        endpoint_host=rng.choice([None, f"{_word(rng, 1, 5)}.example"]),
    )


def _sync(conn: sa.Connection, account: Account, items: list[DiscoveredInstance],
          at: datetime) -> None:
    inst.sync_account(conn, account.id, items, at, {})
    accounts.update(conn, account.id, at, status=AccountStatus.CONNECTED, last_sync_at=at)


@contextmanager
def _no_indexes(conn: sa.Connection) -> Iterator[None]:
    """PostgreSQL may not use an index for the reference query (SQLite's plain
    predicate uses none)."""
    if conn.dialect.name == "postgresql":
        for name in ("enable_indexscan", "enable_bitmapscan", "enable_indexonlyscan"):
            conn.exec_driver_sql(f"SET LOCAL {name} = off")
    yield


def _reference_text(ctx: Any, text: str) -> set[UUID]:
    """The unindexed substring query."""
    with ctx.engine.begin() as conn, _no_indexes(conn):
        rows = conn.execute(sa.select(t.c.id).where(inst.plain_text_match(text))).all()
    return {r.id for r in rows}


def _indexed_text(ctx: Any, text: str) -> set[UUID]:
    svc = InventoryService(ctx)
    return {i.id for i in svc.list_all(svc.build_filter(text=text))}


def _queries(rng: random.Random, names: list[str]) -> list[str]:
    out = ["a", "A", "%", "_", "\\", "é", "É", "ß", '"', "'", " ", "ab", "%_", "_%", "a%",
           "éü", "post", "POST", "gresql", "example", ".ex", "\\%", "'\"'", "arn:"]
    for name in rng.sample(names, min(60, len(names))):
        i = rng.randrange(len(name))
        j = rng.randint(i + 1, min(len(name), i + 6))
        piece = name[i:j]
        out += [piece, piece.upper(), piece.lower()]
    out += [_word(rng, 1, 4) for _ in range(60)]
    return out


def _python_match(i: Any, text: str) -> bool:
    fields = [i.name, i.provider_id, i.engine, i.endpoint_host or ""]
    return any(text.lower() in f.lower() for f in fields)


def test_search_matches_the_plain_substring_query(
    ctx: Any, monkeypatch: pytest.MonkeyPatch,  # noqa: ANN401
) -> None:
    rng = random.Random(19)
    with ctx.engine.begin() as conn:
        account = Account(id=uuid4(), name="acct", provider=ProviderKind.AWS, config={})
        accounts.insert(conn, account, T0)
        items = [_item(rng, n) for n in range(400)]
        _sync(conn, account, items, T0)
    queries = _queries(rng, [d.name for d in items])
    _check_all(ctx, queries)
    # Texts with many candidates are checked along the sort order instead: the same.
    monkeypatch.setattr(inst, "SELECTIVE_ROWS", 3)
    _check_all(ctx, queries)
    monkeypatch.undo()

    # A sync that renames a third, changes endpoints, drops a sixth (missing), and
    # instances deleted outright: the FTS table and triggers follow.
    kept = [d for n, d in enumerate(items) if n % 6]
    changed = [
        replace(d, **{"name": _word(rng, 1, 10),
                              "endpoint_host": rng.choice([None, "new.host"])})
        if n % 3 == 0 else d
        for n, d in enumerate(kept)
    ]
    with ctx.engine.begin() as conn:
        _sync(conn, account, changed, T0 + timedelta(hours=1))
        ids = [r.id for r in conn.execute(sa.select(t.c.id).order_by(t.c.id).limit(50))]
        for i in ids:
            inst.delete(conn, i)
        left = conn.execute(sa.select(t.c.id).limit(1)).scalar_one()
        inst.set_status(conn, left, InstanceStatus.STOPPED, "stopped")
    _check_all(ctx, _queries(rng, [d.name for d in changed]) + ["new.host", "new"])


def _check_all(ctx: Any, queries: list[str]) -> None:  # noqa: ANN401
    svc = InventoryService(ctx)
    everything = svc.list_all(svc.build_filter())
    assert everything
    hits = 0
    for q in queries:
        got = _indexed_text(ctx, q)
        assert got == _reference_text(ctx, q), f"search {q!r} differs from the plain query"
        if q.isascii():  # unicode case folding is the store's own; ASCII agrees anywhere
            expected = {i.id for i in everything if _python_match(i, q)}
            assert got == expected, f"search {q!r} differs from a substring match"
        hits += bool(got)
    assert hits > len(queries) // 3  # the queries do find things


def test_search_pages_and_counts_with_the_index(ctx: Any) -> None:  # noqa: ANN401
    rng = random.Random(7)
    with ctx.engine.begin() as conn:
        inst.upsert_discovered(conn, [_item(rng, n) for n in range(300)], None, T0, {})
    svc = InventoryService(ctx)
    for q in ("postgres", "gres", "a_", "ex"):
        f = svc.build_filter(text=q)
        pages: list[UUID] = []
        cursor = None
        while True:
            page = svc.list(f, limit=7, cursor=cursor, sort="-region")
            pages += [i.id for i in page.items]
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        assert len(pages) == len(set(pages))
        assert set(pages) == _reference_text(ctx, q)
        with ctx.engine.connect() as conn:
            assert inst.count(conn, f) == len(pages)


def test_tag_filters_match_the_stored_tags(
    ctx: Any, monkeypatch: pytest.MonkeyPatch,  # noqa: ANN401
) -> None:
    rng = random.Random(3)
    with ctx.engine.begin() as conn:
        account = Account(id=uuid4(), name="acct", provider=ProviderKind.AWS, config={})
        accounts.insert(conn, account, T0)
        items = [_item(rng, n) for n in range(300)]
        _sync(conn, account, items, T0)
    _check_tags(ctx)
    monkeypatch.setattr(inst, "SELECTIVE_ROWS", 3)  # common tags: checked row by row
    _check_tags(ctx)
    monkeypatch.undo()
    retagged = [
        replace(d, **{"tags": {"env": rng.choice(["dev", "prod"])}})
        if n % 2 else d
        for n, d in enumerate(items) if n % 5
    ]
    with ctx.engine.begin() as conn:
        _sync(conn, account, retagged, T0 + timedelta(hours=1))
        for r in conn.execute(sa.select(t.c.id).limit(20)).all():
            inst.delete(conn, r.id)
    _check_tags(ctx)


def _check_tags(ctx: Any) -> None:  # noqa: ANN401
    svc = InventoryService(ctx)
    everything = svc.list_all(svc.build_filter())
    pairs = [("env", "dev"), ("env", "prod"), ("team", "Ü_%"), ("é%_", ""), ("é%_", "dev"),
             ("env", "nothing"), ("nokey", "dev")]
    for key, value in pairs:
        got = {i.id for i in svc.list_all(svc.build_filter(tags={key: value}))}
        assert got == {i.id for i in everything if i.tags.get(key) == value}, (key, value)
    both = {i.id for i in svc.list_all(svc.build_filter(tags={"env": "dev", "team": "prod"}))}
    assert both == {i.id for i in everything
                    if i.tags.get("env") == "dev" and i.tags.get("team") == "prod"}
    text_and_tag = svc.list_all(svc.build_filter(tags={"env": "dev"}, text="postgres"))
    assert {i.id for i in text_and_tag} == {
        i.id for i in everything if i.tags.get("env") == "dev" and _python_match(i, "postgres")
    }


def _plan(conn: sa.Connection, q: Any) -> str:  # noqa: ANN401
    compiled = q.compile(conn, compile_kwargs={"literal_binds": True})
    prefix = "EXPLAIN QUERY PLAN " if conn.dialect.name == "sqlite" else "EXPLAIN "
    rows = conn.exec_driver_sql(prefix + str(compiled)).all()
    return "\n".join(str(tuple(r)) for r in rows)


def _filtered(conn: sa.Connection, f: InstanceFilter) -> Any:  # noqa: ANN401
    """The rows a filter selects (what a page and a count start from)."""
    return sa.select(t.c.id).where(*inst._where(f, conn))


def test_the_indexes_exist_and_are_used(ctx: Any) -> None:  # noqa: ANN401
    with ctx.engine.begin() as conn:
        inst.upsert_discovered(conn, [_item(random.Random(n), n) for n in range(50)], None,
                               T0, {})
    with ctx.engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            # Not what the planner would pick for 50 rows: whether it can use them.
            conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
        search = _plan(conn, _filtered(conn, InstanceFilter(text="postgres")))
        tags = _plan(conn, _filtered(conn, InstanceFilter(tags={"env": "dev"})))
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql("SET LOCAL enable_sort = off")
        region = _plan(conn, inst.listing_query(conn, InstanceFilter(), sort="-region"))
    if ctx.engine.dialect.name == "sqlite":
        # The candidates come from the FTS5 table and the tag table's index.
        with ctx.engine.connect() as conn:
            search = _plan(conn, sa.text(
                "SELECT rowid FROM instances_search WHERE instances_search MATCH "
                "'\"postgres\"' LIMIT 2001"))
            tags = _plan(conn, sa.text(
                "SELECT instance_id FROM instance_tags WHERE key = 'env' AND value = 'dev' "
                "LIMIT 2001"))
        assert "VIRTUAL TABLE INDEX" in search, search
        assert "ix_instance_tags_key_value" in tags, tags
    else:
        for column in ("name", "provider_id", "engine", "endpoint_host"):
            assert f"ix_instances_trgm_{column}" in search, search
        assert "ix_instances_tags" in tags, tags
    assert "ix_instances_sort_region" in region, region


@pytest.mark.parametrize("text", ["ab", "a", "é"])
def test_short_searches_fall_back_to_the_scan(ctx: Any, text: str) -> None:  # noqa: ANN401
    with ctx.engine.begin() as conn:
        inst.upsert_discovered(conn, [_item(random.Random(n), n) for n in range(80)], None,
                               T0, {})
    assert _indexed_text(ctx, text) == _reference_text(ctx, text)
