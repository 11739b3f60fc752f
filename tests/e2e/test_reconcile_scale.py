"""The reconciler's cost follows the governed instances, not the fleet (issue 19).

Behaviour, not timing: what a run reads (statements, rows materialized), that the
governed instances found in SQL are exactly those the full resolution finds, that
batched claims stay exactly-once between racing reconcilers, that dry-run transitions
write their log rows in a few statements, and that provider calls stay within the
concurrency limit per account and region (counted at a proxy in front of moto).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest
import sqlalchemy as sa

from snoozeql.domain.types import DiscoveredInstance, InstanceKind, InstanceStatus, ProviderKind
from snoozeql.providers.registry import ProviderRegistry
from snoozeql.services import reconciler as reconciler_module
from snoozeql.services.accounts import AccountService
from snoozeql.services.actions import ActionLogService
from snoozeql.services.background_sync import wait_for_history
from snoozeql.services.context import Context
from snoozeql.services.discovery import DiscoveryService
from snoozeql.services.reconciler import Reconciler
from snoozeql.services.schedules import OverrideService, ScheduleService
from snoozeql.store import accounts as account_store
from snoozeql.store import db, governed
from snoozeql.store import instances as instance_store
from snoozeql.store import schedules as claim_store
from snoozeql.store.schedules import reconcile_claims
from tests.support.latency_proxy import LatencyProxy

MON = datetime(2026, 11, 23, tzinfo=UTC)
OFFICE = {"name": "office", "timezone": "UTC",
          "periods": [{"begintime": "08:00", "endtime": "19:00", "weekdays": "mon-fri"}]}


def at(hh: int, mm: int = 0, day: int = 0) -> datetime:
    return MON + timedelta(days=day, hours=hh, minutes=mm)


def fleet(ctx: Context, n: int, *, account_id: UUID | None = None, prefix: str = "db",
          region: str = "us-east-1", tags: Any = None, engine: str = "postgres",
          status: InstanceStatus = InstanceStatus.RUNNING) -> None:
    """``n`` instances (running unless ``status``) written through the store's sync path."""
    items = [
        DiscoveredInstance(
            provider=ProviderKind.AWS if account_id else ProviderKind.LOCAL,
            provider_id=f"{prefix}-{region}-{i:05d}", name=f"{prefix}-{i:05d}",
            kind=InstanceKind.INSTANCE, engine=engine, engine_version="16",
            instance_class="db.t4g.micro", region=region, status=status,
            raw_status="available" if status is InstanceStatus.RUNNING else str(status),
            tags=tags(i) if callable(tags) else dict(tags or {}),
        )
        for i in range(n)
    ]
    with ctx.engine.begin() as conn:
        instance_store.upsert_discovered(conn, items, account_id, ctx.now(), {})


@contextmanager
def statements(ctx: Context) -> Iterator[list[str]]:
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    sa.event.listen(ctx.engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        sa.event.remove(ctx.engine, "before_cursor_execute", record)


@contextmanager
def materialized(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Names of the instance rows the code under test turned into objects."""
    names: list[str] = []
    narrow, full = governed._narrow, instance_store.row_to_instance

    def count_narrow(r: Any, *rest: Any) -> Any:
        names.append(r.name)
        return narrow(r, *rest)

    def count_full(r: Any) -> Any:
        names.append(r.name)
        return full(r)

    monkeypatch.setattr(governed, "_narrow", count_narrow)
    monkeypatch.setattr(instance_store, "row_to_instance", count_full)
    yield names


def test_with_no_schedule_a_run_reads_no_instance(ctx, monkeypatch) -> None:  # noqa: ANN001
    fleet(ctx, 300)
    ctx.clock = lambda: at(19, 1)
    Reconciler(ctx).run()  # warm up (nothing to resolve either way)
    with statements(ctx) as seen, materialized(monkeypatch) as rows:
        report = Reconciler(ctx).run()
    assert report.considered == 0 and report.items == []
    assert rows == []
    assert not [s for s in seen if "instances" in s.lower().replace("instance_overrides", "")
                .replace("stop_intervals", "")]
    assert len(seen) <= 10  # a few small reads, whatever the fleet's size


def test_a_run_materializes_only_governed_instances(ctx, monkeypatch) -> None:  # noqa: ANN001
    ctx.clock = lambda: at(18, 50)
    fleet(ctx, 400, tags=lambda i: {"env": "dev"} if i % 100 == 0 else {"env": "prod"})
    svc = ScheduleService(ctx)
    svc.create(OFFICE)
    svc.assign("office", tag="env=dev")
    svc.assign("office", selector={"all": [{"region": "eu-west-1"}, {"name": "db-.*"}]})
    ctx.clock = lambda: at(19, 1)
    with materialized(monkeypatch) as rows:
        report = Reconciler(ctx).run(dry_run=True)
    assert report.considered == 4
    # The 4 governed rows as candidates, and again in full for the preview's verdicts
    # at most; never the other 396.
    assert set(rows) == {f"db-{i:05d}" for i in (0, 100, 200, 300)}


def _reference(ctx: Context) -> set[str]:
    """Governed or overridden instances by the full-fleet resolution (the old way);
    protected ones included (the reconciler reports their transitions as refused)."""
    from snoozeql.domain.schedules.assignment import resolve

    with ctx.engine.connect() as conn:
        overridden = set(claim_store.all_overrides(conn))
        every = {i.id: i for i in instance_store.iter_all(
            conn, instance_store.InstanceFilter(missing=False))}
        gov = resolve(list(every.values()), claim_store.list_schedules(conn),
                      claim_store.list_assignments(conn),
                      {a.id: a.name for a in account_store.list_all(conn)},
                      include_protected=True)
    return {every[i].name for i in set(gov) | overridden if i in every}


def test_governed_instances_found_in_sql_are_those_the_full_resolution_finds(ctx) -> None:  # noqa: ANN001
    ctx.clock = lambda: at(12)
    a = AccountService(ctx).add("aws", "acct-a", {"regions": "us-east-1"})
    b = AccountService(ctx).add("aws", "acct-b", {"regions": "eu-west-1"})

    def tags(i: int) -> dict[str, str]:
        t = {"env": ["dev", "stg", "prod"][i % 3], "team": f"t{i % 5}"}
        if i % 7 == 0:
            t["snoozeql-schedule"] = "office" if i % 2 else "missing-schedule"
        if i % 11 == 0:
            t["snoozeql-protect"] = "true"
        if i % 13 == 0:
            t.pop("team")
        return t

    fleet(ctx, 60, account_id=a.id, tags=tags, prefix="a")
    fleet(ctx, 60, account_id=b.id, tags=tags, prefix="b", region="eu-west-1",
          engine="mysql")
    fleet(ctx, 40, tags=tags, prefix="loc", region="local")
    svc = ScheduleService(ctx)
    svc.create(OFFICE)
    svc.create({**OFFICE, "name": "night"})
    svc.create({**OFFICE, "name": "idle"})
    svc.assign("night", tag="env=stg")
    svc.assign("night", selector={"all": [{"provider": "aws"}, {"name": "a-0001.*"}]})
    svc.assign("idle", selector={"any": [
        {"all": [{"account": "acct-b"}, {"tag": {"key": "team", "exists": False}}]},
        {"all": [{"engine": ["mysql"]}, {"tag": {"key_regex": "te.*", "value": "t3"}}]},
        {"all": [{"region": "local"}, {"tag": {"key": "env", "value": "d.v"}}]},
    ]})
    svc.assign("idle", instance="a-00050")
    svc.assign("office", account="acct-a")  # the whole account: then drop it again
    OverrideService(ctx).set("loc-00003", "stopped", "2h", actor="alice")
    OverrideService(ctx).set("b-00004", "running", "2h", actor="alice")

    report = Reconciler(ctx).run(dry_run=True)
    found = {i.instance_name for i in report.items}
    assert found == _reference(ctx)
    assert report.considered == len(found)

    svc.unassign("office", account="acct-a")
    report = Reconciler(ctx).run(dry_run=True)
    assert {i.instance_name for i in report.items} == _reference(ctx)


# --------------------------------------------------------------------------- steady state


def test_a_steady_run_reads_no_instance_and_resolves_nothing_again(ctx, monkeypatch) -> None:  # noqa: ANN001
    ctx.clock = lambda: at(12)
    fleet(ctx, 300, tags=lambda i: {"env": "dev" if i % 10 == 0 else "prod"})
    svc = ScheduleService(ctx)
    svc.create(OFFICE)
    svc.assign("office", tag="env=dev")
    # The transition (all 30 already running: acted on with no provider call), then the
    # run that learns the claims are finished.
    assert Reconciler(ctx).run().considered == 30
    ctx.clock = lambda: at(12, 1)
    Reconciler(ctx).run()
    ctx.clock = lambda: at(12, 2)
    resolved: list[int] = []
    planned: list[int] = []
    real_resolve, real_plan = reconciler_module.resolve, reconciler_module.plan_run
    monkeypatch.setattr(reconciler_module, "resolve",
                        lambda part, *a, **k: resolved.append(len(part)) or real_resolve(
                            part, *a, **k))
    monkeypatch.setattr(reconciler_module, "plan_run",
                        lambda part, *a, **k: planned.append(len(part)) or real_plan(
                            part, *a, **k))
    with statements(ctx) as seen, materialized(monkeypatch) as rows:
        report = Reconciler(ctx).run()
    assert report.considered == 30 and report.items == []
    # Nothing read, resolved or planned again (the office schedule decides as before).
    assert rows == [] and resolved == [] and planned == []
    reads = [s for s in seen if s.lstrip().upper().startswith("SELECT")]
    assert not [s for s in reads if "FROM instances" in s or "FROM reconcile_claims" in s]
    assert len(seen) <= 6, seen  # a few small reads, whatever the governed count


def test_shards_running_at_once_resolve_once_and_share_it(ctx, monkeypatch) -> None:  # noqa: ANN001
    """The queue runs a reconcile's shards on several workers at once: after a sync
    moved the data versions, one of them reads and resolves the governed instances and
    the others use its resolution (each resolving on its own held as many copies)."""
    ctx.clock = lambda: at(12)
    fleet(ctx, 200, tags=lambda i: {"env": "dev" if i % 2 else "prod"})
    svc = ScheduleService(ctx)
    svc.create(OFFICE)
    svc.assign("office", tag="env=dev")
    shards = 4
    for k in range(shards):  # every shard's plans in the memo, made from this resolution
        Reconciler(ctx, shard=(k, shards)).run(dry_run=True)
    assert len([k for k in ctx.memo if k.startswith("reconciler.plans")]) == shards
    fleet(ctx, 1, prefix="late", tags={"env": "dev"})  # a sync: the resolution is stale

    scanned: list[int] = []
    real_scan = governed.scan
    inside = threading.Event()

    def slow_scan(*a: Any, **k: Any) -> Iterator[list[Any]]:
        inside.set()
        for part in real_scan(*a, **k):
            scanned.append(len(part))
            time.sleep(0.3)  # every other shard reaches the resolution meanwhile
            yield part

    monkeypatch.setattr(governed, "scan", slow_scan)
    reports: dict[int, Any] = {}
    errors: list[BaseException] = []

    def shard(k: int) -> None:
        try:
            reports[k] = Reconciler(ctx, shard=(k, shards)).run(dry_run=True)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=shard, args=(k,)) for k in range(shards)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors and inside.is_set()
    assert sum(scanned) == 101  # read once: 100 + the new one, not once per shard
    assert sum(r.considered for r in reports.values()) == 101
    names = [i.instance_name for r in reports.values() for i in r.items]
    assert len(names) == len(set(names)) == 101 and "late-00000" in names
    # The plans made from the old resolution are gone with it, not kept beside the new.
    resolution = ctx.memo["reconciler.resolution"]
    assert all(v[0][0] == id(resolution) for k, v in ctx.memo.items()
               if k.startswith("reconciler.plans"))


def test_the_next_run_sees_what_another_process_changed(ctx, settings) -> None:  # noqa: ANN001
    ctx.clock = lambda: at(19, 1)
    fleet(ctx, 40, tags=lambda i: {"env": ["dev", "stg"][i % 2]})
    ScheduleService(ctx).create(OFFICE)
    ScheduleService(ctx).assign("office", tag="env=dev")

    def verdicts() -> dict[str, tuple[str, str]]:
        report = Reconciler(ctx).run(dry_run=True)
        return {i.instance_name: (i.action, i.result) for i in report.items}

    before = verdicts()
    assert len(before) == 20 and set(before.values()) == {("stop", "dry_run")}
    assert verdicts() == before  # from the memo

    # Another process (its own context, its own memo) changes the store.
    other = Context(settings=settings, engine=db.create_engine(settings.effective_database_url),
                    providers=ProviderRegistry(settings), clock=ctx.clock)
    try:
        ScheduleService(other).assign("office", tag="env=stg")  # a new assignment
        assert verdicts()["db-00001"] == ("stop", "dry_run")

        fleet(other, 1, tags={"env": "dev"}, status=InstanceStatus.STOPPED)  # a sync: db-00000
        assert verdicts()["db-00000"] == ("none", "noop")  # already stopped

        with other.engine.begin() as conn:  # an action's status: db-00002
            iid = next(i.id for i in instance_store.iter_all(conn) if i.name == "db-00002")
            instance_store.set_status(conn, iid, InstanceStatus.STOPPED, "stopped")
        assert verdicts()["db-00002"] == ("none", "noop")

        OverrideService(other).set("db-00004", "running", at(21), actor="test")
        after = verdicts()
    finally:
        other.engine.dispose()
    assert len(after) == 40
    assert after["db-00004"] == ("none", "noop")  # kept awake by the override
    assert after["db-00006"] == ("stop", "dry_run")
    assert {n for n, v in after.items() if v == ("none", "noop")} == {
        "db-00000", "db-00002", "db-00004"}


# --------------------------------------------------------------------------- claims


def test_batched_claims_stay_exactly_once_and_take_over_failed_and_expired(ctx) -> None:  # noqa: ANN001
    fleet(ctx, 450)
    with ctx.engine.connect() as conn:
        ids = list(conn.execute(sa.text("SELECT id FROM instances")).scalars())
    ids = [UUID(str(i)) if not isinstance(i, UUID) else i for i in ids]
    t0 = at(19, 1)
    keys = [(i, "transition", t0, None) for i in ids]
    lease = timedelta(seconds=15)
    with ctx.engine.begin() as conn:
        first = claim_store.claim_many(conn, keys, owner="a", now=t0, lease=lease)
    assert len(first) == 450
    with ctx.engine.begin() as conn:
        assert claim_store.claim_many(conn, keys, owner="b", now=t0, lease=lease) == set()
        claim_store.finish_claims(conn, [(i, "transition", t0, "failed", "failed")
                                         for i in ids[:10]], owner="a", now=t0)
        claim_store.finish_claims(conn, [(i, "transition", t0, "done", "ok")
                                         for i in ids[10:20]], owner="a", now=t0)
    with ctx.engine.begin() as conn:  # failed ones are retried; in-flight ones are not
        again = claim_store.claim_many(conn, keys, owner="b", now=t0 + timedelta(seconds=5),
                                       lease=lease)
    assert again == {(i, "transition", t0) for i in ids[:10]}
    with ctx.engine.begin() as conn:  # after the lease, a dead holder's are taken over
        late = claim_store.claim_many(conn, keys, owner="c", now=t0 + timedelta(seconds=16),
                                      lease=lease)
    assert late == {(i, "transition", t0) for i in ids[20:]}
    with ctx.engine.connect() as conn:
        rows = conn.execute(sa.select(reconcile_claims.c.owner, reconcile_claims.c.attempts,
                                      reconcile_claims.c.status)).all()
    assert sorted({(o, n, s) for o, n, s in rows}) == [
        ("a", 1, "done"), ("b", 2, "claimed"), ("c", 2, "claimed")]
    with ctx.engine.begin() as conn:  # the heartbeat renews a chunk at once
        assert claim_store.renew_claims(conn, [k[:3] for k in keys], owner="c",
                                        until=t0 + timedelta(minutes=5))


@pytest.mark.parametrize("store_url", ["postgres"], indirect=True)
def test_two_racers_claiming_the_same_batch_win_each_key_once(ctx) -> None:  # noqa: ANN001
    fleet(ctx, 600)
    with ctx.engine.connect() as conn:
        ids = list(conn.execute(sa.text("SELECT id FROM instances")).scalars())
    t0 = at(19, 1)
    keys = [(i, "transition", t0, None) for i in ids]
    engines = [db.create_engine(ctx.settings.effective_database_url) for _ in range(2)]
    barrier = threading.Barrier(2)
    won: dict[str, set[Any]] = {}

    def race(n: int) -> None:
        # each racer walks the keys in its own order, so they collide all over
        mine = keys if n == 0 else list(reversed(keys))
        barrier.wait()
        with engines[n].begin() as conn:
            won[str(n)] = claim_store.claim_many(conn, mine, owner=str(n), now=t0,
                                                 lease=timedelta(seconds=15))

    threads = [threading.Thread(target=race, args=(n,)) for n in range(2)]
    try:
        for th in threads:
            th.start()
        for th in threads:
            th.join(60)
    finally:
        for e in engines:
            e.dispose()
    assert not (won["0"] & won["1"])
    assert len(won["0"] | won["1"]) == 600


def _dry_run_fleet_at_closing(ctx: Context, n: int) -> None:
    """``n`` running instances under a dry-run office schedule, the clock just past its
    closing (each run now wants them stopped)."""
    ctx.clock = lambda: at(18, 50)
    fleet(ctx, n, tags={"env": "dev"})
    ScheduleService(ctx).create({**OFFICE, "dry_run": True})
    ScheduleService(ctx).assign("office", tag="env=dev")
    ctx.clock = lambda: at(19, 1)


def test_a_dry_run_transition_writes_its_log_rows_in_a_few_statements(ctx) -> None:  # noqa: ANN001
    _dry_run_fleet_at_closing(ctx, 450)
    with statements(ctx) as seen:
        report = Reconciler(ctx).run()
    assert report.count("stop", "dry_run") == 450
    writes = [s for s in seen if s.lstrip().upper().startswith(("INSERT", "UPDATE"))]
    assert len(writes) <= 5, writes
    assert len(seen) <= 30
    assert len(ActionLogService(ctx).list(result="dry_run", limit=1000)) == 450
    with statements(ctx) as seen:
        assert Reconciler(ctx).run().items == []  # once per transition
    # ... which the run knows without reading the log again (it is append-only).
    assert not [s for s in seen if "actions.at >=" in s]
    assert len(seen) <= 5, seen


def test_a_dry_run_transition_is_written_in_batches_each_entry_once(  # noqa: ANN001
        ctx, monkeypatch: pytest.MonkeyPatch) -> None:
    """A big transition's log rows go out DRY_RUN_BATCH at a time (not all built at
    once): every instance logged once, and the next run logs none again."""
    monkeypatch.setattr(reconciler_module, "DRY_RUN_BATCH", 40)
    _dry_run_fleet_at_closing(ctx, 130)
    with statements(ctx) as seen:
        report = Reconciler(ctx).run()
    assert report.count("stop", "dry_run") == 130
    inserts = [s for s in seen if s.lstrip().upper().startswith("INSERT INTO ACTIONS")]
    assert len(inserts) == 4, inserts  # 40 + 40 + 40 + 10
    logged = ActionLogService(ctx).list(result="dry_run", limit=1000)
    assert len(logged) == 130 and len({e.instance_id for e in logged}) == 130
    assert Reconciler(ctx).run().items == []
    assert len(ActionLogService(ctx).list(result="dry_run", limit=1000)) == 130
    # A new process (nothing remembered) reads what was said from the log: still once.
    ctx.memo.clear()
    assert Reconciler(ctx).run().items == []
    assert len(ActionLogService(ctx).list(result="dry_run", limit=1000)) == 130


# --------------------------------------------------------------------------- concurrency


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_provider_calls_stay_within_the_limit_per_account_and_region(ctx, aws_env) -> None:  # noqa: ANN001
    proxy = LatencyProxy(aws_env.endpoint_url, latency_seconds=0.05)
    try:
        ctx.settings = ctx.settings.model_copy(update={
            "aws_connect_timeout": 2.0, "aws_max_attempts": 2, "action_concurrency": 3})
        ctx.providers = ProviderRegistry(ctx.settings)
        aws_env.create_instances("us-east-1", 24, tags={"env": "dev"})
        aws_env.create_instances("eu-west-1", 12, prefix="west", tags={"env": "dev"})
        ctx.clock = lambda: at(18, 50)
        AccountService(ctx).add("aws", "dev-account", {"regions": "us-east-1,eu-west-1",
                                                       "endpoint_url": proxy.url})
        assert DiscoveryService(ctx).sync("dev-account").error is None
        wait_for_history(ctx)  # the new account's history read goes through the proxy too
        svc = ScheduleService(ctx)
        svc.create(OFFICE)
        svc.assign("office", tag="env=dev")
        ctx.clock = lambda: at(19, 1)
        before = len(proxy.calls)
        proxy.reset_in_flight()
        report = Reconciler(ctx).run()
        assert report.count("stop", "ok") == 36
        assert len(proxy.calls_of("StopDBInstance")) == 36
        assert len(proxy.calls) > before
        # every call of the run is counted: at most 3 in flight per account and region,
        # and the two regions were worked on side by side
        assert 1 < proxy.max_in_flight("us-east-1") <= 3
        assert 1 < proxy.max_in_flight("eu-west-1") <= 3
    finally:
        proxy.close()
