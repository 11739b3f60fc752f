"""Issue 14, items 1 and 2: a stack instance's generated secrets are kept through every
env_vars override, reach the Compose export and `apply` alike, and can always be read
(`snoozeql stacks instances secrets`, `GET .../secrets` for operators).

The apply tests start real PostgreSQL and Redis server processes and log in with the
password the secrets command shows."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import psycopg
import pytest
import yaml
from fastapi.testclient import TestClient

from snoozeql.api.app import create_app
from snoozeql.api.schemas.stacks import EffectiveOut
from snoozeql.services.apikeys import ApiKeyService
from snoozeql.services.context import Context
from snoozeql.services.stacks import StackService
from tests.support.local_databases import store_dump
from tests.support.moto_server import free_port

NO_DOCKER = "unix:///nonexistent/snoozeql-test/docker.sock"


def _secret(svc: StackService, stack: str, name: str, key: str) -> str | None:
    return {e.key: e.value for e in svc.secrets(stack, name).env_vars}.get(key)


def test_generated_password_survives_every_env_vars_override(ctx: Context) -> None:
    svc = StackService(ctx)
    svc.create_stack("shop")
    svc.create_instance("shop", "db", "postgres")
    password = _secret(svc, "shop", "db", "POSTGRES_PASSWORD")
    assert password and len(password) >= 20

    # the reported case: a merge override of another key
    svc.put_override("shop", "db", "env_vars", {"entries": {"POSTGRES_DB": "shop"}})
    view, eff = svc.effective("shop", "db")
    assert eff.env()["POSTGRES_PASSWORD"] == password and eff.env()["POSTGRES_DB"] == "shop"
    red = EffectiveOut.of(view, eff).model_dump(mode="json")
    assert red["entry_provenance"]["env_vars"]["POSTGRES_PASSWORD"] == "override"
    assert {e["key"]: e["value"] for e in red["env_vars"]}["POSTGRES_PASSWORD"] == "***"
    export = svc.compose("shop")
    env = export.document["services"]["db"]["environment"]
    assert env["POSTGRES_PASSWORD"] == "${SNOOZEQL_DB_POSTGRES_PASSWORD}"
    assert export.env["SNOOZEQL_DB_POSTGRES_PASSWORD"] == password

    # replace mode, another override after it, dropping the override: still the same
    svc.put_override("shop", "db", "env_vars",
                     {"mode": "replace", "entries": {"TZ": "UTC"}})
    assert svc.effective("shop", "db")[1].env() == {"TZ": "UTC", "POSTGRES_PASSWORD": password}
    svc.put_override("shop", "db", "env_vars", {"entries": []})
    assert svc.effective("shop", "db")[1].env()["POSTGRES_PASSWORD"] == password
    svc.delete_override("shop", "db", "env_vars")
    assert svc.effective("shop", "db")[1].env()["POSTGRES_PASSWORD"] == password
    assert _secret(svc, "shop", "db", "POSTGRES_PASSWORD") == password

    # the user sets it explicitly: theirs wins; naming it without a value removes it
    svc.put_override("shop", "db", "env_vars", {"entries": {"POSTGRES_PASSWORD": "mine-123"}})
    assert _secret(svc, "shop", "db", "POSTGRES_PASSWORD") == "mine-123"
    svc.put_override("shop", "db", "env_vars", {"entries": {"POSTGRES_DB": "x"}})
    assert _secret(svc, "shop", "db", "POSTGRES_PASSWORD") == "mine-123"
    svc.put_override("shop", "db", "env_vars",
                     {"entries": [{"key": "POSTGRES_PASSWORD", "value": None}]})
    assert svc.effective("shop", "db")[1].env()["POSTGRES_PASSWORD"] is None

    # the values are never stored in clear
    assert password not in store_dump(ctx) and "mine-123" not in store_dump(ctx)


def test_secrets_command_effective_and_export_after_an_override(snoozeql_cli, tmp_path: Path
                                                                ) -> None:  # noqa: ANN001
    cli = snoozeql_cli
    cli.env(SNOOZEQL_DOCKER_HOST=NO_DOCKER)
    assert cli("stacks", "create", "shop").exit_code == 0
    assert cli("stacks", "instances", "add", "shop", "db", "-t", "postgres").exit_code == 0
    r = cli("stacks", "instances", "override", "shop", "db", "env_vars", '{"POSTGRES_DB":"shop"}')
    assert r.exit_code == 0, r.output

    r = cli("stacks", "instances", "secrets", "shop", "db", "--json")
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    [entry] = data["env_vars"]
    assert entry["key"] == "POSTGRES_PASSWORD" and entry["source"] == "override"
    password = entry["value"]
    assert password and data["database_password"] == password
    assert data["database_password_from"] == "POSTGRES_PASSWORD"
    table = cli("stacks", "instances", "secrets", "shop", "db")
    assert table.exit_code == 0 and password in table.output

    eff = json.loads(cli("stacks", "instances", "effective", "shop", "db", "--json").stdout)
    shown = {e["key"]: e["value"] for e in eff["env_vars"]}
    assert shown["POSTGRES_PASSWORD"] == "***" and shown["POSTGRES_DB"] == "shop"
    assert eff["entry_provenance"]["env_vars"]["POSTGRES_PASSWORD"] == "override"
    assert password not in cli("stacks", "instances", "show", "shop", "db", "--json").stdout

    out = tmp_path / "out"
    assert cli("stacks", "export", "shop", "-o", str(out)).exit_code == 0
    doc = yaml.safe_load((out / "compose.yaml").read_text())
    assert doc["services"]["db"]["environment"]["POSTGRES_PASSWORD"] == (
        "${SNOOZEQL_DB_POSTGRES_PASSWORD}")
    assert f"SNOOZEQL_DB_POSTGRES_PASSWORD='{password}'" in (out / ".env").read_text()

    r = cli("stacks", "instances", "secrets", "shop", "nope")
    assert r.exit_code == 2 and "no instance 'nope'" in r.output


def test_secrets_endpoint_is_for_operators(ctx: Context) -> None:
    ctx.settings = ctx.settings.model_copy(update={"docker_host": NO_DOCKER})
    keys = {role: ApiKeyService(ctx).create(f"{role}-key", role)[1]
            for role in ("viewer", "operator")}
    api = TestClient(create_app(ctx), raise_server_exceptions=False)
    api.headers.update({"X-API-Key": keys["operator"]})
    assert api.post("/api/v1/stacks", json={"name": "shop"}).status_code == 201
    base = "/api/v1/stacks/shop/instances"
    assert api.post(base, json={"name": "cache", "template": "redis"}).status_code == 201
    r = api.put(f"{base}/cache/overrides/env_vars", json={"entries": {"TZ": "UTC"}})
    assert r.status_code == 200 and "***" in r.text

    r = api.get(f"{base}/cache/secrets")
    assert r.status_code == 200, r.text
    body = r.json()
    [entry] = body["env_vars"]
    assert entry["key"] == "REDIS_PASSWORD" and len(entry["value"]) >= 20
    assert body["database_password"] == entry["value"]
    # nowhere else in clear
    for path in (f"{base}/cache", f"{base}/cache/effective", "/api/v1/stacks/shop/compose",
                 "/api/v1/audit"):
        assert entry["value"] not in api.get(path).text, path
    viewer = api.get(f"{base}/cache/secrets", headers={"X-API-Key": keys["viewer"]})
    assert viewer.status_code == 403
    assert api.get(f"{base}/nope/secrets").status_code == 404


def _redis(port: int, *commands: bytes) -> list[bytes]:
    """Send RESP inline commands to a Redis server; one reply line each."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        replies = []
        f = s.makefile("rb")
        for c in commands:
            s.sendall(c + b"\r\n")
            replies.append(f.readline().strip())
        return replies


def test_redis_password_reaches_apply_and_the_compose_export(
    ctx: Context, local_data_dir: Path, debian_servers: None, tmp_path: Path
) -> None:
    ctx.settings = ctx.settings.model_copy(update={"data_dir": local_data_dir,
                                                   "docker_host": NO_DOCKER})
    svc = StackService(ctx)
    svc.create_stack("lab")
    port = free_port()
    svc.create_instance("lab", "cache", "redis", overrides={
        "ports": {"mode": "replace", "entries": [f"127.0.0.1:{port}:6379"]}})
    password = _secret(svc, "lab", "cache", "REDIS_PASSWORD")
    assert password and svc.secrets("lab", "cache").database_password == password

    # the export runs Redis with the same secret: --requirepass from REDIS_PASSWORD
    export = svc.compose("lab")
    service = export.document["services"]["cache"]
    assert service["environment"]["REDIS_PASSWORD"] == "${SNOOZEQL_CACHE_REDIS_PASSWORD}"
    assert list(export.env.values()) == [password]
    command = " ".join(service["command"])
    assert "--requirepass" in command and "$$REDIS_PASSWORD" in command
    assert "$$REDIS_PASSWORD" in " ".join(service["healthcheck"]["test"])

    try:
        [step] = svc.apply("lab")
        assert step.ok, step
        assert _redis(port, b"PING")[0].startswith(b"-NOAUTH")
        assert _redis(port, b"AUTH " + password.encode(), b"PING") == [b"+OK", b"+PONG"]
    finally:
        svc.down("lab")


def test_postgres_applied_after_an_env_override_accepts_the_shown_password(
    ctx: Context, local_data_dir: Path, debian_servers: None
) -> None:
    ctx.settings = ctx.settings.model_copy(update={"data_dir": local_data_dir,
                                                   "docker_host": NO_DOCKER})
    svc = StackService(ctx)
    svc.create_stack("shop")
    port = free_port()
    svc.create_instance("shop", "db", "postgres", overrides={
        "ports": {"mode": "replace", "entries": [f"127.0.0.1:{port}:5432"]}})
    svc.put_override("shop", "db", "env_vars", {"entries": {"POSTGRES_DB": "shop"}})
    password = svc.secrets("shop", "db").database_password
    assert password
    try:
        [step] = svc.apply("shop")
        assert step.ok, step
        with psycopg.connect(host="127.0.0.1", port=port, user="postgres", password=password,
                             dbname="postgres", connect_timeout=10) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(host="127.0.0.1", port=port, user="postgres", password="wrong",
                            dbname="postgres", connect_timeout=10).close()
    finally:
        svc.down("shop")


def test_an_instance_from_before_gets_the_password_its_database_already_has(
    ctx: Context,
) -> None:
    """A Redis instance made before the template declared REDIS_PASSWORD (or a database
    whose password an older version dropped) ran with a password kept for `apply` only:
    the export and the secrets command adopt that one, so they agree with the server."""
    from snoozeql.services.stacks import RUNTIME_PASSWORD, SECRET_SCOPE
    from snoozeql.store import secrets as secret_store
    from snoozeql.store import stacks as stack_store

    svc = StackService(ctx)
    svc.create_stack("old")
    view = svc.create_instance("old", "cache", "redis")
    with ctx.engine.begin() as conn:  # the state an older version left behind
        stack_store.override_delete(conn, view.id, "env_vars")
        secret_store.delete(conn, SECRET_SCOPE, view.id)
        secret_store.put(conn, SECRET_SCOPE, view.id, RUNTIME_PASSWORD,
                         svc.box.encrypt("applied-before-4242"), ctx.now())
    assert svc.effective("old", "cache")[1].env()["REDIS_PASSWORD"] is None

    assert svc.compose("old").env == {"SNOOZEQL_CACHE_REDIS_PASSWORD": "applied-before-4242"}
    assert _secret(svc, "old", "cache", "REDIS_PASSWORD") == "applied-before-4242"
    assert svc.secrets("old", "cache").database_password == "applied-before-4242"


def test_a_password_set_without_the_secret_flag_stays_secret(ctx: Context) -> None:
    """The template declares POSTGRES_PASSWORD secret: a user who sets their own value
    without ``"secret": true`` still gets it encrypted and hidden from viewers, while
    ``secrets`` (operator) shows it and the export interpolates it."""
    keys = {role: ApiKeyService(ctx).create(f"{role}-k", role)[1]
            for role in ("viewer", "operator")}
    api = TestClient(create_app(ctx), raise_server_exceptions=False)
    op, viewer = {"X-API-Key": keys["operator"]}, {"X-API-Key": keys["viewer"]}
    assert api.post("/api/v1/stacks", json={"name": "shop"}, headers=op).status_code == 201
    assert api.post("/api/v1/stacks/shop/instances", headers=op,
                    json={"name": "db", "template": "postgres"}).status_code == 201
    mine = "My-Own-Pg-Passw0rd-7731"
    for mode in ("merge", "replace"):
        r = api.put("/api/v1/stacks/shop/instances/db/overrides/env_vars", headers=op,
                    json={"mode": mode, "entries": [{"key": "POSTGRES_PASSWORD",
                                                     "value": mine}]})
        assert r.status_code == 200, r.text
        assert mine not in r.text
        for url in ("/api/v1/stacks/shop/instances/db", "/api/v1/stacks/shop/instances",
                    "/api/v1/stacks/shop/instances/db/effective", "/api/v1/stacks/shop/compose",
                    "/api/v1/audit"):
            got = api.get(url, headers=viewer)
            assert got.status_code == 200, (url, got.text)
            assert mine not in got.text, url
        assert mine not in store_dump(ctx)
        r = api.get("/api/v1/stacks/shop/instances/db/secrets", headers=op)
        assert r.json()["database_password"] == mine
