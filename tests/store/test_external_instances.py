"""Outside databases (issue 21): registered by hand, metrics pushed, recommendations and
savings like any other, start and stop refused with the reason. API (both stores) and CLI."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from snoozeql.services.context import Context
from tests.store.test_metrics_api import api, h  # noqa: F401 - the fixture
from tests.store.test_recommendations import NOW, office_hours


def office_samples(hours: int = 14 * 24) -> list[dict[str, Any]]:
    start = NOW.replace(minute=0) - timedelta(hours=hours)
    out = []
    for k in range(hours):
        t = start + timedelta(hours=k, minutes=7)
        busy = office_hours(t)
        out += [{"metric": "cpu", "ts": t.isoformat(), "value": 40.0 if busy else 1.0},
                {"metric": "connections", "ts": t.isoformat(), "value": 5 if busy else 0}]
    return out


def test_register_push_recommend_and_refuse_over_the_api(api: Any, ctx: Context) -> None:  # noqa: F811
    body = {"provider": "external", "name": "billing-db", "engine": "SQLServer",
            "hourly_cost": 1.5, "tags": {"team": "finance", "timezone": "Europe/Paris"}}
    assert api.post("/api/v1/instances", json=body, headers=h(api, "viewer")).status_code == 403
    r = api.post("/api/v1/instances", json=body, headers=h(api, "operator"))
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["provider"] == "external" and created["engine"] == "sqlserver"
    assert created["hourly_cost_cents"] == 150 and created["tags"]["team"] == "finance"
    assert "password" not in created
    # the same name again, and bad input: 4xx, nothing written
    again = api.post("/api/v1/instances", json=body, headers=h(api, "operator"))
    assert again.status_code == 409 and "already registered" in again.json()["error"]["message"]
    for bad in (dict(body, name="Not A Label"), dict(body, name="x2", hourly_cost=-1),
                dict(body, name="x3", engine=""), dict(body, name="x4", provider="oracle"),
                dict(body, name="x5", extra=1)):
        r = api.post("/api/v1/instances", json=bad, headers=h(api, "operator"))
        assert 400 <= r.status_code < 500, (bad, r.text)
    listed = api.get("/api/v1/instances?provider=external", headers=h(api, "viewer")).json()
    assert [i["name"] for i in listed["items"]] == ["billing-db"]

    r = api.post("/api/v1/instances/billing-db/metrics", json={"samples": office_samples()},
                 headers=h(api, "operator"))
    assert r.status_code == 202 and r.json()["accepted"] == 14 * 24 * 2
    [rec] = api.get("/api/v1/recommendations", headers=h(api, "viewer")).json()["items"]
    assert rec["instance_name"] == "billing-db" and rec["provider"] == "external"
    assert rec["kind"] == "sleep" and rec["timezone"] == "Europe/Paris"
    assert rec["monthly_savings_cents"] > 0 and "margin" in rec["advice"]

    for action in ("stop", "start"):
        r = api.post(f"/api/v1/instances/billing-db/{action}", headers=h(api, "operator"))
        assert r.status_code == 409, r.text
        message = r.json()["error"]["message"]
        assert "external database" in message and f"cannot {action} it" in message


def test_posting_an_instance_without_provider_still_means_a_local_database(
    api: Any, ctx: Context  # noqa: F811
) -> None:
    r = api.post("/api/v1/instances", json={"name": "pg1", "engine": "nosuchengine"},
                 headers=h(api, "operator"))
    assert r.status_code == 400 and "engine" in r.json()["error"]["message"]


def test_register_over_the_cli(snoozeql_cli: Any) -> None:
    cli = snoozeql_cli
    r = cli("instances", "register", "warehouse", "--engine", "postgres",
            "--hourly-cost", "0.25", "--tag", "team=data", "--tag", "env=dev", "--json")
    assert r.exit_code == 0, r.output
    got = json.loads(r.stdout)
    assert got["provider"] == "external" and got["tags"] == {"team": "data", "env": "dev"}
    assert got["hourly_cost_cents"] == 25
    assert cli("instances", "register", "warehouse", "--engine", "postgres").exit_code == 2
    assert cli("instances", "register", "w2", "--engine", "postgres",
               "--tag", "oops").exit_code == 2
    assert cli("instances", "register", "w3", "--engine", "postgres",
               "--hourly-cost", "-3").exit_code == 2
    assert cli("instances", "register", "W 4", "--engine", "postgres").exit_code == 2
    r = cli("instances", "list", "--json")
    assert [i["name"] for i in json.loads(r.stdout)] == ["warehouse"]
    r = cli("instances", "stop", "warehouse")
    assert r.exit_code == 1 and "external database" in r.output
