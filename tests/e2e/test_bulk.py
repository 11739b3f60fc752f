"""Bulk start/stop/restart against moto's server: service, REST API and CLI.

The service and API tests run on SQLite and PostgreSQL (the ``ctx`` fixture); the CLI
tests use the embedded SQLite store as a laptop user would, in-process and, for the
confirmation prompt, as a real process on a pseudo-terminal.
"""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from snoozeql.api.app import create_app
from snoozeql.domain.errors import NotFoundError, ValidationError
from snoozeql.domain.selectors import parse_selector
from snoozeql.domain.types import ActionResult, InstanceStatus
from snoozeql.providers.registry import ProviderRegistry
from snoozeql.services.accounts import AccountService
from snoozeql.services.actions import ActionLogService
from snoozeql.services.apikeys import ApiKeyService
from snoozeql.services.bulk import BulkService
from snoozeql.services.discovery import DiscoveryService
from snoozeql.services.inventory import InventoryService
from tests.support.moto_server import free_port

SNOOZEQL = str(Path(sys.executable).parent / "snoozeql")


@pytest.fixture
def aws_ctx(ctx, aws_env):  # noqa: ANN001, ANN201
    ctx.settings = ctx.settings.model_copy(update={
        "aws_connect_timeout": 1.0, "aws_max_attempts": 2, "discovery_workers": 4,
    })
    ctx.providers = ProviderRegistry(ctx.settings)
    return ctx


def _fleet(ctx, aws_env) -> None:  # noqa: ANN001
    """db-0000..db-0003 (env=dev) and Aurora cluster c1 with member c1-m0, synced."""
    aws_env.create_instances("us-east-1", 4, tags={"env": "dev"})
    aws_env.create_aurora_cluster("us-east-1", "c1", members=1, tags={"env": "dev"})
    AccountService(ctx).add("aws", "dev-account", {
        "regions": "us-east-1", "endpoint_url": aws_env.endpoint_url})
    assert DiscoveryService(ctx).sync("dev-account").error is None


def _log(ctx) -> list[tuple[str, str, str]]:  # noqa: ANN001
    return sorted((a.instance_name or "", a.action, a.result)
                  for a in ActionLogService(ctx).list(limit=1000))


# --------------------------------------------------------------------------- service


def test_one_refusal_and_one_failure_do_not_stop_the_rest(aws_ctx, aws_env) -> None:  # noqa: ANN001
    _fleet(aws_ctx, aws_env)
    # A second account whose endpoint dies after its sync: its instance's call fails.
    aws_env.create_instances("eu-west-1", 1, prefix="far")
    AccountService(aws_ctx).add("aws", "far-account", {
        "regions": "eu-west-1", "endpoint_url": aws_env.endpoint_url})
    DiscoveryService(aws_ctx).sync("far-account")
    AccountService(aws_ctx).update("far-account",
                                   {"endpoint_url": f"http://127.0.0.1:{free_port()}"})
    svc = BulkService(aws_ctx)
    refs = ["db-0000", "db-0001", "c1-m0", "db-0002", "far-0000", "db-0003"]
    targets = svc.resolve(refs, None)
    assert [i.name for i in targets] == refs  # in the order given

    results = svc.run("stop", targets, actor="alice")

    by_name = {r.instance.name: r for r in results}
    assert [r.instance.name for r in results] == refs
    assert {n: r.result for n, r in by_name.items()} == {
        "db-0000": ActionResult.OK, "db-0001": ActionResult.OK, "db-0002": ActionResult.OK,
        "db-0003": ActionResult.OK, "c1-m0": ActionResult.REFUSED,
        "far-0000": ActionResult.FAILED,
    }
    assert "stop the cluster instead" in (by_name["c1-m0"].message or "")
    assert "eu-west-1" in (by_name["far-0000"].message or "")
    assert by_name["db-0001"].status == InstanceStatus.STOPPED
    assert by_name["far-0000"].status == InstanceStatus.RUNNING
    rds = aws_env.client("rds", "us-east-1")
    live = {d["DBInstanceIdentifier"]: d["DBInstanceStatus"]
            for d in rds.describe_db_instances()["DBInstances"]}
    assert [live[f"db-000{n}"] for n in range(4)] == ["stopped"] * 4
    assert live["c1-m0"] == "available"
    # every attempt is in the action log, each with its own result and the actor
    assert _log(aws_ctx) == sorted(
        [(f"db-000{n}", "stop", "ok") for n in range(4)]
        + [("c1-m0", "stop", "refused"), ("far-0000", "stop", "failed")])
    assert {a.actor for a in ActionLogService(aws_ctx).list()} == {"alice"}

    # Stopping them again: AWS answers InvalidDBInstanceState, SnoozeQL reads the state:
    # already stopped is a success (issue 13 item 4), per instance, logged too.
    again = svc.run("stop", svc.resolve(["db-0000", "db-0001"], None), actor="alice")
    assert [(r.result, r.message) for r in again] == [
        (ActionResult.OK, "already stopped")] * 2
    assert len(ActionLogService(aws_ctx).list(limit=1000)) == 8


def test_selector_resolution_skips_missing_and_covered_members(aws_ctx, aws_env) -> None:  # noqa: ANN001
    _fleet(aws_ctx, aws_env)
    rds = aws_env.client("rds", "us-east-1")
    rds.delete_db_instance(DBInstanceIdentifier="db-0003", SkipFinalSnapshot=True)
    t0 = aws_ctx.now()
    aws_ctx.clock = lambda: t0 + timedelta(minutes=5)
    DiscoveryService(aws_ctx).sync("dev-account")
    svc = BulkService(aws_ctx)

    found = svc.resolve_detailed(None, {"any": [{"tag": {"key": "env", "value": "dev"}},
                                                {"name": "c1-m.*"}]})
    assert [i.name for i in found.instances] == ["c1", "db-0000", "db-0001", "db-0002"]
    reasons = {s.instance.name: s.reason for s in found.skipped}
    assert set(reasons) == {"c1-m0", "db-0003"}
    assert "cluster c1" in reasons["c1-m0"] and "missing since" in reasons["db-0003"]

    # anchored names: db-000 alone matches nothing; the member alone is acted on (refused)
    assert svc.resolve(None, {"name": "db-000"}) == []
    members = svc.resolve(None, parse_selector({"all": [{"name": "c1-.*"},
                                                        {"account": "dev-account"}]}))
    assert [i.name for i in members] == ["c1-m0"]
    assert [r.result for r in svc.run("stop", members, actor="cli")] == [ActionResult.REFUSED]

    results = svc.run("stop", found.instances, actor="cli")
    assert [r.result for r in results] == [ActionResult.OK] * 4
    assert InventoryService(aws_ctx).get("db-0001").status == InstanceStatus.STOPPED
    assert "db-0003" not in {a.instance_name for a in ActionLogService(aws_ctx).list()}


def test_resolution_errors_act_on_nothing(aws_ctx, aws_env) -> None:  # noqa: ANN001
    _fleet(aws_ctx, aws_env)
    svc = BulkService(aws_ctx)
    with pytest.raises(NotFoundError, match="'ghost'.*'spook'"):
        svc.resolve(["db-0000", "ghost", "spook"], None)
    with pytest.raises(ValidationError, match="exactly one of ids or selector"):
        svc.resolve(["db-0000"], {"name": ".*"})
    with pytest.raises(ValidationError, match="exactly one of ids or selector"):
        svc.resolve(None, None)
    with pytest.raises(ValidationError, match="ids must name at least one"):
        svc.resolve([], None)
    with pytest.raises(NotFoundError, match="prod-account"):
        svc.resolve(None, {"account": "prod-account"})
    with pytest.raises(ValidationError, match="unknown action 'delete'"):
        svc.run("delete", svc.resolve(["db-0000"], None), actor="cli")
    assert _log(aws_ctx) == []


# --------------------------------------------------------------------------- REST API


@pytest.fixture
def api(aws_ctx, aws_env):  # noqa: ANN001, ANN201
    _fleet(aws_ctx, aws_env)
    keys = {role: ApiKeyService(aws_ctx).create(f"{role}-key", role)[1]
            for role in ("viewer", "operator")}
    client = TestClient(create_app(aws_ctx), raise_server_exceptions=False)
    client.keys = keys  # type: ignore[attr-defined]
    return client


def _post(api, body: dict, role: str = "operator"):  # noqa: ANN001, ANN202
    return api.post("/api/v1/instances/bulk", headers={"X-API-Key": api.keys[role]}, json=body)


def _actions(api) -> list[dict]:  # noqa: ANN001
    return api.get("/api/v1/actions", headers={"X-API-Key": api.keys["viewer"]}).json()


def test_api_bulk_by_ids_reports_each_instance(api) -> None:  # noqa: ANN001
    r = _post(api, {"action": "stop", "ids": ["db-0000", "c1-m0", "db-0001"]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["action"] == "stop" and body["matched"] == 3 and body["dry_run"] is False
    assert [(i["name"], i["result"], i["status"]) for i in body["results"]] == [
        ("db-0000", "ok", "stopped"), ("c1-m0", "refused", "running"),
        ("db-0001", "ok", "stopped")]
    assert "cluster" in body["results"][1]["message"]
    log = _actions(api)
    assert sorted((a["instance_name"], a["result"], a["actor"]) for a in log) == [
        ("c1-m0", "refused", "operator-key"), ("db-0000", "ok", "operator-key"),
        ("db-0001", "ok", "operator-key")]


def test_api_bulk_by_selector_with_dry_run_first(api) -> None:  # noqa: ANN001
    selector = {"any": [{"all": [{"tag": {"key": "env", "value": "dev"}},
                                 {"name": "db-000[12]"}]},
                        {"engine": "aurora-postgresql"}]}
    dry = _post(api, {"action": "stop", "selector": selector, "dry_run": True}).json()
    assert dry["dry_run"] is True and dry["matched"] == 3
    assert [(i["name"], i["result"]) for i in dry["results"]] == [
        ("c1", "dry_run"), ("db-0001", "dry_run"), ("db-0002", "dry_run")]
    assert [(s["name"], s["reason"]) for s in dry["skipped"]] == [
        ("c1-m0", "member of cluster c1, which is selected")]
    assert _actions(api) == []  # a dry run acts on nothing and logs nothing

    done = _post(api, {"action": "stop", "selector": selector}).json()
    assert [(i["name"], i["result"]) for i in done["results"]] == [
        ("c1", "ok"), ("db-0001", "ok"), ("db-0002", "ok")]
    assert len(_actions(api)) == 3


BAD_REQUESTS: list[tuple[dict, int, str]] = [
    ({"action": "stop", "ids": ["db-0000"], "selector": {"name": ".*"}}, 400, "exactly one"),
    ({"action": "stop"}, 400, "exactly one"),
    ({"action": "stop", "ids": []}, 400, "at least one"),
    ({"action": "stop", "selector": {"all": [{"name": "db-("}]}}, 400,
     "all[0].name: bad regex 'db-(' at position 3"),
    ({"action": "stop", "selector": {"nmae": "x"}}, 400, "unknown condition 'nmae'"),
    ({"action": "delete", "ids": ["db-0000"]}, 400, "unknown action 'delete'"),
    ({"action": "stop", "ids": ["db-0000", "ghost"]}, 404, "no instance 'ghost'"),
    ({"action": "stop", "ids": ["db-0000"], "force": True}, 422, "force"),
]


def test_api_bulk_bad_requests_act_on_nothing(api) -> None:  # noqa: ANN001
    for body, status, message in BAD_REQUESTS:
        r = _post(api, body)
        assert r.status_code == status, (body, r.text)
        assert message in r.json()["error"]["message"], (body, r.text)
    assert _actions(api) == []


def test_api_bulk_needs_the_operator_role(api) -> None:  # noqa: ANN001
    r = _post(api, {"action": "stop", "ids": ["db-0000"]}, role="viewer")
    assert r.status_code == 403 and "operator" in r.json()["error"]["message"]
    r = _post(api, {"action": "stop", "ids": ["db-0000"], "dry_run": True}, role="viewer")
    assert r.status_code == 403
    assert api.post("/api/v1/instances/bulk", json={"action": "stop"}).status_code == 401
    # the single-instance routes still work beside /bulk
    r = api.post("/api/v1/instances/db-0000/stop", headers={"X-API-Key": api.keys["operator"]})
    assert r.status_code == 200 and r.json()["result"] == "ok"
    spec = api.get("/api/v1/openapi.json").json()
    assert "/api/v1/instances/bulk" in spec["paths"]


# --------------------------------------------------------------------------- CLI


@pytest.fixture
def cli(snoozeql_cli, aws_env):  # noqa: ANN001, ANN201
    invoke = snoozeql_cli
    aws_env.create_instances("us-east-1", 4, tags={"env": "dev"})
    aws_env.create_instances("us-east-1", 1, prefix="prod", tags={"env": "prod"})
    aws_env.create_aurora_cluster("us-east-1", "c1", members=1)
    assert invoke("accounts", "add", "aws", "dev-account", "--regions", "us-east-1",
                  "--endpoint-url", aws_env.endpoint_url).exit_code == 0
    assert invoke("accounts", "sync", "dev-account").exit_code == 0
    return invoke


def _cli_log(cli) -> list[tuple[str, str]]:  # noqa: ANN001
    return sorted((a["instance_name"], a["result"])
                  for a in json.loads(cli("actions", "list", "--json").stdout))


def test_cli_several_refs_with_yes(cli) -> None:  # noqa: ANN001
    r = cli("instances", "stop", "db-0000", "c1-m0", "db-0001", "--yes", "--json")
    assert r.exit_code == 1, r.output  # one was refused
    body = json.loads(r.stdout)
    assert body["matched"] == 3
    assert [(i["name"], i["result"]) for i in body["results"]] == [
        ("db-0000", "ok"), ("c1-m0", "refused"), ("db-0001", "ok")]
    assert "stop 3 instance(s)" in r.stderr  # the list goes to stderr with --json
    assert _cli_log(cli) == [("c1-m0", "refused"), ("db-0000", "ok"), ("db-0001", "ok")]

    r = cli("instances", "start", "db-0000", "db-0001", "-y")
    assert r.exit_code == 0, r.output
    assert "db-0000" in r.stdout and "2 ok, 0 refused, 0 failed" in r.stdout


def test_cli_filter_without_a_terminal_needs_yes(cli) -> None:  # noqa: ANN001
    r = cli("instances", "stop", "--provider", "aws", "--tag", "env=dev", "--name", "db-.*")
    assert r.exit_code == 2
    assert "stop 4 instance(s)" in r.stdout and "db-0003" in r.stdout
    assert "--yes" in r.stderr
    assert _cli_log(cli) == []

    r = cli("instances", "stop", "--tag", "env=dev", "--name", "db-000[01]", "--yes", "--json")
    assert r.exit_code == 0, r.output
    assert [(i["name"], i["result"], i["status"]) for i in json.loads(r.stdout)["results"]] == [
        ("db-0000", "ok", "stopped"), ("db-0001", "ok", "stopped")]
    assert _cli_log(cli) == [("db-0000", "ok"), ("db-0001", "ok")]


def test_cli_single_ref_acts_at_once_and_misuse_exits_2(cli) -> None:  # noqa: ANN001
    r = cli("instances", "stop", "prod-0000")
    assert r.exit_code == 0 and "stop prod-0000: ok" in r.stdout
    r = cli("instances", "stop", "db-0000", "--tag", "env=dev")
    assert r.exit_code == 2 and "not both" in r.stderr
    r = cli("instances", "stop")
    assert r.exit_code == 2 and "--provider" in r.stderr
    r = cli("instances", "stop", "--name", "db-(", "--yes")
    assert r.exit_code == 2 and "--name: bad regex 'db-(' at position 3" in r.stderr
    r = cli("instances", "stop", "db-0000", "ghost", "--yes")
    assert r.exit_code == 2 and "no instance 'ghost'" in r.stderr
    r = cli("instances", "stop", "--name", "db", "--yes")  # anchored: matches nothing
    assert r.exit_code == 0 and "nothing to do" in r.stdout
    assert _cli_log(cli) == [("prod-0000", "ok")]


def _run_on_pty(args: list[str], answer: str) -> tuple[int, str]:
    """Run ``snoozeql`` with a pseudo-terminal as stdin, answer its prompt, return
    (exit code, everything it printed)."""
    master, slave = pty.openpty()
    proc = subprocess.Popen([SNOOZEQL, *args], stdin=slave, stdout=slave, stderr=slave,
                            env={**os.environ, "COLUMNS": "200"}, close_fds=True)
    os.close(slave)
    out = b""
    answered = False
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(master, 4096)
                except OSError:  # the child closed the terminal
                    break
                if not chunk:
                    break
                out += chunk
            if not answered and b"[y/N]" in out:
                os.write(master, answer.encode() + b"\n")
                answered = True
            if proc.poll() is not None and not ready:
                break
        code = proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
    return code, out.decode(errors="replace")


def test_cli_asks_on_a_terminal(cli) -> None:  # noqa: ANN001
    args = ["instances", "stop", "--tag", "env=dev", "--name", "db-000[23]"]
    code, out = _run_on_pty(args, "n")
    assert code == 1 and "stop these 2 instance(s)?" in out and "nothing was done" in out
    assert _cli_log(cli) == []
    code, out = _run_on_pty(args, "y")
    assert code == 0, out
    assert "2 ok, 0 refused, 0 failed" in out
    assert _cli_log(cli) == [("db-0002", "ok"), ("db-0003", "ok")]
