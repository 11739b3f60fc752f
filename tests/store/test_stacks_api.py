"""The templates and stacks API over HTTP (FastAPI's test client), on both stores."""

from __future__ import annotations

import pytest
import yaml
from fastapi.testclient import TestClient

from snoozeql.api.app import create_app
from snoozeql.services.apikeys import ApiKeyService

V1 = "/api/v1"


@pytest.fixture
def api(ctx):  # noqa: ANN001, ANN201
    # No Docker engine: plain images are refused with the reason (never the host's).
    ctx.settings = ctx.settings.model_copy(
        update={"docker_host": "unix:///nonexistent/snoozeql-test/docker.sock"})
    keys = {role: ApiKeyService(ctx).create(f"{role}-key", role)[1]
            for role in ("viewer", "operator")}
    client = TestClient(create_app(ctx), raise_server_exceptions=False)
    client.headers.update({"X-API-Key": keys["operator"]})
    client.keys = keys  # type: ignore[attr-defined]
    return client


def err(r) -> str:  # noqa: ANN001
    return r.json()["error"]["message"]


def test_templates_builtin_and_user(api) -> None:  # noqa: ANN001
    names = {t["name"]: t for t in api.get(f"{V1}/templates").json()}
    assert {"postgres", "mysql", "mariadb", "redis", "mongodb", "nginx"} <= set(names)
    assert names["postgres"]["builtin"] is True
    r = api.post(f"{V1}/templates", json={
        "name": "api", "image": "example/api:1", "ports": ["127.0.0.1:8800:80"],
        "environment": {"TOKEN": {"value": "tok-1", "secret": True}}})
    assert r.status_code == 201, r.text
    assert r.json()["environment"] == [{"key": "TOKEN", "value": "***", "secret": True}]
    r = api.post(f"{V1}/templates", json={"services": {"worker": {"image": "w:1"}}})
    assert r.status_code == 201 and r.json()["name"] == "worker"
    assert api.post(f"{V1}/templates", json={"name": "api", "image": "x"}).status_code == 409
    r = api.post(f"{V1}/templates", json={"name": "bad", "image": "x", "configs": []})
    assert r.status_code == 400 and "config_files" in err(r)
    assert api.get(f"{V1}/templates/api").json()["builtin"] is False
    assert api.get(f"{V1}/templates/nope").status_code == 404
    viewer = {"X-API-Key": api.keys["viewer"]}
    assert api.post(f"{V1}/templates", json={"name": "z", "image": "z"},
                    headers=viewer).status_code == 403


def test_stacks_crud_soft_delete_restore(api) -> None:  # noqa: ANN001
    r = api.post(f"{V1}/stacks", json={"name": "shop", "description": "d"})
    assert r.status_code == 201 and r.json()["instance_count"] == 0
    assert api.post(f"{V1}/stacks", json={"name": "shop"}).status_code == 409
    r = api.post(f"{V1}/stacks", json={"name": "none"})
    assert r.status_code == 400 and "my-none" in err(r)
    assert api.put(f"{V1}/stacks/shop", json={"description": "e"}).json()["description"] == "e"
    assert [s["name"] for s in api.get(f"{V1}/stacks").json()] == ["shop"]
    assert api.delete(f"{V1}/stacks/shop").status_code == 204
    assert api.get(f"{V1}/stacks").json() == []
    assert len(api.get(f"{V1}/stacks?deleted=true").json()) == 1
    r = api.post(f"{V1}/stacks/shop/instances", json={"name": "db", "template": "postgres"})
    assert r.status_code == 404 and "restore" in err(r)
    assert api.post(f"{V1}/stacks/shop/restore").json()["deleted_at"] is None
    assert api.get(f"{V1}/stacks/shop").json()["instances"] == []


def test_instance_endpoints_and_error_codes(api) -> None:  # noqa: ANN001
    api.post(f"{V1}/stacks", json={"name": "shop"})
    base = f"{V1}/stacks/shop/instances"
    r = api.post(f"{V1}/stacks/ghost/instances", json={"name": "db", "template": "postgres"})
    assert r.status_code == 404
    r = api.post(base, json={"name": "db", "template": "nosuch"})
    assert r.status_code == 400 and "unknown template" in err(r)
    r = api.post(base, json={"name": "system", "template": "postgres"})
    assert r.status_code == 400 and "reserved" in err(r) and "my-system" in err(r)
    r = api.post(base, json={"name": "Bad_Name", "template": "postgres"})
    assert r.status_code == 400 and "bad-name" in err(r)
    r = api.post(base, json={"name": "d" * 60, "template": "postgres"})
    assert r.status_code == 400 and "at most" in err(r)

    r = api.post(base, json={"name": "db", "template": "postgres", "description": "main"})
    assert r.status_code == 201, r.text
    assert r.json()["container_name"] == "snoozeql-shop-db"
    r = api.post(base, json={"name": "db", "template": "redis"})
    assert r.status_code == 409 and "choose another name" in err(r)
    r = api.post(base, json={"name": "db2", "template": "postgres"})
    assert r.status_code == 409 and "5432" in err(r)
    r = api.post(base, json={"name": "db2", "template": "postgres", "overrides": {
        "ports": {"mode": "replace", "entries": ["127.0.0.1:15432:5432"]}}})
    assert r.status_code == 201
    api.post(base, json={"name": "cache", "template": "redis", "enabled": False})

    items = api.get(base).json()
    assert [(i["name"], i["template"]) for i in items] == [
        ("db", "postgres"), ("db2", "postgres"), ("cache", "redis")]
    # redis has a generated password too (REDIS_PASSWORD), like postgres
    assert [i["override_count"] for i in items] == [1, 2, 1]
    assert [i["name"] for i in api.get(f"{base}?search=cach").json()] == ["cache"]
    assert [i["name"] for i in api.get(f"{base}?enabled=false").json()] == ["cache"]
    assert [i["name"] for i in api.get(f"{base}?enabled=true").json()] == ["db", "db2"]

    one = api.get(f"{base}/db2").json()
    kinds = {o["kind"]: o for o in one["overrides"]}
    assert kinds["ports"]["mode"] == "replace"
    assert kinds["env_vars"]["entries"][0]["value"] == "***"
    assert api.get(f"{base}/nope").status_code == 404

    r = api.put(f"{base}/cache", json={"description": "c", "enabled": True})
    assert r.json()["enabled"] is True and r.json()["description"] == "c"

    # the seven kinds
    bodies = {
        "ports": {"mode": "replace", "entries": ["127.0.0.1:16379:6379"]},
        "volumes": {"entries": ["./data:/data"]},
        "env_vars": {"entries": {"REDIS_ARGS": "--save 60 1"}},
        "labels": {"entries": [{"key": "team", "value": "ops"}]},
        "domains": {"entries": ["cache.localhost"]},
        "healthcheck": {"entries": {"test": ["CMD", "true"], "retries": 3}},
        "config_files": {"mode": "replace", "entries": [
            {"target": "/usr/local/etc/redis/redis.conf", "content": "x\n", "mode": "0600"}]},
    }
    for kind, body in bodies.items():
        r = api.put(f"{base}/cache/overrides/{kind}", json=body)
        assert r.status_code == 200, (kind, r.text)
    assert api.put(f"{base}/cache/overrides/secrets", json={"entries": []}).status_code == 400
    r = api.put(f"{base}/cache/overrides/ports", json={"entries": ["70000:1"]})
    assert r.status_code == 400 and "65535" in err(r)
    r = api.put(f"{base}/cache/overrides/ports", json={"mode": "replace",
                                                       "entries": ["127.0.0.1:15432:6379"]})
    assert r.status_code == 409
    r = api.put(f"{base}/cache/overrides/config_files", json={"entries": [
        {"target": "etc/x", "content": ""}]})
    assert r.status_code == 400 and "absolute" in err(r)
    r = api.put(f"{base}/cache/overrides/env_vars", json={"entries": {"1BAD": "x"}})
    assert r.status_code == 400

    eff = api.get(f"{base}/cache/effective").json()
    assert eff["provenance"] == {
        "ports": "replaced", "volumes": "override", "env_vars": "override",
        "labels": "override", "domains": "override", "healthcheck": "override",
        "config_files": "replaced"}
    assert eff["entry_provenance"]["volumes"] == {"/data": "override"}
    assert eff["entry_provenance"]["healthcheck"]["interval"] == "template"
    assert eff["entry_provenance"]["healthcheck"]["test"] == "override"
    assert eff["healthcheck"]["test"] == ["CMD", "true"]
    assert eff["override_count"] == 9  # the generated REDIS_PASSWORD was kept

    # duplicate (default name, disabled to avoid the port clash), rename, preview, delete
    r = api.post(f"{base}/cache/duplicate")
    assert r.status_code == 409 and "16379" in err(r)
    r = api.post(f"{base}/cache/duplicate", json={"enabled": False})
    assert r.status_code == 201 and r.json()["name"] == "cache-copy"
    assert r.json()["override_count"] == 9
    r = api.post(f"{base}/cache/duplicate", json={"name": "cache-copy", "enabled": False})
    assert r.status_code == 409
    r = api.put(f"{base}/cache-copy/rename", json={"name": "db"})
    assert r.status_code == 409
    r = api.put(f"{base}/cache-copy/rename", json={"name": "cache2"})
    assert r.json()["container_name"] == "snoozeql-shop-cache2"
    preview = api.get(f"{base}/db/delete-preview").json()
    assert preview["overrides"] == {"env_vars": 1} and preview["secret_env_vars"] == [
        "POSTGRES_PASSWORD"]
    assert preview["volumes"] == ["db_pgdata"]
    assert api.delete(f"{base}/db").status_code == 204
    assert api.get(f"{base}/db").status_code == 404
    assert api.post(base, json={"name": "db", "template": "mariadb"}).status_code == 201

    r = api.get(f"{V1}/stacks/shop/compose")
    assert r.status_code == 200
    doc = yaml.safe_load(r.json()["yaml"])
    assert set(doc["services"]) == {"db2", "cache", "db"}
    assert r.json()["env_variables"] == [
        "SNOOZEQL_CACHE_REDIS_PASSWORD", "SNOOZEQL_DB2_POSTGRES_PASSWORD",
        "SNOOZEQL_DB_MARIADB_ROOT_PASSWORD"]
    env = doc["services"]["db2"]["environment"]["POSTGRES_PASSWORD"]
    assert env.startswith("${SNOOZEQL_DB2_")
    red = yaml.safe_load(api.get(f"{V1}/stacks/shop/compose?secrets=redact").json()["yaml"])
    assert red["services"]["db2"]["environment"]["POSTGRES_PASSWORD"] == "***"
    assert api.get(f"{V1}/stacks/shop/compose?secrets=reveal").status_code == 422

    plan = api.get(f"{V1}/stacks/shop/plan").json()
    assert plan["stack"] == "shop" and {i["instance"] for i in plan["items"]} == {
        "db2", "cache", "db"}

    viewer = {"X-API-Key": api.keys["viewer"]}
    assert api.get(base, headers=viewer).status_code == 200
    assert api.delete(f"{base}/cache", headers=viewer).status_code == 403


def test_apply_and_down_endpoints_report_each_step(api) -> None:  # noqa: ANN001
    api.post(f"{V1}/stacks", json={"name": "web"})
    api.post(f"{V1}/stacks/web/instances", json={"name": "app", "template": "webapp"})
    plan = api.get(f"{V1}/stacks/web/plan").json()
    assert [(i["instance"], i["action"]) for i in plan["items"]] == [("app", "refused")]
    r = api.post(f"{V1}/stacks/web/apply")
    assert r.status_code == 200
    body = r.json()
    assert body["ok"] is False and body["steps"][0]["action"] == "refused"
    assert "export" in body["steps"][0]["detail"]
    assert api.post(f"{V1}/stacks/web/down").json() == {"stack": "web", "ok": True, "steps": []}
    assert api.post(f"{V1}/stacks/nope/apply").status_code == 404
    viewer = {"X-API-Key": api.keys["viewer"]}
    assert api.post(f"{V1}/stacks/web/apply", headers=viewer).status_code == 403


def test_restore_any_deleted_stack_by_id_and_the_delete_preview(api) -> None:  # noqa: ANN001
    ids = []
    for desc in ("first", "second"):
        ids.append(api.post(f"{V1}/stacks", json={"name": "shop", "description": desc}
                            ).json()["id"])
        api.post(f"{V1}/stacks/shop/instances", json={"name": "db", "template": "postgres"})
        preview = api.get(f"{V1}/stacks/shop/delete-preview").json()
        assert [i["name"] for i in preview["instances"]] == ["db"]
        assert preview["running"] == []
        assert api.delete(f"{V1}/stacks/shop?down=true").status_code == 204
    deleted = api.get(f"{V1}/stacks?deleted=true").json()
    assert sorted(s["id"] for s in deleted) == sorted(ids)
    r = api.post(f"{V1}/stacks/shop/restore")
    assert r.status_code == 409 and "2 deleted stacks" in err(r) and ids[0] in err(r)
    r = api.post(f"{V1}/stacks/shop/restore", json={"id": "nope"})
    assert r.status_code == 400 and "not a stack id" in err(r)
    r = api.post(f"{V1}/stacks/shop/restore", json={"deleted_at": "1999-01-01T00:00"})
    assert r.status_code == 404 and "was deleted at" in err(r)
    viewer = {"X-API-Key": api.keys["viewer"]}
    assert api.post(f"{V1}/stacks/shop/restore", json={"id": ids[0]},
                    headers=viewer).status_code == 403
    r = api.post(f"{V1}/stacks/shop/restore", json={"id": ids[0]})
    assert r.status_code == 200 and r.json()["description"] == "first"
    state = api.get(f"{V1}/stacks/shop/state").json()
    assert state == {"stack": "shop", "state": "down", "instances": {
        "db": {"status": "not applied", "detail": "not applied yet: run apply"}}}
    assert api.get(f"{V1}/stacks/shop").json()["last_applied_at"] is None
