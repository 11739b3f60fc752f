"""The job runner: due jobs run once per interval, even with several replicas."""

from __future__ import annotations

import threading
from datetime import timedelta

from snoozeql.jobs.catalogue import Job
from snoozeql.jobs.runner import JobRunner
from snoozeql.services.context import Context
from snoozeql.store import db


def test_due_job_runs_once_then_waits_for_its_interval(ctx) -> None:  # noqa: ANN001
    calls: list[int] = []
    job = Job("count", timedelta(minutes=5), lambda c: calls.append(1))
    t0 = ctx.now()
    runner = JobRunner(ctx, [job])
    runner.register()
    assert runner.run_due() == ["count"]
    assert runner.run_due() == []
    ctx.clock = lambda: t0 + timedelta(minutes=6)
    assert runner.run_due() == ["count"]
    assert len(calls) == 2


def test_a_failing_job_is_recorded_and_retried_next_interval(ctx) -> None:  # noqa: ANN001
    def boom(_: Context) -> None:
        raise RuntimeError("provider down")

    t0 = ctx.now()
    runner = JobRunner(ctx, [Job("boom", timedelta(minutes=1), boom)])
    runner.register()
    assert runner.run_due() == ["boom"]
    with ctx.engine.connect() as conn:
        row = conn.exec_driver_sql("SELECT last_error, locked_by FROM jobs").one()
    assert "provider down" in row[0] and row[1] is None
    ctx.clock = lambda: t0 + timedelta(minutes=2)
    assert runner.run_due() == ["boom"]


def test_replicas_racing_run_each_job_once(ctx) -> None:  # noqa: ANN001
    """Eight runners on separate engines (as separate replicas would be) claim at once."""
    ran: list[str] = []
    lock = threading.Lock()

    def work(_: Context) -> None:
        with lock:
            ran.append("x")

    job = Job("once", timedelta(hours=1), work)
    JobRunner(ctx, [job]).register()
    barrier = threading.Barrier(8)
    engines = [db.create_engine(ctx.settings.effective_database_url) for _ in range(8)]

    def replica(engine) -> None:  # noqa: ANN001
        c = Context(settings=ctx.settings, engine=engine, providers=ctx.providers,
                    clock=ctx.clock)
        r = JobRunner(c, [job])
        barrier.wait()
        r.run_due()

    threads = [threading.Thread(target=replica, args=(e,)) for e in engines]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for e in engines:
        e.dispose()
    assert ran == ["x"]


def test_a_dead_holder_lease_expires(ctx) -> None:  # noqa: ANN001
    from snoozeql.store import jobs as store

    t0 = ctx.now()
    with ctx.engine.begin() as conn:
        store.ensure(conn, "j", t0)
        assert store.claim(conn, "j", "dead-replica", t0, timedelta(minutes=10))
    runner = JobRunner(ctx, [Job("j", timedelta(minutes=1), lambda c: None,
                                 lease=timedelta(minutes=10))])
    assert runner.run_due() == []
    ctx.clock = lambda: t0 + timedelta(minutes=11)
    assert runner.run_due() == ["j"]
