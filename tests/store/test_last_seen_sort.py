"""``sort=last_seen_at`` merges index walks per account (migration 0023); its pages are
those of the plain ORDER BY over the derived value, on SQLite and PostgreSQL: accounts
synced at different times, never synced, rows stored later than their account's sync,
rows without an account, missing rows, ties across all of them, both directions."""

from __future__ import annotations

import random
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
from snoozeql.store import accounts
from snoozeql.store import instances as inst
from snoozeql.store.instances import InstanceFilter

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
T1, T2, T3 = (T0 + timedelta(hours=h) for h in (1, 2, 3))


class _Fleet:
    def __init__(self, conn: sa.Connection) -> None:
        self.conn = conn
        self.rng = random.Random(5)
        self.n = 0

    def items(self, count: int) -> list[DiscoveredInstance]:
        out = []
        for _ in range(count):
            self.n += 1
            out.append(DiscoveredInstance(
                provider=ProviderKind.AWS, provider_id=f"arn:db:{self.n}",
                name=self.rng.choice(["alpha", "beta", "gamma"]), kind=InstanceKind.INSTANCE,
                engine=self.rng.choice(["postgres", "mysql"]), engine_version="1",
                instance_class="db.t3.micro", region="us-east-1",
                status=InstanceStatus.RUNNING, raw_status="available",
                tags={"env": self.rng.choice(["dev", "prod"])},
            ))
        return out

    def account(self, name: str) -> UUID:
        a = Account(id=uuid4(), name=name, provider=ProviderKind.AWS, config={})
        accounts.insert(self.conn, a, T0)
        return a.id

    def sync(self, account_id: UUID, items: list[DiscoveredInstance], at: datetime) -> None:
        inst.sync_account(self.conn, account_id, items, at, {})
        accounts.update(self.conn, account_id, at, status=AccountStatus.CONNECTED,
                        last_sync_at=at)


def _seed(ctx: Any) -> dict[str, UUID]:  # noqa: ANN401
    with ctx.engine.begin() as conn:
        f = _Fleet(conn)
        ids = {name: f.account(name) for name in "abcdefg"}
        # a: two syncs; the second misses 10 (missing, stored T0), 30 read as T1.
        a = f.items(40)
        f.sync(ids["a"], a, T0)
        f.sync(ids["a"], a[:30], T1)
        # b: one sync at T1 (stored = its last sync): a tie with a's rows at T1.
        f.sync(ids["b"], f.items(25), T1)
        # c: T0, then T2 with 5 changed, then T3 missing 4 (stored T2).
        c = f.items(20)
        f.sync(ids["c"], c, T0)
        c = [replace(d, engine="mariadb") if n < 5 else d
             for n, d in enumerate(c)]
        f.sync(ids["c"], c, T2)
        f.sync(ids["c"], c[4:], T3)
        # d: never synced; rows written without a sync, read as stored.
        inst.upsert_discovered(conn, f.items(12), ids["d"], T1, {})
        inst.upsert_discovered(conn, f.items(8), ids["d"], T0 + timedelta(minutes=30), {})
        # e: synced at T0; some rows written later (stored after its last sync).
        e = f.items(10)
        f.sync(ids["e"], e, T0)
        inst.upsert_discovered(conn, e[:5], ids["e"], T2, {})
        inst.upsert_discovered(conn, f.items(3), ids["e"], T1, {})
        # f: synced, no instances.
        accounts.update(conn, ids["f"], T2, last_sync_at=T2)
        # g: T1, then T3 missing 5 (stored T1, a tie with the rows read as T1).
        g = f.items(15)
        f.sync(ids["g"], g, T1)
        f.sync(ids["g"], g[:10], T3)
        # Without an account.
        inst.upsert_discovered(conn, f.items(6), None, T1, {})
        inst.upsert_discovered(conn, f.items(4), None, T3, {})
    return ids


def _reference(ctx: Any, f: InstanceFilter, desc: bool) -> list[tuple[UUID, datetime]]:  # noqa: ANN401
    with ctx.engine.connect() as conn:
        q = inst.derived_order_query(conn, f, "last_seen_at", desc=desc, limit=10_000,
                                     after=None)
        return [(r.id, r.last_seen_at) for r in conn.execute(q)]


def _pages(ctx: Any, f: InstanceFilter, sort: str, limit: int  # noqa: ANN401
           ) -> list[list[tuple[UUID, datetime]]]:
    pages = []
    cursor = None
    with ctx.engine.connect() as conn:
        while True:
            page, cursor = inst.list_page(conn, f, sort=sort, limit=limit, cursor=cursor)
            pages.append([(i.id, i.last_seen_at) for i in page])
            if cursor is None:
                return pages


def _check(ctx: Any, f: InstanceFilter, limits: tuple[int, ...]) -> int:  # noqa: ANN401
    total = 0
    for desc in (False, True):
        expected = _reference(ctx, f, desc)
        for limit in limits:
            pages = _pages(ctx, f, "-last_seen_at" if desc else "last_seen_at", limit)
            assert [r for p in pages for r in p] == expected, (f, desc, limit)
            # Every page but the last is full (the keyset walk skips nothing).
            assert all(len(p) == limit for p in pages[:-1]), (f, desc, limit)
        total = len(expected)
    return total


def test_last_seen_pages_are_those_of_the_derived_order(
    ctx: Any, monkeypatch: pytest.MonkeyPatch,  # noqa: ANN401
) -> None:
    ids = _seed(ctx)
    everything = _reference(ctx, InstanceFilter(), False)
    assert len(everything) == 143
    seen = [s for _, s in everything]
    # The derived values the data was made to have, ties across accounts included.
    assert seen.count(T1) == 30 + 25 + 12 + 3 + 5 + 6
    assert seen.count(T3) == 16 + 10 + 4
    assert _check(ctx, InstanceFilter(), (1, 4, 13, 500)) == 143
    assert _check(ctx, InstanceFilter(account_id=ids["a"]), (3, 100)) == 40
    assert _check(ctx, InstanceFilter(account_id=ids["d"]), (3,)) == 20
    assert _check(ctx, InstanceFilter(account_id=ids["f"]), (3,)) == 0
    assert _check(ctx, InstanceFilter(missing=True), (2, 100)) == 10 + 4 + 5
    assert _check(ctx, InstanceFilter(missing=False), (7,)) == 143 - 19
    assert _check(ctx, InstanceFilter(tags={"env": "dev"}), (5,)) > 0
    assert _check(ctx, InstanceFilter(engine="mariadb"), (2,)) == 5
    searched = _check(ctx, InstanceFilter(text="arn:db:1"), (4,))
    assert searched == 1 + 10 + 44  # arn:db:1, :10-:19 and :100-:143
    # Searches with many matches (on PostgreSQL too) and common tags on SQLite: walked.
    monkeypatch.setattr(inst, "SELECTIVE_ROWS", 3)
    assert _check(ctx, InstanceFilter(text="arn:db:1"), (4,)) == searched
    assert _check(ctx, InstanceFilter(tags={"env": "prod"}), (6,)) > 3


def test_more_accounts_than_merged_sort_the_rows(
    ctx: Any, monkeypatch: pytest.MonkeyPatch,  # noqa: ANN401
) -> None:
    ids = _seed(ctx)
    with ctx.engine.connect() as conn:
        merged = str(inst.listing_query(conn, InstanceFilter(), sort="last_seen_at"))
    assert "UNION ALL" in merged
    monkeypatch.setattr(inst, "MERGED_ACCOUNTS", 6)
    with ctx.engine.connect() as conn:
        plain = str(inst.listing_query(conn, InstanceFilter(), sort="last_seen_at"))
        one = str(inst.listing_query(conn, InstanceFilter(account_id=ids["a"]),
                                     sort="last_seen_at"))
    assert "UNION ALL" not in plain
    assert "UNION ALL" in one  # one account asked for: merged
    with ctx.engine.connect() as conn:
        missing = str(inst.listing_query(conn, InstanceFilter(missing=True),
                                         sort="-last_seen_at"))
    # Missing rows read as stored: one walk, no account's.
    assert "UNION ALL" not in missing and "account_id =" not in missing, missing
    assert _check(ctx, InstanceFilter(), (9,)) == 143


def test_a_cursor_from_before_a_sync_still_pages(ctx: Any) -> None:  # noqa: ANN401
    ids = _seed(ctx)
    with ctx.engine.connect() as conn:
        _, cursor = inst.list_page(conn, InstanceFilter(), sort="last_seen_at", limit=20)
    with ctx.engine.begin() as conn:
        # b's rows now read as T3 (unchanged, not rewritten): they move past the cursor.
        accounts.update(conn, ids["b"], T3, last_sync_at=T3)
    with ctx.engine.connect() as conn:
        page, _ = inst.list_page(conn, InstanceFilter(), sort="last_seen_at", limit=500,
                                 cursor=cursor)
        after = inst.derived_order_query(conn, InstanceFilter(), "last_seen_at", desc=False,
                                         limit=500, after=inst._decode_cursor(cursor or "",
                                                                              "last_seen_at"))
        expected = [r.id for r in conn.execute(after)]
    assert [i.id for i in page] == expected
    assert len(expected) == 143 - 20


def _plan(conn: sa.Connection, q: Any) -> str:  # noqa: ANN401
    compiled = q.compile(conn, compile_kwargs={"literal_binds": True})
    prefix = "EXPLAIN QUERY PLAN " if conn.dialect.name == "sqlite" else "EXPLAIN "
    return "\n".join(str(tuple(r)) for r in conn.exec_driver_sql(prefix + str(compiled)))


@pytest.mark.parametrize("sort", ["last_seen_at", "-last_seen_at"])
def test_the_streams_are_read_from_their_indexes(ctx: Any, sort: str) -> None:  # noqa: ANN401
    _seed(ctx)
    with ctx.engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            # Not what the planner picks for 143 rows: whether it can use them.
            conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
            conn.exec_driver_sql("SET LOCAL enable_bitmapscan = off")
        _, cursor = inst.list_page(conn, InstanceFilter(), sort=sort, limit=40)
        plan = _plan(conn, inst.listing_query(conn, InstanceFilter(), sort=sort, cursor=cursor))
    for index in ("ix_instances_seen_stored", "ix_instances_seen_by_account",
                  "ix_instances_account_id_id"):
        assert index in plan, plan
    if ctx.engine.dialect.name == "sqlite":
        # Each stream is read in its order: the only sort is the merge's.
        assert plan.count("USE TEMP B-TREE FOR ORDER BY") == 1, plan
