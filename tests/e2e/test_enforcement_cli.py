"""Issue 13, items 4 and 8 to 14: actions that already happened, protected instances,
CLI exit codes, id prefixes and text printed as written, through the real `snoozeql`
command (Typer's runner) and the REST API, against moto's server over HTTP."""

from __future__ import annotations

import json
from uuid import UUID

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from snoozeql.api.app import create_app
from snoozeql.services.apikeys import ApiKeyService
from snoozeql.store.instances import instances as instances_table
from tests.support.moto_server import free_port


@pytest.fixture
def cli(snoozeql_cli, aws_proxy, aws_env):  # noqa: ANN001, ANN201
    """db-0000..db-0002 (env=dev) and ``guarded`` (env=dev, snoozeql-protect=true),
    reached through the recording proxy in front of moto, synced."""
    aws_env.create_instances("us-east-1", 3, tags={"env": "dev"})
    aws_env.create_instances("us-east-1", 1, prefix="guarded",
                             tags={"env": "dev", "snoozeql-protect": "true"})
    r = snoozeql_cli("accounts", "add", "aws", "dev-account", "--regions", "us-east-1",
                     "--endpoint-url", aws_proxy.url, "--sync")
    assert r.exit_code == 0, r.output
    return snoozeql_cli


def _rds_status(aws_env, name: str) -> str:  # noqa: ANN001
    rds = aws_env.client("rds")
    return rds.describe_db_instances(DBInstanceIdentifier=name)["DBInstances"][0][
        "DBInstanceStatus"]


def _log(cli) -> list[tuple[str, str, str, str | None]]:  # noqa: ANN001
    return [(a["instance_name"], a["action"], a["result"], a["error"])
            for a in reversed(json.loads(cli("actions", "list", "--json").stdout))]


# --------------------------------------------------------------------------- item 4


def test_stopping_a_stopped_instance_is_ok_already_stopped(cli, aws_env, aws_proxy) -> None:  # noqa: ANN001
    r = cli("instances", "stop", "db-0000")
    assert r.exit_code == 0 and "now stopped" in r.stdout, r.output
    # AWS answers InvalidDBInstanceState; SnoozeQL reads the state: nothing failed.
    r = cli("instances", "stop", "db-0000")
    assert r.exit_code == 0, r.output
    assert "stop db-0000: ok, already stopped" in r.stdout
    r = cli("instances", "stop", "db-0000", "--json")
    body = json.loads(r.stdout)
    assert (body["result"], body["message"], body["already"]) == ("ok", "already stopped", True)
    assert body["instance"]["status"] == "stopped"
    assert len(aws_proxy.actions("StopDBInstance")) == 3

    r = cli("instances", "start", "db-0001")
    assert r.exit_code == 0 and "start db-0001: ok, already available" not in r.stdout
    assert "start db-0001: ok, already running" in r.stdout, r.output

    # In bulk too: one already stopped, one stopped now; exit 0, both ok.
    r = cli("instances", "stop", "db-0000", "db-0002", "--yes", "--json")
    assert r.exit_code == 0, r.output
    assert [(i["name"], i["result"], i["message"]) for i in json.loads(r.stdout)["results"]] == [
        ("db-0000", "ok", "already stopped"),
        ("db-0002", "ok", "StopDBInstance accepted for db-0002")]
    assert sorted(row[:3] for row in _log(cli)) == [  # every attempt logged, all ok
        ("db-0000", "stop", "ok"), ("db-0000", "stop", "ok"), ("db-0000", "stop", "ok"),
        ("db-0000", "stop", "ok"), ("db-0001", "start", "ok"), ("db-0002", "stop", "ok")]

    # An instance on its way (AWS says "stopping") is in progress, not refused.
    aws_proxy.rewrite("DescribeDBInstances", lambda body: body.replace(
        b"<DBInstanceStatus>stopped</DBInstanceStatus>",
        b"<DBInstanceStatus>stopping</DBInstanceStatus>"))
    r = cli("instances", "stop", "db-0002")
    assert r.exit_code == 0, r.output
    assert "stop db-0002: ok, already stopping (in progress)" in r.stdout
    # A refusal that is not "already there" stays a refusal (a member of a cluster).
    aws_env.create_aurora_cluster("us-east-1", "c1", members=1)
    assert cli("accounts", "sync", "dev-account").exit_code == 0
    r = cli("instances", "start", "c1-m0")
    assert r.exit_code == 1 and "cluster" in r.stderr, r.output


@pytest.fixture
def api(snoozeql_cli, cli):  # noqa: ANN001, ANN201
    ctx = snoozeql_cli.ctx()
    keys = {role: ApiKeyService(ctx).create(f"{role}-key", role)[1]
            for role in ("viewer", "operator", "admin")}
    client = TestClient(create_app(ctx), raise_server_exceptions=False)
    client.keys = keys  # type: ignore[attr-defined]
    return client


def _h(api, role: str) -> dict[str, str]:  # noqa: ANN001
    return {"X-API-Key": api.keys[role]}


def test_api_stop_twice_is_200_already_stopped(api) -> None:  # noqa: ANN001
    r = api.post("/api/v1/instances/db-0001/stop", headers=_h(api, "operator"))
    assert r.status_code == 200 and r.json()["already"] is False, r.text
    r = api.post("/api/v1/instances/db-0001/stop", headers=_h(api, "operator"))
    assert r.status_code == 200, r.text
    assert (r.json()["result"], r.json()["message"], r.json()["already"]) == (
        "ok", "already stopped", True)
    r = api.post("/api/v1/instances/bulk", headers=_h(api, "operator"),
                 json={"action": "stop", "ids": ["db-0001"]})
    assert r.status_code == 200
    assert [(i["result"], i["message"]) for i in r.json()["results"]] == [
        ("ok", "already stopped")]


# --------------------------------------------------------------------------- item 14


def test_protected_instance_needs_force_when_named_alone(cli, aws_env) -> None:  # noqa: ANN001
    r = cli("instances", "stop", "guarded-0000")
    assert r.exit_code == 1, r.output
    assert "protected" in r.stderr and "--force" in r.stderr
    assert _rds_status(aws_env, "guarded-0000") == "available"
    r = cli("instances", "restart", "guarded-0000")
    assert r.exit_code == 1 and "protected" in r.stderr
    assert _log(cli)[-2:] == [
        ("guarded-0000", "stop", "refused", _log(cli)[-2][3]),
        ("guarded-0000", "restart", "refused", _log(cli)[-1][3])]
    assert all(row[3].startswith("protected") for row in _log(cli)[-2:])

    # --force is for one instance named alone, never for bulk or filters.
    r = cli("instances", "stop", "guarded-0000", "db-0000", "--force", "--yes")
    assert r.exit_code == 2 and "--force" in r.stderr
    r = cli("instances", "stop", "--tag", "env=dev", "--force", "--yes")
    assert r.exit_code == 2
    assert _rds_status(aws_env, "db-0000") == "available"

    r = cli("instances", "stop", "guarded-0000", "--force")
    assert r.exit_code == 0 and "now stopped" in r.stdout, r.output
    assert _rds_status(aws_env, "guarded-0000") == "stopped"


def test_bulk_and_selector_actions_refuse_protected_instances(cli, aws_env) -> None:  # noqa: ANN001
    r = cli("instances", "stop", "--tag", "env=dev", "--yes", "--json")
    assert r.exit_code == 1, r.output  # one was refused
    results = {i["name"]: i for i in json.loads(r.stdout)["results"]}
    assert {n: i["result"] for n, i in results.items()} == {
        "db-0000": "ok", "db-0001": "ok", "db-0002": "ok", "guarded-0000": "refused"}
    assert results["guarded-0000"]["message"].startswith("protected")
    assert _rds_status(aws_env, "guarded-0000") == "available"
    r = cli("instances", "start", "db-0000", "guarded-0000", "--yes", "--json")
    assert [(i["name"], i["result"]) for i in json.loads(r.stdout)["results"]] == [
        ("db-0000", "ok"), ("guarded-0000", "refused")]


def test_schedules_refuse_protected_instances_once_per_transition(cli, aws_env) -> None:  # noqa: ANN001
    # "always stopped": the reconciler wants every assigned instance stopped now.
    r = cli("schedules", "add", "--name", "never", "--tz", "UTC", "--override-status", "stopped")
    assert r.exit_code == 0, r.output
    for name in ("guarded-0000", "db-0000"):
        r = cli("schedules", "assign", "never", "--instance", name)
        assert r.exit_code == 0, r.output
    r = cli("schedules", "reconcile", "--json")
    assert r.exit_code == 0, r.output
    items = {i["instance_name"]: i for i in json.loads(r.stdout)["items"]}
    assert items["db-0000"]["result"] == "ok"
    assert items["guarded-0000"]["result"] == "refused"
    assert items["guarded-0000"]["error"].startswith("protected")
    assert _rds_status(aws_env, "guarded-0000") == "available"
    assert _rds_status(aws_env, "db-0000") == "stopped"
    refused = [row for row in _log(cli) if row[0] == "guarded-0000"]
    assert len(refused) == 1 and refused[0][2] == "refused"
    # The next run does not refuse (nor log) it again for the same transition.
    r = cli("schedules", "reconcile", "--json")
    assert "guarded-0000" not in {i["instance_name"] for i in json.loads(r.stdout)["items"]}
    assert len([row for row in _log(cli) if row[0] == "guarded-0000"]) == 1


def test_api_force_needs_the_admin_role(api, aws_env) -> None:  # noqa: ANN001
    url = "/api/v1/instances/guarded-0000/stop"
    r = api.post(url, headers=_h(api, "operator"))
    assert r.status_code == 409 and r.json()["error"]["message"].startswith("protected")
    r = api.post(url, headers=_h(api, "operator"), json={"force": True})
    assert r.status_code == 403 and "admin" in r.json()["error"]["message"]
    assert _rds_status(aws_env, "guarded-0000") == "available"
    r = api.post(url, headers=_h(api, "admin"), json={"force": True})
    assert r.status_code == 200 and r.json()["result"] == "ok", r.text
    assert _rds_status(aws_env, "guarded-0000") == "stopped"
    # Bulk never forces; a dry run shows the refusal a real run would give.
    r = api.post("/api/v1/instances/bulk", headers=_h(api, "admin"),
                 json={"action": "start", "selector": {"tag": {"key": "env", "value": "dev"}},
                       "dry_run": True})
    assert {i["name"]: i["result"] for i in r.json()["results"]} == {
        "db-0000": "dry_run", "db-0001": "dry_run", "db-0002": "dry_run",
        "guarded-0000": "refused"}


# --------------------------------------------------------------------------- item 8


def test_user_and_grammar_text_is_never_read_as_markup(cli, aws_env, tmp_path) -> None:  # noqa: ANN001
    path = tmp_path / "step.json"
    path.write_text(json.dumps({"name": "step", "timezone": "UTC", "periods": [
        {"name": "[bold]step14[/bold] [x]", "monthdays": "1/14"}]}))
    r = cli("schedules", "add", str(path))
    assert r.exit_code == 0, r.output
    r = cli("schedules", "check", "step", "--at", "2026-03-01T12:00:00+00:00")
    assert r.exit_code == 0, r.output
    assert "period 0 ([bold]step14[/bold] [x]) [all day monthdays 1/14] is running" in (
        " ".join(r.stdout.split())), r.stdout
    r = cli("schedules", "show", "step")
    assert "[bold]step14[/bold]" in r.stdout and "[x]" in r.stdout
    # from a fixed day 1 (monthdays 1/14 runs on the 1st, 15th, 29th), not "now"
    r = cli("schedules", "preview", "step", "--days", "2",
            "--start", "2026-03-01T00:00:00+00:00")
    assert "monthdays 1/14]" in r.stdout and "[bold]" in r.stdout

    # Tags (user text from the cloud) in tables and fields.
    rds = aws_env.client("rds")
    arn = rds.describe_db_instances(DBInstanceIdentifier="db-0000")["DBInstances"][0][
        "DBInstanceArn"]
    rds.add_tags_to_resource(ResourceName=arn, Tags=[{"Key": "note", "Value": "[bold]x[/bold]"},
                                                     {"Key": "[x]", "Value": "[red]y"}])
    assert cli("accounts", "sync", "dev-account").exit_code == 0
    r = cli("instances", "show", "db-0000")
    assert "note=[bold]x[/bold]" in r.stdout.replace("\n", "")
    assert "[x]=[red]y" in r.stdout.replace("\n", "")


# --------------------------------------------------------------------------- item 10


def test_accounts_add_with_a_failed_sync_exits_1(snoozeql_cli, aws_env) -> None:  # noqa: ANN001
    r = snoozeql_cli("accounts", "add", "aws", "dead", "--regions", "us-east-1",
                     "--endpoint-url", f"http://127.0.0.1:{free_port()}", "--sync")
    assert r.exit_code == 1, r.output
    assert "dead: failed" in r.stdout
    [account] = json.loads(snoozeql_cli("accounts", "list", "--json").stdout)
    assert account["name"] == "dead" and account["status"] == "failed"  # added, sync failed
    r = snoozeql_cli("accounts", "add", "aws", "dead2", "--regions", "us-east-1",
                     "--endpoint-url", f"http://127.0.0.1:{free_port()}", "--sync", "--json")
    assert r.exit_code == 1


# --------------------------------------------------------------------------- item 12


def _set_id(cli, name: str, new: UUID) -> None:  # noqa: ANN001
    with cli.ctx().engine.begin() as conn:
        conn.execute(sa.update(instances_table).where(instances_table.c.name == name)
                     .values(id=new))


def test_short_ids_from_tables_are_accepted_everywhere(cli, aws_env) -> None:  # noqa: ANN001
    listed = json.loads(cli("instances", "list", "--json").stdout)
    full = next(i["id"] for i in listed if i["name"] == "db-0001")
    short = full[:8]  # what the tables print...
    r = cli("instances", "show", short, "--json")  # ...is accepted
    assert r.exit_code == 0 and json.loads(r.stdout)["name"] == "db-0001", r.output
    r = cli("instances", "show", full[:13])  # a longer prefix, with its dash
    assert r.exit_code == 0 and "db-0001" in r.stdout
    r = cli("instances", "stop", short.upper())
    assert r.exit_code == 0 and "stop db-0001: ok" in r.stdout, r.output
    r = cli("actions", "list", "--instance", short, "--json")
    assert [a["instance_name"] for a in json.loads(r.stdout)] == ["db-0001"]
    assert cli("schedules", "add", "--name", "night", "--tz", "UTC",
               "--period", "begintime=08:00 endtime=18:00").exit_code == 0
    r = cli("schedules", "assign", "night", "--instance", short)
    assert r.exit_code == 0 and f"instance:{full}" in r.stdout, r.output
    r = cli("instances", "show", full[:7])  # 7 digits are not enough
    assert r.exit_code == 2 and "no instance" in r.stderr

    # Two ids that share their first 8 digits: the prefix lists both, acts on none.
    _set_id(cli, "db-0000", UUID("abcdef12-0000-4000-8000-000000000001"))
    _set_id(cli, "db-0002", UUID("abcdef12-1111-4000-8000-000000000002"))
    r = cli("instances", "stop", "abcdef12")
    assert r.exit_code == 2, r.output
    assert "ambiguous" in r.stderr and "db-0000" in r.stderr and "db-0002" in r.stderr
    assert "abcdef12-0000-4000-8000-000000000001" in r.stderr
    assert _rds_status(aws_env, "db-0000") == "available"
    r = cli("instances", "stop", "abcdef121111")
    assert r.exit_code == 0 and "stop db-0002: ok" in r.stdout, r.output


def test_api_accepts_an_id_prefix(api) -> None:  # noqa: ANN001
    items = api.get("/api/v1/instances", headers=_h(api, "viewer")).json()["items"]
    target = next(i for i in items if i["name"] == "db-0002")
    r = api.get(f"/api/v1/instances/{target['id'][:8]}", headers=_h(api, "viewer"))
    assert r.status_code == 200 and r.json()["name"] == "db-0002"
    r = api.post(f"/api/v1/instances/{target['id'][:10]}/stop", headers=_h(api, "operator"))
    assert r.status_code == 200 and r.json()["instance"]["name"] == "db-0002"


def test_reconcile_with_a_failed_action_exits_1(cli) -> None:  # noqa: ANN001
    from snoozeql.services.accounts import AccountService

    r = cli("schedules", "add", "--name", "never", "--tz", "UTC", "--override-status", "stopped")
    assert r.exit_code == 0, r.output
    assert cli("schedules", "assign", "never", "--instance", "db-0000").exit_code == 0
    # The account's endpoint goes away after the sync: the stop fails (a provider error).
    AccountService(cli.ctx()).update("dev-account",
                                     {"endpoint_url": f"http://127.0.0.1:{free_port()}"})
    r = cli("schedules", "reconcile", "--json")
    assert r.exit_code == 1, r.output
    [item] = json.loads(r.stdout)["items"]
    assert (item["instance_name"], item["result"]) == ("db-0000", "failed")


# --------------------------------------------------------------------------- item 5


def test_reconciler_starts_again_at_a_custodian_start_repeated_at_midnight(cli, aws_env) -> None:  # noqa: ANN001
    from datetime import datetime
    from zoneinfo import ZoneInfo

    ny = ZoneInfo("America/New_York")
    ctx = cli.ctx()
    ctx.clock = lambda: datetime(2026, 3, 1, 12, 0, tzinfo=ny)  # assigned on Sunday
    r = cli("schedules", "import", "--custodian", "off=(S,3);on=(M-F,0)", "--name", "nights")
    assert r.exit_code == 0, r.output
    assert cli("schedules", "assign", "nights", "--instance", "db-0000").exit_code == 0
    ctx.clock = lambda: datetime(2026, 3, 2, 12, 0, tzinfo=ny)
    assert cli("schedules", "reconcile").exit_code == 0  # running, as wanted: nothing to do
    assert cli("instances", "stop", "db-0000").exit_code == 0  # stopped by hand
    ctx.clock = lambda: datetime(2026, 3, 2, 23, 30, tzinfo=ny)
    r = cli("schedules", "reconcile", "--json")
    assert json.loads(r.stdout)["items"] == []  # left alone until the next transition
    assert _rds_status(aws_env, "db-0000") == "stopped"
    ctx.clock = lambda: datetime(2026, 3, 3, 0, 1, tzinfo=ny)
    r = cli("schedules", "reconcile", "--json")
    assert [(i["instance_name"], i["action"], i["result"])
            for i in json.loads(r.stdout)["items"]] == [("db-0000", "start", "ok")]
    assert _rds_status(aws_env, "db-0000") == "available"


def test_id_prefix_lookup_on_both_stores(ctx) -> None:  # noqa: ANN001
    """The prefix lookup reads ids the same on SQLite (hex) and PostgreSQL (uuid)."""
    from snoozeql.domain.errors import ConflictError, NotFoundError
    from snoozeql.services.inventory import InventoryService
    from tests.store.test_metrics_store import add_instances

    ids = add_instances(ctx, "one", "two")
    with ctx.engine.begin() as conn:
        for name, new in (("one", "0123abcd-0000-4000-8000-000000000001"),
                          ("two", "0123abcd-9999-4000-8000-000000000002")):
            conn.execute(sa.update(instances_table).where(instances_table.c.id == ids[name])
                         .values(id=UUID(new)))
    svc = InventoryService(ctx)
    assert svc.get("0123abcd-9").name == "two"
    assert svc.get("0123ABCD0000").name == "one"
    with pytest.raises(ConflictError, match="ambiguous.*one.*two"):
        svc.get("0123abcd")
    with pytest.raises(NotFoundError):
        svc.get("0123abc")  # seven digits: not a prefix, not a name


def test_a_too_short_id_prefix_says_how_long_a_prefix_must_be(cli, api) -> None:  # noqa: ANN001
    """7 hex digits of a real id: refused (exit 2 / 404), and the message says that an id
    prefix needs 8 characters, not just "no instance"."""
    listed = json.loads(cli("instances", "list", "--json").stdout)
    seven = next(i["id"] for i in listed if i["name"] == "db-0001")[:7]
    for args in (("instances", "show", seven), ("instances", "stop", seven),
                 ("metrics", "show", seven)):
        r = cli(*args)
        assert r.exit_code == 2, (args, r.output)
        assert "at least 8" in r.stderr, (args, r.stderr)
    r = api.get(f"/api/v1/instances/{seven}", headers=_h(api, "viewer"))
    assert r.status_code == 404 and "at least 8" in r.text, r.text
    r = cli("instances", "show", "nosuchname")  # a name that cannot be a prefix: no hint
    assert r.exit_code == 2 and "at least 8" not in r.stderr
