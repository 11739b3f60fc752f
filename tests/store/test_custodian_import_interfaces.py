"""Custodian import through the CLI and the REST API (issue 13 items 5, 6 and 7): the
policy's options, the warnings where Custodian reads a tag otherwise, and the start
repeated at 00:00, as a user sees them."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from snoozeql.api.app import create_app
from snoozeql.services.apikeys import ApiKeyService


def test_cli_import_takes_the_policy_options(snoozeql_cli) -> None:  # noqa: ANN001
    cli = snoozeql_cli
    r = cli("schedules", "import", "--custodian", "tz=cet", "--name", "late",
            "--onhour", "8", "--offhour", "20", "--weekends-only", "--json")
    assert r.exit_code == 0, r.output
    [schedule] = json.loads(r.stdout)["schedules"]
    assert schedule["timezone"] == "Europe/Berlin"
    # Off on Friday at 20:00, on on Monday at 08:00 (local).
    r = cli("schedules", "check", "late", "--at", "2026-11-27T19:59:00+01:00", "--json")
    body = json.loads(r.stdout)
    assert body["state"] == "running"
    nxt = body["next_transition"]
    assert (nxt["at"], nxt["state"]) == ("2026-11-27T20:00:00+01:00", "stopped")
    r = cli("schedules", "check", "late", "--at", "2026-11-28T12:00:00+01:00", "--json")
    assert json.loads(r.stdout)["next_transition"]["at"] == "2026-11-30T08:00:00+01:00"

    r = cli("schedules", "import", "--custodian", "", "--name", "everyday", "--no-weekends",
            "--default-tz", "pt", "--onhour", "6", "--json")
    assert r.exit_code == 0, r.output
    [schedule] = json.loads(r.stdout)["schedules"]
    assert schedule["timezone"] == "America/Los_Angeles"
    assert schedule["periods"] == [
        {"begintime": "06:00", "endtime": "19:00", "weekdays": "mon-sun"}]

    # opt-out: a resource without the tag gets the defaults; the tag may be left out.
    r = cli("schedules", "import", "--opt-out", "--name", "untagged", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["schedules"][0]["periods"] == [
        {"begintime": "07:00", "endtime": "19:00", "weekdays": "mon-fri"}]
    r = cli("schedules", "import", "--name", "x")
    assert r.exit_code == 2
    r = cli("schedules", "import", "--custodian", "off", "--opt-out", "--name", "x")
    assert r.exit_code == 2 and "opts the resource out" in r.stderr
    r = cli("schedules", "import", "--custodian", "", "--name", "x", "--onhour", "24")
    assert r.exit_code == 2


def test_cli_import_warns_where_custodian_would_differ(snoozeql_cli) -> None:  # noqa: ANN001
    cli = snoozeql_cli
    r = cli("schedules", "import", "--custodian", "off=(M-F,18); tz=pt", "--name", "a")
    assert r.exit_code == 0, r.output
    out = " ".join(r.stdout.split())
    assert "warning: 'tz=pt' follows '; '" in out and "SnoozeQL reads it as written" in out
    r = cli("schedules", "import", "--custodian", "off=(M-X,19);on=(M-F,8)", "--name", "b",
            "--json")
    assert r.exit_code == 0, r.output
    body = json.loads(r.stdout)
    [warning] = body["warnings"]
    assert "off=(m-x,19)" in warning and "falls back to the policy's default offhour" in warning
    assert body["schedules"][0]["periods"] == [
        {"begintime": "08:00", "endtime": "19:00", "weekdays": "mon-fri"}]
    r = cli("schedules", "import", "--custodian", "off=(M-F,19);on=disabled", "--name", "c")
    assert r.exit_code == 0 and "whole tag as a parse error" in " ".join(r.stdout.split())


def test_cli_check_and_preview_show_the_start_repeated_at_midnight(snoozeql_cli) -> None:  # noqa: ANN001
    cli = snoozeql_cli
    r = cli("schedules", "import", "--custodian", "off=(S,3);on=(M-F,0)", "--name", "mid")
    assert r.exit_code == 0, r.output
    r = cli("schedules", "check", "mid", "--at", "2026-03-02T23:30:00-05:00", "--json")
    body = json.loads(r.stdout)
    assert body["state"] == "running"
    nxt = body["next_transition"]
    assert (nxt["at"], nxt["state"]) == ("2026-03-03T00:00:00-05:00", "running")
    r = cli("schedules", "preview", "mid", "--days", "7", "--json",
            "--start", "2026-03-02T00:00:00-05:00")
    assert r.exit_code == 0, r.output
    segments = [(s["start"][:16], s["state"]) for s in json.loads(r.stdout)["segments"]]
    # A boundary between running days at each repeated start, not one running block.
    assert segments == [
        ("2026-03-02T00:00", "running"), ("2026-03-03T00:00", "running"),
        ("2026-03-04T00:00", "running"), ("2026-03-05T00:00", "running"),
        ("2026-03-06T00:00", "running"), ("2026-03-07T03:00", "stopped"),
        ("2026-03-09T00:00", "running")]  # the 7 days end at 01:00 EDT, after DST


@pytest.fixture
def api(ctx):  # noqa: ANN001, ANN201
    keys = {role: ApiKeyService(ctx).create(f"{role}-key", role)[1]
            for role in ("viewer", "operator")}
    client = TestClient(create_app(ctx), raise_server_exceptions=False)
    client.keys = keys  # type: ignore[attr-defined]
    return client


def _import(api, body: dict):  # noqa: ANN001, ANN202
    return api.post("/api/v1/schedules/import", json=body,
                    headers={"X-API-Key": api.keys["operator"]})


def test_api_import_takes_the_policy_options_and_returns_warnings(api) -> None:  # noqa: ANN001
    r = _import(api, {"custodian": "tz=cet", "name": "late", "onhour": 8, "offhour": 20,
                      "weekends-only": True})
    assert r.status_code == 201, r.text
    [schedule] = r.json()["schedules"]
    assert schedule["timezone"] == "Europe/Berlin" and r.json()["warnings"] == []
    r = _import(api, {"custodian": "", "name": "every", "weekends": False, "default_tz": "pt",
                      "weekends_only": False, "offhour": 22})
    assert r.status_code == 201, r.text
    assert r.json()["schedules"][0]["periods"] == [
        {"begintime": "07:00", "endtime": "22:00", "weekdays": "mon-sun"}]
    r = _import(api, {"opt-out": True, "name": "untagged"})
    assert r.status_code == 201, r.text
    r = _import(api, {"opt_out": False, "name": "none"})
    assert r.status_code == 400
    r = _import(api, {"custodian": "off=(M-F,19); tz=pt", "name": "warned"})
    assert r.status_code == 201
    [warning] = r.json()["warnings"]
    assert "'tz=pt' follows '; '" in warning
    assert r.json()["schedules"][0]["timezone"] == "America/Los_Angeles"
    r = _import(api, {"custodian": "", "name": "bad", "onhour": 25})
    assert r.status_code in (400, 422)
