"""Schedules, overrides and savings over the REST API (FastAPI's test client), with moto."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from snoozeql.api.app import create_app
from snoozeql.providers.registry import ProviderRegistry
from snoozeql.services.apikeys import ApiKeyService
from snoozeql.services.reconciler import Reconciler

MON = datetime(2026, 11, 23, tzinfo=UTC)
OFFICE = {"name": "office", "timezone": "Europe/Berlin",
          "periods": [{"begintime": "08:00", "endtime": "19:00", "weekdays": "mon-fri"}]}

# The store behaviour is covered on both stores by the service tests.
pytestmark = pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)


@pytest.fixture
def api(ctx, aws_env):  # noqa: ANN001, ANN201
    ctx.settings = ctx.settings.model_copy(update={"aws_connect_timeout": 1.0,
                                                   "aws_max_attempts": 2})
    ctx.providers = ProviderRegistry(ctx.settings)
    ctx.clock = lambda: MON + timedelta(hours=9)
    keys = {role: ApiKeyService(ctx).create(f"{role}-key", role)[1]
            for role in ("viewer", "operator", "admin")}
    client = TestClient(create_app(ctx), raise_server_exceptions=False)
    client.keys = keys  # type: ignore[attr-defined]
    client.ctx = ctx  # type: ignore[attr-defined]
    return client


def h(api, role: str) -> dict[str, str]:  # noqa: ANN001
    return {"X-API-Key": api.keys[role]}


def test_schedule_crud_and_refusals(api) -> None:  # noqa: ANN001
    r = api.post("/api/v1/schedules", headers=h(api, "viewer"), json=OFFICE)
    assert r.status_code == 403
    r = api.post("/api/v1/schedules", headers=h(api, "operator"), json=OFFICE)
    assert r.status_code == 201, r.text
    sid = r.json()["id"]
    assert r.json()["periods"] == OFFICE["periods"] and r.json()["timezone"] == "Europe/Berlin"
    assert api.post("/api/v1/schedules", headers=h(api, "operator"),
                    json=OFFICE).status_code == 409
    bad = {**OFFICE, "name": "bad", "periods": [{"begintime": "08:00", "weekdays": "mon-fry"}]}
    r = api.post("/api/v1/schedules", headers=h(api, "operator"), json=bad)
    assert r.status_code == 400
    assert r.json()["error"]["message"] == "periods[0].weekdays: 'mon-fry': unknown weekday 'fry'"

    assert api.get(f"/api/v1/schedules/{sid}", headers=h(api, "viewer")).json()["name"] == (
        "office")
    r = api.patch("/api/v1/schedules/office", headers=h(api, "operator"),
                  json={"enforced": True})
    assert r.status_code == 200 and r.json()["enforced"] is True
    r = api.put("/api/v1/schedules/office", headers=h(api, "operator"),
                json={**OFFICE, "name": "office-2"})
    assert r.status_code == 200 and r.json()["enforced"] is False
    names = [s["name"] for s in api.get("/api/v1/schedules", headers=h(api, "viewer")).json()]
    assert names == ["office-2"]
    assert api.delete("/api/v1/schedules/office-2", headers=h(api, "operator")).status_code == 204
    assert api.get("/api/v1/schedules/office-2", headers=h(api, "viewer")).status_code == 404


def test_import_evaluate_and_preview(api) -> None:  # noqa: ANN001
    r = api.post("/api/v1/schedules/import", headers=h(api, "operator"),
                 json={"custodian": "off=(M-F,19);on=(M-F,7);tz=cet", "name": "cust"})
    assert r.status_code == 201, r.text
    assert r.json()["schedules"][0]["timezone"] == "Europe/Berlin"
    r = api.post("/api/v1/schedules/import", headers=h(api, "operator"), json={
        "instance_scheduler": {"periods": [{"type": "period", "name": "p",
                                            "begintime": "09:00", "endtime": "17:00"}],
                               "schedules": [{"type": "schedule", "name": "is",
                                              "periods": ["p"], "retain_running": True}]}})
    assert r.status_code == 201 and r.json()["warnings"]
    r = api.post("/api/v1/schedules/import", headers=h(api, "operator"), json={"custodian": "x"})
    assert r.status_code == 400

    r = api.post("/api/v1/schedules/cust/evaluate", headers=h(api, "viewer"),
                 json={"at": "2026-11-23T19:30:00+01:00"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["state"] == "stopped"
    assert body["next_transition"]["state"] == "running"
    assert datetime.fromisoformat(body["next_transition"]["at"]) == datetime.fromisoformat(
        "2026-11-24T07:00:00+01:00")
    r = api.post("/api/v1/schedules/cust/evaluate", headers=h(api, "viewer"),
                 json={"at": "tomorrow"})
    assert r.status_code == 400 and "ISO" in r.json()["error"]["message"]

    r = api.get("/api/v1/schedules/cust/preview?days=7&start=2026-11-23T00:00:00%2B01:00",
                headers=h(api, "viewer"))
    assert r.status_code == 200
    running = [s for s in r.json()["segments"] if s["state"] == "running"]
    assert len(running) == 5


def test_assign_override_reconcile_and_savings(api, aws_env) -> None:  # noqa: ANN001
    aws_env.create_instances("us-east-1", 2, tags={"env": "dev"})
    r = api.post("/api/v1/accounts", headers=h(api, "admin"), json={
        "provider": "aws", "name": "dev-account",
        "config": {"regions": ["us-east-1"], "endpoint_url": aws_env.endpoint_url}})
    assert r.status_code == 201
    assert api.post("/api/v1/accounts/dev-account/sync",
                    headers=h(api, "operator")).status_code == 200
    api.post("/api/v1/schedules", headers=h(api, "operator"), json=OFFICE)
    r = api.post("/api/v1/schedules/office/assignments", headers=h(api, "operator"),
                 json={"tag": "env=dev"})
    assert r.status_code == 201 and r.json()["target"] == "tag:env=dev"
    assert api.post("/api/v1/schedules/office/assignments", headers=h(api, "operator"),
                    json={"tag": "env=dev"}).status_code == 409
    assigned = api.get("/api/v1/schedules/office/assignments", headers=h(api, "viewer")).json()
    assert [a["kind"] for a in assigned] == ["tag"]

    r = api.post("/api/v1/instances/db-0001/override", headers=h(api, "viewer"),
                 json={"state": "running", "until": "22:00"})
    assert r.status_code == 403
    r = api.post("/api/v1/instances/db-0001/override", headers=h(api, "operator"),
                 json={"state": "running", "until": "22:00"})
    assert r.status_code == 200, r.text
    assert datetime.fromisoformat(r.json()["until"]) == MON + timedelta(hours=21)  # Berlin
    assert r.json()["created_by"] == "operator-key"
    r = api.post("/api/v1/instances/db-0001/override", headers=h(api, "operator"),
                 json={"state": "running", "until": "whenever"})
    assert r.status_code == 400 and "until" in r.json()["error"]["message"]

    ctx = api.ctx
    ctx.clock = lambda: MON + timedelta(hours=18, minutes=1)  # 19:01 Berlin
    report = Reconciler(ctx).run()
    assert [(i.instance_name, i.action, i.result) for i in report.items] == [
        ("db-0000", "stop", "ok")]
    ctx.clock = lambda: MON + timedelta(days=1, hours=7)  # 08:00 Berlin: started again
    Reconciler(ctx).run()

    r = api.get("/api/v1/savings?group_by=schedule&from=2026-11-23T00:00:00Z"
                "&to=2026-11-25T00:00:00Z", headers=h(api, "viewer"))
    assert r.status_code == 200, r.text
    [row] = r.json()["realized"]
    assert row["name"] == "office" and row["stopped_hours"] == pytest.approx(12.983, abs=0.01)
    assert row["unpriced_hours"] == row["stopped_hours"]  # moto instances have no price
    [proj] = r.json()["projected"]
    assert proj["schedule"] == "office" and proj["instances"] == 2
    assert proj["stopped_hours_per_week"] == 113
    r = api.get("/api/v1/savings?group_by=planet", headers=h(api, "viewer"))
    assert r.status_code == 400
