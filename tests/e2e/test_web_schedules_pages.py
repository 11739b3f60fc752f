"""Dashboard part 2 over HTTP without a browser (the browser tests are in
test_web_schedules.py): the editor's live checks and their positions, the selector
preview against the API's, refused saves that write nothing, roles and CSRF on every
new POST route, the savings range and CSV."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from snoozeql.api.app import create_app
from snoozeql.domain.analysis import AnalysisEntry
from snoozeql.domain.schedules.model import period_document
from snoozeql.domain.types import InstanceStatus
from snoozeql.services.apikeys import ApiKeyService
from snoozeql.services.context import Context
from snoozeql.services.inventory import InventoryService
from snoozeql.services.schedules import ScheduleService
from snoozeql.store import recommendations as rec_store
from tests.e2e.test_web_pages import sign_in
from tests.store.test_web_services import add


@pytest.fixture
def client(ctx: Context) -> Iterator[TestClient]:
    with TestClient(create_app(ctx), base_url="http://127.0.0.1") as c:
        yield c


def operator(client: TestClient, ctx: Context) -> str:
    _, key = ApiKeyService(ctx).create("op", "operator")
    return sign_in(client, key)


def test_check_reports_errors_with_their_position(client: TestClient, ctx: Context) -> None:
    token = operator(client, ctx)
    h = {"X-CSRF-Token": token}
    r = client.post("/schedules/check", headers=h, json={
        "mode": "text", "timezone": "Europe/Berlin",
        "periods_text": "begintime=08:00 endtime=19:00\nweekdays=mon-fri months=jann"})
    body = r.json()
    assert body["ok"] is False and body["field"] == "periods_text"
    assert body["error"]["line"] == 2 and body["error"]["column"] == 25
    assert "months" in body["error"]["message"]
    r = client.post("/schedules/check", headers=h, json={
        "mode": "text", "timezone": "Europe/Berlin",
        "periods_text": "begintime=08:00 endtime=19:00 weekdays=mon-fri"}).json()
    assert r["ok"] and len(r["transitions"]) == 10
    assert r["grid"][8:19] == "1" * 11 and r["grid"][5 * 24:] == "0" * 48
    assert r["transitions"][0]["local"].endswith(("CET", "CEST"))
    grid = "0" * 168
    r = client.post("/schedules/check", headers=h, json={"mode": "grid", "grid": grid,
                                                         "timezone": "UTC"}).json()
    assert r["ok"] is False and "paint at least one running hour" in r["error"]["message"]
    r = client.post("/schedules/check", headers=h, json={
        "mode": "cron", "timezone": "UTC", "start_cron": "0 7 * * 1-5",
        "stop_cron": "0 7 * * mon"}).json()
    assert r["field"] == "stop_cron" and "same minute" in r["error"]["message"]
    r = client.post("/schedules/check", headers=h, json={
        "mode": "cron", "timezone": "UTC", "start_cron": "0 7 * *", "stop_cron": "0 7 * * 1"}
                    ).json()
    assert r["field"] == "start_cron" and "5" in r["error"]["message"]
    r = client.post("/schedules/check", headers=h, json={"mode": "text", "timezone": "Mars/Base"}
                    ).json()
    assert r["field"] == "timezone"
    # the checks need the session's token like every POST
    assert client.post("/schedules/check", json={"mode": "text"}).status_code == 403


def test_selector_preview_is_the_apis(client: TestClient, ctx: Context) -> None:
    for n in range(3):
        add(ctx, f"stg-{n}", InstanceStatus.RUNNING)
    add(ctx, "prod-1", InstanceStatus.RUNNING)
    token = operator(client, ctx)
    _, key = ApiKeyService(ctx).create("api", "viewer")
    sel = {"any": [{"name": "stg-.*"}, {"name": "nope"}]}
    page = client.post("/schedules/selector-preview", headers={"X-CSRF-Token": token},
                       json={"selector": sel}).json()
    api = client.post("/api/v1/schedules/preview", json={"selector": sel},
                      headers={"Authorization": f"Bearer {key}"}).json()
    assert page["count"] == api["count"] == 3
    assert [i["name"] for i in page["instances"]] == sorted(i["name"] for i in api["instances"])
    bad = client.post("/schedules/selector-preview", headers={"X-CSRF-Token": token},
                      json={"selector": {"all": [{"provider": "aws"}, {"name": "stg-("}]}}
                      ).json()
    assert bad["ok"] is False
    assert bad["error"]["path"] == "all[1].name" and bad["error"]["position"] == 4


def test_refused_saves_show_the_error_and_write_nothing(client: TestClient, ctx: Context
                                                       ) -> None:
    token = operator(client, ctx)
    base = {"csrf_token": token, "name": "s1", "timezone": "UTC", "mode": "text",
            "periods_text": "begintime=08:00 endtime=19:00"}
    for changes, message in (
        ({"holidays": "12-25"}, "not a date with its year"),
        ({"periods_text": "begintime=08:00 endtime=19:00 weekdays=mon-fry"},
         "periods, line 1, column 44"),
        ({"selector": '{"name": "("}'}, "bad regex"),
        ({"selector": "{"}, "selector: not JSON"),
        ({"priority": "high"}, "priority"),
        ({"timezone": "Nowhere/Land"}, "unknown time zone"),
        ({"mode": "grid", "grid": "0" * 168}, "paint at least one running hour"),
    ):
        r = client.post("/schedules/save", data={**base, **changes})
        assert r.status_code == 400, changes
        assert message in r.text, (changes, re.findall(r'save-error">([^<]*)', r.text))
        assert "s1" in r.text  # the form keeps what was typed
    assert ScheduleService(ctx).list() == []
    r = client.post("/schedules/save", data={**base, "mode": "grid",
                                             "grid": ("1" * 24) + "0" * 144,
                                             "override_status": ""}, follow_redirects=False)
    assert r.status_code == 303
    saved = ScheduleService(ctx).get("s1").schedule
    assert [period_document(p) for p in saved.periods] == [
        {"begintime": "00:00", "endtime": "24:00", "weekdays": "mon"}]
    # "always stopped" with no period is a schedule too
    r = client.post("/schedules/save", data={**base, "name": "s2", "mode": "grid",
                                             "grid": "0" * 168, "override_status": "stopped"},
                    follow_redirects=False)
    assert r.status_code == 303
    assert str(ScheduleService(ctx).get("s2").schedule.override_status) == "stopped"


def test_viewers_are_refused_on_every_new_post_route(client: TestClient, ctx: Context
                                                     ) -> None:
    view = ScheduleService(ctx).create({"name": "s", "timezone": "UTC",
                                        "periods": [{"begintime": "08:00"}]})
    _, key = ApiKeyService(ctx).create("watcher", "viewer")
    token = sign_in(client, key)
    for path in ("/schedules/save", f"/schedules/{view.id}/delete",
                 f"/schedules/{view.id}/assign", f"/schedules/{view.id}/unassign",
                 "/recommendations/00000000-0000-0000-0000-000000000001/dismiss"):
        r = client.post(path, data={"csrf_token": token, "name": "x", "tag": "a=b",
                                    "assignment": "x", "reason": "r"})
        assert r.status_code == 403 and "needs the operator role" in r.text, path
        assert r.headers["content-type"].startswith("text/html"), path
    assert client.get("/schedules/new").status_code == 403
    assert client.get(f"/schedules/{view.id}/edit").status_code == 403
    page = client.get(f"/schedules/{view.id}").text
    assert "/edit" not in page and "Delete" not in page
    assert ScheduleService(ctx).get("s").name == "s"


def test_savings_ranges_and_csv(client: TestClient, ctx: Context) -> None:
    _, key = ApiKeyService(ctx).create("me", "viewer")
    sign_in(client, key)
    r = client.get("/savings?range=custom&from=2026-02-10&to=2026-02-01")
    assert r.status_code == 400 and "must end after it starts" in r.text
    r = client.get("/savings?range=custom&from=yesterday")
    assert r.status_code == 400 and "is not a date" in r.text
    assert client.get("/savings?range=12d").status_code == 400
    r = client.get("/savings?range=7d")
    assert r.status_code == 200 and "How these figures are computed" in r.text
    csv = client.get("/savings.csv?range=7d")
    assert csv.headers["content-type"].startswith("text/csv")
    assert "attachment" in csv.headers["content-disposition"]
    lines = csv.text.splitlines()
    assert lines[0] == ("table,key,name,day,stopped_hours,saved_usd,always_on_usd,cost_usd,"
                        "unpriced_hours")
    assert len([ln for ln in lines if ln.startswith("daily,")]) == 7


def test_dismiss_needs_a_reason(client: TestClient, ctx: Context) -> None:
    token = operator(client, ctx)
    r = client.post("/recommendations/00000000-0000-0000-0000-000000000001/dismiss",
                    data={"csrf_token": token, "reason": "  "})
    assert r.status_code == 400 and "say why" in r.text


def test_apply_an_always_idle_recommendation(client: TestClient, ctx: Context) -> None:
    iid = add(ctx, "idle-db", InstanceStatus.RUNNING)
    rec_id = uuid.uuid4()
    body = {"instance_id": str(iid), "instance_name": "idle-db", "kind": "always_idle",
            "timezone": "Europe/Paris",
            "schedule": {"timezone": "Europe/Paris", "periods": []}}
    with ctx.engine.begin() as conn:
        rec_store.replace_current(conn, [AnalysisEntry(iid, body, rec_id, 0, "")],
                                  ctx.now())
    token = operator(client, ctx)
    page = client.get(f"/schedules/new?recommendation={rec_id}").text
    assert 'value="stopped" selected' in page and 'value="Europe/Paris"' in page
    assert "recommended-idle-db" in page
    r = client.post("/schedules/save", data={
        "csrf_token": token, "recommendation": str(rec_id), "name": "idle-off",
        "timezone": "Europe/Paris", "mode": "grid", "grid": "0" * 168,
        "override_status": "stopped"}, follow_redirects=False)
    assert r.status_code == 303
    inst = InventoryService(ctx).get("idle-db")
    gov = ScheduleService(ctx).governing_one(inst)
    assert gov is not None and gov.schedule.name == "idle-off" and gov.via == "instance"
    assert str(gov.schedule.override_status) == "stopped"
    # a stale recommendation id says so, in the page
    r = client.get(f"/schedules/new?recommendation={uuid.uuid4()}")
    assert r.status_code == 404 and "newer analysis" in r.text


def test_assign_and_unassign_from_the_schedule_page(client: TestClient, ctx: Context) -> None:
    add(ctx, "db-a", InstanceStatus.RUNNING)
    svc = ScheduleService(ctx)
    view = svc.create({"name": "s", "timezone": "UTC", "periods": [{"begintime": "08:00"}]})
    svc.assign("s", selector={"name": "db-.*"})
    token = operator(client, ctx)
    for data in ({"instance": "db-a"}, {"tag": "env=dev"}):
        r = client.post(f"/schedules/{view.id}/assign", data={"csrf_token": token, **data},
                        follow_redirects=False)
        assert r.status_code == 303
    assert sorted(a.kind for a in svc.assignments("s")) == ["instance", "selector", "tag"]
    page = client.get(f"/schedules/{view.id}").text
    assert "Matched instances (1)" in page and "db-a" in page
    r = client.post(f"/schedules/{view.id}/assign", data={"csrf_token": token,
                                                          "instance": "db-a"})
    assert r.status_code == 409 and "already assigned" in r.text
    for a in svc.assignments("s"):
        r = client.post(f"/schedules/{view.id}/unassign",
                        data={"csrf_token": token, "assignment": str(a.id)},
                        follow_redirects=False)
        assert r.status_code == 303, r.text
    assert svc.assignments("s") == []
    r = client.post(f"/schedules/{view.id}/delete", data={"csrf_token": token},
                    follow_redirects=False)
    assert r.status_code == 303 and svc.list() == []
