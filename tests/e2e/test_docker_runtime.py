"""The Docker runtime: the container spec it sends, a missing engine, and a real engine.

The real engine is a private dockerd started by the ``docker_engine`` fixture (host
networking only, no bridge, no iptables) with a Redis image made locally by
``docker import`` from the machine's own redis-server.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from snoozeql.config import Settings
from snoozeql.domain.engines import CATALOGUE, Engine, LocalDatabaseSpec
from snoozeql.domain.errors import ConflictError, NotFoundError, ProviderError, ValidationError
from snoozeql.domain.types import InstanceStatus
from snoozeql.providers.local import probes
from snoozeql.providers.local.docker import DockerRuntime, container_create_kwargs
from snoozeql.providers.local.ports import free_port, port_open
from tests.support.local_servers import DockerEngine

PASSWORD = "d0cker-pw"


@pytest.mark.parametrize("engine", list(Engine))
def test_container_spec_uses_host_network_volume_labels_and_password_placement(
    engine: Engine,
) -> None:
    spec = LocalDatabaseSpec.build(name="db1", engine=engine, port=15000, runtime="docker")
    info = CATALOGUE[engine]
    kw = container_create_kwargs(spec, PASSWORD)

    assert kw["name"] == "snoozeql-db1"
    assert kw["image"] == f"{info.default_image}:{info.default_tag}"
    assert kw["network_mode"] == "host"
    assert "ports" not in kw and "network" not in kw and "networking_config" not in kw
    assert kw["volumes"] == {"snoozeql-db1-data": {"bind": info.container_data_path, "mode": "rw"}}
    labels = kw["labels"]
    assert all(key.startswith("snoozeql.") for key in labels)
    assert labels["snoozeql.managed"] == "true"
    assert (labels["snoozeql.name"], labels["snoozeql.engine"], labels["snoozeql.port"]) == (
        "db1",
        engine.value,
        "15000",
    )
    assert PASSWORD not in str(labels)
    for var in info.docker_password_env:
        assert kw["environment"][var] == PASSWORD
    if engine is Engine.REDIS:
        assert kw["command"][-2:] == ["--requirepass", PASSWORD]
    else:
        assert PASSWORD not in kw["command"]
    assert "15000" in " ".join(kw["command"])


def test_container_spec_refuses_a_native_spec() -> None:
    spec = LocalDatabaseSpec.build(name="db1", engine="redis", port=15000)
    with pytest.raises(ValidationError):
        container_create_kwargs(spec, PASSWORD)


def test_an_unreachable_engine_is_a_clear_provider_error(tmp_path: Path) -> None:
    url = f"unix://{tmp_path}/no-such-docker.sock"
    rt = DockerRuntime(Settings(data_dir=tmp_path), base_url=url)
    spec = LocalDatabaseSpec.build(name="db1", engine="redis", port=free_port(), runtime="docker")
    with pytest.raises(ProviderError) as info:
        rt.create(spec, PASSWORD)
    assert info.value.message == (
        f"Docker engine not reachable at {url}; install/start Docker or use --runtime native"
    )
    with pytest.raises(ProviderError, match="not reachable"):
        rt.status("db1", PASSWORD)
    assert not (tmp_path / "docker").exists()


@pytest.fixture
def docker_runtime(docker_engine: DockerEngine, tmp_path: Path) -> Iterator[DockerRuntime]:
    rt = DockerRuntime(Settings(data_dir=tmp_path), base_url=docker_engine.base_url)
    yield rt
    for name in rt.names():
        rt.delete(name)
    rt.close()


def _spec(engine: DockerEngine, name: str, port: int | None = None) -> LocalDatabaseSpec:
    return LocalDatabaseSpec.build(
        name=name,
        engine="redis",
        port=port or free_port(),
        runtime="docker",
        image=engine.redis_image,
        tag=engine.redis_tag,
    )


def _redis(port: int, *command: str) -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        for cmd in (("AUTH", PASSWORD), command):
            payload = f"*{len(cmd)}\r\n" + "".join(f"${len(c)}\r\n{c}\r\n" for c in cmd)
            sock.sendall(payload.encode())
            reply = sock.recv(4096).decode()
        return reply


def test_real_engine_lifecycle(docker_engine: DockerEngine, docker_runtime: DockerRuntime) -> None:
    rt = docker_runtime
    client = docker.DockerClient(base_url=docker_engine.base_url, version="auto")
    networks_before = sorted(n.name for n in client.networks.list())
    port = free_port()

    state = rt.create(_spec(docker_engine, "r1", port), PASSWORD)
    assert state.status is InstanceStatus.RUNNING and state.probe_ok is True

    container = client.containers.get("snoozeql-r1")
    assert container.attrs["HostConfig"]["NetworkMode"] == "host"
    assert container.labels["snoozeql.engine"] == "redis"
    assert container.labels["snoozeql.port"] == str(port)
    mounts = container.attrs["Mounts"]
    assert [(m["Type"], m["Name"], m["Destination"]) for m in mounts] == [
        ("volume", "snoozeql-r1-data", "/data")
    ]
    assert sorted(n.name for n in client.networks.list()) == networks_before
    assert "bridge" not in networks_before

    wrong = probes.probe("redis", port, "wrong-password")
    assert not wrong.ok and wrong.reachable
    assert rt.names() == ["r1"]
    assert rt.url("r1", PASSWORD) == f"redis://default:{PASSWORD}@127.0.0.1:{port}/0"

    # Data lives in the volume across a stop and a start.
    assert _redis(port, "SET", "k", "kept") == "+OK\r\n"
    assert rt.stop("r1").status is InstanceStatus.STOPPED
    assert not port_open(port)
    assert rt.start("r1", PASSWORD).status is InstanceStatus.RUNNING
    assert _redis(port, "GET", "k") == "$4\r\nkept\r\n"
    assert rt.restart("r1", PASSWORD).status is InstanceStatus.RUNNING

    # Killed behind SnoozeQL's back: failed, with the last log lines; a fresh runtime agrees.
    container.kill()
    deadline = time.monotonic() + 15
    while rt.status("r1", None).process_alive and time.monotonic() < deadline:
        time.sleep(0.1)
    for runtime in (rt, DockerRuntime(rt.settings, base_url=docker_engine.base_url)):
        failed = runtime.status("r1", PASSWORD)
        assert failed.status is InstanceStatus.FAILED
        assert "exit code 137" in (failed.detail or "")
        assert any("Ready to accept connections" in line for line in failed.log_tail)

    assert rt.delete("r1") is None
    assert rt.names() == []
    with pytest.raises(docker.errors.NotFound):
        client.volumes.get("snoozeql-r1-data")
    with pytest.raises(NotFoundError):
        rt.status("r1", PASSWORD)
    client.close()


def test_real_engine_refuses_clashes_and_can_keep_data(
    docker_engine: DockerEngine, docker_runtime: DockerRuntime
) -> None:
    rt = docker_runtime
    client = docker.DockerClient(base_url=docker_engine.base_url, version="auto")
    port = free_port()
    rt.create(_spec(docker_engine, "r2", port), PASSWORD)
    with pytest.raises(ConflictError, match="already exists"):
        rt.create(_spec(docker_engine, "r2"), PASSWORD)
    rt.stop("r2")
    with pytest.raises(ConflictError, match=f"port {port} belongs to docker database 'r2'"):
        rt.create(_spec(docker_engine, "r3", port), PASSWORD)
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        with pytest.raises(ConflictError, match="already in use"):
            rt.start("r2", PASSWORD)
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        with pytest.raises(ConflictError, match="already in use"):
            rt.create(_spec(docker_engine, "r4", squatter.getsockname()[1]), PASSWORD)
    assert rt.names() == ["r2"]

    assert rt.delete("r2", keep_data=True) == "snoozeql-r2-data"
    assert client.volumes.get("snoozeql-r2-data").name == "snoozeql-r2-data"
    with pytest.raises(ConflictError, match="volume snoozeql-r2-data already exists"):
        rt.create(_spec(docker_engine, "r2"), PASSWORD)
    client.volumes.get("snoozeql-r2-data").remove()
    client.close()


def test_an_image_that_cannot_be_had_is_a_provider_error_and_nothing_is_left(
    docker_engine: DockerEngine, docker_runtime: DockerRuntime
) -> None:
    spec = LocalDatabaseSpec.build(
        name="r5",
        engine="redis",
        port=free_port(),
        runtime="docker",
        image="snoozeql-test/none",
        tag="missing",
    )
    with pytest.raises(ProviderError, match="snoozeql-test/none:missing is not on this machine"):
        docker_runtime.create(spec, PASSWORD)
    assert docker_runtime.names() == []
