"""Enforcement you can trust (issue 13, items 1-3), in process, against moto.

* Leases: every periodic job's lease is shorter than its interval and is renewed by a
  heartbeat while the job runs; a dead holder's job is taken over within two intervals.
  (The kill -9 of a real `serve` replica is in test_failover.py.)
* The action log: the intent is written before the provider call; a dead holder's
  intent is completed by the next reconcile from the instance's real state.
* Dry runs claim nothing; `schedules reconcile --dry-run` and
  `POST /api/v1/schedules/reconcile?dry_run=true` report what a real run would do.

Times are UTC on Monday 2026-11-23; ``office`` runs 08:00-19:00 Mon-Fri.
"""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from snoozeql.api.app import create_app
from snoozeql.jobs.catalogue import Job, catalogue
from snoozeql.jobs.runner import JobRunner
from snoozeql.providers.aws.driver import AwsProvider
from snoozeql.providers.registry import ProviderRegistry
from snoozeql.services.accounts import AccountService
from snoozeql.services.actions import ActionLogService
from snoozeql.services.apikeys import ApiKeyService
from snoozeql.services.background_sync import wait_for_history
from snoozeql.services.context import Context
from snoozeql.services.discovery import DiscoveryService
from snoozeql.services.lifecycle import LifecycleService
from snoozeql.services.reconciler import Reconciler
from snoozeql.services.schedules import ScheduleService
from snoozeql.store import db
from snoozeql.store import jobs as job_store
from snoozeql.store.actions import actions
from snoozeql.store.schedules import reconcile_claims

MON = datetime(2026, 11, 23, tzinfo=UTC)
OFFICE = {"name": "office", "timezone": "UTC",
          "periods": [{"begintime": "08:00", "endtime": "19:00", "weekdays": "mon-fri"}]}

sqlite_only = pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)


def at(hh: int, mm: int = 0, ss: int = 0, day: int = 0) -> datetime:
    return MON + timedelta(days=day, hours=hh, minutes=mm, seconds=ss)


@pytest.fixture
def aws_ctx(ctx, aws_env) -> Context:  # noqa: ANN001
    ctx.settings = ctx.settings.model_copy(update={
        "aws_connect_timeout": 1.0, "aws_max_attempts": 2, "discovery_workers": 2})
    ctx.providers = ProviderRegistry(ctx.settings)
    ctx.clock = lambda: at(18, 50)
    return ctx


def office(ctx: Context, aws_env, count: int = 2, **schedule: Any) -> None:  # noqa: ANN001
    aws_env.create_instances("us-east-1", count, tags={"env": "dev"})
    AccountService(ctx).add("aws", "dev-account", {"regions": "us-east-1",
                                                   "endpoint_url": aws_env.endpoint_url})
    assert DiscoveryService(ctx).sync("dev-account").error is None
    wait_for_history(ctx)  # the new account's history read is done before any timing
    ScheduleService(ctx).create({**OFFICE, **schedule})
    ScheduleService(ctx).assign("office", tag="env=dev")


def run(ctx: Context, when: datetime, **kw: Any) -> Any:
    ctx.clock = lambda: when
    return Reconciler(ctx).run(**kw)


def moto_status(aws_env, name: str) -> str:  # noqa: ANN001
    return aws_env.client("rds").describe_db_instances(DBInstanceIdentifier=name)[
        "DBInstances"][0]["DBInstanceStatus"]


def entries(ctx: Context, name: str) -> list[Any]:
    return list(reversed(ActionLogService(ctx).list(instance=name, limit=1000)))


def count(ctx: Context, table: sa.Table) -> int:
    with ctx.engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


# --------------------------------------------------------------------------- leases


def test_every_periodic_job_has_a_lease_shorter_than_its_interval(settings) -> None:  # noqa: ANN001
    s = settings.model_copy(update={"metrics_enabled": True})
    c = Context(settings=s, engine=None, providers=None)  # type: ignore[arg-type]
    jobs = catalogue(c)
    assert {j.name for j in jobs} >= {"sync-accounts", "reconcile-schedules",
                                      "collect-metrics", "cleanup-metrics"}
    for job in jobs:
        assert job.lease_for(s) < job.interval, job.name
        assert job.lease_for(s) <= timedelta(seconds=s.lease_seconds), job.name


def test_a_dead_replicas_job_is_taken_over_within_two_intervals(ctx) -> None:  # noqa: ANN001
    """The holder claimed `reconcile-schedules` and died (no heartbeat, no finish)."""
    ran: list[str] = []
    [real] = [j for j in catalogue(ctx) if j.name == "reconcile-schedules"]
    job = Job(real.name, real.interval, lambda c: ran.append("run"), real.lease)
    t0 = ctx.now()
    with ctx.engine.begin() as conn:
        job_store.ensure(conn, job.name, t0)
        assert job_store.claim(conn, job.name, "dead-replica", t0, job.lease_for(ctx.settings))
    survivor = JobRunner(ctx, [job])
    assert survivor.run_due() == []  # the lease still holds
    ctx.clock = lambda: t0 + job.interval  # one interval later (poll before the second)
    assert survivor.run_due() == [job.name] and ran == ["run"]


@pytest.mark.parametrize("store_url", ["postgres"], indirect=True)
def test_a_live_holder_keeps_its_job_while_it_runs_longer_than_the_lease(ctx) -> None:  # noqa: ANN001
    """The heartbeat renews the lease: a second replica never runs the job meanwhile."""
    ctx.settings = ctx.settings.model_copy(update={"lease_seconds": 2})
    release, started = threading.Event(), threading.Event()
    ran: list[str] = []

    def slow(_: Context) -> None:
        ran.append("slow")
        started.set()
        release.wait(30)

    job = Job("slow", timedelta(hours=1), slow)
    assert job.lease_for(ctx.settings) == timedelta(seconds=2)
    JobRunner(ctx, [job]).register()
    holder = threading.Thread(target=JobRunner(ctx, [job]).run_due)
    holder.start()
    assert started.wait(30)
    engine = db.create_engine(ctx.settings.effective_database_url)
    other = JobRunner(Context(settings=ctx.settings, engine=engine, providers=ctx.providers),
                      [job])
    try:
        for _ in range(12):  # three lease periods
            assert other.run_due() == []
            time.sleep(0.5)
    finally:
        release.set()
        holder.join(30)
        engine.dispose()
    assert ran == ["slow"]


@pytest.mark.parametrize("store_url", ["postgres"], indirect=True)
def test_a_live_reconcilers_claim_and_intent_outlast_a_slow_provider_call(  # noqa: ANN001
        aws_ctx, aws_env, monkeypatch) -> None:
    """Real clock, 1 s action leases, a stop that takes 3 s: a second replica's runs
    meanwhile neither act on the instance nor resolve the intent as abandoned."""
    aws_ctx.settings = aws_ctx.settings.model_copy(update={"lease_seconds": 2})
    aws_ctx.clock = lambda: datetime.now(UTC)
    office(aws_ctx, aws_env, count=1, periods=[], override_status="stopped")
    real_stop, in_call = AwsProvider.stop, threading.Event()

    def slow_stop(self, account, instance):  # noqa: ANN001, ANN202
        in_call.set()
        time.sleep(3)
        return real_stop(self, account, instance)

    monkeypatch.setattr(AwsProvider, "stop", slow_stop)
    first = threading.Thread(target=Reconciler(aws_ctx).run)
    first.start()
    assert in_call.wait(30)
    engine = db.create_engine(aws_ctx.settings.effective_database_url)
    other = Context(settings=aws_ctx.settings, engine=engine, providers=aws_ctx.providers,
                    clock=aws_ctx.clock)
    try:
        while first.is_alive():
            report = Reconciler(other).run()
            assert [i for i in report.items if i.action != "none"] == []
            time.sleep(0.3)
    finally:
        first.join(30)
        engine.dispose()
    assert [(e.action, e.result) for e in entries(aws_ctx, "db-0000")] == [("stop", "ok")]


# --------------------------------------------------------------------------- the log


class _Crash(BaseException):
    """The process dying at this point (nothing after it runs)."""


def test_the_intent_is_in_the_log_before_the_provider_call(aws_ctx, aws_env, monkeypatch  # noqa: ANN001
                                                           ) -> None:
    office(aws_ctx, aws_env, count=1)
    seen: list[Any] = []
    real_stop = AwsProvider.stop

    def watching_stop(self, account, instance):  # noqa: ANN001, ANN202
        seen.extend(ActionLogService(aws_ctx).list(instance=instance.name))
        return real_stop(self, account, instance)

    monkeypatch.setattr(AwsProvider, "stop", watching_stop)
    run(aws_ctx, at(19, 1))
    [intent] = seen
    assert intent.result == "pending" and intent.actor == "reconciler"
    assert intent.reason.startswith("schedule office:") and intent.details["schedule"] == "office"
    assert intent.lease_until is not None and intent.finished_at is None
    [done] = entries(aws_ctx, "db-0000")
    assert done.id == intent.id and done.result == "ok" and done.lease_until is None
    assert done.details["schedule"] == "office" and done.details["status"] == "stopped"


def test_a_dead_holders_intents_are_resolved_from_the_real_state(aws_ctx, aws_env,  # noqa: ANN001
                                                                  monkeypatch) -> None:
    """db-0000: the replica dies after AWS took the stop; db-0001: before it sent it."""
    office(aws_ctx, aws_env)
    real_stop = AwsProvider.stop
    calls: list[str] = []

    def dying_stop(self, account, instance):  # noqa: ANN001, ANN202
        if instance.name == "db-0000":
            calls.append(instance.name)
            real_stop(self, account, instance)
        raise _Crash()

    monkeypatch.setattr(AwsProvider, "stop", dying_stop)
    with pytest.raises(_Crash):
        run(aws_ctx, at(19, 1))  # two workers: both die in their provider call
    monkeypatch.setattr(AwsProvider, "stop", lambda self, a, i: (calls.append(i.name),
                                                                 real_stop(self, a, i))[1])
    pending = ActionLogService(aws_ctx).list(result="pending")
    assert sorted(e.instance_name for e in pending) == ["db-0000", "db-0001"]

    report = run(aws_ctx, at(19, 3))
    got = sorted((i.instance_name, i.action, i.result) for i in report.items)
    assert got == [("db-0000", "stop", "ok"), ("db-0001", "stop", "ok"),
                   ("db-0001", "stop", "unknown")]
    [first] = entries(aws_ctx, "db-0000")
    assert first.result == "ok" and first.outcome == "ok (confirmed after takeover)"
    assert first.details["resolution"] == "confirmed after takeover"
    assert first.details["status"] == "stopped" and first.details["schedule"] == "office"
    lost, redone = entries(aws_ctx, "db-0001")
    assert lost.result == "unknown" and "may not have happened" in (lost.error or "")
    assert redone.result == "ok" and redone.outcome == "ok"
    assert calls == ["db-0000", "db-0001"]  # db-0000 was not stopped a second time
    assert moto_status(aws_env, "db-0000") == moto_status(aws_env, "db-0001") == "stopped"
    assert ActionLogService(aws_ctx).list(result="pending") == []


@sqlite_only
def test_a_manual_action_left_pending_is_resolved_by_the_next_reconcile(aws_ctx, aws_env,  # noqa: ANN001
                                                                         monkeypatch) -> None:
    office(aws_ctx, aws_env, count=1)
    real_stop = AwsProvider.stop

    def dying_stop(self, account, instance):  # noqa: ANN001, ANN202
        real_stop(self, account, instance)
        raise _Crash()

    monkeypatch.setattr(AwsProvider, "stop", dying_stop)
    aws_ctx.clock = lambda: at(12, 0)
    with pytest.raises(_Crash):
        LifecycleService(aws_ctx).act("db-0000", "stop", actor="cli", reason="manual")
    monkeypatch.setattr(AwsProvider, "stop", real_stop)
    run(aws_ctx, at(12, 0, 10))  # within the lease: left alone
    assert [e.result for e in entries(aws_ctx, "db-0000")] == ["pending"]
    run(aws_ctx, at(12, 1))
    e = entries(aws_ctx, "db-0000")[0]
    assert (e.actor, e.action, e.outcome) == ("cli", "stop", "ok (confirmed after takeover)")


def test_the_action_log_stays_append_only(ctx) -> None:  # noqa: ANN001
    from snoozeql.store import actions as store

    now = ctx.now()
    with ctx.engine.begin() as conn:
        done = store.append(conn, at=now, finished_at=now, actor="cli", action="stop",
                            reason="manual", result="ok")
        intent = store.append(conn, at=now, finished_at=None, actor="cli", action="stop",
                              reason="manual", result="pending", lease_until=now)
    for stmt in (actions.update().where(actions.c.id == done).values(result="failed"),
                 actions.delete().where(actions.c.id == done),
                 actions.delete().where(actions.c.id == intent),
                 actions.update().where(actions.c.id == intent).values(reason="edited")):
        with pytest.raises(sa.exc.DBAPIError, match="append-only"), ctx.engine.begin() as conn:
            conn.execute(stmt)
    with ctx.engine.begin() as conn:
        assert store.complete(conn, intent, result="ok", finished_at=now)
        assert not store.complete(conn, intent, result="failed", finished_at=now)
    with pytest.raises(sa.exc.DBAPIError, match="append-only"), ctx.engine.begin() as conn:
        conn.execute(actions.update().where(actions.c.id == intent).values(result="failed"))


# --------------------------------------------------------------------------- dry runs


@sqlite_only
def test_a_dry_run_claims_nothing_so_the_real_run_still_acts(aws_ctx, aws_env) -> None:  # noqa: ANN001
    office(aws_ctx, aws_env)
    aws_ctx.settings = aws_ctx.settings.model_copy(update={"reconcile_dry_run": True})
    report = run(aws_ctx, at(19, 1))
    assert sorted((i.instance_name, i.action, i.result) for i in report.items) == [
        ("db-0000", "stop", "dry_run"), ("db-0001", "stop", "dry_run")]
    assert count(aws_ctx, reconcile_claims) == 0
    assert run(aws_ctx, at(19, 2)).items == []  # logged once per transition
    assert len(ActionLogService(aws_ctx).list(result="dry_run")) == 2

    aws_ctx.settings = aws_ctx.settings.model_copy(update={"reconcile_dry_run": False})
    report = run(aws_ctx, at(19, 3))
    assert sorted((i.instance_name, i.action, i.result) for i in report.items) == [
        ("db-0000", "stop", "ok"), ("db-0001", "stop", "ok")]
    assert moto_status(aws_env, "db-0000") == "stopped"


@sqlite_only
def test_a_dry_run_schedule_then_made_real_acts_on_the_current_transition(aws_ctx, aws_env  # noqa: ANN001
                                                                         ) -> None:
    office(aws_ctx, aws_env, count=1, dry_run=True)
    assert [i.result for i in run(aws_ctx, at(19, 1)).items] == ["dry_run"]
    ScheduleService(aws_ctx).update("office", {"dry_run": False})
    report = run(aws_ctx, at(19, 5))
    assert [(i.action, i.result) for i in report.items] == [("stop", "ok")]


@pytest.fixture
def cli(snoozeql_cli, aws_env):  # noqa: ANN001, ANN201
    snoozeql_cli.ctx().clock = lambda: at(18, 50)
    return snoozeql_cli


def test_cli_reconcile_dry_run_reports_what_a_run_would_do(cli, aws_env) -> None:  # noqa: ANN001
    aws_env.create_instances("us-east-1", 3, tags={"env": "dev"})
    aws_env.client("rds").stop_db_instance(DBInstanceIdentifier="db-0002")
    assert cli("accounts", "add", "aws", "dev-account", "--regions", "us-east-1",
               "--endpoint-url", aws_env.endpoint_url, "--sync").exit_code == 0
    cli("schedules", "add", "--name", "office", "--timezone", "UTC",
        "--period", "begintime=08:00 endtime=19:00 weekdays=mon-fri")
    cli("schedules", "assign", "office", "--tag", "env=dev")
    ctx = cli.ctx()
    ctx.clock = lambda: at(19, 1)
    before = (count(ctx, actions), count(ctx, reconcile_claims))

    r = cli("schedules", "reconcile", "--dry-run", "--json")
    assert r.exit_code == 0, r.output
    preview = json.loads(r.stdout)
    assert preview["dry_run"] is True and preview["considered"] == 3
    got = {i["instance_name"]: (i["action"], i["result"]) for i in preview["items"]}
    assert got == {"db-0000": ("stop", "dry_run"), "db-0001": ("stop", "dry_run"),
                   "db-0002": ("none", "noop")}
    reasons = {i["instance_name"]: i["reason"] for i in preview["items"]}
    assert "would stop" in reasons["db-0000"] and "schedule office" in reasons["db-0000"]
    assert reasons["db-0002"].startswith("already stopped")
    assert (count(ctx, actions), count(ctx, reconcile_claims)) == before
    assert moto_status(aws_env, "db-0000") == "available"

    r = cli("schedules", "reconcile", "--dry-run")
    assert r.exit_code == 0 and "would act on 2" in r.stdout and "nothing was done" in r.stdout

    r = cli("schedules", "reconcile", "--json")  # the real run does exactly that
    done = {i["instance_name"]: (i["action"], i["result"]) for i in json.loads(r.stdout)["items"]}
    assert done == {"db-0000": ("stop", "ok"), "db-0001": ("stop", "ok")}
    r = cli("schedules", "reconcile", "--dry-run", "--json")
    items = json.loads(r.stdout)["items"]
    assert {i["action"] for i in items} == {"none"}
    assert all("already acted on" in i["reason"] or "already stopped" in i["reason"]
               for i in items)


@sqlite_only
def test_api_reconcile_dry_run_needs_operator_and_writes_nothing(aws_ctx, aws_env) -> None:  # noqa: ANN001
    office(aws_ctx, aws_env)
    keys = {role: ApiKeyService(aws_ctx).create(f"{role}-key", role)[1]
            for role in ("viewer", "operator")}
    api = TestClient(create_app(aws_ctx), raise_server_exceptions=False)
    aws_ctx.clock = lambda: at(19, 1)
    before = (count(aws_ctx, actions), count(aws_ctx, reconcile_claims))
    url = "/api/v1/schedules/reconcile?dry_run=true"
    assert api.post(url, headers={"X-API-Key": keys["viewer"]}).status_code == 403
    r = api.post(url, headers={"X-API-Key": keys["operator"]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["dry_run"] is True
    assert sorted((i["instance_name"], i["action"], i["result"]) for i in body["items"]) == [
        ("db-0000", "stop", "dry_run"), ("db-0001", "stop", "dry_run")]
    assert all("schedule office" in i["reason"] for i in body["items"])
    assert (count(aws_ctx, actions), count(aws_ctx, reconcile_claims)) == before
    assert api.post("/api/v1/schedules/reconcile?dry_run=maybe",
                    headers={"X-API-Key": keys["operator"]}).status_code in (400, 422)
    r = api.post("/api/v1/schedules/reconcile", headers={"X-API-Key": keys["operator"]})
    assert r.status_code == 200 and r.json()["dry_run"] is False
    assert sorted((i["instance_name"], i["result"]) for i in r.json()["items"]) == [
        ("db-0000", "ok"), ("db-0001", "ok")]
