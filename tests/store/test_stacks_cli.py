"""`snoozeql templates ...` and `snoozeql stacks ...` in-process (Typer's runner)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml


@pytest.fixture
def cli(snoozeql_cli):  # noqa: ANN001, ANN201
    snoozeql_cli.env(SNOOZEQL_DOCKER_HOST="unix:///nonexistent/snoozeql-test/docker.sock")
    return snoozeql_cli


def test_templates_add_list_show(cli, tmp_path: Path) -> None:  # noqa: ANN001
    f = tmp_path / "worker.yaml"
    f.write_text("image: example/worker:2\nenvironment:\n  TOKEN: {value: abc-123, secret: true}\n")
    r = cli("templates", "add", str(f), "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["name"] == "worker"  # named after the file
    r = cli("templates", "list", "--json")
    names = {t["name"]: t["builtin"] for t in json.loads(r.stdout)}
    assert names["worker"] is False and names["postgres"] is True
    r = cli("templates", "show", "worker", "--json")
    assert json.loads(r.stdout)["environment"][0]["value"] == "***"
    assert "abc-123" not in cli("templates", "show", "worker").output
    bad = tmp_path / "bad.yaml"
    bad.write_text("image: [\n")
    r = cli("templates", "add", str(bad))
    assert r.exit_code == 2 and "not valid YAML" in r.output


def test_stacks_and_instances_commands(cli, tmp_path: Path) -> None:  # noqa: ANN001
    assert cli("stacks", "create", "shop", "-d", "the shop").exit_code == 0
    r = cli("stacks", "create", "default")
    assert r.exit_code == 2 and "my-default" in r.output
    r = cli("stacks", "instances", "add", "shop", "db", "-t", "postgres", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["container_name"] == "snoozeql-shop-db"
    r = cli("stacks", "instances", "add", "shop", "db", "-t", "postgres")
    assert r.exit_code == 2 and "already has an instance" in r.output
    r = cli("stacks", "instances", "add", "shop", "web", "-t", "nginx")
    assert r.exit_code == 0
    r = cli("stacks", "instances", "override", "shop", "web", "config_files",
            '[{"target": "/etc/nginx/conf.d/default.conf", "content": "server {}\\n"}]')
    assert r.exit_code == 0, r.output
    r = cli("stacks", "instances", "override", "shop", "db", "ports",
            '["127.0.0.1:15432:5432"]', "--mode", "replace", "--json")
    assert json.loads(r.stdout)["override_count"] == 2
    r = cli("stacks", "instances", "list", "shop", "--json")
    assert [(i["name"], i["override_count"]) for i in json.loads(r.stdout)] == [
        ("db", 2), ("web", 1)]
    r = cli("stacks", "instances", "effective", "shop", "db", "--json")
    eff = json.loads(r.stdout)
    assert eff["provenance"]["ports"] == "replaced"
    assert [e["value"] for e in eff["env_vars"] if e["key"] == "POSTGRES_PASSWORD"] == ["***"]
    r = cli("stacks", "instances", "duplicate", "shop", "web", "--disabled", "--json")
    assert json.loads(r.stdout)["name"] == "web-copy"
    r = cli("stacks", "instances", "rename", "shop", "web-copy", "web2")
    assert r.exit_code == 0 and "snoozeql-shop-web2" in r.output
    r = cli("stacks", "instances", "delete-preview", "shop", "web2", "--json")
    assert json.loads(r.stdout)["container_name"] == "snoozeql-shop-web2"
    assert cli("stacks", "instances", "delete", "shop", "web2", "-y").exit_code == 0
    r = cli("stacks", "instances", "show", "shop", "web2")
    assert r.exit_code == 2

    # export to stdout: no secret values, only variable references
    r = cli("stacks", "export", "shop")
    assert r.exit_code == 0
    doc = yaml.safe_load(r.stdout)
    assert doc["services"]["db"]["environment"]["POSTGRES_PASSWORD"].startswith("${")
    # export to a directory: compose.yaml, config files and a private .env
    out = tmp_path / "out"
    r = cli("stacks", "export", "shop", "-o", str(out))
    assert r.exit_code == 0, r.output
    assert (out / "compose.yaml").is_file()
    assert (out / "configs/web/etc/nginx/conf.d/default.conf").read_text() == "server {}\n"
    env = (out / ".env").read_text()
    assert env.startswith("SNOOZEQL_DB_POSTGRES_PASSWORD='") and (out / ".env").stat(
    ).st_mode & 0o777 == 0o600
    r = cli("stacks", "export", "shop", "--reveal-secrets")
    password = env.split("'")[1]
    assert password in r.stdout

    r = cli("stacks", "plan", "shop", "--json")
    plan = json.loads(r.stdout)
    assert {(i["instance"], i["action"]) for i in plan["items"]} >= {("web", "refused")}
    assert cli("stacks", "show", "shop", "--json").exit_code == 0
    assert cli("stacks", "delete", "shop", "-y").exit_code == 0
    r = cli("stacks", "show", "shop")
    assert r.exit_code == 2 and "restore" in r.output
    r = cli("stacks", "restore", "shop", "--json")
    assert json.loads(r.stdout)["instance_count"] == 2


def test_restore_picks_any_deleted_stack(cli) -> None:  # noqa: ANN001
    ids = []
    for _ in range(2):
        r = cli("stacks", "create", "shop", "--json")
        ids.append(json.loads(r.stdout)["id"])
        r = cli("stacks", "delete", "shop", "-y")
        assert r.exit_code == 0 and "--id" in r.output
    r = cli("stacks", "list", "--deleted")
    assert "ID" in r.output and all(i[:8] in r.output for i in ids)
    r = cli("stacks", "list", "--deleted", "--json")
    assert sorted(s["id"] for s in json.loads(r.stdout)) == sorted(ids)
    r = cli("stacks", "restore", "shop")
    assert r.exit_code == 2 and "2 deleted stacks" in r.output and "--id" in r.output
    r = cli("stacks", "restore", "shop", "--id", "00000000-0000-0000-0000-000000000000")
    assert r.exit_code == 2 and "has id" in r.output
    r = cli("stacks", "restore", "shop", "--id", ids[0], "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["id"] == ids[0]
    r = cli("stacks", "state", "shop", "--json")
    assert json.loads(r.stdout)["state"] == "empty"
    r = cli("stacks", "delete-preview", "shop", "--json")
    assert json.loads(r.stdout)["instances"] == []
