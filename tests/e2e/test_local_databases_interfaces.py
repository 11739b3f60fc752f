"""Local databases through the REST API (FastAPI's test client) and the `snoozeql db`
commands (Typer's runner), with real Redis and PostgreSQL server processes."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import Result

from snoozeql.api.app import create_app
from snoozeql.domain.types import InstanceStatus
from snoozeql.jobs.catalogue import catalogue
from snoozeql.jobs.runner import JobRunner
from snoozeql.providers.local import probes
from snoozeql.providers.local.ports import port_open
from snoozeql.services.apikeys import ApiKeyService
from snoozeql.services.context import Context
from snoozeql.store import instances as instance_store
from tests.support.cli import CliHarness
from tests.support.local_databases import store_dump

API = "/api/v1/instances"


@pytest.fixture
def api(local_ctx: Context) -> TestClient:
    keys = {role: ApiKeyService(local_ctx).create(f"{role}-key", role)[1]
            for role in ("viewer", "operator")}
    client = TestClient(create_app(local_ctx), raise_server_exceptions=False)
    client.keys = keys  # type: ignore[attr-defined]
    return client


def h(api: TestClient, role: str) -> dict[str, str]:
    return {"X-API-Key": api.keys[role]}  # type: ignore[attr-defined]


def test_api_create_status_stop_start_delete(api: TestClient, local_ctx: Context) -> None:
    body = {"name": "cache", "engine": "redis"}
    assert api.post(API, json=body, headers=h(api, "viewer")).status_code == 403
    r = api.post(API, json=body, headers=h(api, "operator"))
    assert r.status_code == 201, r.text
    created = r.json()
    password = created["password"]
    assert password and created["provider"] == "local" and created["status"] == "running"
    port = created["endpoint_port"]
    assert probes.probe("redis", port, password).ok

    # The password was in that one response only.
    listing = api.get(API, headers=h(api, "viewer"))
    assert [i["name"] for i in listing.json()["items"]] == ["cache"]
    shown = api.get(f"{API}/cache", headers=h(api, "viewer"))
    assert password not in listing.text and password not in shown.text
    assert password not in store_dump(local_ctx)

    r = api.get(f"{API}/cache/status", headers=h(api, "viewer"))
    assert r.status_code == 200 and r.json()["status"] == "running"
    assert r.json()["probe_ok"] is True and password not in r.text
    assert api.get(f"{API}/cache/url", headers=h(api, "viewer")).status_code == 403
    url = api.get(f"{API}/cache/url", headers=h(api, "operator")).json()["url"]
    assert url == f"redis://default:{password}@127.0.0.1:{port}/0"
    logs = api.get(f"{API}/cache/logs?n=3", headers=h(api, "viewer")).json()["lines"]
    assert 0 < len(logs) <= 3

    r = api.post(f"{API}/cache/stop", headers=h(api, "operator"))
    assert r.status_code == 200 and r.json()["instance"]["status"] == "stopped"
    assert not port_open(port)
    assert api.get(f"{API}/cache/status", headers=h(api, "viewer")).json()["status"] == "stopped"
    r = api.post(f"{API}/cache/start", headers=h(api, "operator"))
    assert r.status_code == 200 and r.json()["instance"]["status"] == "running"

    # The periodic job (and `serve` at start) recomputes a stale stored status.
    iid = created["id"]
    with local_ctx.engine.begin() as conn:
        instance = instance_store.find(conn, name="cache")[0]
        instance_store.set_status(conn, instance.id, InstanceStatus.FAILED, "stale")
    [job] = [j for j in catalogue(local_ctx) if j.name == "refresh-local-databases"]
    runner = JobRunner(local_ctx, [job])
    runner.register()
    assert runner.run_due() == ["refresh-local-databases"]
    assert api.get(f"{API}/{iid}", headers=h(api, "viewer")).json()["status"] == "running"

    assert api.delete(f"{API}/cache", headers=h(api, "viewer")).status_code == 403
    r = api.delete(f"{API}/{iid}", headers=h(api, "operator"))
    assert r.status_code == 204 and r.content == b""
    assert api.get(API, headers=h(api, "viewer")).json()["items"] == []
    assert not port_open(port)
    actions = api.get("/api/v1/actions", headers=h(api, "viewer")).json()
    assert sorted((a["action"], a["result"], a["actor"]) for a in actions) == sorted([
        ("create", "ok", "operator-key"), ("stop", "ok", "operator-key"),
        ("start", "ok", "operator-key"), ("delete", "ok", "operator-key")])


def test_api_errors(api: TestClient) -> None:
    op = h(api, "operator")
    cases: list[tuple[dict[str, Any], int, str]] = [
        ({"name": "Not OK", "engine": "redis"}, 400, "DNS label"),
        ({"name": "x", "engine": "oracle"}, 400, "unknown engine"),
        ({"name": "x", "engine": "postgres", "version": "9"}, 400, "not installed"),
        ({"name": "x", "engine": "redis", "port": 22}, 400, "out of range"),
        ({"name": "x", "engine": "redis", "runtime": "vm"}, 400, "runtime"),
        ({"name": "x", "engine": "redis", "runtime": "native", "image": "redis"}, 400, "docker"),
    ]
    for body, code, text in cases:
        r = api.post(API, json=body, headers=op)
        assert (r.status_code, text in r.json()["error"]["message"]) == (code, True), r.text
    r = api.post(API, json={"name": "r1", "engine": "redis", "password": "pw-given-123"},
                 headers=op)
    assert r.status_code == 201 and r.json()["password"] is None
    port = r.json()["endpoint_port"]
    assert probes.probe("redis", port, "pw-given-123").ok
    r = api.post(API, json={"name": "r1", "engine": "redis"}, headers=op)
    assert r.status_code == 409 and "already exists" in r.json()["error"]["message"]
    r = api.post(API, json={"name": "r2", "engine": "redis", "port": port}, headers=op)
    assert r.status_code == 409 and "belongs to local database 'r1'" in r.text
    assert api.get(f"{API}/ghost/status", headers=h(api, "viewer")).status_code == 404
    assert api.delete(f"{API}/r1?keep_data=true", headers=op).status_code == 204


# --------------------------------------------------------------------------- CLI


@pytest.fixture
def db_cli(
    snoozeql_cli: CliHarness, local_data_dir: Path, debian_servers: None
) -> CliHarness:
    snoozeql_cli.env(SNOOZEQL_DATA_DIR=str(local_data_dir))
    return snoozeql_cli


def test_cli_db_commands(db_cli: Callable[..., Result]) -> None:
    r = db_cli("db", "create", "pg1", "--engine", "postgres")
    assert r.exit_code == 0, r.output
    [line] = [ln for ln in r.stdout.splitlines() if ln.startswith("password: ")]
    password = line.split()[1]
    assert "created pg1" in r.stdout and "running" in r.stdout

    r = db_cli("db", "create", "cache", "--engine", "redis", "--json")
    assert r.exit_code == 0, r.output
    cache = json.loads(r.stdout)
    assert cache["status"] == "running" and cache["password"]

    for args in (("db", "list"), ("db", "list", "--json"), ("instances", "list", "--json"),
                 ("db", "status", "pg1", "--json"), ("instances", "show", "pg1", "--json"),
                 ("actions", "list", "--json")):
        r = db_cli(*args)
        assert r.exit_code == 0, r.output
        assert password not in r.stdout and cache["password"] not in r.stdout, args
    listed = json.loads(db_cli("db", "list", "--json").stdout)
    assert [(d["name"], d["engine"], d["status"]) for d in listed] == [
        ("cache", "redis", "running"), ("pg1", "postgres", "running")]
    status = json.loads(db_cli("db", "status", "pg1", "--json").stdout)
    assert status["probe_ok"] is True and status["process_alive"] is True

    url = db_cli("db", "url", "pg1").stdout.strip()
    assert url == f"postgresql://postgres:{password}@127.0.0.1:{status['port']}/postgres"
    import psycopg

    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)

    r = db_cli("db", "stop", "pg1")
    assert r.exit_code == 0 and "stopped" in r.stdout, r.output
    assert json.loads(db_cli("db", "status", "pg1", "--json").stdout)["status"] == "stopped"
    listed = db_cli("db", "list").stdout
    assert "2 database(s)" in listed and "stopped" in listed  # stopped ones are listed
    r = db_cli("db", "start", "pg1")
    assert r.exit_code == 0 and "running" in r.stdout, r.output
    r = db_cli("db", "restart", "cache")
    assert r.exit_code == 0 and "running" in r.stdout, r.output
    r = db_cli("instances", "restart", "cache")  # the generic command works too
    assert r.exit_code == 0 and "running" in r.stdout, r.output
    logs = db_cli("db", "logs", "pg1", "-n", "4").stdout.splitlines()
    assert 0 < len(logs) <= 4

    r = db_cli("db", "create", "pg1", "--engine", "postgres")
    assert r.exit_code == 2 and "already exists" in r.stderr
    r = db_cli("db", "create", "x", "--engine", "oracle")
    assert r.exit_code == 2 and "unknown engine" in r.stderr
    r = db_cli("db", "status", "ghost")
    assert r.exit_code == 2

    r = db_cli("db", "delete", "cache", input="n\n")  # asks first
    assert r.exit_code == 1 and "not deleted" in r.output
    r = db_cli("db", "delete", "cache", "--yes")
    assert r.exit_code == 0 and "deleted cache" in r.stdout
    r = db_cli("db", "delete", "pg1", "--yes", "--keep-data")
    assert r.exit_code == 0 and "data kept at" in r.stdout
    assert json.loads(db_cli("db", "list", "--json").stdout) == []


def test_cli_db_status_exit_codes_already_done_and_delete_without_terminal(
    db_cli: CliHarness,
) -> None:
    """Issue 13 items 11, 13, 4 and 12 with a real Redis server process."""
    r = db_cli("db", "create", "cache", "--engine", "redis", "--json")
    assert r.exit_code == 0, r.output
    created = json.loads(r.stdout)
    assert db_cli("db", "status", "cache").exit_code == 0  # running

    # Item 4: a stop of a stopped database is ok, "already stopped".
    assert db_cli("db", "stop", "cache").exit_code == 0
    r = db_cli("db", "stop", "cache")
    assert r.exit_code == 0 and "stop cache: ok, already stopped" in r.stdout, r.output
    r = db_cli("instances", "stop", "cache", "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["already"] is True

    # Item 11: not running is exit 3 (plain and --json), so scripts can test it.
    r = db_cli("db", "status", "cache")
    assert r.exit_code == 3 and "stopped" in r.stdout, r.output
    r = db_cli("db", "status", "cache", "--json")
    assert r.exit_code == 3 and json.loads(r.stdout)["status"] == "stopped"
    assert db_cli("db", "status", "ghost").exit_code == 2

    # Item 12: the short id the tables print works for db commands too.
    short = created["id"][:8]
    r = db_cli("db", "start", short)
    assert r.exit_code == 0 and "start cache: ok, now running" in r.stdout, r.output
    r = db_cli("db", "start", short)
    assert r.exit_code == 0 and "already running" in r.stdout, r.output
    status = json.loads(db_cli("db", "status", short, "--json").stdout)
    assert status["status"] == "running" and status["pid"]

    # A crashed server (killed): failed, exit 3.
    os.kill(status["pid"], signal.SIGKILL)
    deadline = time.monotonic() + 20
    while True:
        r = db_cli("db", "status", "cache", "--json")
        if json.loads(r.stdout)["status"] != "running" or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert r.exit_code == 3 and json.loads(r.stdout)["status"] in ("failed", "stopped"), r.stdout

    # Item 13: no terminal and no --yes: say how to delete without asking.
    r = db_cli("db", "delete", "cache")
    assert r.exit_code == 2, r.output
    assert "add --yes to delete without asking" in r.stderr
    assert "Aborted" not in r.output
    assert json.loads(db_cli("db", "list", "--json").stdout)[0]["name"] == "cache"
    r = db_cli("db", "delete", "cache", "--yes")
    assert r.exit_code == 0 and "deleted cache" in r.stdout
