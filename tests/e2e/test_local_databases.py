"""The local-database service with real PostgreSQL, MariaDB and Redis processes, on
both stores: create, the password, ports, lifecycle through the action log, crashes,
refresh after a restart of SnoozeQL, delete, and a create that fails half-way.
"""

from __future__ import annotations

import os
import signal
import socket
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from snoozeql.domain.errors import (
    ConflictError,
    NotFoundError,
    ProviderError,
    ValidationError,
)
from snoozeql.domain.types import InstanceStatus, ProviderKind
from snoozeql.providers.local import probes
from snoozeql.providers.local.engines import redis as redis_engine
from snoozeql.providers.local.ports import free_port, port_open
from snoozeql.providers.local.provider import DockerProvider, LocalProvider
from snoozeql.providers.registry import ProviderRegistry
from snoozeql.services.context import Context
from snoozeql.services.lifecycle import LifecycleService
from snoozeql.services.local_databases import LocalDatabaseService
from snoozeql.store import db
from snoozeql.store import instances as instance_store
from snoozeql.store.actions import actions as action_table
from snoozeql.store.instances import instances as instance_table
from snoozeql.store.secrets import secrets as secret_table
from tests.support.local_databases import local_settings, store_dump
from tests.support.local_servers import DockerEngine

PASSWORD = "Given-pw-'q\"-42"


def _actions(ctx: Context, name: str) -> list[tuple[str, str]]:
    """(action, result) of the action log entries of ``name``, oldest first."""
    with ctx.engine.connect() as conn:
        rows = conn.execute(
            sa.select(action_table.c.action, action_table.c.result)
            .where(action_table.c.instance_name == name)
            .order_by(action_table.c.at)
        ).all()
    return [(r.action, r.result) for r in rows]


def _count(ctx: Context, table: sa.Table) -> int:
    with ctx.engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


def _wait_dead(svc: LocalDatabaseService, name: str) -> None:
    deadline = time.monotonic() + 15
    while svc.status(name).state.process_alive and time.monotonic() < deadline:
        time.sleep(0.1)


@pytest.mark.parametrize("engine", ["postgres", "mariadb", "redis"])
def test_create_run_and_delete_a_real_database(local_ctx: Context, engine: str) -> None:
    svc = LocalDatabaseService(local_ctx)
    created = svc.create(name="db1", engine=engine, actor="tester")
    password = created.generated_password
    assert password and len(password) >= 20
    i = created.instance
    assert (i.provider, i.provider_id, i.account_id, i.region) == (
        ProviderKind.LOCAL, "db1", None, None)
    assert i.status is InstanceStatus.RUNNING and i.endpoint_host == "127.0.0.1"
    port = i.endpoint_port
    assert port and i.engine_version and i.extra["runtime"] == "native"

    # Ready means it answers with the password; a wrong password is refused.
    assert probes.probe(engine, port, password).ok
    wrong = probes.probe(engine, port, "not-the-password")
    assert not wrong.ok and wrong.reachable

    # Stored encrypted only; never in a listing.
    assert password not in store_dump(local_ctx)
    assert all(password not in repr(x) for x in svc.list_all())
    assert svc.password(i) == password
    assert password in svc.url("db1")

    # Lifecycle through the generic service, each step in the action log.
    life = LifecycleService(local_ctx)
    assert life.act("db1", "stop", actor="tester").instance.status is InstanceStatus.STOPPED
    assert not port_open(port)
    assert svc.status("db1").state.status is InstanceStatus.STOPPED
    assert [x.status for x in svc.list_all()] == [InstanceStatus.STOPPED], "stopped ones are listed"
    assert life.act("db1", "start", actor="tester").instance.status is InstanceStatus.RUNNING
    assert probes.probe(engine, port, password).ok
    before = svc.status("db1").state.pid
    report = life.act("db1", "restart", actor="tester")
    assert report.instance.status is InstanceStatus.RUNNING
    measured = svc.status("db1").state
    assert measured.probe_ok is True and measured.pid != before
    assert svc.logs("db1", 5) and all(password not in line for line in svc.logs("db1", 500))

    data = Path(measured.location or "")
    assert data.is_dir()
    svc.delete("db1", actor="tester")
    assert not data.exists() and not port_open(port)
    assert svc.list_all() == []
    with pytest.raises(NotFoundError):
        svc.status("db1")
    assert _count(local_ctx, instance_table) == 0 and _count(local_ctx, secret_table) == 0
    assert _actions(local_ctx, "db1") == [
        ("create", "ok"), ("stop", "ok"), ("start", "ok"), ("restart", "ok"), ("delete", "ok")]


def test_given_password_port_and_errors(local_ctx: Context) -> None:
    svc = LocalDatabaseService(local_ctx)
    port = free_port()
    created = svc.create(name="r1", engine="redis", port=port, password=PASSWORD, actor="t")
    assert created.generated_password is None
    assert created.instance.endpoint_port == port
    assert probes.probe("redis", port, PASSWORD).ok
    assert PASSWORD not in store_dump(local_ctx)

    for bad, exc in [
        ({"name": "Bad_Name", "engine": "redis"}, ValidationError),
        ({"name": "ok", "engine": "oracle"}, ValidationError),
        ({"name": "ok", "engine": "postgres", "version": "banana"}, ValidationError),
        ({"name": "ok", "engine": "postgres", "version": "9"}, ValidationError),
        ({"name": "ok", "engine": "redis", "port": 80}, ValidationError),
        ({"name": "ok", "engine": "redis", "runtime": "vm"}, ValidationError),
        ({"name": "ok", "engine": "redis", "password": "a\nb"}, ValidationError),
        ({"name": "r1", "engine": "redis"}, ConflictError),
        ({"name": "ok", "engine": "redis", "port": port}, ConflictError),
    ]:
        with pytest.raises(exc):
            svc.create(actor="t", **bad)  # type: ignore[arg-type]
    assert [i.name for i in svc.list_all()] == ["r1"]
    assert not (local_ctx.settings.data_dir / "instances" / "ok").exists()

    # A stopped instance keeps its port.
    LifecycleService(local_ctx).act("r1", "stop", actor="t")
    with pytest.raises(ConflictError, match=f"port {port} belongs to local database 'r1'"):
        svc.create(name="r2", engine="redis", port=port, actor="t")
    svc.delete("r1", actor="t")


def test_port_clashes_are_refused_at_create_and_at_start(local_ctx: Context) -> None:
    svc = LocalDatabaseService(local_ctx)
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        busy = other.getsockname()[1]
        with pytest.raises(ConflictError, match=f"port {busy} .*already in use"):
            svc.create(name="r1", engine="redis", port=busy, actor="t")
    assert svc.list_all() == []

    created = svc.create(name="r1", engine="redis", actor="t")
    port = created.instance.endpoint_port
    life = LifecycleService(local_ctx)
    life.act("r1", "stop", actor="t")
    with socket.socket() as squatter:  # another process takes the port meanwhile
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        with pytest.raises(ConflictError, match="already in use"):
            life.act("r1", "start", actor="t")
        assert svc.status("r1").state.status is InstanceStatus.STOPPED
    assert _actions(local_ctx, "r1")[-1] == ("start", "failed")
    assert life.act("r1", "start", actor="t").instance.status is InstanceStatus.RUNNING


def test_a_crash_shows_as_failed_and_a_fresh_snoozeql_recomputes(local_ctx: Context) -> None:
    svc = LocalDatabaseService(local_ctx)
    a = svc.create(name="a", engine="redis", actor="t")
    b = svc.create(name="b", engine="redis", actor="t")
    LifecycleService(local_ctx).act("b", "stop", actor="t")
    pid = svc.status("a").state.pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)  # behind SnoozeQL's back
    _wait_dead(svc, "a")

    measured = svc.status("a")
    assert measured.state.status is InstanceStatus.FAILED
    assert measured.state.log_tail, "the last log lines come with a failure"
    assert measured.instance.status is InstanceStatus.FAILED and measured.instance.last_error

    # Make the store say "running" for both; a new process of SnoozeQL (fresh Context,
    # fresh providers) recomputes everything from reality.
    with local_ctx.engine.begin() as conn:
        for inst in (a.instance, b.instance):
            instance_store.set_status(conn, inst.id, InstanceStatus.RUNNING, "stale")
    settings = local_ctx.settings
    engine = db.create_engine(settings.effective_database_url)
    fresh = Context(settings=settings, engine=engine, providers=ProviderRegistry(settings))
    try:
        result = {m.instance.name: m.state.status for m in
                  LocalDatabaseService(fresh).refresh_all()}
        assert result == {"a": InstanceStatus.FAILED, "b": InstanceStatus.STOPPED}
        assert {i.name: i.status for i in LocalDatabaseService(fresh).list_all()} == result
        # A failed database can be started again through the lifecycle.
        assert LifecycleService(fresh).act("a", "start", actor="t").instance.status is (
            InstanceStatus.RUNNING)
    finally:
        engine.dispose()

    # A database whose files vanished is failed, not an error.
    svc.runtime(ProviderKind.LOCAL).delete("b")
    gone = {m.instance.name: m for m in svc.refresh_all()}["b"]
    assert gone.state.status is InstanceStatus.FAILED and "gone" in (gone.state.detail or "")
    svc.delete("b", actor="t")  # still removable from the inventory
    assert [i.name for i in svc.list_all()] == ["a"]


def test_a_failed_create_leaves_nothing(
    local_ctx: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real server that dies at start (a bad directive): no row, secret or data."""
    real_argv = redis_engine.Redis.argv

    def broken_argv(self: Any, *args: Any) -> list[str]:
        return [*real_argv(self, *args), "--no-such-directive", "1"]

    monkeypatch.setattr(redis_engine.Redis, "argv", broken_argv)
    svc = LocalDatabaseService(local_ctx)
    port = free_port()
    with pytest.raises(ProviderError, match="did not become ready") as info:
        svc.create(name="bad", engine="redis", port=port, password=PASSWORD, actor="t")
    assert PASSWORD not in info.value.message
    assert svc.list_all() == []
    assert _count(local_ctx, instance_table) == 0 and _count(local_ctx, secret_table) == 0
    assert not (local_ctx.settings.data_dir / "instances" / "bad").exists()
    assert not port_open(port)
    assert _actions(local_ctx, "bad") == [("create", "failed")]

    monkeypatch.undo()
    assert svc.create(name="bad", engine="redis", port=port, actor="t").instance.status is (
        InstanceStatus.RUNNING), "the name and the port are free again"


def test_delete_can_keep_the_data(local_ctx: Context) -> None:
    svc = LocalDatabaseService(local_ctx)
    svc.create(name="r", engine="redis", actor="t")
    deleted = svc.delete("r", keep_data=True, actor="t")
    assert deleted.kept_at and (Path(deleted.kept_at) / "data").is_dir()
    assert svc.list_all() == [] and _actions(local_ctx, "r")[-1] == ("delete", "ok")
    assert svc.create(name="r", engine="redis", actor="t").instance.status is (
        InstanceStatus.RUNNING), "the name is free again"


def test_providers_are_registered() -> None:
    from snoozeql.config import Settings

    reg = ProviderRegistry(Settings(_env_file=None))  # type: ignore[call-arg]
    assert isinstance(reg.get("local"), LocalProvider)
    assert isinstance(reg.get("docker"), DockerProvider)


def test_docker_runtime_through_the_service(
    store_url: str, local_data_dir: Path, docker_engine: DockerEngine
) -> None:
    settings = local_settings(store_url, local_data_dir, docker_host=docker_engine.base_url)
    engine = db.create_engine(settings.effective_database_url)
    ctx = Context(settings=settings, engine=engine, providers=ProviderRegistry(settings))
    svc = LocalDatabaseService(ctx)
    try:
        created = svc.create(
            name="svc-dock", engine="redis", runtime="docker", image=docker_engine.redis_image,
            tag=docker_engine.redis_tag, password=PASSWORD, actor="t",
        )
        i = created.instance
        assert i.provider is ProviderKind.DOCKER and i.status is InstanceStatus.RUNNING
        assert i.extra["image"] == f"{docker_engine.redis_image}:{docker_engine.redis_tag}"
        port = i.endpoint_port
        assert port and probes.probe("redis", port, PASSWORD).ok

        # A native database may not take a docker database's port, even a stopped one.
        life = LifecycleService(ctx)
        assert life.act("svc-dock", "stop", actor="t").instance.status is InstanceStatus.STOPPED
        with pytest.raises(ConflictError, match="belongs to local database 'svc-dock'"):
            svc.create(name="native", engine="redis", port=port, actor="t")
        assert life.act("svc-dock", "start", actor="t").instance.status is InstanceStatus.RUNNING
        assert life.act("svc-dock", "restart", actor="t").instance.status is (
            InstanceStatus.RUNNING)

        import docker

        client = docker.DockerClient(base_url=docker_engine.base_url, version="auto")
        client.containers.get("snoozeql-svc-dock").kill()
        client.close()
        deadline = time.monotonic() + 15
        while svc.status("svc-dock").state.process_alive and time.monotonic() < deadline:
            time.sleep(0.1)
        measured = svc.status("svc-dock")
        assert measured.state.status is InstanceStatus.FAILED and measured.state.log_tail

        svc.delete("svc-dock", actor="t")
        assert svc.list_all() == [] and not port_open(port)
        assert _actions(ctx, "svc-dock") == [
            ("create", "ok"), ("stop", "ok"), ("start", "ok"), ("restart", "ok"),
            ("delete", "ok")]
    finally:
        rt = svc.runtime(ProviderKind.DOCKER)
        if rt.exists("svc-dock"):
            rt.delete("svc-dock")
        rt.close()
        engine.dispose()
