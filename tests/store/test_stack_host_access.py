"""Issue 14, items 6 and 7: what a stack container may reach on the host.

Bind mounts stay in the stack's data directory (or the admin-set allowed host paths),
for every role; the Docker socket, /, /etc, /proc, /sys, /root and '..' are always
refused; ports publish on 127.0.0.1 unless an address is given, and another address
needs admin. An empty ports value is an error; removing every entry is `--clear`."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient

from snoozeql.api.app import create_app
from snoozeql.domain.errors import ValidationError
from snoozeql.domain.stacks.hostaccess import check_bind_source
from snoozeql.services.apikeys import ApiKeyService
from snoozeql.services.context import Context
from snoozeql.services.stacks import stack_data_dir

V1 = "/api/v1"
NO_DOCKER = "unix:///nonexistent/snoozeql-test/docker.sock"


@pytest.fixture
def api(ctx: Context) -> TestClient:
    ctx.settings = ctx.settings.model_copy(update={"docker_host": NO_DOCKER})
    keys = {role: ApiKeyService(ctx).create(f"{role}-key", role)[1]
            for role in ("viewer", "operator", "admin")}
    client = TestClient(create_app(ctx), raise_server_exceptions=False)
    client.headers.update({"X-API-Key": keys["operator"]})
    client.keys = keys  # type: ignore[attr-defined]
    client.ctx = ctx  # type: ignore[attr-defined]
    assert client.post(f"{V1}/stacks", json={"name": "shop"}).status_code == 201
    r = client.post(f"{V1}/stacks/shop/instances", json={"name": "web", "template": "nginx"})
    assert r.status_code == 201, r.text
    return client


def _admin(api: TestClient) -> dict[str, str]:
    return {"X-API-Key": api.keys["admin"]}  # type: ignore[attr-defined]


def _msg(r: Any) -> str:
    return str(r.json()["error"]["message"])


VOLUMES = f"{V1}/stacks/shop/instances/web/overrides/volumes"
PORTS = f"{V1}/stacks/shop/instances/web/overrides/ports"


@pytest.mark.parametrize(("source", "why"), [
    ("/", "root directory"),
    ("/var/run/docker.sock", "socket"),
    ("/run/docker.sock", "socket"),
    ("/etc", "/etc"),
    ("/etc/ssl", "/etc"),
    ("/proc", "/proc"),
    ("/sys/fs", "/sys"),
    ("/root", "/root"),
    ("/root/.ssh", "/root"),
    ("../../etc", "path traversal"),
    ("./a/../../../etc", "path traversal"),
    ("/home", "outside the stack's data directory"),
    ("/tmp", "outside the stack's data directory"),
    ("~/.ssh", "'~/.ssh'"),  # under /root here, else outside the stack's folder
])
def test_dangerous_bind_mounts_are_refused_for_every_role(api: TestClient, source: str,
                                                          why: str) -> None:
    for headers in ({}, _admin(api)):
        r = api.put(VOLUMES, json={"entries": [f"{source}:/host"]}, headers=headers)
        assert r.status_code == 400, (source, r.text)
        assert why in _msg(r)
    eff = api.get(f"{V1}/stacks/shop/instances/web/effective").json()
    assert all(v["target"] != "/host" for v in eff["volumes"])


def test_the_reported_request_is_refused(api: TestClient) -> None:
    r = api.put(VOLUMES, json={"entries": [
        "/:/host", "/var/run/docker.sock:/var/run/docker.sock"]})
    assert r.status_code == 400 and "never mounted" in _msg(r)
    r = api.post(f"{V1}/stacks/shop/instances", json={
        "name": "evil", "template": "nginx", "enabled": False,
        "overrides": {"volumes": {"entries": ["/:/host"]}}})
    assert r.status_code == 400
    assert api.get(f"{V1}/stacks/shop/instances/evil").status_code == 404


def test_mounts_inside_the_stack_data_directory_or_allowed_paths(api: TestClient,
                                                                 tmp_path: Path) -> None:
    ctx: Context = api.ctx  # type: ignore[attr-defined]
    own = stack_data_dir(ctx.settings, "shop")
    (own / "html").mkdir(parents=True)
    r = api.put(VOLUMES, json={"entries": [f"{own}/html:/usr/share/nginx/html:ro",
                                           "./init:/init"]})
    assert r.status_code == 200, r.text

    # a symbolic link inside the stack's folder that leads out is followed and refused
    os.symlink("/etc", own / "etc-link")
    r = api.put(VOLUMES, json={"entries": [f"{own}/etc-link:/x"]})
    assert r.status_code == 400 and "/etc" in _msg(r)
    # another stack's folder is not this stack's
    other = stack_data_dir(ctx.settings, "other")
    other.mkdir(parents=True)
    assert api.put(VOLUMES, json={"entries": [f"{other}:/x"]}).status_code == 400

    shared = tmp_path / "shared"
    shared.mkdir()
    assert api.put(VOLUMES, json={"entries": [f"{shared}:/x"]}).status_code == 400
    ctx.settings = ctx.settings.model_copy(update={"allowed_host_paths": [shared, Path("/")]})
    r = api.put(VOLUMES, json={"entries": [f"{shared}/sub:/x"]})
    assert r.status_code == 200, r.text
    # "/" allowed by an admin still never opens the protected paths
    r = api.put(VOLUMES, json={"entries": ["/etc:/x"]}, headers=_admin(api))
    assert r.status_code == 400 and "never mounted" in _msg(r)

    # a mount allowed then is refused at plan time once the setting is gone
    ctx.settings = ctx.settings.model_copy(update={"allowed_host_paths": []})
    [item] = api.get(f"{V1}/stacks/shop/plan").json()["items"]
    assert item["action"] == "refused" and "outside the stack's data directory" in item["reason"]


def test_user_templates_follow_the_same_rules(api: TestClient) -> None:
    r = api.post(f"{V1}/templates", json={"name": "evil", "image": "x:1",
                                           "volumes": ["/var/run/docker.sock:/d.sock"]})
    assert r.status_code == 400 and "socket" in _msg(r)
    body = {"name": "pub", "image": "x:1", "ports": ["0.0.0.0:8088:80"]}
    r = api.post(f"{V1}/templates", json=body)
    assert r.status_code == 403 and "admin" in _msg(r)
    assert api.post(f"{V1}/templates", json=body, headers=_admin(api)).status_code == 201
    r = api.post(f"{V1}/templates", json={"name": "quiet", "image": "x:1", "ports": ["8089:80"]})
    assert r.status_code == 201 and r.json()["ports"][0]["host_ip"] == "127.0.0.1"


def test_ports_bind_to_loopback_unless_an_admin_says_otherwise(api: TestClient) -> None:
    r = api.put(PORTS, json={"mode": "replace", "entries": ["8080:8080"]})
    assert r.status_code == 200, r.text
    eff = api.get(f"{V1}/stacks/shop/instances/web/effective").json()
    assert [p["host_ip"] for p in eff["ports"]] == ["127.0.0.1"]
    doc = yaml.safe_load(api.get(f"{V1}/stacks/shop/compose").json()["yaml"])
    assert doc["services"]["web"]["ports"] == ["127.0.0.1:8080:8080/tcp"]
    assert api.put(PORTS, json={"entries": ["[::1]:8081:8081"]}).status_code == 200

    for public in ("0.0.0.0:8080:8080", "192.0.2.10:8080:8080", "[::]:8080:8080"):
        r = api.put(PORTS, json={"mode": "replace", "entries": [public]})
        assert r.status_code == 403 and "admin" in _msg(r), public
        r = api.post(f"{V1}/stacks/shop/instances", json={
            "name": "pub", "template": "nginx", "enabled": False,
            "overrides": {"ports": {"mode": "replace", "entries": [public]}}})
        assert r.status_code == 403
    r = api.put(PORTS, json={"mode": "replace", "entries": ["0.0.0.0:8080:8080"]},
                headers=_admin(api))
    assert r.status_code == 200
    doc = yaml.safe_load(api.get(f"{V1}/stacks/shop/compose").json()["yaml"])
    assert doc["services"]["web"]["ports"] == ["0.0.0.0:8080:8080/tcp"]


def test_api_override_without_entries_is_refused(api: TestClient) -> None:
    r = api.put(PORTS, json={"mode": "replace"})
    assert r.status_code == 400 and '"entries": []' in _msg(r)
    eff = api.get(f"{V1}/stacks/shop/instances/web/effective").json()
    assert eff["ports"], "the template's ports are still there"
    r = api.put(PORTS, json={"mode": "replace", "entries": []})  # explicit
    assert r.status_code == 200
    assert api.get(f"{V1}/stacks/shop/instances/web/effective").json()["ports"] == []


def test_pure_rule_table() -> None:
    base = "/srv/snoozeql/stack-data/shop"
    check_bind_source(f"{base}/x", resolved=f"{base}/x", stack_dir=base)
    check_bind_source("./x", resolved=None, stack_dir=base)
    for source, resolved in [("/", "/"), (f"{base}/s", "/etc"), ("/x.sock", "/x.sock"),
                             (f"{base}/../other", f"{base}/../other"),
                             ("/srv/snoozeql/stack-data/shopping", "/srv/snoozeql/stack-data/"
                                                                  "shopping")]:
        with pytest.raises(ValidationError):
            check_bind_source(source, resolved=resolved, stack_dir=base)


# -------------------------------------------------------------------- CLI (item 7)


def test_cli_empty_ports_value_is_an_error_and_clear_is_explicit(snoozeql_cli: Any) -> None:
    cli = snoozeql_cli
    cli.env(SNOOZEQL_DOCKER_HOST=NO_DOCKER)
    assert cli("stacks", "create", "shop").exit_code == 0
    assert cli("stacks", "instances", "add", "shop", "web", "-t", "nginx").exit_code == 0

    def ports() -> list[dict[str, Any]]:
        r = cli("stacks", "instances", "effective", "shop", "web", "--json")
        return list(json.loads(r.stdout)["ports"])

    before = ports()
    assert before
    for value in ("", "  ", "[]", "null"):
        r = cli("stacks", "instances", "override", "shop", "web", "ports", value,
                "--mode", "replace")
        assert r.exit_code == 2, (value, r.output)
        assert "--clear" in r.output
        assert ports() == before
    r = cli("stacks", "instances", "override", "shop", "web", "ports")
    assert r.exit_code == 2 and "--clear" in r.output
    r = cli("stacks", "instances", "override", "shop", "web", "ports", '["1:1"]', "--clear")
    assert r.exit_code == 2 and ports() == before

    r = cli("stacks", "instances", "override", "shop", "web", "ports", "--clear", "--json")
    assert r.exit_code == 0, r.output
    assert ports() == []
    [o] = json.loads(r.stdout)["overrides"]
    assert o == {"kind": "ports", "mode": "replace", "entries": []}

    r = cli("stacks", "instances", "override", "shop", "web", "volumes", '["/:/host"]')
    assert r.exit_code == 2 and "never mounted" in r.output


def test_a_mount_stored_before_the_rule_is_never_exported(api: TestClient) -> None:
    """An override written before these rules (or by an older version) that mounts the
    Docker socket is not handed out as a Compose file to run: export refuses it, saying
    which instance to fix, and the fixed stack exports again."""
    from datetime import UTC, datetime

    from snoozeql.domain.stacks import parse_override
    from snoozeql.store import stacks as stack_store

    ctx: Context = api.ctx  # type: ignore[attr-defined]
    with ctx.engine.begin() as conn:
        stack = stack_store.stack_by_name(conn, "shop")
        assert stack is not None
        web = stack_store.instance_by_name(conn, stack.id, "web")
        assert web is not None
        stack_store.override_put(conn, web.id, parse_override("volumes", {"entries": [
            {"type": "bind", "source": "/var/run/docker.sock",
             "target": "/var/run/docker.sock", "read_only": False},
        ]}), datetime.now(UTC))
    r = api.get(f"{V1}/stacks/shop/compose")
    assert r.status_code == 409, r.text
    assert "web" in _msg(r) and "socket" in _msg(r)
    assert "docker.sock" not in str(r.json().get("compose", ""))

    assert api.delete(f"{V1}/stacks/shop/instances/web/overrides/volumes").status_code in (
        200, 204)
    assert api.get(f"{V1}/stacks/shop/compose").status_code == 200
