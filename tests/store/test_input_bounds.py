"""Issue 14, items 8-10: bounded request bodies and text fields, bounded CLI files,
control characters in filters, literal substring search (LIKE wildcards escaped)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from snoozeql.api.app import create_app
from snoozeql.domain.types import (
    DiscoveredInstance,
    InstanceKind,
    InstanceStatus,
    ProviderKind,
)
from snoozeql.services.accounts import AccountService
from snoozeql.services.apikeys import ApiKeyService
from snoozeql.services.inventory import InventoryService
from snoozeql.services.stacks import StackService
from snoozeql.store import instances as instance_store

SCHEDULE = {"name": "office", "timezone": "UTC",
            "periods": [{"begintime": "08:00", "endtime": "18:00", "weekdays": "mon-fri"}]}


@pytest.fixture
def api(ctx):  # noqa: ANN001, ANN201
    keys = {role: ApiKeyService(ctx).create(f"{role}-key", role)[1]
            for role in ("viewer", "operator", "admin")}
    client = TestClient(create_app(ctx), raise_server_exceptions=False)
    client.headers["X-API-Key"] = keys["admin"]
    return client


def _seed(ctx, names: list[str]) -> None:  # noqa: ANN001
    account = AccountService(ctx).add("aws", "acct", {"regions": ["us-east-1"]})
    found = [
        DiscoveredInstance(
            provider=ProviderKind.AWS, provider_id=f"arn:aws:rds:us-east-1:1:db:{n}",
            name=n, kind=InstanceKind.INSTANCE, engine="postgres", engine_version="16",
            instance_class="db.t3.micro", region="us-east-1", status=InstanceStatus.RUNNING,
            raw_status="available", tags={"env": "dev"},
        )
        for n in names
    ]
    with ctx.engine.begin() as conn:
        instance_store.upsert_discovered(conn, found, account.id, ctx.now(), {})


# ------------------------------------------------------------------ item 8: sizes


def test_oversize_body_is_413_with_the_limit(api) -> None:  # noqa: ANN001
    body = {**SCHEDULE, "description": "x" * (10 * 1024 * 1024)}
    r = api.post("/api/v1/schedules", json=body)
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "too_large"
    assert "1048576 bytes" in r.json()["error"]["message"]
    assert api.get("/api/v1/schedules").json() == []


def test_oversize_chunked_body_is_413(api) -> None:  # noqa: ANN001
    def chunks():  # noqa: ANN202 - no Content-Length: counted as it arrives
        for _ in range(40):
            yield b" " * 65536
    r = api.post("/api/v1/stacks", content=chunks(),
                 headers={"Content-Type": "application/json"})
    assert r.status_code == 413
    assert "limit" in r.json()["error"]["message"]
    assert api.get("/api/v1/stacks").json() == []


def test_body_limit_is_configurable(ctx) -> None:  # noqa: ANN001
    ctx.settings = ctx.settings.model_copy(update={"max_body_bytes": 4096})
    key = ApiKeyService(ctx).create("admin-key", "admin")[1]
    client = TestClient(create_app(ctx), raise_server_exceptions=False)
    r = client.post("/api/v1/stacks", headers={"X-API-Key": key},
                    json={"name": "shop", "description": "y" * 1900})
    assert r.status_code == 201, r.text
    r = client.post("/api/v1/stacks", headers={"X-API-Key": key},
                    json={"name": "shop2", "description": "y" * 5000})
    assert r.status_code == 413 and "4096 bytes" in r.json()["error"]["message"]


def test_long_description_and_name_are_refused_with_the_limit(api) -> None:  # noqa: ANN001
    r = api.post("/api/v1/stacks", json={"name": "shop", "description": "d" * 2001})
    assert r.status_code == 422 and "2000" in r.json()["error"]["message"]
    r = api.post("/api/v1/stacks", json={"name": "s" * 64})
    assert r.status_code == 422 and "63" in r.json()["error"]["message"]
    assert api.post("/api/v1/stacks", json={"name": "shop", "description": "d" * 2000}
                    ).status_code == 201
    r = api.put("/api/v1/stacks/shop", json={"description": "d" * 2001})
    assert r.status_code == 422 and "2000" in r.json()["error"]["message"]
    # Schedules travel as their dict form: the domain refuses (400), naming the limit.
    r = api.post("/api/v1/schedules", json={**SCHEDULE, "description": "d" * 2001})
    assert r.status_code == 400 and "limit of 2000" in r.json()["error"]["message"]
    r = api.post("/api/v1/schedules", json={**SCHEDULE, "name": "n" * 64})
    assert r.status_code == 400 and "limit of 63" in r.json()["error"]["message"]
    assert api.get("/api/v1/schedules").json() == []
    r = api.post("/api/v1/apikeys", json={"name": "k" * 64, "role": "viewer"})
    assert r.status_code == 422 and "63" in r.json()["error"]["message"]


def test_services_bound_descriptions_for_the_cli_too(ctx) -> None:  # noqa: ANN001
    from snoozeql.domain.errors import ValidationError

    svc = StackService(ctx)
    with pytest.raises(ValidationError, match="limit of 2000"):
        svc.create_stack("shop", "z" * 2001)
    assert svc.list_stacks() == []
    svc.create_stack("shop", "ok")
    with pytest.raises(ValidationError, match="limit of 2000"):
        svc.update_stack("shop", "z" * 2001)
    assert svc.get_stack("shop").description == "ok"


def test_cli_refuses_an_oversize_schedule_file(snoozeql_cli, tmp_path: Path) -> None:  # noqa: ANN001
    big = tmp_path / "big.json"
    big.write_text(json.dumps({**SCHEDULE, "description": "x" * (30 * 1024 * 1024)}))
    r = snoozeql_cli("schedules", "add", str(big))
    assert r.exit_code == 2, r.output
    assert "limit of 1048576 bytes" in r.output
    assert json.loads(snoozeql_cli("schedules", "list", "--json").stdout) == []
    snoozeql_cli.env(SNOOZEQL_MAX_FILE_BYTES="2048")
    small = tmp_path / "small.json"
    small.write_text(json.dumps({**SCHEDULE, "description": "x" * 3000}))
    r = snoozeql_cli("schedules", "add", str(small))
    assert r.exit_code == 2 and "limit of 2048 bytes" in r.output


def test_cli_refuses_an_oversize_template_file(snoozeql_cli, tmp_path: Path) -> None:  # noqa: ANN001
    big = tmp_path / "api.yaml"
    big.write_text("name: api\nimage: example/api:1\n" + "# pad\n" * 300_000)
    r = snoozeql_cli("templates", "add", str(big))
    assert r.exit_code == 2 and "limit of 1048576 bytes" in r.output


# ------------------------------------------------------------- item 9: control chars


@pytest.mark.parametrize("query", [
    "tag=%00=x", "tag=env%00=dev", "q=a%00b", "engine=post%0Agres", "region=%7F",
    "account=%01",
])
def test_control_characters_in_filters_are_422(api, ctx, query: str) -> None:  # noqa: ANN001
    _seed(ctx, ["db-a"])
    r = api.get(f"/api/v1/instances?{query}")
    assert r.status_code == 422, r.text
    assert "control characters" in r.json()["error"]["message"]


def test_control_characters_elsewhere_are_422_not_500(api) -> None:  # noqa: ANN001
    for path in ("/api/v1/actions?actor=%00", "/api/v1/audit?object=a%00b",
                 "/api/v1/instances/db%00x", "/api/v1/stacks/x%0A/instances"):
        r = api.get(path)
        assert r.status_code == 422, (path, r.text)


def test_inventory_service_refuses_control_characters(ctx) -> None:  # noqa: ANN001
    from snoozeql.domain.errors import UnprocessableInput

    with pytest.raises(UnprocessableInput, match="tag: control characters"):
        InventoryService(ctx).build_filter(tags=["\x00=x"])


# ----------------------------------------------------------- item 10: LIKE escaping


def test_search_is_a_literal_substring(api, ctx) -> None:  # noqa: ANN001
    _seed(ctx, ["db-100pct", "db_under", "plain"])
    def names(q: str) -> set[str]:
        r = api.get("/api/v1/instances", params={"q": q})
        assert r.status_code == 200, r.text
        return {i["name"] for i in r.json()["items"]}
    assert names("%") == set()
    assert names("_") == {"db_under"}
    assert names("b_u") == {"db_under"}
    assert names("db%") == set()
    assert names("\\") == set()
    assert names("DB-") == {"db-100pct"}
    assert names("lai") == {"plain"}


def test_stack_instance_search_is_a_literal_substring(ctx) -> None:  # noqa: ANN001
    svc = StackService(ctx)
    svc.create_stack("shop")
    svc.create_instance("shop", "cache", "redis", description="50% off")
    svc.create_instance("shop", "db", "postgres", description="main")
    def names(q: str) -> set[str]:
        return {i.name for i in svc.list_instances("shop", search=q)}
    assert names("%") == {"cache"}
    assert names("_") == set()
    assert names("0% o") == {"cache"}


def test_template_description_is_bounded(api) -> None:  # noqa: ANN001
    r = api.post("/api/v1/templates", json={"name": "api", "image": "example/api:1",
                                            "description": "t" * 2001})
    assert r.status_code == 400 and "limit of 2000" in r.json()["error"]["message"]
    r = api.post("/api/v1/templates", json={"name": "api", "image": "example/api:1",
                                            "description": "t" * 2000})
    assert r.status_code == 201, r.text


def test_cli_filters_with_control_characters_exit_2(snoozeql_cli) -> None:  # noqa: ANN001
    r = snoozeql_cli("instances", "list", "--tag", "\x00=x")
    assert r.exit_code == 2, r.output
    assert "control characters" in r.output
    r = snoozeql_cli("instances", "list", "--engine", "post\ngres")
    assert r.exit_code == 2 and "control characters" in r.output
