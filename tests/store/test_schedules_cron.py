"""Cron-pair schedules through the API and the CLI, on a real store: saved, shown,
evaluated, previewed, switched to periods and back, and refused with the reason."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from fastapi.testclient import TestClient

from snoozeql.api.app import create_app
from snoozeql.services.apikeys import ApiKeyService
from snoozeql.services.context import Context
from tests.support.cli import CliHarness

BATCH = {"name": "batch", "timezone": "Europe/Berlin",
         "start_cron": "0 7 * * 1-5", "stop_cron": "0 19 * * MON-FRI"}


def test_cron_schedule_over_the_api(ctx: Context) -> None:
    ctx.clock = lambda: datetime(2026, 11, 23, 9, tzinfo=UTC)  # a Monday
    key = ApiKeyService(ctx).create("op", "operator")[1]
    api = TestClient(create_app(ctx), raise_server_exceptions=False, headers={"X-API-Key": key})

    r = api.post("/api/v1/schedules", json=BATCH)
    assert r.status_code == 201, r.text
    body = r.json()
    assert (body["mode"], body["start_cron"], body["stop_cron"], body["periods"]) == (
        "cron", "0 7 * * 1-5", "0 19 * * mon-fri", [])
    assert api.get("/api/v1/schedules/batch").json()["stop_cron"] == "0 19 * * mon-fri"

    r = api.post("/api/v1/schedules/batch/evaluate", json={"at": "2026-11-27T18:59:00+01:00"})
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "running"
    assert r.json()["next_transition"]["at"] == "2026-11-27T19:00:00+01:00"
    assert r.json()["next_transition"]["state"] == "stopped"
    r = api.get("/api/v1/schedules/batch/preview",
                params={"start": "2026-11-23T00:00:00+01:00", "days": 7})
    running = [s for s in r.json()["segments"] if s["state"] == "running"]
    assert [s["start"][:16] for s in running] == [
        f"2026-11-{d}T07:00" for d in (23, 24, 25, 26, 27)]

    # both firing at one minute: refused with the reason, nothing saved
    r = api.post("/api/v1/schedules", json={**BATCH, "name": "clash", "stop_cron": "0 7 * * 5"})
    assert r.status_code == 400
    assert "fires at the same minute as start_cron" in r.json()["error"]["message"]
    assert api.get("/api/v1/schedules/clash").status_code == 404
    r = api.post("/api/v1/schedules", json={**BATCH, "name": "bad", "start_cron": "0 7 * *"})
    assert r.status_code == 400 and "has 4 field(s)" in r.json()["error"]["message"]

    # switching to periods needs the cron pair cleared, and says so
    r = api.patch("/api/v1/schedules/batch", json={"periods": [{"begintime": "08:00"}]})
    assert r.status_code == 400 and "not both" in r.json()["error"]["message"]
    r = api.patch("/api/v1/schedules/batch", json={
        "periods": [{"begintime": "08:00", "endtime": "18:00"}],
        "start_cron": None, "stop_cron": None})
    assert r.status_code == 200, r.text
    assert r.json()["mode"] == "periods" and r.json()["start_cron"] is None


def test_cron_schedule_through_the_cli(snoozeql_cli: CliHarness) -> None:
    cli = snoozeql_cli
    r = cli("schedules", "add", "--name", "batch", "--tz", "UTC",
            "--start-cron", "0 7 * * 1-5", "--stop-cron", "0 19 * * 1-5")
    assert r.exit_code == 0, r.output
    shown = json.loads(cli("schedules", "show", "batch", "--json").output)
    assert (shown["mode"], shown["start_cron"], shown["stop_cron"]) == (
        "cron", "0 7 * * 1-5", "0 19 * * 1-5")
    text = cli("schedules", "show", "batch").output
    assert "start cron" in text and "0 7 * * 1-5" in text
    listed = json.loads(cli("schedules", "list", "--json").output)
    assert [(s["name"], s["mode"]) for s in listed] == [("batch", "cron")]
    assert "cron: start" in cli("schedules", "list").output

    # change only the stop: the start stays
    r = cli("schedules", "update", "batch", "--stop-cron", "30 18 * * 1-5", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["start_cron"] == "0 7 * * 1-5"
    assert json.loads(r.output)["stop_cron"] == "30 18 * * 1-5"

    # periods replace the cron pair, and a cron pair the periods
    r = cli("schedules", "update", "batch", "--period", "begintime=08:00 endtime=18:00",
            "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["mode"] == "periods"
    assert "start_cron" not in json.loads(r.output)
    r = cli("schedules", "update", "batch", "--start-cron", "0 6 * * *",
            "--stop-cron", "0 20 * * *", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["periods"] == []

    r = cli("schedules", "add", "--name", "half", "--tz", "UTC", "--start-cron", "0 7 * * *")
    assert r.exit_code == 2
    assert "stop_cron: a cron schedule needs both start_cron and stop_cron" in r.output
    r = cli("schedules", "add", "--name", "mixed", "--tz", "UTC", "--start-cron", "0 7 * * *",
            "--stop-cron", "0 8 * * *", "--period", "begintime=08:00")
    assert r.exit_code == 2 and "not both" in r.output
    assert "half" not in cli("schedules", "list").output
