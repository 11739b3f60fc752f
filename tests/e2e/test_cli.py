"""The `snoozeql` command, in-process (Typer's runner) and as a real process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.support.moto_server import free_port

SNOOZEQL = str(Path(sys.executable).parent / "snoozeql")


@pytest.fixture
def cli(snoozeql_cli, aws_env):  # noqa: ANN001, ANN201
    return snoozeql_cli


def test_accounts_sync_list_and_instances(cli, aws_env) -> None:  # noqa: ANN001
    aws_env.create_instances("us-east-1", 3, tags={"env": "dev"})
    aws_env.create_aurora_cluster("us-east-1", "c1", members=2)
    r = cli("accounts", "add", "aws", "dev-account", "--regions", "us-east-1",
            "--endpoint-url", aws_env.endpoint_url)
    assert r.exit_code == 0, r.output
    r = cli("accounts", "sync", "dev-account")
    assert r.exit_code == 0 and "connected" in r.output and "6 databases" in r.output
    r = cli("accounts", "list", "--json")
    [acct] = json.loads(r.stdout)
    assert acct["status"] == "connected" and acct["last_sync_at"] and acct["last_error"] is None

    r = cli("instances", "list", "--json", "--tag", "env=dev")
    assert sorted(i["name"] for i in json.loads(r.stdout)) == ["db-0000", "db-0001", "db-0002"]
    r = cli("instances", "list", "--kind", "cluster")
    assert "c1" in r.output and "1 instance(s)" in r.output
    r = cli("instances", "show", "c1", "--json")
    assert len(json.loads(r.stdout)["members"]) == 2

    r = cli("instances", "stop", "db-0001")
    assert r.exit_code == 0 and "ok" in r.output
    r = cli("instances", "stop", "c1-m0")
    assert r.exit_code == 1 and "cluster" in r.stderr
    r = cli("actions", "list", "--json")
    assert [(a["instance_name"], a["result"], a["actor"]) for a in json.loads(r.stdout)] == [
        ("c1-m0", "refused", "cli"), ("db-0001", "ok", "cli")]


def test_misuse_exits_2_with_a_message(cli) -> None:  # noqa: ANN001
    r = cli("accounts", "add", "aws", "dev", "--regions", "nowhere")
    assert r.exit_code == 2 and "not an AWS region" in r.stderr
    r = cli("instances", "show", "ghost")
    assert r.exit_code == 2 and "no instance" in r.stderr
    r = cli("instances", "list", "--status", "napping")
    assert r.exit_code == 2
    r = cli("accounts", "sync")
    assert r.exit_code == 2
    r = cli("instances", "frobnicate")
    assert r.exit_code == 2


def test_any_setting_of_a_provider_goes_through_set(cli, aws_env) -> None:  # noqa: ANN001
    """`accounts add --set KEY=VALUE` takes the settings the provider's plugin declares
    (`accounts settings` lists them), so a new provider needs no new CLI option."""
    r = cli("accounts", "settings", "--json")
    listed = {(s["provider"], s["setting"]) for s in json.loads(r.stdout)}
    assert {("aws", "regions"), ("aws", "external_id"), ("gcp", "projects")} <= listed
    [external] = [s for s in json.loads(r.stdout) if s["setting"] == "external_id"]
    assert external["secret"] and not external["required"]
    r = cli("accounts", "settings", "gcp")
    assert r.exit_code == 0 and "projects" in r.output and "regions" not in r.output
    r = cli("accounts", "add", "aws", "via-set", "--set", "regions=us-east-1,eu-west-1",
            "--set", f"endpoint_url={aws_env.endpoint_url}", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["config"] == {
        "regions": ["us-east-1", "eu-west-1"], "endpoint_url": aws_env.endpoint_url}
    r = cli("accounts", "sync", "via-set")
    assert r.exit_code == 0 and "connected" in r.output
    for args, said in ((["--set", "regions"], "expected KEY=VALUE"),
                       (["--regions", "us-east-1", "--set", "regions=eu-west-1"],
                        "regions is given twice"),
                       (["--set", "regions=us-east-1", "--set", "zone=a"],
                        "unknown setting(s) zone")):
        r = cli("accounts", "add", "aws", "bad", *args)
        assert r.exit_code == 2 and said in r.stderr, (args, r.stderr)
    r = cli("accounts", "settings", "azure")
    assert r.exit_code == 2 and "unknown cloud 'azure'" in r.stderr
    r = cli("accounts", "list", "--json")
    assert [a["name"] for a in json.loads(r.stdout)] == ["via-set"]  # nothing half-made


def test_failed_sync_exits_1(cli) -> None:  # noqa: ANN001
    cli("accounts", "add", "aws", "dead", "--regions", "us-east-1",
        "--endpoint-url", f"http://127.0.0.1:{free_port()}")
    r = cli("accounts", "sync", "dead", "--json")
    assert r.exit_code == 1
    [report] = json.loads(r.stdout)
    assert report["status"] == "failed" and report["error"]


def test_apikeys_print_once_store_hash(cli, tmp_path) -> None:  # noqa: ANN001
    r = cli("apikeys", "create", "me", "--role", "admin", "--json")
    key = json.loads(r.stdout)["key"]
    r = cli("apikeys", "list", "--json")
    assert key not in r.stdout and json.loads(r.stdout)[0]["role"] == "admin"
    db_bytes = (tmp_path / "data" / "snoozeql.db").read_bytes()
    assert key.encode() not in db_bytes


def test_serve_starts_on_a_fresh_data_dir_and_answers(tmp_path, aws_env) -> None:  # noqa: ANN001
    """`snoozeql serve` as a user runs it: migrates an empty SQLite store and serves."""
    env = {**os.environ, "SNOOZEQL_DATA_DIR": str(tmp_path / "fresh"),
           "SNOOZEQL_JOBS_ENABLED": "true", "SNOOZEQL_SYNC_INTERVAL_SECONDS": "10",
           "SNOOZEQL_JOB_POLL_SECONDS": "0.2", "SNOOZEQL_AWS_PRICE_LIST": "false"}
    env.pop("SNOOZEQL_DATABASE_URL", None)
    key = json.loads(subprocess.run(
        [SNOOZEQL, "apikeys", "create", "me", "--role", "admin", "--json"], env=env,
        capture_output=True, text=True, check=True).stdout)["key"]
    aws_env.create_instances("us-east-1", 2)
    subprocess.run([SNOOZEQL, "accounts", "add", "aws", "dev", "--regions", "us-east-1",
                    "--endpoint-url", aws_env.endpoint_url], env=env, check=True,
                   capture_output=True)
    port = free_port()
    proc = subprocess.Popen([SNOOZEQL, "serve", "--port", str(port)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{base}/healthz", timeout=1) as r:
                    assert json.load(r)["status"] == "ok"
                    break
            except OSError:
                assert time.monotonic() < deadline, "serve did not come up"
                time.sleep(0.2)
        # The periodic sync job runs inside serve and fills the inventory by itself.
        req = urllib.request.Request(f"{base}/api/v1/instances", headers={"X-API-Key": key})
        deadline = time.monotonic() + 30
        while True:
            with urllib.request.urlopen(req, timeout=5) as r:
                items = json.load(r)["items"]
            if len(items) == 2:
                break
            assert time.monotonic() < deadline, "the sync job did not run"
            time.sleep(0.3)
        assert (tmp_path / "fresh" / "snoozeql.db").exists()
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def test_migrate_up_down_and_bad_revision(cli, tmp_path) -> None:  # noqa: ANN001
    r = cli("migrate")
    assert r.exit_code == 0 and "-> 0" in r.output
    r = cli("migrate", "--down", "base")
    assert r.exit_code == 0 and r.output.strip().endswith("-> empty")
    r = cli("migrate", "no-such-revision")
    assert r.exit_code == 2 and "cannot migrate" in r.stderr
    r = cli("migrate")
    assert r.exit_code == 0
