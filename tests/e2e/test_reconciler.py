"""The reconciler against moto's server with simulated time (ctx.clock), on both stores.

Times are UTC on Monday 2026-11-23; the schedule ``office`` runs 08:00-19:00 Mon-Fri,
so 19:00 is a stop transition and 08:00 the next morning a start transition.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from snoozeql.config import Settings
from snoozeql.domain.types import Instance, InstanceStatus
from snoozeql.providers.registry import ProviderRegistry
from snoozeql.services.accounts import AccountService
from snoozeql.services.actions import ActionLogService
from snoozeql.services.context import Context
from snoozeql.services.discovery import DiscoveryService
from snoozeql.services.inventory import InventoryService
from snoozeql.services.lifecycle import LifecycleService
from snoozeql.services.reconciler import Reconciler
from snoozeql.services.schedules import OverrideService, ScheduleService
from snoozeql.store import db
from snoozeql.store.schedules import reconcile_claims
from tests.support.moto_server import free_port
from tests.support.recording_server import Answer, RecordingServer
from tests.support.store import _truncate_pg

#: Tests whose store behaviour the others already cover on both stores run on SQLite.
sqlite_only = pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)

MON = datetime(2026, 11, 23, tzinfo=UTC)
OFFICE = {"name": "office", "timezone": "UTC",
          "periods": [{"begintime": "08:00", "endtime": "19:00", "weekdays": "mon-fri"}]}


def at(hh: int, mm: int = 0, day: int = 0) -> datetime:
    return MON + timedelta(days=day, hours=hh, minutes=mm)


def _aws(ctx: Context, **extra: Any) -> Context:
    ctx.settings = ctx.settings.model_copy(update={
        "aws_connect_timeout": 1.0, "aws_max_attempts": 2, "discovery_workers": 4, **extra,
    })
    ctx.providers = ProviderRegistry(ctx.settings)
    return ctx


@pytest.fixture
def aws_ctx(ctx, aws_env) -> Context:  # noqa: ANN001
    """The store context, AWS calls to moto, the clock at Monday 18:50 UTC."""
    _aws(ctx)
    ctx.clock = lambda: at(18, 50)
    return ctx


def setup_account(ctx: Context, aws_env, name: str = "dev-account",  # noqa: ANN001
                  regions: tuple[str, ...] = ("us-east-1",)) -> None:
    AccountService(ctx).add("aws", name, {"regions": ",".join(regions),
                                          "endpoint_url": aws_env.endpoint_url})
    report = DiscoveryService(ctx).sync(name)
    assert report.error is None, report.error


def run(ctx: Context, when: datetime, **kw: Any) -> Any:
    ctx.clock = lambda: when
    return Reconciler(ctx, **kw).run()


def status(ctx: Context, name: str) -> InstanceStatus:
    return InventoryService(ctx).get(name).status


_CLIENTS: dict[tuple[str, str], Any] = {}


def moto_status(aws_env, name: str, region: str = "us-east-1") -> str:  # noqa: ANN001
    key = (aws_env.endpoint_url, region)
    if key not in _CLIENTS:
        _CLIENTS[key] = aws_env.client("rds", region)
    rds = _CLIENTS[key]
    return rds.describe_db_instances(DBInstanceIdentifier=name)["DBInstances"][0][
        "DBInstanceStatus"]


def log(ctx: Context, name: str | None = None) -> list[tuple[str, str, str]]:
    """(instance, action, result) of the reconciler's log entries, oldest first."""
    rows = ActionLogService(ctx).list(actor="reconciler", limit=1000)
    return [(a.instance_name or "", a.action, a.result) for a in reversed(rows)
            if name is None or a.instance_name == name]


def test_transitions_stop_and_start_real_instances(aws_ctx, aws_env) -> None:  # noqa: ANN001
    aws_env.create_instances("us-east-1", 2, tags={"env": "dev"})
    aws_env.create_instances("us-east-1", 1, prefix="prod", tags={"env": "prod"})
    setup_account(aws_ctx, aws_env)
    svc = ScheduleService(aws_ctx)
    svc.create(OFFICE)
    svc.assign("office", tag="env=dev")

    assert run(aws_ctx, at(18, 50)).items == []  # running, as the schedule wants
    report = run(aws_ctx, at(19, 1))
    assert sorted((i.instance_name, i.action, i.result) for i in report.items) == [
        ("db-0000", "stop", "ok"), ("db-0001", "stop", "ok")]
    assert moto_status(aws_env, "db-0000") == "stopped"
    assert moto_status(aws_env, "prod-0000") == "available"  # not assigned
    assert status(aws_ctx, "db-0001") == InstanceStatus.STOPPED
    [entry] = [a for a in ActionLogService(aws_ctx).list(instance="db-0000")]
    assert entry.actor == "reconciler" and entry.reason.startswith("schedule office:")
    assert "no period is running" in entry.reason

    assert run(aws_ctx, at(19, 2)).items == []  # a transition is acted on once
    assert run(aws_ctx, at(7, 59, day=1)).items == []
    report = run(aws_ctx, at(8, 1, day=1))
    assert sorted((i.instance_name, i.action, i.result) for i in report.items) == [
        ("db-0000", "start", "ok"), ("db-0001", "start", "ok")]
    assert moto_status(aws_env, "db-0000") == "available"
    assert log(aws_ctx, "db-0000") == [("db-0000", "stop", "ok"), ("db-0000", "start", "ok")]


@sqlite_only
def test_manual_start_in_stop_window_is_left_alone_unless_enforced(aws_ctx, aws_env) -> None:  # noqa: ANN001
    aws_env.create_instances("us-east-1", 1, prefix="soft")
    aws_env.create_instances("us-east-1", 1, prefix="hard")
    setup_account(aws_ctx, aws_env)
    svc = ScheduleService(aws_ctx)
    svc.create(OFFICE)
    svc.create({**OFFICE, "name": "office-enforced", "enforced": True})
    svc.assign("office", instance="soft-0000")
    svc.assign("office-enforced", instance="hard-0000")
    run(aws_ctx, at(19, 1))
    assert moto_status(aws_env, "soft-0000") == moto_status(aws_env, "hard-0000") == "stopped"

    # A person starts both by hand at 20:00 (for hard-0000, think: AWS's 7-day restart).
    aws_ctx.clock = lambda: at(20)
    for name in ("soft-0000", "hard-0000"):
        LifecycleService(aws_ctx).act(name, "start", actor="alice", reason="debugging")
    report = run(aws_ctx, at(20, 1))

    assert [(i.instance_name, i.action, i.result) for i in report.items] == [
        ("hard-0000", "stop", "ok")]
    assert report.items[0].reason.startswith("enforced: schedule office-enforced")
    assert moto_status(aws_env, "soft-0000") == "available"
    assert moto_status(aws_env, "hard-0000") == "stopped"
    assert run(aws_ctx, at(20, 2)).items == []  # converged: nothing more to do
    # The next transition applies to the hand-started one again.
    run(aws_ctx, at(8, 0, day=1))
    run(aws_ctx, at(19, 0, day=1))
    assert moto_status(aws_env, "soft-0000") == "stopped"


@sqlite_only
def test_overrides_win_until_they_expire(aws_ctx, aws_env) -> None:  # noqa: ANN001
    aws_env.create_instances("us-east-1", 2, tags={"env": "dev"})
    setup_account(aws_ctx, aws_env)
    svc = ScheduleService(aws_ctx)
    svc.create(OFFICE)
    svc.assign("office", tag="env=dev")
    overrides = OverrideService(aws_ctx)
    _, awake = overrides.set("db-0000", "running", "22:00", actor="alice")
    assert awake.until == at(22)
    aws_ctx.clock = lambda: at(18, 55)
    _, asleep = overrides.set("db-0001", "stopped", "tomorrow 08:30", actor="bob")
    assert asleep.until == at(8, 30, day=1)

    report = run(aws_ctx, at(18, 56))
    assert [(i.instance_name, i.action) for i in report.items] == [("db-0001", "stop")]
    assert report.items[0].reason.startswith("override by bob")
    assert run(aws_ctx, at(19, 1)).items == []  # db-0000 kept awake past the stop
    assert moto_status(aws_env, "db-0000") == "available"
    assert run(aws_ctx, at(21, 59)).items == []
    report = run(aws_ctx, at(22, 0))  # keep-awake expired: the schedule's stop applies
    assert [(i.instance_name, i.action) for i in report.items] == [("db-0000", "stop")]
    assert "override ended" in report.items[0].reason
    # At 08:00 the schedule wants db-0001 running, but its sleep lasts until 08:30.
    assert [i.instance_name for i in run(aws_ctx, at(8, 1, day=1)).items] == ["db-0000"]
    assert moto_status(aws_env, "db-0001") == "stopped"
    report = run(aws_ctx, at(8, 31, day=1))
    assert [(i.instance_name, i.action) for i in report.items] == [("db-0001", "start")]
    assert moto_status(aws_env, "db-0001") == "available"


@sqlite_only
def test_dry_run_records_would_be_actions_and_touches_nothing(aws_ctx, aws_env) -> None:  # noqa: ANN001
    aws_env.create_instances("us-east-1", 1)
    setup_account(aws_ctx, aws_env)
    svc = ScheduleService(aws_ctx)
    svc.create({**OFFICE, "dry_run": True, "enforced": True})
    svc.assign("office", account="dev-account")

    report = run(aws_ctx, at(19, 1))
    assert [(i.action, i.result) for i in report.items] == [("stop", "dry_run")]
    assert moto_status(aws_env, "db-0000") == "available"
    assert status(aws_ctx, "db-0000") == InstanceStatus.RUNNING
    [entry] = ActionLogService(aws_ctx).list(instance="db-0000")
    assert entry.result == "dry_run" and "would stop" in entry.reason
    assert entry.details["would"] == "stop"
    assert run(aws_ctx, at(19, 5)).items == []  # said once per transition, even enforced


@sqlite_only
def test_protected_cluster_members_and_replicas(aws_ctx, aws_env) -> None:  # noqa: ANN001
    aws_env.create_instances("us-east-1", 1, prefix="safe",
                             tags={"env": "dev", "snoozeql-protect": "true"})
    aws_env.create_instances("us-east-1", 1, prefix="src", tags={"env": "dev"})
    members = aws_env.create_aurora_cluster("us-east-1", "reports", members=2,
                                            tags={"env": "dev"})
    rds = aws_env.client("rds")
    rds.create_db_instance_read_replica(
        DBInstanceIdentifier="src-replica", SourceDBInstanceIdentifier="src-0000",
        Tags=[{"Key": "env", "Value": "dev"}])
    setup_account(aws_ctx, aws_env)
    svc = ScheduleService(aws_ctx)
    svc.create(OFFICE)
    svc.assign("office", account="dev-account")  # every database of the account

    report = run(aws_ctx, at(19, 1))
    got = sorted((i.instance_name, i.action, i.result) for i in report.items)
    assert got == [("reports", "stop", "ok"), ("safe-0000", "stop", "refused"),
                   ("src-0000", "stop", "ok"), ("src-replica", "stop", "refused")]
    safe = next(i for i in report.items if i.instance_name == "safe-0000")
    assert (safe.error or "").startswith("protected")  # refused, reason "protected"
    replica = next(i for i in report.items if i.instance_name == "src-replica")
    assert "read replica" in (replica.error or "")
    cluster = rds.describe_db_clusters(DBClusterIdentifier="reports")["DBClusters"][0]
    assert cluster["Status"] == "stopped"
    assert moto_status(aws_env, "safe-0000") == "available"
    names = {n for n, _, _ in log(aws_ctx)}
    assert ("safe-0000", "stop", "refused") in log(aws_ctx) and not names & set(members)
    [refusal] = ActionLogService(aws_ctx).list(instance="src-replica")
    assert refusal.result == "refused" and "read replica" in (refusal.error or "")
    assert run(aws_ctx, at(19, 2)).items == []  # a refusal is not repeated every minute


def test_provider_error_on_one_account_does_not_stop_the_others(aws_ctx, aws_env) -> None:  # noqa: ANN001
    aws_env.create_instances("us-east-1", 2, prefix="east", tags={"env": "dev"})
    aws_env.create_instances("eu-west-1", 1, prefix="west", tags={"env": "dev"})
    setup_account(aws_ctx, aws_env, "east", ("us-east-1",))
    setup_account(aws_ctx, aws_env, "west", ("eu-west-1",))
    AccountService(aws_ctx).update("west", {"endpoint_url": f"http://127.0.0.1:{free_port()}"})
    svc = ScheduleService(aws_ctx)
    svc.create(OFFICE)
    svc.assign("office", tag="env=dev")

    report = run(aws_ctx, at(19, 1))
    got = sorted((i.instance_name, i.result) for i in report.items)
    assert got == [("east-0000", "ok"), ("east-0001", "ok"), ("west-0000", "failed")]
    west = InventoryService(aws_ctx).get("west-0000")
    assert west.last_error and "eu-west-1" in west.last_error
    assert log(aws_ctx, "west-0000") == [("west-0000", "stop", "failed")]

    # Retried on the next run (still failing), the others are not repeated.
    report = run(aws_ctx, at(19, 2))
    assert [(i.instance_name, i.result) for i in report.items] == [("west-0000", "failed")]
    AccountService(aws_ctx).update("west", {"endpoint_url": aws_env.endpoint_url})
    report = run(aws_ctx, at(19, 3))
    assert [(i.instance_name, i.result) for i in report.items] == [("west-0000", "ok")]
    assert moto_status(aws_env, "west-0000", "eu-west-1") == "stopped"
    assert InventoryService(aws_ctx).get("west-0000").last_error is None
    assert [r for _, _, r in log(aws_ctx, "east-0000")] == ["ok"]


class _Crash(BaseException):
    """Stands in for the process dying in the middle of a run."""


def test_a_crashed_run_is_finished_without_repeating(aws_ctx, aws_env, monkeypatch) -> None:  # noqa: ANN001
    aws_env.create_instances("us-east-1", 3, tags={"env": "dev"})
    setup_account(aws_ctx, aws_env)
    svc = ScheduleService(aws_ctx)
    svc.create(OFFICE)
    svc.assign("office", tag="env=dev")
    real_act = LifecycleService.act

    def dying_act(self, ref, action, **kw):  # noqa: ANN001, ANN202
        # the reconciler hands over the instance it just read (an id if it is gone)
        name = ref.name if isinstance(ref, Instance) else InventoryService(aws_ctx).get(ref).name
        if name == "db-0002":
            raise _Crash()
        return real_act(self, ref, action, **kw)

    monkeypatch.setattr(LifecycleService, "act", dying_act)
    aws_ctx.settings = aws_ctx.settings.model_copy(update={"discovery_workers": 1})
    with pytest.raises(_Crash):
        run(aws_ctx, at(19, 1))
    monkeypatch.setattr(LifecycleService, "act", real_act)
    stopped_before = {n for n, _, r in log(aws_ctx) if r == "ok"}
    assert "db-0002" not in stopped_before

    # Inside the crashed claim's lease (15 s: half the job's, which is half the 60 s
    # interval) nobody touches db-0002; after it, a run finishes.
    report = run(aws_ctx, at(19, 1) + timedelta(seconds=10))
    assert {i.instance_name for i in report.items} == {"db-0000", "db-0001", "db-0002"} - (
        stopped_before | {"db-0002"})
    report = run(aws_ctx, at(19, 2))
    assert [i.instance_name for i in report.items] == ["db-0002"]
    for name in ("db-0000", "db-0001", "db-0002"):
        assert log(aws_ctx, name) == [(name, "stop", "ok")]
        assert moto_status(aws_env, name) == "stopped"


# --------------------------------------------------------------------------- racing


@pytest.fixture
def pg_settings(pg_url, tmp_path) -> Settings:  # noqa: ANN001
    _truncate_pg(pg_url)
    return Settings(data_dir=tmp_path / "data", database_url=pg_url, aws_price_list=False,
                    aws_connect_timeout=1.0, aws_max_attempts=2,
                    _env_file=None)  # type: ignore[call-arg]


def test_two_reconcilers_racing_on_postgres_act_once(pg_settings, aws_env) -> None:  # noqa: ANN001
    aws_env.create_instances("us-east-1", 6, tags={"env": "dev"})
    contexts = []
    for _ in range(2):
        engine = db.create_engine(pg_settings.effective_database_url)
        c = Context(settings=pg_settings, engine=engine,
                    providers=ProviderRegistry(pg_settings), clock=lambda: at(18, 50))
        contexts.append(c)
    setup_account(contexts[0], aws_env)
    ScheduleService(contexts[0]).create(OFFICE)
    ScheduleService(contexts[0]).assign("office", tag="env=dev")

    try:
        for when in (at(19, 1), at(8, 1, day=1)):
            for c in contexts:
                c.clock = lambda w=when: w  # type: ignore[misc]
            barrier = threading.Barrier(2)
            reports: list[Any] = []

            def go(c: Context, barrier: threading.Barrier, reports: list[Any]) -> None:
                barrier.wait()
                reports.append(Reconciler(c).run())

            threads = [threading.Thread(target=go, args=(c, barrier, reports))
                       for c in contexts]
            for t in threads:
                t.start()
            for t in threads:
                t.join(120)
            assert len(reports) == 2
            assert sum(len(r.items) for r in reports) == 6
        entries = log(contexts[0])
        assert len(entries) == 12
        for i in range(6):
            name = f"db-{i:04d}"
            assert [(a, r) for n, a, r in entries if n == name] == [
                ("stop", "ok"), ("start", "ok")]
        with contexts[0].engine.connect() as conn:
            claims = conn.execute(sa.select(reconcile_claims.c.status,
                                            reconcile_claims.c.attempts)).all()
        assert claims and all(s == "done" and n == 1 for s, n in claims)
    finally:
        for c in contexts:
            c.engine.dispose()


# --------------------------------------------------------------------------- warnings


@pytest.fixture
def hooks(recording_server: Callable[..., RecordingServer]) -> RecordingServer:
    """Webhook receivers: a path with "broken" in it answers 500, the others 200."""
    return recording_server(lambda req: Answer(500 if "broken" in req.path else 200))


@sqlite_only
def test_stop_warning_reaches_each_webhook_exactly_once(aws_ctx, aws_env, hooks) -> None:  # noqa: ANN001
    _aws(aws_ctx, webhook_urls=[f"{hooks.url}/generic"],
         slack_webhook_urls=[f"{hooks.url}/slack/T000/B000/secret"], stop_warning_minutes=10)
    aws_env.create_instances("us-east-1", 2, tags={"env": "dev"})
    setup_account(aws_ctx, aws_env)
    ScheduleService(aws_ctx).create({**OFFICE, "timezone": "Europe/Berlin",
                                     "periods": [{"begintime": "08:00", "endtime": "20:00",
                                                  "weekdays": "mon-fri"}]})
    ScheduleService(aws_ctx).assign("office", tag="env=dev")
    aws_ctx.clock = lambda: at(18, 40)
    OverrideService(aws_ctx).set("db-0001", "running", "23:00", actor="alice",
                                 timezone="UTC")

    run(aws_ctx, at(18, 45))  # 20:00 Berlin = 19:00 UTC: 15 minutes away
    assert hooks.requests == []
    run(aws_ctx, at(18, 51))
    run(aws_ctx, at(18, 52))
    run(aws_ctx, at(18, 59))
    assert sorted(hooks.paths) == ["/generic", "/slack/T000/B000/secret"]
    generic = next(r.json() for r in hooks.requests if r.path == "/generic")
    assert generic["event"] == "snoozeql.stop_warning"
    assert generic["instance"]["name"] == "db-0000"  # db-0001 is kept awake
    assert generic["schedule"] == "office"
    assert datetime.fromisoformat(generic["stop_at"]) == at(19)
    assert generic["stop_at"].endswith("+01:00")
    assert "keep-awake db-0000" in generic["keep_awake"]["cli"]
    slack = next(r.json() for r in hooks.requests if r.path.startswith("/slack"))
    assert set(slack) == {"text"} and "db-0000" in slack["text"] and "keep-awake" in slack[
        "text"]
    warns = [e for e in ActionLogService(aws_ctx).list(action="warn")]
    assert len(warns) == 2 and all(w.result == "ok" for w in warns)
    assert all("secret" not in json.dumps(w.details) for w in warns)


@sqlite_only
def test_a_failed_webhook_is_retried_without_repeating_the_others(aws_ctx, aws_env, hooks
                                                                 ) -> None:  # noqa: ANN001
    _aws(aws_ctx, webhook_urls=[f"{hooks.url}/ok", f"{hooks.url}/broken"])
    aws_env.create_instances("us-east-1", 1)
    setup_account(aws_ctx, aws_env)
    ScheduleService(aws_ctx).create(OFFICE)
    ScheduleService(aws_ctx).assign("office", instance="db-0000")
    run(aws_ctx, at(18, 51))
    run(aws_ctx, at(18, 52))
    assert hooks.paths == ["/ok", "/broken", "/broken"]
    [failed, *_] = ActionLogService(aws_ctx).list(action="warn", result="failed")
    assert "HTTP 500" in (failed.error or "") and "broken" not in (failed.error or "")
