"""Conflicts between schedules matching one instance: the pure finder, what the API and
CLI show, and the reconciler's rule (priority, then running wins) against moto with
simulated time.

Times are UTC around Monday 2026-11-23. ``office`` runs 08:00-19:00 Mon-Fri; ``closed``
always says stopped (override_status); ``late`` runs 17:00-23:00 every day.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from snoozeql.api.app import create_app
from snoozeql.domain.schedules import DesiredState, Schedule
from snoozeql.domain.schedules.conflicts import (
    Ranked,
    combined_preview,
    first_conflict,
    pair_conflicts,
    winner,
)
from snoozeql.providers.registry import ProviderRegistry
from snoozeql.services.accounts import AccountService
from snoozeql.services.actions import ActionLogService
from snoozeql.services.apikeys import ApiKeyService
from snoozeql.services.context import Context
from snoozeql.services.discovery import DiscoveryService
from snoozeql.services.reconciler import Reconciler
from snoozeql.services.schedules import ScheduleService

MON = datetime(2026, 11, 23, tzinfo=UTC)
OFFICE = {"name": "office", "timezone": "UTC",
          "periods": [{"begintime": "08:00", "endtime": "19:00", "weekdays": "mon-fri"}]}
CLOSED = {"name": "closed", "timezone": "UTC", "override_status": "stopped"}
LATE = {"name": "late", "timezone": "UTC", "periods": [{"begintime": "17:00",
                                                         "endtime": "23:00"}]}

sqlite_only = pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)


def at(hh: int, mm: int = 0, day: int = 0) -> datetime:
    return MON + timedelta(days=day, hours=hh, minutes=mm)


# --------------------------------------------------------------------------- pure


def test_first_conflict_is_the_first_disagreeing_instant() -> None:
    office, late = Schedule.from_dict(OFFICE), Schedule.from_dict(LATE)
    # From Monday 06:00 both say stopped until office starts at 08:00.
    c = first_conflict(office, late, at(6), at(6, day=7))
    assert c is not None and c.at == at(8)
    assert (c.a_state, c.b_state) == (DesiredState.RUNNING, DesiredState.STOPPED)
    # From 17:30 both run until office stops at 19:00, when late still runs.
    c = first_conflict(office, late, at(17, 30), at(17, 30, day=7))
    assert c is not None and c.at == at(19) and c.a_state is DesiredState.STOPPED
    # Within 17:00-19:00 they agree: no conflict in that window.
    assert first_conflict(office, late, at(17), at(19)) is None
    # A schedule never conflicts with itself.
    assert first_conflict(office, office, at(0), at(0, day=7)) is None


def test_winner_rule_and_combined_state() -> None:
    assert winner([("a", 0, DesiredState.STOPPED), ("b", 0, DesiredState.RUNNING)]) == (
        "b", DesiredState.RUNNING)
    assert winner([("a", 5, DesiredState.STOPPED), ("b", 0, DesiredState.RUNNING)]) == (
        "a", DesiredState.STOPPED)
    assert winner([("a", 9, DesiredState.ANY), ("b", 0, DesiredState.STOPPED)]) == (
        "b", DesiredState.STOPPED)  # "any" abstains, whatever its priority
    assert winner([("a", 0, DesiredState.ANY)]) == (None, DesiredState.ANY)

    office, closed = Schedule.from_dict(OFFICE), Schedule.from_dict(CLOSED)
    tie = combined_preview([Ranked("o", office), Ranked("c", closed)], at(0), at(0, day=1))
    assert [(s.start, s.state) for s in tie] == [
        (at(0), DesiredState.STOPPED), (at(8), DesiredState.RUNNING),
        (at(19), DesiredState.STOPPED)]
    assert tie[1].deciding == "o"  # the running schedule decided 08:00-19:00
    ranked = [Ranked("o", office), Ranked("c", closed, priority=1)]
    assert [s.state for s in combined_preview(ranked, at(0), at(0, day=1))] == [
        DesiredState.STOPPED]

    found = pair_conflicts("o", {"o": office, "c": closed, "l": Schedule.from_dict(LATE)},
                           {"db1": ["o", "c"], "db2": ["o"], "db3": ["c", "l"]},
                           at(6), at(6, day=7))
    assert list(found) == ["c"] and found["c"][1] == ["db1"] and found["c"][0].at == at(8)


# --------------------------------------------------------------------------- with moto


def _aws(ctx: Context, aws_env: Any) -> Context:  # noqa: ANN401
    ctx.settings = ctx.settings.model_copy(update={
        "aws_connect_timeout": 1.0, "aws_max_attempts": 2, "discovery_workers": 2})
    ctx.providers = ProviderRegistry(ctx.settings)
    ctx.clock = lambda: at(6)
    AccountService(ctx).add("aws", "dev-account", {"regions": "us-east-1",
                                                   "endpoint_url": aws_env.endpoint_url})
    assert DiscoveryService(ctx).sync("dev-account").error is None
    return ctx


def run(ctx: Context, when: datetime) -> list[tuple[str, str, str]]:
    ctx.clock = lambda: when
    return sorted((i.instance_name, i.action, i.result) for i in Reconciler(ctx).run().items)


def moto_status(aws_env: Any, name: str) -> str:  # noqa: ANN401
    rds = aws_env.client("rds", "us-east-1")
    return rds.describe_db_instances(DBInstanceIdentifier=name)["DBInstances"][0][
        "DBInstanceStatus"]


@sqlite_only
def test_conflicts_shown_on_both_schedules_over_api_and_cli(ctx, aws_env) -> None:  # noqa: ANN001
    aws_env.create_instances("us-east-1", 2, tags={"env": "dev"})
    aws_env.create_instances("us-east-1", 1, prefix="solo")
    _aws(ctx, aws_env)
    keys = {r: ApiKeyService(ctx).create(f"{r}-key", r)[1] for r in ("viewer", "operator")}
    api = TestClient(create_app(ctx), raise_server_exceptions=False)
    op, view = {"X-API-Key": keys["operator"]}, {"X-API-Key": keys["viewer"]}
    assert api.post("/api/v1/schedules", headers=op, json=OFFICE).status_code == 201
    assert api.post("/api/v1/schedules", headers=op,
                    json={**LATE, "priority": 5}).status_code == 201
    api.post("/api/v1/schedules/office/assignments", headers=op, json={"tag": "env=dev"})
    api.post("/api/v1/schedules/office/assignments", headers=op, json={"instance": "solo-0000"})
    api.post("/api/v1/schedules/late/assignments", headers=op,
             json={"selector": {"name": "db-000[01]"}})

    body = api.get("/api/v1/schedules/office", headers=view).json()
    assert body["priority"] == 0
    [c] = body["conflicts"]
    assert c["other_schedule"] == "late" and c["instances"] == ["db-0000", "db-0001"]
    assert datetime.fromisoformat(c["first_conflict_at"]) == at(8)
    assert (c["state"], c["other_state"], c["winner"], c["rule"]) == (
        "running", "stopped", "late", "higher priority")
    [c2] = api.get("/api/v1/schedules/late/conflicts", headers=view).json()
    assert c2["other_schedule"] == "office" and c2["instances"] == ["db-0000", "db-0001"]
    assert datetime.fromisoformat(c2["first_conflict_at"]) == at(8)

    # Only one of them on the instances: no conflict left.
    api.delete("/api/v1/schedules/late/assignments", headers=op,
               params={"selector": json.dumps({"name": "db-000[01]"})})
    assert api.get("/api/v1/schedules/office/conflicts", headers=view).json() == []

    from typer.testing import CliRunner

    from snoozeql.cli import state
    from snoozeql.cli.main import app

    ScheduleService(ctx).assign("late", instance="solo-0000")
    state._ctx = ctx
    try:
        r = CliRunner().invoke(app, ["schedules", "conflicts", "office", "--json"],
                               catch_exceptions=False)
    finally:
        state._ctx = None
    assert r.exit_code == 0, r.output
    [c3] = json.loads(r.stdout)
    assert c3["instances"] == ["solo-0000"] and c3["first_conflict_at"].startswith(
        "2026-11-23T08:00:00")


@sqlite_only
def test_reconciler_applies_priority_then_running_wins(ctx, aws_env) -> None:  # noqa: ANN001
    aws_env.create_instances("us-east-1", 1)
    _aws(ctx, aws_env)
    svc = ScheduleService(ctx)
    svc.create(OFFICE)
    svc.create(CLOSED)
    svc.assign("office", instance="db-0000")
    svc.assign("closed", selector={"name": "db-.*"})

    assert run(ctx, at(7)) == [("db-0000", "stop", "ok")]  # both say stopped
    assert moto_status(aws_env, "db-0000") == "stopped"
    # 08:00: office wants running, closed stopped; same priority: running wins, once.
    assert run(ctx, at(8, 1)) == [("db-0000", "start", "ok")]
    assert moto_status(aws_env, "db-0000") == "available"
    assert run(ctx, at(8, 2)) == [] and run(ctx, at(8, 3)) == []  # no flapping
    [entry] = ActionLogService(ctx).list(instance="db-0000", action="start")
    assert "schedule office (over closed: running wins)" in entry.reason

    # Raise closed's priority: it now decides, the instance stops, and stays stopped.
    ctx.clock = lambda: at(9)
    svc.update("closed", {"priority": 10})
    assert run(ctx, at(9, 1)) == [("db-0000", "stop", "ok")]
    assert moto_status(aws_env, "db-0000") == "stopped"
    assert run(ctx, at(9, 2)) == [] and run(ctx, at(12)) == []
    [entry] = ActionLogService(ctx).list(instance="db-0000", action="stop", limit=1)
    assert "schedule closed (over office: higher priority)" in entry.reason
