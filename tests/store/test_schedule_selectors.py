"""Schedule selectors: matches before and after saving, unsaved previews, bad regexes,
over the REST API and the CLI, and the reconciler acting on selector assignments."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from uuid import UUID

import pytest
from fastapi.testclient import TestClient

from snoozeql.api.app import create_app
from snoozeql.domain.errors import ValidationError
from snoozeql.domain.types import DiscoveredInstance, InstanceKind, InstanceStatus, ProviderKind
from snoozeql.services.accounts import AccountService
from snoozeql.services.apikeys import ApiKeyService
from snoozeql.services.context import Context
from snoozeql.services.schedules import ScheduleService
from tests.support.inventory import add_discovered

MON = datetime(2026, 11, 23, tzinfo=UTC)
OFFICE = {"name": "office", "timezone": "UTC",
          "periods": [{"begintime": "08:00", "endtime": "19:00", "weekdays": "mon-fri"}]}
STAGING = {"all": [{"provider": "aws"},
                   {"any": [{"name": "stg-.*"}, {"tag": {"key": "env", "value": "dev|stg"}}]}]}

#: The store behaviour is covered on both stores by the schedule service tests.
sqlite_only = pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)


def add_instance(ctx: Context, name: str, *, account: UUID | None = None,
                 tags: dict[str, str] | None = None, engine: str = "postgres") -> UUID:
    d = DiscoveredInstance(
        provider=ProviderKind.AWS, provider_id=f"arn:aws:rds:us-east-1:1:db:{name}",
        kind=InstanceKind.INSTANCE, name=name, engine=engine, engine_version="16.4",
        instance_class="db.t3.micro", raw_status="available", status=InstanceStatus.RUNNING,
        region="us-east-1", tags=tags or {}, node_count=1,
    )
    with ctx.engine.begin() as conn:
        return add_discovered(conn, d, account, ctx.now(), Decimal("10"))


@pytest.fixture
def fleet(ctx: Context) -> Context:
    ctx.clock = lambda: MON + timedelta(hours=9)
    acct = AccountService(ctx).add("aws", "dev-account", {"regions": "us-east-1"})
    add_instance(ctx, "stg-api", account=acct.id)
    add_instance(ctx, "orders", account=acct.id, tags={"env": "dev"})
    add_instance(ctx, "billing", account=acct.id, tags={"env": "prod"})
    add_instance(ctx, "stg-safe", account=acct.id, tags={"snoozeql-protect": "true"})
    add_instance(ctx, "cache", account=acct.id, tags={"env": "dev"}, engine="redis")
    return ctx


@pytest.fixture
def api(fleet: Context) -> TestClient:
    keys = {role: ApiKeyService(fleet).create(f"{role}-key", role)[1]
            for role in ("viewer", "operator")}
    client = TestClient(create_app(fleet), raise_server_exceptions=False)
    client.headers_for = lambda role: {"X-API-Key": keys[role]}  # type: ignore[attr-defined]
    return client


def names(body: dict) -> list[str]:  # type: ignore[type-arg]
    return sorted(i["name"] for i in body["instances"])


@sqlite_only
def test_matches_before_and_after_save_over_the_api(api: TestClient) -> None:
    viewer, operator = api.headers_for("viewer"), api.headers_for("operator")  # type: ignore[attr-defined]
    # Unsaved: the preview shows what the selector would match, and saves nothing.
    r = api.post("/api/v1/schedules/preview", headers=viewer, json={"selector": STAGING})
    assert r.status_code == 200, r.text
    assert names(r.json()) == ["cache", "orders", "stg-api"]  # stg-safe is protected
    assert r.json()["count"] == 3
    assert r.json()["instances"][0]["matched_by"][0]["kind"] == "selector"

    assert api.post("/api/v1/schedules", headers=operator, json=OFFICE).status_code == 201
    r = api.get("/api/v1/schedules/office/matches", headers=viewer)
    assert r.status_code == 200 and r.json()["instances"] == []  # not assigned yet

    r = api.post("/api/v1/schedules/office/assignments", headers=operator,
                 json={"selector": STAGING})
    assert r.status_code == 201, r.text
    assert r.json()["kind"] == "selector" and r.json()["selector"] == STAGING
    assert "name ~ /stg-.*/" in r.json()["description"]
    # A tag assignment too: "orders" is then matched through both.
    assert api.post("/api/v1/schedules/office/assignments", headers=operator,
                    json={"tag": "env=dev"}).status_code == 201
    r = api.get("/api/v1/schedules/office/matches", headers=viewer)
    assert names(r.json()) == ["cache", "orders", "stg-api"]
    by_name = {i["name"]: sorted(m["kind"] for m in i["matched_by"])
               for i in r.json()["instances"]}
    assert by_name == {"cache": ["selector", "tag"], "orders": ["selector", "tag"],
                       "stg-api": ["selector"]}
    # The same selector twice is one assignment.
    assert api.post("/api/v1/schedules/office/assignments", headers=operator,
                    json={"selector": STAGING}).status_code == 409
    r = api.delete("/api/v1/schedules/office/assignments", headers=operator,
                   params={"selector": json.dumps(STAGING)})
    assert r.status_code == 204
    r = api.get("/api/v1/schedules/office/matches", headers=viewer)
    assert names(r.json()) == ["cache", "orders"]


@sqlite_only
def test_bad_regex_is_refused_with_its_position(api: TestClient) -> None:
    viewer, operator = api.headers_for("viewer"), api.headers_for("operator")  # type: ignore[attr-defined]
    bad = {"any": [{"name": "ok"}, {"tag": {"key": "env", "value": "dev(x"}}]}
    r = api.post("/api/v1/schedules/preview", headers=viewer, json={"selector": bad})
    assert r.status_code == 400
    message = r.json()["error"]["message"]
    assert message.startswith("any[1].tag.value: bad regex 'dev(x' at position 3")
    api.post("/api/v1/schedules", headers=operator, json=OFFICE)
    r = api.post("/api/v1/schedules/office/assignments", headers=operator,
                 json={"selector": {"name": "stg-[a"}})
    assert r.status_code == 400 and "at position 4" in r.json()["error"]["message"]
    assert api.get("/api/v1/schedules/office/assignments", headers=viewer).json() == []


@sqlite_only
def test_selector_account_condition_and_governing(fleet: Context) -> None:
    svc = ScheduleService(fleet)
    svc.create(OFFICE)
    svc.assign("office", selector={"all": [{"account": "dev-account"}, {"engine": "redis"}]})
    view, found = svc.matches("office")
    assert [m.instance.name for m in found] == ["cache"]
    assert found[0].account_name == "dev-account"
    gov = {g.schedule.name: g.via for g in svc.governing().values()}
    assert gov == {"office": "selector"}
    with pytest.raises(ValidationError, match="exactly one"):
        svc.assign("office", tag="env=dev", selector={"name": "x"})
    with pytest.raises(ValidationError, match="not JSON"):
        svc.assign("office", selector="{nope")


def test_cli_assign_matches_and_preview(snoozeql_cli, tmp_path) -> None:  # noqa: ANN001
    cli = snoozeql_cli
    ctx = cli.ctx()
    ctx.clock = lambda: MON + timedelta(hours=9)
    add_instance(ctx, "stg-api")
    add_instance(ctx, "orders", tags={"env": "dev"})
    add_instance(ctx, "billing", tags={"env": "prod"})
    assert cli("schedules", "add", "--name", "office", "--timezone", "UTC", "--period",
               "begintime=08:00 endtime=19:00").exit_code == 0
    f = tmp_path / "sel.yaml"
    f.write_text("any:\n  - name: 'stg-.*'\n  - tag: {key: env, value: dev}\n")
    r = cli("schedules", "matches", "--selector", str(f), "--json")
    assert r.exit_code == 0, r.output
    assert sorted(i["name"] for i in json.loads(r.stdout)["instances"]) == [
        "orders", "stg-api"]
    r = cli("schedules", "matches", "office", "--json")
    assert json.loads(r.stdout)["count"] == 0
    r = cli("schedules", "assign", "office", "--selector", '{"name": "stg-.*"}')
    assert r.exit_code == 0, r.output
    assert "name ~ /stg-.*/" in r.stdout
    r = cli("schedules", "matches", "office", "--json")
    [only] = json.loads(r.stdout)["instances"]
    assert only["name"] == "stg-api" and only["matched_by"][0]["kind"] == "selector"
    r = cli("schedules", "assign", "office", "--selector", '{"name": "(stg"}')
    assert r.exit_code == 2 and "at position 0" in r.output
