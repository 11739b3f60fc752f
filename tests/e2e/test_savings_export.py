"""Realized savings keep the hourly rate of each stop: a resized instance's past savings
do not change. Against moto with simulated time; CSV export over the API and the CLI."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from snoozeql.api.app import create_app
from snoozeql.cli import state
from snoozeql.cli.main import app as cli_app
from snoozeql.providers.registry import ProviderRegistry
from snoozeql.services.accounts import AccountService
from snoozeql.services.apikeys import ApiKeyService
from snoozeql.services.context import Context
from snoozeql.services.discovery import DiscoveryService
from snoozeql.services.inventory import InventoryService
from snoozeql.services.reconciler import Reconciler
from snoozeql.services.savings import CSV_COLUMNS, SavingsService
from snoozeql.services.schedules import ScheduleService

MON = datetime(2026, 11, 23, tzinfo=UTC)
OFFICE = {"name": "office", "timezone": "UTC",
          "periods": [{"begintime": "08:00", "endtime": "19:00", "weekdays": "mon-fri"}]}


def at(hh: int, mm: int = 0, day: int = 0) -> datetime:
    return MON + timedelta(days=day, hours=hh, minutes=mm)


def run(ctx: Context, when: datetime) -> list[tuple[str, str]]:
    ctx.clock = lambda: when
    return [(i.action, i.result) for i in Reconciler(ctx).run().items]


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_resize_keeps_past_savings_and_csv_exports_intervals(
    ctx: Context, aws_env, tmp_path: Path,  # noqa: ANN001
) -> None:
    prices = tmp_path / "prices.json"
    prices.write_text('{"price": ['
                      '{"provider": "aws", "instance_class": "db.t3.micro", "usd_per_hour": 0.10},'
                      '{"provider": "aws", "instance_class": "db.t3.large", "usd_per_hour": 0.40}'
                      ']}')
    ctx.settings = ctx.settings.model_copy(update={
        "aws_connect_timeout": 1.0, "aws_max_attempts": 2, "price_table": prices})
    ctx.providers = ProviderRegistry(ctx.settings)
    aws_env.create_instances("us-east-1", 1, instance_class="db.t3.micro")
    ctx.clock = lambda: at(18)
    AccountService(ctx).add("aws", "dev-account", {"regions": "us-east-1",
                                                   "endpoint_url": aws_env.endpoint_url})
    assert DiscoveryService(ctx).sync("dev-account").error is None
    assert InventoryService(ctx).get("db-0000").hourly_cost_cents == 10
    ScheduleService(ctx).create_and_assign(OFFICE, instances=["db-0000"])

    assert run(ctx, at(19, 0)) == [("stop", "ok")]
    assert run(ctx, at(8, 0, day=1)) == [("start", "ok")]  # 13 h stopped at $0.10
    svc = SavingsService(ctx)
    window = {"start": at(0), "end": at(0, day=3)}
    assert svc.report(**window).realized_total_cents == pytest.approx(130)

    # Resize to db.t3.large ($0.40/h) and rediscover: the past stop keeps its rate.
    aws_env.client("rds").modify_db_instance(
        DBInstanceIdentifier="db-0000", DBInstanceClass="db.t3.large", ApplyImmediately=True)
    assert DiscoveryService(ctx).sync("dev-account").error is None
    assert InventoryService(ctx).get("db-0000").hourly_cost_cents == 40
    ctx.clock = lambda: at(12, day=1)
    assert svc.report(**window).realized_total_cents == pytest.approx(130)

    # The next stop uses the new rate: 13 h at $0.40.
    assert run(ctx, at(19, 0, day=1)) == [("stop", "ok")]
    assert run(ctx, at(8, 0, day=2)) == [("start", "ok")]
    ctx.clock = lambda: at(12, day=2)
    assert svc.report(**window).realized_total_cents == pytest.approx(130 + 520)

    rows = list(csv.DictReader(io.StringIO(svc.export_csv(**window))))
    assert [(r["hourly_cost_usd"], r["hours_in_window"], r["saved_usd"]) for r in rows] == [
        ("0.100000", "13.0000", "1.3000"), ("0.400000", "13.0000", "5.2000")]
    assert rows[0]["instance"] == "db-0000" and rows[0]["schedule"] == "office"
    assert rows[0]["account"] == "dev-account"
    assert datetime.fromisoformat(rows[0]["stopped_at"]) == at(19)

    # Over the API (format=csv, header row first) and the CLI (--csv).
    key = ApiKeyService(ctx).create("viewer-key", "viewer")[1]
    api = TestClient(create_app(ctx), raise_server_exceptions=False)
    r = api.get("/api/v1/savings", headers={"X-API-Key": key},
                params={"format": "csv", "from": at(0).isoformat(),
                        "to": at(0, day=3).isoformat()})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    lines = r.text.splitlines()
    assert lines[0] == ",".join(CSV_COLUMNS) and len(lines) == 3
    assert api.get("/api/v1/savings", headers={"X-API-Key": key},
                   params={"format": "xml"}).status_code == 400
    state._ctx = ctx
    try:
        out = CliRunner().invoke(cli_app, ["savings", "--csv", "--from", at(0).isoformat(),
                                           "--to", at(0, day=3).isoformat()],
                                 catch_exceptions=False)
    finally:
        state._ctx = None
    assert out.exit_code == 0, out.output
    assert out.stdout.splitlines() == lines
