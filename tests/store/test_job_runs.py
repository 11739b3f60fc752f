"""Runs of background tasks: recorded by the in-process runner, listed and paged, and a
task run now through the CLI and the API (in process on SQLite, queued on PostgreSQL)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from snoozeql.api.app import create_app
from snoozeql.domain.errors import NotFoundError, ValidationError
from snoozeql.domain.metrics import CPU, Sample
from snoozeql.jobs.catalogue import Job
from snoozeql.jobs.dispatch import run_now
from snoozeql.jobs.queue import close_deferrer, cron_for
from snoozeql.jobs.runner import JobRunner
from snoozeql.services.accounts import AccountService
from snoozeql.services.apikeys import ApiKeyService
from snoozeql.services.context import Context
from snoozeql.services.jobs import JobService
from snoozeql.store import metrics as metric_store
from tests.support.moto_server import free_port


@pytest.fixture
def jctx(ctx: Context) -> Iterator[Context]:
    # Accounts here point at a closed loopback port: a sync fails at once, offline.
    ctx.settings.allowed_endpoints = ["127.0.0.1"]
    ctx.settings.aws_max_attempts = 1
    yield ctx
    close_deferrer(ctx)


CLOSED = f"http://127.0.0.1:{free_port()}"


def _boom(_: Context) -> None:
    raise RuntimeError("provider down")


def test_the_runner_records_each_run_with_its_outcome(jctx: Context) -> None:
    t0 = jctx.now()
    runner = JobRunner(jctx, [Job("fine", timedelta(minutes=1), lambda c: None),
                              Job("boom", timedelta(minutes=1), _boom)])
    runner.register()
    assert runner.run_due() == ["fine", "boom"]
    jctx.clock = lambda: t0 + timedelta(minutes=2)
    runner.run_due()
    page = JobService(jctx).list(limit=10)
    assert [(r.task, r.status) for r in page.items][:2] in (
        [("boom", "failed"), ("fine", "succeeded")], [("fine", "succeeded"), ("boom", "failed")])
    boom = [r for r in page.items if r.task == "boom"]
    assert len(boom) == 2 and all("provider down" in (r.error or "") for r in boom)
    assert boom[0].attempt == 1 and boom[1].attempt == 0  # the second run is a retry
    assert all(r.worker == runner.owner and r.seconds is not None for r in page.items)


def test_listing_pages_with_a_cursor_and_refuses_bad_input(jctx: Context) -> None:
    runner = JobRunner(jctx, [Job(f"j{n}", timedelta(minutes=1), lambda c: None)
                              for n in range(7)])
    runner.register()
    runner.run_due()
    svc = JobService(jctx)
    first = svc.list(limit=4)
    assert len(first.items) == 4 and first.next_cursor
    rest = svc.list(limit=4, cursor=first.next_cursor)
    assert len(rest.items) == 3 and rest.next_cursor is None
    assert {r.task for r in first.items + rest.items} == {f"j{n}" for n in range(7)}
    assert [r.task for r in svc.list(task="j3").items] == ["j3"]
    with pytest.raises(ValidationError, match="unknown status"):
        svc.list(status="done")
    with pytest.raises(ValidationError, match="cursor"):
        svc.list(cursor="yesterday")
    with pytest.raises(ValidationError, match="limit"):
        svc.list(limit=0)


def test_run_now_syncs_here_on_sqlite_and_queues_on_postgres(jctx: Context) -> None:
    AccountService(jctx).add("aws", "acme", {"regions": "us-east-1",
                                             "endpoint_url": CLOSED})
    with pytest.raises(NotFoundError):
        run_now(jctx, "sync", "nope", wait=True)
    with pytest.raises(ValidationError, match="unknown task kind"):
        run_now(jctx, "collect", "acme", wait=True)
    started = run_now(jctx, "sync", "acme", wait=True)
    if jctx.engine.dialect.name == "sqlite":
        assert started.status == "failed" and started.error
        runs = JobService(jctx).list().items
        assert [(r.task, r.status) for r in runs] == [("sync-account", "failed")]
        assert runs[0].error == started.error
    else:
        assert started.status == "queued" and started.job_id
        again = run_now(jctx, "sync", "acme", wait=True)
        assert again.status == "already_queued" and again.job_id == started.job_id
        queued = JobService(jctx).list(status="queued").items
        assert [(r.task, r.job_id, r.status) for r in queued] == [
            ("sync-account", started.job_id, "queued")]


def test_the_jobs_api_reads_for_viewers_and_runs_for_operators(jctx: Context) -> None:
    AccountService(jctx).add("aws", "acme", {"regions": "us-east-1",
                                             "endpoint_url": CLOSED})
    viewer = ApiKeyService(jctx).create("v", "viewer")[1]
    operator = ApiKeyService(jctx).create("o", "operator")[1]
    client = TestClient(create_app(jctx), raise_server_exceptions=False)
    assert client.get("/api/v1/jobs").status_code == 401
    r = client.post("/api/v1/jobs", json={"kind": "sync", "account": "acme"},
                    headers={"X-API-Key": viewer})
    assert r.status_code == 403
    r = client.post("/api/v1/jobs", json={"kind": "reboot", "account": "acme"},
                    headers={"X-API-Key": operator})
    assert r.status_code == 422
    r = client.post("/api/v1/jobs", json={"kind": "sync", "account": "acme"},
                    headers={"X-API-Key": operator})
    assert r.status_code == 202, r.text
    body = r.json()
    sqlite = jctx.engine.dialect.name == "sqlite"
    assert body["status"] == ("running" if sqlite else "queued")
    deadline = time.monotonic() + 30
    while True:
        r = client.get("/api/v1/jobs", headers={"X-API-Key": viewer})
        assert r.status_code == 200
        items = r.json()["items"]
        if not sqlite or (items and items[0]["status"] != "running"):
            break
        assert time.monotonic() < deadline
        time.sleep(0.05)
    item = items[0]
    assert item["task"] == "sync-account" and item["args"]["account_id"]
    if sqlite:
        assert item["status"] == "failed" and item["error"] and item["duration_s"] is not None
        assert item["id"] == body["run_id"]
    else:
        assert item["status"] == "queued" and item["job_id"] == body["job_id"]
    assert client.get("/api/v1/jobs?status=nope",
                      headers={"X-API-Key": viewer}).status_code == 400


@pytest.mark.parametrize(("seconds", "cron"), [
    (5, "* * * * * */5"), (30, "* * * * * */30"), (45, "* * * * * */45"),
    (60, "*/1 * * * *"), (300, "*/5 * * * *"), (900, "*/15 * * * *"),
    (5400, "0 */1 * * *"), (86400, "0 0 * * *"),
])
def test_intervals_become_crons_that_fire_at_least_as_often(seconds: int, cron: str) -> None:
    assert cron_for(timedelta(seconds=seconds)) == cron


def _discovered(name: str, region: str, status: str = "running") -> object:
    from snoozeql.domain.types import (
        DiscoveredInstance,
        InstanceKind,
        InstanceStatus,
        ProviderKind,
    )

    return DiscoveredInstance(
        provider=ProviderKind.AWS, provider_id=f"arn:aws:rds:{region}:123456789012:db:{name}",
        name=name, kind=InstanceKind.INSTANCE, engine="postgres", engine_version=None,
        instance_class="db.t3.micro", region=region, status=InstanceStatus(status),
        raw_status=None, tags={},
    )


def test_collection_is_cut_per_account_and_region_in_batches_of_500_queries(
        jctx: Context) -> None:
    from snoozeql.jobs import tasks
    from snoozeql.services.metrics import QUERIES_PER_INSTANCE
    from snoozeql.store import instances as instance_store

    a = AccountService(jctx).add("aws", "a", {"regions": "us-east-1,eu-west-1",
                                              "endpoint_url": CLOSED})
    b = AccountService(jctx).add("aws", "b", {"regions": "us-east-1",
                                              "endpoint_url": CLOSED})
    big = [_discovered(f"a-{n:03d}", "us-east-1") for n in range(130)]
    small = [_discovered(f"a-eu-{n}", "eu-west-1") for n in range(3)]
    stopped = [_discovered("a-stopped", "eu-west-1", "stopped")]
    other = [_discovered("b-0", "us-east-1")]
    with jctx.engine.begin() as conn:
        instance_store.upsert_discovered(conn, big + small + stopped, a.id, jctx.now(), {})
        instance_store.upsert_discovered(conn, other, b.id, jctx.now(), {})
    units = tasks.plan_collect(jctx)
    assert all(u.task == "collect-metrics-batch" and u.queue == "metrics" for u in units)
    shape = sorted((u.args["account_id"], u.args["region"], len(u.args["instance_ids"]))
                   for u in units)
    per_batch = 500 // QUERIES_PER_INSTANCE
    assert per_batch == 125
    assert shape == sorted([(str(a.id), "us-east-1", 125), (str(a.id), "us-east-1", 5),
                            (str(a.id), "eu-west-1", 3), (str(b.id), "us-east-1", 1)])
    assert len({u.key for u in units}) == len(units)  # each batch its own lock
    # A batch of an account whose provider fails reports the error, never raises.
    unit = next(u for u in units if u.args["account_id"] == str(b.id))
    result = tasks.collect_metrics_batch(jctx, **unit.args)
    assert result.errors and result.instances == 1  # type: ignore[attr-defined]


def test_the_reconcile_is_cut_in_shards_that_cover_the_fleet_once(jctx: Context) -> None:
    from snoozeql.jobs import tasks

    jctx.settings.reconcile_shards = 3
    units = tasks.plan_reconcile(jctx)
    assert [(u.task, u.args) for u in units] == [
        ("reconcile-shard", {"shard": k, "shards": 3}) for k in range(3)]
    for u in units:
        tasks.reconcile_shard(jctx, **u.args)  # nothing governed: nothing to do
    with pytest.raises(ValueError, match="shard"):
        tasks.reconcile_shard(jctx, shard=3, shards=3)


def test_the_queued_analysis_runs_in_batches_and_leaves_the_listing_nothing_to_compute(
        jctx: Context, monkeypatch: pytest.MonkeyPatch) -> None:
    from snoozeql.jobs import tasks
    from snoozeql.services.recommendations import RecommendationService
    from tests.store.test_metrics_store import add_instances
    from tests.store.test_recommendations import NOW, seed

    jctx.clock = lambda: NOW
    ids = add_instances(jctx, "idle-a", "idle-b", "idle-c", cost=100)
    for i in ids.values():
        seed(jctx, i, lambda _t: False)
    monkeypatch.setattr(tasks, "ANALYSIS_BATCH", 2)
    units = tasks.plan_analyse(jctx)
    assert [(u.task, len(u.args["instance_ids"])) for u in units] == [
        ("analyse-batch", 2), ("analyse-batch", 1)]
    assert {i for u in units for i in u.args["instance_ids"]} == {str(i) for i in
                                                                   ids.values()}
    assert [tasks.analyse_batch(jctx, **u.args) for u in units] == [2, 1]
    assert tasks.plan_analyse(jctx) == []  # nothing stale now
    # Another process's listing (a new service, no memo) computes nothing.
    jctx.memo.clear()
    analyses: list[int] = []
    compute = RecommendationService.compute
    monkeypatch.setattr(RecommendationService, "compute",
                        lambda self, *a, **k: analyses.append(1) or compute(self, *a, **k))
    kinds = [r["kind"] for r in RecommendationService(jctx).list()]
    assert kinds == ["always_idle"] * 3 and analyses == []
    # A new sample of one instance: only it is stale again.
    metric_store.apply_samples(jctx.engine, {ids["idle-b"]: [
        Sample(CPU, NOW.replace(minute=0) - timedelta(minutes=23), 90.0)]})
    assert [u.args["instance_ids"] for u in tasks.plan_analyse(jctx)] == [
        [str(ids["idle-b"])]]
