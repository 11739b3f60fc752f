"""Metrics, activity and recommendations over the REST API (both stores) and the CLI."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from snoozeql.api.app import create_app
from snoozeql.services.apikeys import ApiKeyService
from snoozeql.services.context import Context
from snoozeql.services.recommendations import RecommendationService
from tests.store.test_metrics_store import add_instances
from tests.store.test_recommendations import NOW, office_hours, seed


@pytest.fixture
def api(ctx: Context) -> Any:
    ctx.clock = lambda: NOW
    keys = {role: ApiKeyService(ctx).create(f"{role}-key", role)[1]
            for role in ("viewer", "operator")}
    client = TestClient(create_app(ctx), raise_server_exceptions=False)
    client.keys = keys  # type: ignore[attr-defined]
    return client


def h(api: Any, role: str) -> dict[str, str]:
    return {"X-API-Key": api.keys[role]}


def test_push_validates_and_aggregates(api: Any, ctx: Context) -> None:
    add_instances(ctx, "db1")
    url = "/api/v1/instances/db1/metrics"
    body = {"samples": [
        {"metric": "cpu", "ts": "2026-11-22T23:05:00Z", "value": 10},
        {"metric": "cpu", "ts": "2026-11-22T23:06:00Z", "value": 30},
        {"metric": "connections", "ts": "2026-11-22T23:05:00+01:00", "value": 2},
    ]}
    assert api.post(url, json=body, headers=h(api, "viewer")).status_code == 403
    r = api.post(url, json=body, headers=h(api, "operator"))
    assert r.status_code == 202 and r.json() == {
        "accepted": 3, "buckets_changed": 2, "ignored_too_old": 0}
    # Posting the same samples again changes nothing.
    assert api.post(url, json=body, headers=h(api, "operator")).json()["buckets_changed"] == 0

    bad = [
        {"samples": [{"metric": "disk", "ts": "2026-11-22T23:05:00Z", "value": 1}]},
        {"samples": [{"metric": "cpu", "ts": "2026-11-22T23:05:00", "value": 1}]},
        {"samples": [{"metric": "cpu", "ts": "2026-11-22T23:05:00Z", "value": -1}]},
        {"samples": [{"metric": "cpu", "ts": "yesterday", "value": 1}]},
        {"samples": [{"metric": "cpu", "ts": "2026-11-23T05:00:00Z", "value": 1}]},  # future
        {"samples": []},
        {"samples": [{"metric": "cpu", "ts": "2026-11-22T23:05:00Z", "value": 1, "x": 1}]},
    ]
    for b in bad:
        r = api.post(url, json=b, headers=h(api, "operator"))
        assert 400 <= r.status_code < 500 and r.json()["error"]["message"], (b, r.text)
    assert api.post("/api/v1/instances/nope/metrics", json=body,
                    headers=h(api, "operator")).status_code == 404

    r = api.get(f"{url}?metric=cpu&start=2026-11-22T00:00:00Z", headers=h(api, "viewer"))
    assert r.status_code == 200
    [series] = r.json()["series"]
    assert series["metric"] == "cpu" and series["unit"] == "percent"
    assert [(p["hour"][:13], p["avg"], p["min"], p["max"], p["count"])
            for p in series["points"]] == [("2026-11-22T23", 20.0, 10.0, 30.0, 2)]
    every = api.get(f"{url}?start=1d", headers=h(api, "viewer")).json()["series"]
    conn = {s["metric"]: s["points"] for s in every}["connections"]
    assert conn[0]["hour"].startswith("2026-11-22T22")  # +01:00 stored in UTC
    assert api.get(f"{url}?metric=disk", headers=h(api, "viewer")).status_code in (400, 422)
    assert api.get(f"{url}?start=now-ish", headers=h(api, "viewer")).status_code in (400, 422)


def test_activity_and_recommendations(api: Any, ctx: Context) -> None:
    ids = add_instances(ctx, "office", tags={"timezone": "Europe/Paris"}, cost=50)
    seed(ctx, ids["office"], office_hours)
    r = api.get("/api/v1/instances/office/activity", headers=h(api, "viewer"))
    assert r.status_code == 200
    act = r.json()
    assert act["timezone"] == "Europe/Paris" and act["weekdays"][0] == "mon"
    assert len(act["connections_max"]) == 7 and all(len(row) == 24 for row in act["cpu"])
    assert act["connections_max"][0][10] == 5.0 and act["connections_max"][5][10] == 0.0
    assert act["hours"][0][10] == 2 and act["hours_observed"] == 14 * 24

    recs = api.get("/api/v1/recommendations", headers=h(api, "viewer")).json()
    assert (recs["without_recommendation"], recs["dismissed"], recs["next_cursor"]) == (
        0, 0, None)
    [rec] = recs["items"]
    _, stored = RecommendationService(ctx).stored(rec["id"])
    assert rec == stored  # the typed answer is the stored entry, key for key
    assert rec["schedule"] == {"timezone": "Europe/Paris", "periods": [
        {"begintime": "08:30", "endtime": "18:30", "weekdays": "mon-fri"}]}
    assert rec["monthly_savings_cents"] > 0 and rec["sleep_hours_per_week"] == 118
    apply_url = f"/api/v1/recommendations/{rec['id']}/apply?name=office-hours"
    assert api.post(apply_url, headers=h(api, "viewer")).status_code == 403
    r = api.post(apply_url, headers=h(api, "operator"))
    assert r.status_code == 201 and r.json()["schedule_name"] == "office-hours"
    assert api.post(apply_url, headers=h(api, "operator")).status_code == 409
    url = f"/api/v1/recommendations/{rec['id']}/dismiss"
    assert api.post(url, headers=h(api, "viewer")).status_code == 403
    r = api.post(url + "?reason=runs+the+month-end+batch", headers=h(api, "operator"))
    assert r.status_code == 200 and r.json() == {**stored, "status": "dismissed"}
    audit = api.get("/api/v1/audit?kind=recommendation", headers=h(api, "viewer")).json()
    assert [(e["action"], e["reason"]) for e in audit] == [
        ("dismiss", "runs the month-end batch")]
    after = api.get("/api/v1/recommendations", headers=h(api, "viewer")).json()
    assert (after["items"], after["dismissed"]) == ([], 1)
    listed = api.get("/api/v1/recommendations?include_dismissed=true",
                     headers=h(api, "viewer")).json()["items"]
    assert [(r["id"], r["status"]) for r in listed] == [(rec["id"], "dismissed")]
    assert api.post("/api/v1/recommendations/00000000-0000-0000-0000-000000000001/dismiss",
                    headers=h(api, "operator")).status_code == 404


def test_cli_metrics_activity_and_recommendations(snoozeql_cli: Any) -> None:
    cli = snoozeql_cli
    ctx = cli.ctx()
    now = datetime.now(UTC)
    ids = add_instances(ctx, "idle", cost=100)
    ctx.clock = lambda: now
    # 20 hours of data: enough to show, not enough to recommend.
    from snoozeql.services.metrics import MetricsService

    MetricsService(ctx).push("idle", [
        {"metric": m, "ts": (now - timedelta(hours=k)).isoformat(), "value": v}
        for k in range(1, 21) for m, v in (("cpu", 1.5), ("connections", 0))
    ])
    r = cli("metrics", "show", "idle", "--metric", "cpu", "--since", "3d", "--json")
    assert r.exit_code == 0, r.output
    points = json.loads(r.stdout)["points"]
    assert len(points) == 20 and {p["metric"] for p in points} == {"cpu"}
    r = cli("metrics", "show", "idle", "--since", "1d")
    assert r.exit_code == 0 and "connections (count)" in r.output
    assert cli("metrics", "show", "idle", "--metric", "disk").exit_code == 2
    assert cli("metrics", "show", "nope").exit_code != 0

    r = cli("activity", "idle")
    assert r.exit_code == 0 and "20 hours observed" in r.output
    assert sum(line.count("·") for line in r.output.splitlines()[2:9]) == 20

    r = cli("recommendations", "list")
    assert r.exit_code == 0 and "not enough data: 20 hours observed" in r.output
    seed(ctx, ids["idle"], lambda _t: False)  # now two weeks of idleness
    ctx.clock = lambda: NOW
    r = cli("recommendations", "list", "--json")
    [rec] = json.loads(r.stdout)
    assert rec["kind"] == "always_idle" and rec["spans"] == []
    r = cli("recommendations", "list")
    assert "STOP IT" in r.output and "$730.50" in r.output
    r = cli("recommendations", "dismiss", rec["id"], "--reason", "kept for audits")
    assert r.exit_code == 0 and "idle" in r.output
    r = cli("audit", "list", "--kind", "recommendation", "--json")
    assert [e["reason"] for e in json.loads(r.stdout)] == ["kept for audits"]
    assert json.loads(cli("recommendations", "list", "--json").stdout) == []
    assert cli("recommendations", "dismiss", "bogus").exit_code == 2
