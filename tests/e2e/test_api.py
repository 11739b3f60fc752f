"""The REST API over HTTP (FastAPI's test client), backed by moto and both stores."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from snoozeql.api.app import create_app
from snoozeql.providers.registry import ProviderRegistry
from snoozeql.services.apikeys import ApiKeyService


@pytest.fixture
def api(ctx, aws_env):  # noqa: ANN001, ANN201
    ctx.settings = ctx.settings.model_copy(update={"aws_connect_timeout": 1.0,
                                                   "aws_max_attempts": 2})
    ctx.providers = ProviderRegistry(ctx.settings)
    keys = {role: ApiKeyService(ctx).create(f"{role}-key", role)[1]
            for role in ("viewer", "operator", "admin")}
    client = TestClient(create_app(ctx), raise_server_exceptions=False)
    client.keys = keys  # type: ignore[attr-defined]
    return client


def h(api, role: str) -> dict[str, str]:  # noqa: ANN001
    return {"X-API-Key": api.keys[role]}


def _setup(api, aws_env, count: int = 3) -> str:  # noqa: ANN001
    aws_env.create_instances("us-east-1", count, tags={"env": "dev"})
    r = api.post("/api/v1/accounts", headers=h(api, "admin"), json={
        "provider": "aws", "name": "dev-account",
        "config": {"regions": ["us-east-1"], "endpoint_url": aws_env.endpoint_url}})
    assert r.status_code == 201, r.text
    r = api.post("/api/v1/accounts/dev-account/sync", headers=h(api, "operator"))
    assert r.status_code == 200 and r.json()["status"] == "connected", r.text
    return r.json()["account_id"]


def test_health_needs_no_key_and_everything_else_does(api) -> None:  # noqa: ANN001
    assert api.get("/healthz").json()["status"] == "ok"
    r = api.get("/api/v1/instances")
    assert r.status_code == 401 and "API key" in r.json()["error"]["message"]
    r = api.get("/api/v1/instances", headers={"X-API-Key": "sqk_wrong"})
    assert r.status_code == 401
    bearer = {"Authorization": f"Bearer {api.keys['viewer']}"}
    assert api.get("/api/v1/instances", headers=bearer).status_code == 200


def test_roles(api, aws_env) -> None:  # noqa: ANN001
    _setup(api, aws_env, 1)
    body = {"provider": "aws", "name": "x", "config": {"regions": ["us-east-1"]}}
    assert api.post("/api/v1/accounts", headers=h(api, "operator"), json=body).status_code == 403
    r = api.post("/api/v1/instances/db-0000/stop", headers=h(api, "viewer"))
    assert r.status_code == 403 and "operator" in r.json()["error"]["message"]
    assert api.post("/api/v1/instances/db-0000/stop", headers=h(api, "operator")).status_code == 200
    assert api.get("/api/v1/apikeys", headers=h(api, "operator")).status_code == 403
    keys = api.get("/api/v1/apikeys", headers=h(api, "admin")).json()
    assert {k["name"] for k in keys} == {"viewer-key", "operator-key", "admin-key"}
    assert all("key" not in k and "key_hash" not in k for k in keys)


def test_accounts_crud_and_instances(api, aws_env) -> None:  # noqa: ANN001
    account_id = _setup(api, aws_env, 5)
    accounts = api.get("/api/v1/accounts", headers=h(api, "viewer")).json()
    assert [(a["name"], a["status"]) for a in accounts] == [("dev-account", "connected")]
    assert api.get(f"/api/v1/accounts/{account_id}", headers=h(api, "viewer")).json()[
        "last_sync_at"]

    page = api.get("/api/v1/instances?limit=2&sort=-name", headers=h(api, "viewer")).json()
    assert [i["name"] for i in page["items"]] == ["db-0004", "db-0003"]
    nxt = api.get(f"/api/v1/instances?limit=2&sort=-name&cursor={page['next_cursor']}",
                  headers=h(api, "viewer")).json()
    assert [i["name"] for i in nxt["items"]] == ["db-0002", "db-0001"]
    r = api.get("/api/v1/instances?tag=env=dev&engine=postgres&account=dev-account",
                headers=h(api, "viewer"))
    assert len(r.json()["items"]) == 5
    assert api.get("/api/v1/instances?tag=env=prod", headers=h(api, "viewer")).json()[
        "items"] == []
    one = api.get("/api/v1/instances/db-0001", headers=h(api, "viewer")).json()
    assert one["provider"] == "aws" and one["tags"] == {"env": "dev"} and one["members"] == []

    r = api.patch(f"/api/v1/accounts/{account_id}", headers=h(api, "admin"),
                  json={"config": {"regions": ["us-east-1", "eu-west-1"]}})
    assert r.json()["config"]["regions"] == ["us-east-1", "eu-west-1"]
    assert api.delete("/api/v1/accounts/dev-account", headers=h(api, "admin")).status_code == 204
    assert api.get("/api/v1/instances", headers=h(api, "viewer")).json()["items"] == []


def test_actions_and_refusals(api, aws_env) -> None:  # noqa: ANN001
    aws_env.create_aurora_cluster("us-east-1", "c1", members=2)
    _setup(api, aws_env, 1)
    r = api.post("/api/v1/instances/c1-m0/stop", headers=h(api, "operator"))
    assert r.status_code == 409 and "cluster" in r.json()["error"]["message"]
    r = api.post("/api/v1/instances/c1/stop", headers=h(api, "operator"))
    assert r.status_code == 200 and r.json()["result"] == "ok"
    cluster = api.get("/api/v1/instances/c1", headers=h(api, "viewer")).json()
    assert len(cluster["members"]) == 2
    log = api.get("/api/v1/actions", headers=h(api, "viewer")).json()
    assert [(a["instance_name"], a["result"], a["actor"]) for a in log] == [
        ("c1", "ok", "operator-key"), ("c1-m0", "refused", "operator-key")]
    assert api.get("/api/v1/actions?result=refused", headers=h(api, "viewer")).json()[0][
        "instance_name"] == "c1-m0"


@pytest.mark.parametrize("method,path,body", [
    ("get", "/api/v1/instances?limit=0", None),
    ("get", "/api/v1/instances?sort=secret", None),
    ("get", "/api/v1/instances?cursor=@@@", None),
    ("get", "/api/v1/instances?status=sleepy", None),
    ("get", "/api/v1/instances?tag=novalue", None),
    ("get", "/api/v1/instances/does-not-exist", None),
    ("post", "/api/v1/accounts", {"provider": "aws", "name": "Bad Name", "config": {}}),
    ("post", "/api/v1/accounts", {"provider": "aws", "name": "ok", "config": {}}),
    ("post", "/api/v1/accounts", {"provider": "aws"}),
    ("post", "/api/v1/accounts", {"provider": "aws", "name": "a", "config": {"password": 1}}),
    ("post", "/api/v1/apikeys", {"name": "k", "role": "god"}),
    ("get", "/api/v1/actions?since=yesterday", None),
])
def test_bad_input_is_a_clear_4xx(api, method: str, path: str, body) -> None:  # noqa: ANN001
    r = getattr(api, method)(path, headers=h(api, "admin"),
                             **({"json": body} if body is not None else {}))
    assert 400 <= r.status_code < 500, r.text
    assert r.json()["error"]["message"]


def test_openapi_is_served(api) -> None:  # noqa: ANN001
    spec = api.get("/api/v1/openapi.json").json()
    assert "/api/v1/instances/{instance}/stop" in spec["paths"]
    assert "/api/v1/accounts/{account}/sync" in spec["paths"]


def test_created_key_is_shown_once_and_works(api) -> None:  # noqa: ANN001
    r = api.post("/api/v1/apikeys", headers=h(api, "admin"), json={"name": "ci", "role": "viewer"})
    key = r.json()["key"]
    assert r.status_code == 201 and key.startswith("sqk_")
    assert api.get("/api/v1/accounts", headers={"X-API-Key": key}).status_code == 200
    api.delete("/api/v1/apikeys/ci", headers=h(api, "admin"))
    assert api.get("/api/v1/accounts", headers={"X-API-Key": key}).status_code == 401
