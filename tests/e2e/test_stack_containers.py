"""Plain images in stacks: the generic container runtime through plan/apply/down.

The engine is the private dockerd of the ``docker_engine`` fixture (host networking
only, no bridge, no iptables); the "generic" service is the locally imported image of
the machine's own redis-server, used through a user template *without* ``engine``, so
it takes the generic path, not the engine catalogue.
"""

from __future__ import annotations

import io
import socket
import tarfile
from collections.abc import Iterator
from pathlib import Path

import docker
import docker.errors
import pytest
import sqlalchemy as sa

from snoozeql.api.schemas.stacks import PlanOut
from snoozeql.domain.errors import ConflictError, ProviderError
from snoozeql.domain.stacks import Template, effective, to_compose
from snoozeql.domain.stacks.overrides import parse_override
from snoozeql.domain.types import InstanceStatus
from snoozeql.providers.local.containers import (
    ContainerRuntime,
    ContainerSpec,
    create_kwargs,
    unit_problem,
)
from snoozeql.providers.local.ports import free_port
from snoozeql.services.context import Context
from snoozeql.services.stacks import StackService
from snoozeql.services.templates import TemplateService
from snoozeql.store.stacks import stack_applied
from tests.support.local_servers import DockerEngine

SECRET = "s3cret-t0ken-value"


def _ping(port: int) -> bool:
    """A Redis PING over loopback: True when the server answers +PONG."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            s.sendall(b"*1\r\n$4\r\nPING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


@pytest.fixture
def client(docker_engine: DockerEngine) -> Iterator[docker.DockerClient]:
    c = docker.DockerClient(base_url=docker_engine.base_url, version="auto", timeout=30)
    yield c
    c.close()


@pytest.fixture
def svc(ctx: Context, docker_engine: DockerEngine) -> StackService:
    ctx.settings = ctx.settings.model_copy(update={"docker_host": docker_engine.base_url})
    image = f"{docker_engine.redis_image}:{docker_engine.redis_tag}"
    TemplateService(ctx).add(
        {
            "name": "kv",
            "description": "a key-value server as a plain image (no engine)",
            "image": image,
            "command": ["/etc/kv/kv.conf"],
            "environment": {"GREETING": "hello"},
            "labels": {"tier": "cache"},
            "ports": ["6379:6379"],
            "volumes": ["data:/data"],
            "config_files": [{"target": "/etc/kv/kv.conf", "content": "port 6379\n"}],
            "healthcheck": {
                "test": ["CMD", "/usr/bin/redis-server", "--version"],
                "interval": "1s",
                "timeout": "2s",
                "retries": 3,
                "start_period": "500ms",
            },
        }
    )
    return StackService(ctx)


def _items(svc: StackService, stack: str) -> dict[str, tuple[str, str]]:
    return {i.instance: (i.action, i.reason) for i in svc.plan(stack).items}


def test_plain_image_plan_apply_down_remove(
    svc: StackService, client: docker.DockerClient, docker_engine: DockerEngine
) -> None:
    networks_before = sorted(n.name for n in client.networks.list())
    port = free_port()
    conf = f'port {port}\nbind 127.0.0.1\nsave ""\n'
    svc.create_stack("lab")
    svc.create_instance(
        "lab",
        "kv",
        "kv",
        overrides={
            "ports": {"mode": "replace", "entries": [f"{port}:{port}"]},
            "env_vars": {
                "entries": [
                    {"key": "GREETING", "value": "hi"},
                    {"key": "TOKEN", "value": SECRET, "secret": True},
                ]
            },
            "labels": {"entries": {"team": "platform"}},
            "config_files": {
                "entries": [{"target": "/etc/kv/kv.conf", "content": conf, "mode": "0640"}]
            },
        },
    )
    name = "snoozeql-lab-kv"
    plan = svc.plan("lab")
    [item] = plan.items
    assert (item.action, item.runtime) == ("create", "container")
    assert SECRET not in PlanOut.model_validate(plan).model_dump_json()
    runtime = ContainerRuntime(svc.ctx.settings)
    try:
        [step] = svc.apply("lab")
        assert step.ok and step.action == "create" and step.status == "running", step
        assert _ping(port)

        c = client.containers.get(name)
        assert c.attrs["HostConfig"]["NetworkMode"] == "host"
        assert c.attrs["HostConfig"]["RestartPolicy"]["Name"] in ("no", "")
        assert c.labels == {
            "tier": "cache",
            "team": "platform",
            "snoozeql.managed": "true",
            "snoozeql.stack": "lab",
            "snoozeql.instance": "kv",
            "snoozeql.template": "kv",
        }
        env = dict(e.split("=", 1) for e in c.attrs["Config"]["Env"])
        assert env["GREETING"] == "hi" and env["TOKEN"] == SECRET
        assert c.attrs["Config"]["Cmd"] == ["/etc/kv/kv.conf"]
        assert c.attrs["Config"]["Healthcheck"] == {
            "Test": ["CMD", "/usr/bin/redis-server", "--version"],
            "Interval": 10**9,
            "Timeout": 2 * 10**9,
            "Retries": 3,
            "StartPeriod": 5 * 10**8,
        }
        mounts = {m["Destination"]: m for m in c.attrs["Mounts"]}
        assert mounts["/etc/kv/kv.conf"]["Type"] == "bind"
        assert mounts["/etc/kv/kv.conf"]["RW"] is False
        # the same volume name docker compose would make from the export
        export = svc.compose("lab")
        assert mounts["/data"]["Name"] == f"{export.project}_kv_data" == "snoozeql-lab_kv_data"
        assert "kv_data" in export.document["volumes"]
        # the config file as the container sees it: content and mode
        stream, _ = c.get_archive("/etc/kv/kv.conf")
        with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
            [member] = tar.getmembers()
            assert member.mode & 0o777 == 0o640
            assert tar.extractfile(member).read().decode() == conf  # type: ignore[union-attr]

        assert _items(svc, "lab")["kv"][0] == "unchanged"
        with svc.ctx.engine.connect() as conn:
            stored = str(conn.execute(sa.select(stack_applied)).all())
        assert SECRET not in stored

        [stop] = svc.down("lab")
        assert stop.ok and stop.status == "stopped"
        assert client.containers.get(name).status == "exited" and not _ping(port)
        assert runtime.status(name).status is InstanceStatus.STOPPED
        assert _items(svc, "lab")["kv"][0] == "start"

        # the port is checked free before a start
        with socket.socket() as holder:
            holder.bind(("127.0.0.1", port))
            holder.listen()
            [step] = svc.apply("lab")
            assert not step.ok and "already in use" in (step.detail or "")
        [step] = svc.apply("lab")
        assert step.ok and step.action == "start" and _ping(port)

        # host networking cannot remap a port: refused with what to do
        other = free_port({port})
        svc.put_override("lab", "kv", "ports", {"mode": "replace", "entries": [f"{other}:{port}"]})
        action, reason = _items(svc, "lab")["kv"]
        assert action == "refused"
        assert f"host networking cannot publish {other} as {port}" in reason
        assert f"{port}:{port}" in reason and "Compose" in reason
        [step] = svc.apply("lab")
        assert step.action == "refused" and not step.ok and _ping(port)
        svc.put_override("lab", "kv", "ports", {"mode": "replace", "entries": [f"{port}:{port}"]})
        assert _items(svc, "lab")["kv"][0] == "unchanged"

        # a change the container uses recreates it, keeping the named volume
        svc.put_override(
            "lab",
            "kv",
            "env_vars",
            {
                "entries": [
                    {"key": "GREETING", "value": "bye"},
                    {"key": "TOKEN", "value": SECRET, "secret": True},
                ]
            },
        )
        [item] = svc.plan("lab").items
        assert (
            item.action == "update" and item.changes["environment"]["desired"]["GREETING"] == "bye"
        )
        assert item.changes["environment"]["desired"]["TOKEN"] == "***"
        [step] = svc.apply("lab")
        assert step.ok and step.action == "update", step
        env = dict(e.split("=", 1) for e in client.containers.get(name).attrs["Config"]["Env"])
        assert env["GREETING"] == "bye" and _ping(port)

        # killed behind SnoozeQL's back: measured as failed, with exit code and logs
        client.containers.get(name).kill()
        state = runtime.status(name)
        assert state.status is InstanceStatus.FAILED and state.exit_code == 137
        assert "exit code 137" in state.detail and state.log_tail
        assert all(SECRET not in line for line in state.log_tail)
        # plan compares with that state: failed, and apply starts it again
        [item] = svc.plan("lab").items
        assert item.action == "start" and item.state == "failed", item
        assert "exit code 137" in item.reason
        assert svc.stack_states("lab")[0] == "down"
        [step] = svc.apply("lab")
        assert step.ok and step.action == "start", step
        assert runtime.status(name).status is InstanceStatus.RUNNING and _ping(port)
        assert svc.live_states("lab")["kv"].status == "running"

        # deleted from the stack: the next apply removes the container, keeps the volume
        svc.delete_instance("lab", "kv")
        assert _items(svc, "lab")["kv"][0] == "remove"
        [step] = svc.apply("lab")
        assert step.ok and "snoozeql-lab_kv_data" in (step.detail or "")
        with pytest.raises(docker.errors.NotFound):
            client.containers.get(name)
        client.volumes.get("snoozeql-lab_kv_data")
        assert svc.plan("lab").items == []
        assert sorted(n.name for n in client.networks.list()) == networks_before
    finally:
        runtime.close()
        for c in client.containers.list(all=True, filters={"label": "snoozeql.stack=lab"}):
            c.remove(force=True)
        for v in client.volumes.list(filters={"label": "snoozeql.stack=lab"}):
            v.remove(force=True)


def test_no_network_is_created_and_ports_stay_unpublished(
    svc: StackService, client: docker.DockerClient, docker_engine: DockerEngine
) -> None:
    before = {n.id for n in client.networks.list()}
    port = free_port()
    svc.create_stack("net")
    svc.create_instance(
        "net",
        "kv",
        "kv",
        overrides={
            "ports": {"mode": "replace", "entries": [f"127.0.0.1:{port}:{port}"]},
            "config_files": {
                "entries": [
                    {"target": "/etc/kv/kv.conf", "content": f"port {port}\nbind 127.0.0.1\n"}
                ]
            },
        },
    )
    try:
        [step] = svc.apply("net")
        assert step.ok, step
        c = client.containers.get("snoozeql-net-kv")
        assert c.attrs["HostConfig"]["NetworkMode"] == "host"
        assert not c.attrs["HostConfig"].get("PortBindings")
        assert set(c.attrs["NetworkSettings"]["Networks"]) == {"host"}
        assert {n.id for n in client.networks.list()} == before
        assert _ping(port)
        # a container of that name that is not this instance's is never taken over
        [stop] = svc.down("net")
        assert stop.ok
        c.remove(force=True)
        stranger = client.containers.create(
            f"{docker_engine.redis_image}:{docker_engine.redis_tag}",
            name="snoozeql-net-kv",
            network_mode="host",
            command=["--port", str(free_port({port}))],
        )
        with pytest.raises(ConflictError, match="not this instance's"):
            ContainerRuntime(svc.ctx.settings).create(
                ContainerSpec("snoozeql-net-kv", "net", "kv", svc.effective("net", "kv")[1])
            )
        stranger.remove(force=True)
        # removed by hand: deleting it from the stack still clears the record
        svc.delete_instance("net", "kv")
        [step] = svc.apply("net")
        assert step.ok and step.action == "remove" and svc.plan("net").items == []
    finally:
        for c in client.containers.list(all=True, filters={"label": "snoozeql.stack=net"}):
            c.remove(force=True)
        for v in client.volumes.list(filters={"label": "snoozeql.stack=net"}):
            v.remove(force=True)


def test_container_spec_matches_the_compose_export() -> None:
    tmpl = Template.from_dict(
        {
            "name": "web",
            "image": "nginx:1.27",
            "command": "nginx -g 'daemon off;'",
            "environment": {"A": "1", "FROM_HOST": None},
            "volumes": ["html:/usr/share/nginx/html", "/srv/x:/x:ro"],
            "ports": ["80:80"],
            "healthcheck": {"disable": True},
            "labels": {"k": "v"},
        }
    )
    svc = effective(tmpl)
    spec = ContainerSpec("p-shop-web", "shop", "web", svc)
    kw = create_kwargs(spec, Path("/cfg"), host_env={"FROM_HOST": "h"})
    assert kw["network_mode"] == "host" and kw["restart_policy"] == {"Name": "no"}
    assert not {"ports", "network", "networking_config"} & set(kw)
    assert kw["environment"] == {"A": "1", "FROM_HOST": "h"}
    assert kw["healthcheck"] == {"test": ["NONE"]}
    assert kw["command"] == "nginx -g 'daemon off;'"
    export = to_compose("shop", [("web", svc)], "p")
    [named] = export.document["volumes"]
    assert {
        "Target": "/usr/share/nginx/html",
        "Type": "volume",
        "ReadOnly": False,
        "Source": f"{export.project}_{named}",
    } in kw["mounts"]
    assert {"Target": "/x", "Type": "bind", "ReadOnly": True, "Source": "/srv/x"} in kw["mounts"]
    labels = export.document["services"]["web"]["labels"]
    assert kw["labels"] == labels
    relative = effective(tmpl, [parse_override("volumes", {"entries": ["./init:/init"]})])
    assert "relative to a Compose file" in (unit_problem(relative) or "")


def test_absent_engine_is_a_clear_error_and_refuses_in_plan(ctx: Context) -> None:
    missing = "unix:///tmp/snoozeql-no-such-docker.sock"
    with pytest.raises(ProviderError, match="Docker engine not reachable at unix:///tmp/snoozeql"):
        ContainerRuntime(ctx.settings, base_url=missing).check()
    ctx.settings = ctx.settings.model_copy(update={"docker_host": missing})
    TemplateService(ctx).add({"name": "kv", "image": "x/kv:1", "ports": ["7000:7000"]})
    svc = StackService(ctx)
    svc.create_stack("lab")
    svc.create_instance("lab", "kv", "kv")
    [item] = svc.plan("lab").items
    assert item.action == "refused" and "Docker engine not reachable" in item.reason
    [step] = svc.apply("lab")
    assert step.action == "refused" and not step.ok
