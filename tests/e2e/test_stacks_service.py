"""The stacks service on both stores: names, overrides as rows, secrets, clashes, export,
and plan/apply/down through the real native runtime (a Redis server process)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import sqlalchemy as sa

from snoozeql.api.schemas.stacks import EffectiveOut, StackInstanceOut
from snoozeql.api.schemas.templates import TemplateOut
from snoozeql.cli.stacks import write_export
from snoozeql.domain.errors import ConflictError, NotFoundError, ValidationError
from snoozeql.services.context import Context
from snoozeql.services.stacks import StackService
from snoozeql.services.templates import TemplateService
from snoozeql.store.secrets import secrets as secrets_table
from snoozeql.store.stacks import stack_override_entries, stack_overrides
from tests.e2e.test_compose_export import as_mapping, compose_config, unescape
from tests.support.moto_server import free_port


def test_stack_lifecycle_names_and_soft_delete(ctx: Context) -> None:
    svc = StackService(ctx)
    s = svc.create_stack("shop", "the shop")
    assert (s.name, s.description, s.instance_count) == ("shop", "the shop", 0)
    with pytest.raises(ValidationError, match="reserved.*try 'my-default'"):
        svc.create_stack("default")
    with pytest.raises(ValidationError, match="try 'my-shop'"):
        svc.create_stack("My_Shop")
    with pytest.raises(ValidationError, match="at most 52 characters"):
        svc.create_stack("s" * 53)
    with pytest.raises(ConflictError, match="already exists"):
        svc.create_stack("shop")
    assert svc.update_stack("shop", "new").description == "new"

    svc.delete_stack("shop")
    assert svc.list_stacks() == []
    with pytest.raises(NotFoundError, match="was deleted; restore it"):
        svc.get_stack("shop")
    [deleted] = svc.list_stacks(include_deleted=True)
    assert deleted.deleted_at is not None
    assert svc.restore_stack("shop").deleted_at is None
    svc.delete_stack("shop")
    svc.create_stack("shop")  # the name is free once the old one is deleted
    with pytest.raises(ConflictError, match="live stack"):
        svc.restore_stack("shop")


def test_instances_overrides_are_rows_and_secrets_encrypted(ctx: Context) -> None:
    svc = StackService(ctx)
    svc.create_stack("shop")
    with pytest.raises(ValidationError, match="reserved.*try 'my-all'"):
        svc.create_instance("shop", "all", "postgres")
    with pytest.raises(ValidationError, match="unknown template 'nope'"):
        svc.create_instance("shop", "db", "nope")
    with pytest.raises(NotFoundError):
        svc.create_instance("nostack", "db", "postgres")
    with pytest.raises(ValidationError, match="too long"):
        svc.create_instance("shop", "x" * 50, "redis")

    db = svc.create_instance("shop", "db", "postgres", description="main db")
    # the template's unset password was generated and stored as a secret override
    [env] = StackInstanceOut.model_validate(db).model_dump(mode="json")["overrides"]
    assert env["kind"] == "env_vars" and env["entries"] == [
        {"key": "POSTGRES_PASSWORD", "value": "***", "secret": True}]
    _, eff = svc.effective("shop", "db")
    password = eff.env()["POSTGRES_PASSWORD"]
    assert password and password != "***"
    with ctx.engine.connect() as conn:
        blobs = [str(r) for r in conn.execute(sa.select(stack_override_entries.c.data))]
        cipher = conn.execute(sa.select(secrets_table.c.ciphertext)).scalars().all()
    assert all(password not in b for b in blobs)
    assert cipher and all(password not in c for c in cipher)

    svc.put_override("shop", "db", "ports",
                     {"mode": "replace", "entries": ["127.0.0.1:15432:5432"]})
    svc.put_override("shop", "db", "labels", {"entries": {"team": "data"}})
    svc.put_override("shop", "db", "domains", {"entries": ["db.shop.localhost"]})
    svc.put_override("shop", "db", "healthcheck", {"entries": {"interval": "2s"}})
    svc.put_override("shop", "db", "volumes", {"entries": ["./init:/docker-entrypoint-initdb.d"]})
    svc.put_override("shop", "db", "config_files", {"entries": [
        {"target": "/etc/postgresql/extra.conf", "content": "a = 1\n", "mode": "0640"}]})
    svc.put_override("shop", "db", "env_vars", {"entries": [
        {"key": "POSTGRES_PASSWORD", "value": "s3cret-pw", "secret": True},
        {"key": "TZ", "value": "UTC"}]})
    with ctx.engine.connect() as conn:
        kinds = conn.execute(sa.select(stack_overrides.c.kind)).scalars().all()
        entry_rows = conn.execute(sa.select(sa.func.count()).select_from(
            stack_override_entries)).scalar_one()
    assert sorted(kinds) == sorted(["ports", "labels", "domains", "healthcheck", "volumes",
                                    "config_files", "env_vars"])
    assert entry_rows == 1 + 1 + 1 + 1 + 1 + 1 + 2

    view, eff = svc.effective("shop", "db")
    assert view.override_count == 8 and view.container_name == "snoozeql-shop-db"
    assert [p.short() for p in eff.ports] == ["127.0.0.1:15432:5432/tcp"]
    assert eff.env()["POSTGRES_PASSWORD"] == "s3cret-pw" and eff.env()["TZ"] == "UTC"
    red = EffectiveOut.of(view, eff).model_dump(mode="json")
    assert red["provenance"]["ports"] == "replaced"
    assert red["provenance"]["labels"] == "override"
    assert red["entry_provenance"]["env_vars"] == {
        "POSTGRES_USER": "template", "POSTGRES_DB": "template",
        "POSTGRES_PASSWORD": "override", "TZ": "override"}
    assert red["entry_provenance"]["healthcheck"]["interval"] == "override"
    assert red["entry_provenance"]["healthcheck"]["retries"] == "template"
    assert "s3cret-pw" not in StackInstanceOut.model_validate(
        svc.get_instance("shop", "db")).model_dump_json()

    # duplicate copies every override and the secret; rename follows into the name
    copy = svc.duplicate_instance("shop", "db", enabled=False)
    assert copy.name == "db-copy" and copy.override_count == 8 and not copy.enabled
    assert svc.effective("shop", "db-copy")[1].env()["POSTGRES_PASSWORD"] == "s3cret-pw"
    with pytest.raises(ConflictError, match="host port 15432"):
        svc.update_instance("shop", "db-copy", enabled=True)
    renamed = svc.rename_instance("shop", "db-copy", "replica")
    assert renamed.container_name == "snoozeql-shop-replica"
    with pytest.raises(ConflictError, match="already has an instance named 'db'"):
        svc.rename_instance("shop", "replica", "db")


def test_listing_order_filters_clashes_and_name_reuse(ctx: Context) -> None:
    svc = StackService(ctx)
    svc.create_stack("dev")
    for name, tmpl in (("web", "webapp"), ("cache", "redis"), ("mail", "mailpit")):
        svc.create_instance("dev", name, tmpl)
    # a second redis publishes 6379 too: 409 with what to do
    with pytest.raises(ConflictError, match="6379.*another host port"):
        svc.create_instance("dev", "cache2", "redis")
    svc.create_instance("dev", "cache2", "redis", enabled=False)
    with pytest.raises(ConflictError, match="6379"):
        svc.update_instance("dev", "cache2", enabled=True)
    svc.put_override("dev", "cache2", "ports",
                     {"mode": "replace", "entries": ["127.0.0.1:16379:6379"]})
    svc.update_instance("dev", "cache2", enabled=True)
    with pytest.raises(ConflictError, match="16379"):
        svc.put_override("dev", "cache", "ports",
                         {"mode": "replace", "entries": ["16379:6379"]})

    assert [i.name for i in svc.list_instances("dev")] == ["web", "cache", "mail", "cache2"]
    assert [i.name for i in svc.list_instances("dev", search="REDIS")] == ["cache", "cache2"]
    svc.update_instance("dev", "mail", enabled=False)
    assert [i.name for i in svc.list_instances("dev", enabled=False)] == ["mail"]

    with pytest.raises(ConflictError, match="already has an instance named 'web'.*rename"):
        svc.create_instance("dev", "web", "nginx")
    preview = svc.delete_preview("dev", "cache")
    assert preview.volumes == ["cache_redisdata"] and preview.container_name == (
        "snoozeql-dev-cache")
    svc.delete_instance("dev", "cache")
    with pytest.raises(NotFoundError):
        svc.get_instance("dev", "cache")
    again = svc.create_instance("dev", "cache", "nginx")
    assert again.template == "nginx"
    assert [i.name for i in svc.list_instances("dev")][-1] == "cache"


def test_user_templates(ctx: Context) -> None:
    ts = TemplateService(ctx)
    ts.add("services:\n  api:\n    image: example/api:1\n    environment:\n"
           "      TOKEN: {value: tok-123, secret: true}\n    ports: ['127.0.0.1:8800:80']\n")
    with pytest.raises(ConflictError, match="built-in"):
        ts.add({"name": "postgres", "image": "x"})
    with pytest.raises(ConflictError, match="already exists"):
        ts.add({"name": "api", "image": "x"})
    info = ts.get("api")
    assert not info.builtin
    assert TemplateOut.of(info).model_dump()["environment"][0]["value"] == "***"
    assert info.template.environment[0].value == "tok-123"
    with ctx.engine.connect() as conn:
        defs = conn.execute(sa.text("SELECT definition FROM stack_templates")).scalars().all()
    assert "tok-123" not in str(defs)
    assert {"api", "postgres", "redis"} <= {t.name for t in ts.list()}
    svc = StackService(ctx)
    svc.create_stack("s1")
    svc.create_instance("s1", "api", "api")
    with pytest.raises(ConflictError, match="used by 1"):
        ts.remove("api")


def test_compose_export_passes_docker_compose_config(ctx: Context, tmp_path: Path) -> None:
    svc = StackService(ctx)
    svc.create_stack("shop")
    svc.create_instance("shop", "db", "postgres", overrides={
        "ports": {"mode": "replace", "entries": ["127.0.0.1:15432:5432"]},
        "env_vars": {"entries": [{"key": "POSTGRES_PASSWORD", "value": "p$w'd", "secret": True}]},
    })
    svc.create_instance("shop", "web", "nginx", overrides={
        "config_files": {"entries": [{"target": "/etc/nginx/conf.d/default.conf",
                                      "content": "server { listen 80; }\n", "mode": "0640"}]},
        "labels": {"entries": {"traefik.enable": "true"}},
        "domains": {"entries": ["shop.localhost"]},
    })
    svc.create_instance("shop", "off", "redis", enabled=False)
    export = svc.compose("shop")
    assert "p$w'd" not in export.yaml()
    write_export(export, tmp_path)
    out = compose_config(tmp_path, export)
    services = out["services"]
    assert set(services) == {"db", "web"}
    db_env = {k: unescape(v) for k, v in as_mapping(services["db"]["environment"]).items()}
    assert db_env["POSTGRES_PASSWORD"] == "p$w'd"
    [db_port] = services["db"]["ports"]
    assert "15432" in str(db_port) and "5432" in str(db_port)
    labels = as_mapping(services["web"]["labels"])
    assert labels["traefik.enable"] == "true" and labels["snoozeql.domains"] == (
        "web.localhost,shop.localhost")
    assert services["web"]["container_name"] == "snoozeql-shop-web"
    conf = tmp_path / "configs/web/etc/nginx/conf.d/default.conf"
    assert conf.read_text() == "server { listen 80; }\n"
    assert (tmp_path / ".env").stat().st_mode & 0o777 == 0o600


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_plan_apply_down_through_the_native_runtime(
    ctx: Context, local_data_dir: Path, debian_servers: None
) -> None:
    # No Docker engine here: the plain-image instance is refused with that reason.
    ctx.settings = ctx.settings.model_copy(update={
        "data_dir": local_data_dir, "docker_host": "unix:///nonexistent/snoozeql-test/docker.sock"})
    svc = StackService(ctx)
    svc.create_stack("lab")
    port = free_port()
    svc.create_instance("lab", "cache", "redis", overrides={
        "ports": {"mode": "replace", "entries": [f"127.0.0.1:{port}:6379"]}})
    svc.create_instance("lab", "web", "webapp")

    plan = {i.instance: i for i in svc.plan("lab").items}
    assert plan["cache"].action == "create" and plan["cache"].runtime == "native"
    assert plan["web"].action == "refused" and "Docker engine not reachable" in plan["web"].reason

    try:
        steps = {s.instance: s for s in svc.apply("lab")}
        assert steps["cache"].ok and steps["cache"].status == "running", steps
        assert not steps["web"].ok
        assert _port_open(port)
        assert {i.instance: i.action for i in svc.plan("lab").items}["cache"] == "unchanged"

        [stop] = svc.down("lab")
        assert stop.ok and not _port_open(port)
        assert {i.instance: i.action for i in svc.plan("lab").items}["cache"] == "start"
        steps = {s.instance: s for s in svc.apply("lab")}
        assert steps["cache"].action == "start" and _port_open(port)

        new_port = free_port()
        svc.put_override("lab", "cache", "ports",
                         {"mode": "replace", "entries": [f"127.0.0.1:{new_port}:6379"]})
        item = {i.instance: i for i in svc.plan("lab").items}["cache"]
        assert item.action == "update" and item.changes["port"] == {
            "applied": port, "desired": new_port}

        svc.delete_instance("lab", "cache")
        item = {i.instance: i for i in svc.plan("lab").items}["cache"]
        assert item.action == "remove"
        steps = {s.instance: s for s in svc.apply("lab")}
        assert steps["cache"].ok and "data kept" in (steps["cache"].detail or "")
        assert not _port_open(port)
        assert [i.action for i in svc.plan("lab").items] == ["refused"]
    finally:
        svc.down("lab")


def test_a_killed_process_is_failed_in_plan_and_apply_starts_it_again(
    ctx: Context, local_data_dir: Path, debian_servers: None
) -> None:
    import os
    import signal
    import time

    from snoozeql.providers.local.native import NativeRuntime

    ctx.settings = ctx.settings.model_copy(update={"data_dir": local_data_dir})
    svc = StackService(ctx)
    svc.create_stack("lab")
    port = free_port()
    svc.create_instance("lab", "cache", "redis", overrides={
        "ports": {"mode": "replace", "entries": [f"127.0.0.1:{port}:6379"]}})
    assert svc.stack_states("lab")[0] == "down"
    assert svc.live_states("lab")["cache"].status == "not applied"
    try:
        [step] = svc.apply("lab")
        assert step.ok and _port_open(port)
        overall, states = svc.stack_states("lab")
        assert overall == "up" and states["cache"].status == "running"
        assert svc.get_stack("lab").last_applied_at is not None

        # killed behind SnoozeQL's back
        pid = NativeRuntime(ctx.settings).status("snoozeql-lab-cache", None).pid
        assert pid
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while _port_open(port) and time.monotonic() < deadline:
            time.sleep(0.1)
        [item] = svc.plan("lab").items
        assert item.action == "start" and item.state == "failed", item
        assert item.reason.startswith("failed: the server process exited")
        overall, states = svc.stack_states("lab")
        assert overall == "down" and states["cache"].status == "failed"

        events: list[str] = []
        [step] = svc.apply("lab", progress=lambda event, data: events.append(event))
        assert events == ["plan", "begin", "end"]
        assert step.ok and step.action == "start" and step.status == "running", step
        assert _port_open(port)
        [item] = svc.plan("lab").items
        assert item.action == "unchanged" and item.state == "running"

        # down stops it; "stopped by down" is not a failure, and last applied stays
        last = svc.get_stack("lab").last_applied_at
        [stop] = svc.down("lab")
        assert stop.ok
        assert svc.live_states("lab")["cache"].status == "stopped"
        assert svc.get_stack("lab").last_applied_at == last
        [item] = svc.plan("lab").items
        assert item.action == "start" and item.state == "stopped"
    finally:
        svc.down("lab")


def test_any_deleted_stack_can_be_restored_by_id_or_deletion_time(ctx: Context) -> None:
    from datetime import timedelta

    svc = StackService(ctx)
    first = svc.create_stack("shop", "first")
    svc.create_instance("shop", "db", "postgres")
    svc.delete_stack("shop")
    ctx_now = ctx.now
    second = svc.create_stack("shop", "second")
    later = ctx_now() + timedelta(minutes=5)
    ctx.now = lambda: later  # type: ignore[method-assign]
    try:
        svc.delete_stack("shop")
    finally:
        ctx.now = ctx_now  # type: ignore[method-assign]
    deleted = svc.list_deleted()
    assert [d.id for d in deleted] == [second.id, first.id]  # newest deletion first

    with pytest.raises(ConflictError, match="2 deleted stacks are named 'shop'.*--id"):
        svc.restore_stack("shop")
    with pytest.raises(NotFoundError, match="no deleted stack 'shop' has id"):
        svc.restore_stack("shop", stack_id="00000000-0000-0000-0000-000000000000")
    with pytest.raises(ValidationError, match="not a stack id"):
        svc.restore_stack("shop", stack_id="nope")
    with pytest.raises(ValidationError, match="not a time"):
        svc.restore_stack("shop", deleted_at="yesterday")
    with pytest.raises(NotFoundError, match="no deleted stack 'nope'"):
        svc.restore_stack("nope")

    # the older one, not only the latest
    restored = svc.restore_stack("shop", stack_id=str(first.id))
    assert restored.id == first.id and restored.description == "first"
    assert [i.name for i in svc.list_instances("shop")] == ["db"]
    with pytest.raises(ConflictError, match="live stack named 'shop' exists"):
        svc.restore_stack("shop", stack_id=str(second.id))
    svc.delete_stack("shop")
    # by deletion time, at minute precision
    when = f"{later:%Y-%m-%dT%H:%M}"
    assert svc.restore_stack("shop", deleted_at=when).id == second.id


def test_stack_delete_preview_and_delete_with_down(ctx: Context) -> None:
    svc = StackService(ctx)
    svc.create_stack("shop")
    svc.create_instance("shop", "db", "postgres")
    svc.create_instance("shop", "web", "nginx", enabled=False)
    p = svc.delete_stack_preview("shop")
    assert [(i.name, i.enabled) for i in p.instances] == [("db", True), ("web", False)]
    assert p.applied == [] and p.running == []
    view = svc.delete_stack("shop", down=True)  # nothing applied: nothing to stop
    assert view.deleted_at is not None
