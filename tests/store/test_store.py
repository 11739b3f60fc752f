"""The store on SQLite and PostgreSQL: migrations, upserts, missing instances, paging."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from uuid import uuid4

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from snoozeql.domain.errors import ConflictError, NotFoundError, ValidationError
from snoozeql.domain.types import (
    Account,
    AccountStatus,
    DiscoveredInstance,
    Instance,
    InstanceKind,
    InstanceStatus,
    ProviderKind,
    Role,
)
from snoozeql.store import accounts, actions, apikeys, db, sync_parts
from snoozeql.store import instances as inst
from snoozeql.store.instances import InstanceFilter
from snoozeql.store.schema import full_metadata
from snoozeql.store.search import unmodelled
from tests.support.store import create_pg_database, drop_pg_database

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def _discovered(i: int, region: str = "us-east-1", **kw) -> DiscoveredInstance:  # noqa: ANN003
    base = dict(
        provider=ProviderKind.AWS,
        provider_id=f"arn:aws:rds:{region}:123456789012:db:db-{i:05d}",
        name=f"db-{i:05d}",
        kind=InstanceKind.INSTANCE,
        engine="postgres" if i % 2 else "mysql",
        engine_version="15.4",
        instance_class="db.t3.micro",
        region=region,
        status=InstanceStatus.RUNNING,
        raw_status="available",
        tags={"env": "dev" if i % 3 else "prod", "team": f"t{i % 5}"},
    )
    base.update(kw)
    return DiscoveredInstance(**base)  # type: ignore[arg-type]


def _account(conn: sa.Connection) -> Account:
    a = Account(id=uuid4(), name=f"acct-{uuid4().hex[:6]}", provider=ProviderKind.AWS,
                config={"regions": ["us-east-1"]})
    accounts.insert(conn, a, T0)
    return a


@pytest.mark.parametrize("dialect", ["sqlite", "postgres"])
def test_migrations_upgrade_downgrade_and_match_tables(dialect: str, tmp_path) -> None:  # noqa: ANN001
    url = f"sqlite:///{tmp_path / 'm.db'}" if dialect == "sqlite" else create_pg_database()
    engine = db.create_engine(url)
    try:
        db.upgrade(engine)
        assert db.current_revision(engine) == db.head_revision()
        with engine.connect() as conn:
            # The search and sort indexes of 0017 are made by the migration only.
            mc = MigrationContext.configure(conn, opts={
                "include_name": lambda name, type_, _parents: not unmodelled(name, type_),
            })
            diff = compare_metadata(mc, full_metadata())
        assert diff == [], f"migrations and the store's tables disagree: {diff}"
        db.downgrade(engine, "base")
        assert db.current_revision(engine) is None
        assert set(sa.inspect(engine).get_table_names()) <= {"alembic_version"}
        db.upgrade(engine)
        assert "instances" in sa.inspect(engine).get_table_names()
    finally:
        engine.dispose()
        if dialect == "postgres":
            drop_pg_database(url)


def _sync(conn: sa.Connection, account: Account, items: list[DiscoveredInstance],
          at: datetime, costs: dict | None = None) -> inst.SyncWrite:
    """What DiscoveryService.sync writes for one successful sync."""
    written = inst.sync_account(conn, account.id, items, at, costs or {})
    accounts.update(conn, account.id, at, status=AccountStatus.CONNECTED, last_sync_at=at)
    return written


def test_sync_keeps_identity_and_first_seen_and_writes_only_changes(ctx) -> None:  # noqa: ANN001
    with ctx.engine.begin() as conn:
        a = _account(conn)
        assert _sync(conn, a, [_discovered(i) for i in range(2500)], T0) == inst.SyncWrite(
            new=2500)
    with ctx.engine.connect() as conn:
        before = {i.provider_id: i for i in inst.iter_all(conn)}
    assert len(before) == 2500

    # The next sync: 100 instances stopped and got a price, the rest are as they were.
    later = T0 + timedelta(minutes=5)
    items = [
        _discovered(i, status=InstanceStatus.STOPPED, raw_status="stopped") if i < 100
        else _discovered(i)
        for i in range(2500)
    ]
    costs = {d.provider_id: Decimal("1.8") for d in items[:100]}
    with ctx.engine.begin() as conn:
        assert _sync(conn, a, items, later, costs) == inst.SyncWrite(changed=100, unchanged=2400)
    with ctx.engine.connect() as conn:
        after = {i.provider_id: i for i in inst.iter_all(conn)}
        raw_seen = dict(conn.execute(sa.select(inst.instances.c.provider_id,
                                               inst.instances.c.last_seen_at)).all())
    assert len(after) == 2500
    changed, same = after[items[7].provider_id], after[items[700].provider_id]
    assert changed.id == before[items[7].provider_id].id
    assert changed.first_seen_at == T0 and changed.last_seen_at == later
    assert changed.status == InstanceStatus.STOPPED and changed.raw_status == "stopped"
    assert changed.hourly_cost_cents == Decimal("1.8")
    assert changed.tags["team"] == "t2"
    # The unchanged row was not rewritten, yet it reads as seen by this sync.
    assert raw_seen[items[700].provider_id] == T0
    assert same.last_seen_at == later and same.status == InstanceStatus.RUNNING
    with ctx.engine.connect() as conn:
        page, _ = inst.list_page(conn, InstanceFilter(), sort="-last_seen_at", limit=3000)
    assert {i.last_seen_at for i in page} == {later}


def test_tag_order_does_not_count_as_a_change(ctx) -> None:  # noqa: ANN001
    with ctx.engine.begin() as conn:
        a = _account(conn)
        _sync(conn, a, [_discovered(1, tags={"a": "1", "b": "2"})], T0)
        again = _sync(conn, a, [_discovered(1, tags={"b": "2", "a": "1"})], T0 + timedelta(1))
    assert again == inst.SyncWrite(unchanged=1)


def test_a_status_set_by_an_action_is_overwritten_by_the_next_sync(ctx) -> None:  # noqa: ANN001
    with ctx.engine.begin() as conn:
        a = _account(conn)
        _sync(conn, a, [_discovered(1)], T0)
        [row] = inst.find(conn, name="db-00001")
        inst.set_status(conn, row.id, InstanceStatus.STOPPING, "stopping")
        # AWS still reports "available": the same as the last sync, but not the store.
        again = _sync(conn, a, [_discovered(1)], T0 + timedelta(minutes=5))
        [row] = inst.find(conn, name="db-00001")
    assert again == inst.SyncWrite(changed=1)
    assert row.status == InstanceStatus.RUNNING and row.raw_status == "available"


def test_awkward_strings_round_trip(ctx) -> None:  # noqa: ANN001
    odd = "tab\there\nnew\\line\\N \u00e9\u00e8 \"q\" \\"
    weird = _discovered(1, name="weird\tname\\N", tags={"k\tey": odd, "x": "\\N"},
                        extra={"note": odd, "n": [1, 2.5, None, True]}, raw_status=None,
                        engine_version=None, endpoint_port=None)
    with ctx.engine.begin() as conn:
        a = _account(conn)
        _sync(conn, a, [weird, _discovered(2)], T0)
        [row] = inst.find(conn, name="weird\tname\\N")
        assert _sync(conn, a, [weird, _discovered(2)], T0 + timedelta(1)).unchanged == 2
    assert row.tags == {"k\tey": odd, "x": "\\N"}
    assert row.extra == {"note": odd, "n": [1, 2.5, None, True]}
    assert row.raw_status is None and row.engine_version is None and row.endpoint_port is None


def test_an_instance_moving_between_accounts_is_taken_over(ctx) -> None:  # noqa: ANN001
    with ctx.engine.begin() as conn:
        a, b = _account(conn), _account(conn)
        _sync(conn, a, [_discovered(i) for i in range(3)], T0)
        # The same ARN now reported through account b (say, a second role on it).
        written = _sync(conn, b, [_discovered(2), _discovered(3)], T0 + timedelta(1))
        moved = inst.find(conn, name="db-00002")
    assert written.new == 2  # neither was b's before
    assert [m.account_id for m in moved] == [b.id]


def test_a_sync_of_a_deleted_account_writes_nothing(ctx) -> None:  # noqa: ANN001
    with ctx.engine.begin() as conn:
        a = _account(conn)
        accounts.delete(conn, a.id)
    with pytest.raises(NotFoundError), ctx.engine.begin() as conn:
        inst.sync_account(conn, a.id, [_discovered(1)], T0, {})
    with ctx.engine.connect() as conn:
        assert inst.count(conn, InstanceFilter()) == 0


def test_missing_since_set_and_cleared(ctx) -> None:  # noqa: ANN001
    with ctx.engine.begin() as conn:
        a = _account(conn)
        other = _account(conn)
        _sync(conn, a, [_discovered(i) for i in range(10)], T0)
        _sync(conn, other, [_discovered(100, region="eu-west-1")], T0)
    t1 = T0 + timedelta(minutes=5)
    with ctx.engine.begin() as conn:
        _sync(conn, a, [_discovered(i) for i in range(10)], t1)
    t2 = T0 + timedelta(minutes=10)
    with ctx.engine.begin() as conn:
        assert _sync(conn, a, [_discovered(i) for i in range(8)], t2).missing == 2
    with ctx.engine.connect() as conn:
        missing = {i.name: i for i in inst.iter_all(conn, InstanceFilter(missing=True))}
    # Only this account's unseen instances; the other account is untouched. They were
    # last seen by the previous sync, even though that sync did not rewrite them.
    assert set(missing) == {"db-00008", "db-00009"}
    assert {(i.missing_since, i.last_seen_at) for i in missing.values()} == {(t2, t1)}

    t3 = T0 + timedelta(minutes=15)
    with ctx.engine.begin() as conn:
        # Still missing: counted once, when it went missing.
        assert _sync(conn, a, [_discovered(i) for i in range(8)], t3).missing == 0
        [gone] = inst.find(conn, name="db-00009")
    assert gone.last_seen_at == t1 and gone.missing_since == t2

    t4 = T0 + timedelta(minutes=20)
    with ctx.engine.begin() as conn:
        written = _sync(conn, a, [_discovered(i) for i in range(10)], t4)
    assert written == inst.SyncWrite(changed=2, unchanged=8)
    with ctx.engine.connect() as conn:
        assert inst.count(conn, InstanceFilter(missing=True)) == 0
        back = inst.find(conn, name="db-00009")[0]
        assert back.first_seen_at == T0  # the same record came back
        assert back.last_seen_at == t4 and back.missing_since is None


@pytest.mark.parametrize(
    "sort", ["name", "-name", "engine", "-region", "status", "hourly_cost", "-last_seen_at"])
def test_cursor_pages_cover_everything_once_in_order(ctx, sort: str) -> None:  # noqa: ANN001
    with ctx.engine.begin() as conn:
        a = _account(conn)
        items = [_discovered(i, region=("us-east-1", "eu-west-1")[i % 2]) for i in range(237)]
        costs = {d.provider_id: Decimal(i % 4) if i % 5 else None for i, d in enumerate(items)}
        _sync(conn, a, items, T0, costs)
        # A later sync misses 37 of them: last_seen_at now has two values, one derived.
        _sync(conn, a, items[:200], T0 + timedelta(hours=1), costs)
    seen: list = []
    cursor = None
    with ctx.engine.connect() as conn:
        while True:
            page, cursor = inst.list_page(conn, InstanceFilter(), sort=sort, limit=50,
                                          cursor=cursor)
            seen.extend(page)
            if cursor is None:
                break
        everything, _ = inst.list_page(conn, InstanceFilter(), sort=sort, limit=1000)
    assert [i.id for i in seen] == [i.id for i in everything]
    assert len({i.id for i in seen}) == 237
    if sort == "-last_seen_at":
        assert [i.last_seen_at for i in seen] == [T0 + timedelta(hours=1)] * 200 + [T0] * 37


def test_filters_by_tag_text_and_fields(ctx) -> None:  # noqa: ANN001
    with ctx.engine.begin() as conn:
        a = _account(conn)
        _sync(conn, a, [_discovered(i) for i in range(30)], T0)
    with ctx.engine.connect() as conn:
        prod = inst.count(conn, InstanceFilter(tags={"env": "prod"}))
        assert prod == 10
        both = inst.count(conn, InstanceFilter(tags={"env": "prod", "team": "t0"}))
        assert both == len([i for i in range(30) if i % 3 == 0 and i % 5 == 0])
        assert inst.count(conn, InstanceFilter(tags={"nope": "x"})) == 0
        assert inst.count(conn, InstanceFilter(engine="mysql")) == 15
        assert inst.count(conn, InstanceFilter(text="DB-0001")) == 10
        assert inst.count(conn, InstanceFilter(text="100%")) == 0
        assert inst.count(conn, InstanceFilter(account_id=a.id, status="running")) == 30


def test_bad_cursor_is_a_validation_error(ctx) -> None:  # noqa: ANN001
    with ctx.engine.connect() as conn, pytest.raises(ValidationError):
        inst.list_page(conn, InstanceFilter(), cursor="not-a-cursor")
    with ctx.engine.connect() as conn, pytest.raises(ValidationError, match="cannot sort"):
        inst.list_page(conn, InstanceFilter(), sort="password")


def test_action_log_is_append_only(ctx) -> None:  # noqa: ANN001
    with ctx.engine.begin() as conn:
        actions.append(conn, at=T0, finished_at=T0, actor="cli", action="stop",
                       reason="manual", result="ok", instance_name="db-1")
    with pytest.raises(sa.exc.DBAPIError, match="append-only"), ctx.engine.begin() as conn:
        conn.execute(sa.text("UPDATE actions SET result = 'failed'"))
    with pytest.raises(sa.exc.DBAPIError, match="append-only"), ctx.engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM actions"))
    with ctx.engine.connect() as conn:
        [rec] = actions.list_recent(conn)
    assert rec.result == "ok" and rec.at == T0


def test_naive_timestamps_are_refused(ctx) -> None:  # noqa: ANN001
    with pytest.raises(sa.exc.StatementError, match="naive"), ctx.engine.begin() as conn:
        actions.append(conn, at=datetime(2026, 1, 1), finished_at=None, actor="cli",
                       action="stop", reason="manual", result="ok")


def test_a_taken_account_or_key_name_is_a_conflict(ctx) -> None:  # noqa: ANN001
    with ctx.engine.begin() as conn:
        a = _account(conn)
        apikeys.insert(conn, key_id=uuid4(), name="ci", role=Role.VIEWER, key_hash="1" * 64,
                       prefix="sq_1", now=T0)
    twin = Account(id=uuid4(), name=a.name, provider=ProviderKind.GCP, config={})
    with pytest.raises(ConflictError, match=a.name), ctx.engine.begin() as conn:
        accounts.insert(conn, twin, T0)
    with pytest.raises(ConflictError, match="'ci'"), ctx.engine.begin() as conn:
        apikeys.insert(conn, key_id=uuid4(), name="ci", role=Role.ADMIN, key_hash="2" * 64,
                       prefix="sq_2", now=T0)
    with ctx.engine.connect() as conn:
        assert [x.name for x in accounts.list_all(conn)] == [a.name]
        key = apikeys.get_by_name(conn, "ci")
    assert key is not None and key.role is Role.VIEWER


def test_an_added_instance_reads_back_and_its_twin_is_a_conflict(ctx) -> None:  # noqa: ANN001
    one = Instance(
        id=uuid4(), account_id=None, provider=ProviderKind.EXTERNAL, provider_id="erp",
        kind=InstanceKind.INSTANCE, name="erp", engine="oracle", engine_version=None,
        instance_class=None, region=None, status=InstanceStatus.UNKNOWN, raw_status=None,
        tags={"team": "fin"}, endpoint_host=None, endpoint_port=None, multi_az=False,
        node_count=1, cluster_provider_id=None, hourly_cost_cents=Decimal("12.5"),
        first_seen_at=T0, last_seen_at=T0, missing_since=None, extra={"registered": True},
    )
    with ctx.engine.begin() as conn:
        inst.add(conn, one)
    with pytest.raises(ConflictError, match="'erp'"), ctx.engine.begin() as conn:
        inst.add(conn, replace(one, id=uuid4(), name="erp-2"))
    with ctx.engine.connect() as conn:
        assert inst.get(conn, one.id) == one
        assert [i.name for i in inst.iter_all(conn)] == ["erp"]


def test_what_an_action_reads_and_writes_per_instance(ctx) -> None:  # noqa: ANN001
    """The reconciler's per-action statements: the row with whether an intent is in
    flight (one read), an intent completed with the details it was written with (no
    read; once only), a stop interval opened once while open."""
    from snoozeql.store import governed
    from snoozeql.store import schedules as schedule_store

    one = Instance(
        id=uuid4(), account_id=None, provider=ProviderKind.EXTERNAL, provider_id="crm",
        kind=InstanceKind.INSTANCE, name="crm", engine="postgres", engine_version=None,
        instance_class=None, region=None, status=InstanceStatus.RUNNING, raw_status=None,
        tags={}, endpoint_host=None, endpoint_port=None, multi_az=False, node_count=2,
        cluster_provider_id=None, hourly_cost_cents=None, first_seen_at=T0,
        last_seen_at=T0, missing_since=None, extra={},
    )
    with ctx.engine.begin() as conn:
        inst.add(conn, one)
    with ctx.engine.connect() as conn:
        assert governed.for_action(conn, one.id) == (one, False)
        assert governed.for_action(conn, uuid4()) == (None, False)
    written = {"schedule": "night", "owner": "me"}
    with ctx.engine.begin() as conn:
        intent = actions.append(conn, at=T0, finished_at=None, actor="reconciler",
                                action="stop", reason="night", result="pending",
                                instance_id=one.id, instance_name="crm", details=written,
                                lease_until=T0 + timedelta(minutes=1))
    with ctx.engine.connect() as conn:
        assert governed.for_action(conn, one.id) == (one, True)
    with ctx.engine.begin() as conn:
        assert actions.complete(conn, intent, result="ok", finished_at=T0,
                                details={"status": "stopped"}, intent_details=written)
    with ctx.engine.begin() as conn:  # a second completion (a takeover's) finds it done
        assert not actions.complete(conn, intent, result="unknown", finished_at=T0,
                                    intent_details=written)
    with ctx.engine.connect() as conn:
        assert governed.for_action(conn, one.id) == (one, False)
        [rec] = actions.list_recent(conn)
    assert rec.result == "ok" and rec.details == {**written, "status": "stopped"}

    def open_ids() -> list[object]:
        c = schedule_store.stop_intervals.c
        with ctx.engine.connect() as conn:
            return list(conn.execute(sa.select(c.id).where(c.started_at.is_(None))).scalars())

    for cost in (None, Decimal("3.5")):  # opened once while open (NULL cost too)
        with ctx.engine.begin() as conn:
            schedule_store.open_interval(conn, replace(one, hourly_cost_cents=cost),
                                         schedule_id=None, schedule_name="night",
                                         stopped_at=T0)
    assert len(open_ids()) == 1
    with ctx.engine.begin() as conn:
        schedule_store.close_intervals(conn, [one.id], T0 + timedelta(hours=1))
        schedule_store.open_interval(conn, replace(one, hourly_cost_cents=Decimal("3.5")),
                                     schedule_id=None, schedule_name="night",
                                     stopped_at=T0 + timedelta(hours=2))
    with ctx.engine.connect() as conn:
        got = schedule_store.intervals_overlapping(conn, T0, T0 + timedelta(days=1))
    assert [(i.hourly_cost_cents, i.node_count, i.started_at is None) for i in got] == [
        (None, 2, False), (Decimal("3.5"), 2, True)]


def test_a_sync_claims_the_account_once_until_it_goes_stale(ctx) -> None:  # noqa: ANN001
    stale = timedelta(minutes=30)
    with ctx.engine.begin() as conn:
        a = _account(conn)
    with ctx.engine.begin() as conn:
        assert accounts.claim_sync(conn, a.id, T0, stale)
        assert not accounts.claim_sync(conn, a.id, T0 + timedelta(minutes=29), stale)
        accounts.mark_syncing(conn, a.id, T0 + timedelta(minutes=29))  # keeps the start
        assert accounts.claim_sync(conn, a.id, T0 + timedelta(minutes=31), stale)
        assert accounts.claim_sync(conn, a.id, T0 + timedelta(minutes=32), None)  # takeover
        accounts.update(conn, a.id, T0, status=AccountStatus.CONNECTED)
        accounts.mark_syncing(conn, a.id, T0 + timedelta(minutes=1))
        assert not accounts.claim_sync(conn, a.id, T0 + timedelta(minutes=2), stale)
        got = accounts.get(conn, a.id)
    assert got is not None and got.status is AccountStatus.SYNCING


def test_sync_parts_keep_what_each_scope_found(ctx) -> None:  # noqa: ANN001
    found = [_discovered(1), _discovered(2, region="eu-west-1", endpoint_port=5432,
                                       extra={"arn": "x", "n": [1, 2]})]
    with ctx.engine.begin() as conn:
        a = _account(conn)
        sync_parts.put(conn, a.id, "r1", "us-east-1", found,
                       {found[0].provider_id: Decimal("1.25")}, None, T0)
        sync_parts.put(conn, a.id, "r1", "eu-west-1", [], {}, "denied", T0)
        sync_parts.put(conn, a.id, "r1", "eu-west-1", [], {}, "throttled", T0)  # a retry
        got = {p.scope: p for p in sync_parts.parts(conn, a.id, "r1")}
        kept = sync_parts.scopes(conn, a.id, "r1")
        others = sync_parts.parts(conn, a.id, "r1", exclude="us-east-1")
        assert sync_parts.scopes(conn, a.id, "r2") == set()
    assert kept == {"us-east-1", "eu-west-1"}
    assert [p.scope for p in others] == ["eu-west-1"]
    assert set(got) == {"us-east-1", "eu-west-1"}
    assert got["us-east-1"].found == found and got["us-east-1"].error is None
    assert got["us-east-1"].costs == {found[0].provider_id: Decimal("1.25"),
                                      found[1].provider_id: None}
    assert got["eu-west-1"].found == [] and got["eu-west-1"].error == "throttled"
