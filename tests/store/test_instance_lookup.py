"""Looking one instance up by an id prefix or a provider id (``instances show REF``,
``GET /api/v1/instances/{ref}``) reads an index on both stores, with the answers of the
plain comparisons it replaced (the id as text with its dashes removed; provider_id
alone), also at the edges of a prefix's range."""

from __future__ import annotations

import random
from typing import Any
from uuid import UUID

import sqlalchemy as sa

from snoozeql.domain.types import DiscoveredInstance, InstanceKind, InstanceStatus, ProviderKind
from snoozeql.domain.validation import id_prefix
from snoozeql.services.inventory import InventoryService
from snoozeql.store import instances as inst
from snoozeql.store.instances import instances as t
from tests.store.test_search_indexes import T0, _plan


def _item(n: int, provider: ProviderKind, provider_id: str) -> DiscoveredInstance:
    return DiscoveredInstance(
        provider=provider, provider_id=provider_id, name=f"db-{n:04d}",
        kind=InstanceKind.INSTANCE, engine="postgres", engine_version="16",
        instance_class=None, region="us-east-1", status=InstanceStatus.RUNNING,
        raw_status="available", tags={},
    )


def _fleet(ctx: Any) -> list[UUID]:  # noqa: ANN401
    """240 instances, most of whose ids are then set to: random ones, and around four
    prefixes the lowest and highest ids they cover and their neighbours just outside.
    Returns every id in the store."""
    providers = list(ProviderKind)
    items = [_item(n, providers[n % len(providers)], f"pid-{n % 80}") for n in range(240)]
    rng = random.Random(19)
    ids = [UUID(int=rng.getrandbits(128)) for _ in range(200)]
    for p in ("0123abcd", "0123abcd9", "ffffffff", "00000000"):
        lo, hi = int(p.ljust(32, "0"), 16), int(p.ljust(32, "f"), 16)
        ids += [UUID(int=v) for v in (lo, lo + 1, hi - 1, hi)
                if 0 <= v < 2**128]
        ids += [UUID(int=v) for v in (lo - 1, hi + 1) if 0 <= v < 2**128]
    ids = list(dict.fromkeys(ids))
    with ctx.engine.begin() as conn:
        inst.upsert_discovered(conn, items, None, T0, {})
        rows = conn.execute(sa.select(t.c.id).order_by(t.c.name)).scalars().all()
        for old, new in zip(rows, ids, strict=False):
            conn.execute(sa.update(t).where(t.c.id == old).values(id=new))
        return list(conn.execute(sa.select(t.c.id)).scalars())


def test_an_id_prefix_finds_what_the_text_comparison_found(ctx: Any) -> None:  # noqa: ANN401
    ids = _fleet(ctx)
    rng = random.Random(7)
    prefixes = ["0123abcd", "0123abcd9", "0123ABCD-9", "ffffffff", "00000000",
                "0123abcc", "0123abce", "fffffffe"]
    for u in rng.sample(ids, 40):
        prefixes.append(u.hex[:rng.randint(8, 32)])
        prefixes.append(str(u)[:rng.randint(9, 36)])  # with its dashes, as tables print
    with ctx.engine.connect() as conn:
        for ref in prefixes:
            digits = id_prefix(ref)
            assert digits is not None, ref
            got = {i.id for i in inst.find_by_id_prefix(conn, digits, limit=1000)}
            assert got == {u for u in ids if u.hex.startswith(digits)}, ref
    one = next(u for u in ids if sum(v.hex.startswith(u.hex[:12]) for v in ids) == 1)
    assert InventoryService(ctx).get(str(one)[:13]).id == one  # through the service


def test_a_provider_id_finds_each_provider_s_instance(ctx: Any) -> None:  # noqa: ANN401
    _fleet(ctx)
    with ctx.engine.connect() as conn:
        everything = conn.execute(sa.select(t.c.id, t.c.provider_id)).all()
        for pid in ("pid-0", "pid-7", "pid-79", "nosuch"):
            got = {i.id for i in inst.find(conn, provider_id=pid)}
            assert got == {r.id for r in everything if r.provider_id == pid}


def test_the_lookups_read_an_index(ctx: Any) -> None:  # noqa: ANN401
    _fleet(ctx)
    with ctx.engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            # Not what the planner picks for 240 rows: whether it can use an index.
            conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
        by_prefix = _plan(conn, inst.id_prefix_query("0123abcd", 10))
        by_pid = _plan(conn, inst.find_query(provider_id="pid-7"))
    if ctx.engine.dialect.name == "sqlite":
        assert "SEARCH instances USING" in by_prefix and "id>? AND id<?" in by_prefix \
            .replace("=", ""), by_prefix  # the primary key's range
        assert "INDEX" in by_pid and "(provider=? AND provider_id=?)" in by_pid, by_pid
    else:
        # Index conditions, not a walk of a whole index with a filter.
        assert "pk_instances" in by_prefix and "Index Cond: ((id >=" in by_prefix, by_prefix
        assert "uq_instances_provider_provider_id" in by_pid \
            and "Index Cond: (((provider)::text = ANY" in by_pid, by_pid
