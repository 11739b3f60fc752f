"""`snoozeql schedules ...`, `instances keep-awake/sleep` and `savings` (Typer's runner)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from snoozeql.cli import state

MON = datetime(2026, 11, 23, tzinfo=UTC)


@pytest.fixture
def cli(snoozeql_cli, aws_env):  # noqa: ANN001, ANN201
    snoozeql_cli.ctx().clock = lambda: MON + timedelta(hours=9)
    return snoozeql_cli


def test_define_import_check_and_preview(cli, tmp_path: Path) -> None:  # noqa: ANN001
    r = cli("schedules", "add", "--name", "office", "--timezone", "Europe/Berlin",
            "--period", "begintime=08:00 endtime=19:00 weekdays=mon-fri",
            "--exception", "2026-12-24", "--json")
    assert r.exit_code == 0, r.output
    made = json.loads(r.stdout)
    assert made["periods"] == [{"begintime": "08:00", "endtime": "19:00", "weekdays": "mon-fri"}]
    assert made["exceptions"] == [{"date": "2026-12-24", "state": "stopped"}]
    f = tmp_path / "night.yaml"
    f.write_text("name: night\ntimezone: UTC\nperiods:\n  - begintime: '20:00'\n")
    assert cli("schedules", "add", str(f)).exit_code == 0

    r = cli("schedules", "add", "--name", "bad", "--timezone", "UTC",
            "--period", "begintime=08:00 weekdays=mon-fry")
    assert r.exit_code == 2 and "'mon-fry': unknown weekday 'fry'" in r.stderr
    r = cli("schedules", "add", "--name", "bad", "--timezone", "UTC", "--period", "start=8")
    assert r.exit_code == 2 and "key=value" in r.stderr
    r = cli("schedules", "add", "--name", "office", "--timezone", "UTC",
            "--period", "begintime=08:00")
    assert r.exit_code == 2 and "already exists" in r.stderr

    r = cli("schedules", "import", "--custodian", "off=(M-F,19);on=(M-F,7);tz=pt",
            "--name", "cust", "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["schedules"][0]["timezone"] == (
        "America/Los_Angeles")
    is_file = tmp_path / "is.json"
    is_file.write_text(json.dumps([
        {"type": "period", "name": "p", "begintime": "09:00", "endtime": "17:00"},
        {"type": "schedule", "name": "is", "periods": ["p"], "timezone": "Asia/Tokyo"}]))
    r = cli("schedules", "import", "--instance-scheduler", str(is_file))
    assert r.exit_code == 0 and "imported schedule is" in r.stdout
    r = cli("schedules", "list", "--json")
    assert [s["name"] for s in json.loads(r.stdout)] == ["cust", "is", "night", "office"]

    r = cli("schedules", "check", "office", "--at", "2026-11-23T19:30:00+01:00", "--json")
    assert r.exit_code == 0, r.output
    ev = json.loads(r.stdout)
    assert ev["state"] == "stopped"
    assert ev["next_transition"]["at"] == "2026-11-24T08:00:00+01:00"
    r = cli("schedules", "check", "office", "--at", "2026-11-23T12:00:00+01:00")
    assert "running" in r.stdout and "next: stopped at 2026-11-23T19:00:00+01:00" in r.stdout
    r = cli("schedules", "check", "office", "--at", "2026-11-23 12:00")
    assert r.exit_code == 2 and "UTC offset" in r.stderr
    r = cli("schedules", "preview", "office", "--days", "7",
            "--start", "2026-11-23T00:00:00+01:00", "--json")
    segs = json.loads(r.stdout)["segments"]
    assert [s["state"] for s in segs].count("running") == 5
    r = cli("schedules", "preview", "office", "--days", "2")
    assert r.exit_code == 0 and "running" in r.stdout

    r = cli("schedules", "update", "office", "--enforced", "--json")
    assert json.loads(r.stdout)["enforced"] is True
    assert cli("schedules", "delete", "night").exit_code == 0
    assert cli("schedules", "show", "night").exit_code == 2


def test_assign_override_reconcile_and_savings(cli, aws_env) -> None:  # noqa: ANN001
    aws_env.create_instances("us-east-1", 2, tags={"env": "dev"})
    assert cli("accounts", "add", "aws", "dev-account", "--regions", "us-east-1",
               "--endpoint-url", aws_env.endpoint_url).exit_code == 0
    assert cli("accounts", "sync", "dev-account").exit_code == 0
    cli("schedules", "add", "--name", "office", "--timezone", "UTC",
        "--period", "begintime=08:00 endtime=19:00 weekdays=mon-fri")
    r = cli("schedules", "assign", "office", "--tag", "env=dev", "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["target"] == "tag:env=dev"
    r = cli("schedules", "assignments", "--json")
    assert [a["schedule"] for a in json.loads(r.stdout)] == ["office"]

    r = cli("instances", "keep-awake", "db-0000", "--until", "22:00", "--json")
    assert r.exit_code == 0, r.output
    assert datetime.fromisoformat(json.loads(r.stdout)["until"]) == MON + timedelta(hours=22)
    r = cli("instances", "sleep", "db-0001", "--until", "tomorrow 08:30")
    assert r.exit_code == 0 and "asleep until 2026-11-24T08:30:00+00:00" in r.stdout
    r = cli("instances", "sleep", "db-0001", "--until", "soon")
    assert r.exit_code == 2 and "until" in r.stderr

    r = cli("schedules", "reconcile", "--json")
    items = json.loads(r.stdout)["items"]
    assert [(i["instance_name"], i["action"], i["result"]) for i in items] == [
        ("db-0001", "stop", "ok")]
    state.ctx().clock = lambda: MON + timedelta(days=1, hours=8, minutes=31)
    r = cli("schedules", "reconcile")
    assert r.exit_code == 0 and "db-0001" in r.stdout and "start" in r.stdout
    r = cli("actions", "list", "--json")
    reasons = [a["reason"] for a in json.loads(r.stdout) if a["actor"] == "reconciler"]
    assert any(x.startswith("override by cli") for x in reasons)

    r = cli("savings", "--from", "2026-11-23T00:00:00Z", "--to", "2026-11-25T00:00:00Z",
            "--json")
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    [row] = data["realized"]
    assert row["name"] == "db-0001" and row["stopped_hours"] == pytest.approx(23.52, abs=0.01)
    assert data["projected"][0]["schedule"] == "office"
    r = cli("savings", "--group-by", "account")
    assert r.exit_code == 0 and "dev-account" in r.stdout and "projected" in r.stdout
    r = cli("savings", "--group-by", "galaxy")
    assert r.exit_code == 2
