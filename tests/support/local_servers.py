"""Fixtures for local databases: a data directory the servers can reach, a native
runtime tuned for speed, and a real Docker engine of our own.

The native runtime runs PostgreSQL, MariaDB and Redis from Debian's binaries, which the
test command installs; when one is missing the tests fail and say which package to add.

The Docker engine is Debian's ``dockerd`` (package docker.io), started with its own
socket, data root and exec root, ``--bridge=none --iptables=false``, so it touches
nothing else on the machine. No registry is reachable, so the image is made here with
``docker import`` from files already on the machine: the Redis server binary and the
libraries it links, with ``redis-server`` as its entrypoint and ``/data`` as its working
directory, which is how the official ``redis`` image behaves for the arguments we pass.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from snoozeql.config import Settings
from snoozeql.providers.local.native import NativeRuntime

DEBIAN_SERVERS = {
    "postgres": ("/usr/lib/postgresql/*/bin/postgres", "postgresql"),
    "mariadb": ("/usr/sbin/mariadbd", "mariadb-server"),
    "redis": ("/usr/bin/redis-server", "redis-server"),
}


def _check_server(engine: str) -> None:
    pattern, package = DEBIAN_SERVERS[engine]
    if not list(Path("/").glob(pattern.lstrip("/"))):
        pytest.fail(
            f"the {engine} server binary ({pattern}) is missing: the test command must "
            f"install the Debian package {package!r}",
            pytrace=False,
        )


@pytest.fixture(scope="session")
def debian_servers() -> None:
    """Fails clearly unless PostgreSQL, MariaDB and Redis binaries are installed."""
    for engine in DEBIAN_SERVERS:
        _check_server(engine)


@pytest.fixture
def local_data_dir() -> Iterator[Path]:
    """A data dir under /tmp that the servers' unprivileged users can walk into.

    pytest's own tmp_path sits in a 0700 directory of root's, which an unprivileged
    server user cannot enter.
    """
    path = Path(tempfile.mkdtemp(prefix="snoozeql-local-", dir="/tmp"))
    os.chmod(path, 0o755)
    yield path
    runtime = NativeRuntime(Settings(data_dir=path), stop_timeout=5)
    for name in runtime.names():
        with contextlib.suppress(Exception):
            runtime.stop(name)
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def native_runtime(local_data_dir: Path, debian_servers: None) -> NativeRuntime:
    """A native runtime with the fast, non-durable settings (fsync off) for tests."""
    return NativeRuntime(
        Settings(data_dir=local_data_dir, secret_key=None), durable=False, ready_timeout=60
    )


@dataclass(frozen=True)
class DockerEngine:
    base_url: str
    redis_image: str
    redis_tag: str
    root: Path


def _library_paths(binary: str) -> list[str]:
    out = subprocess.run(["ldd", binary], capture_output=True, text=True, check=True).stdout
    return re.findall(r"(/\S+)", out)


def _redis_rootfs_tar() -> bytes:
    """A tar of a minimal root filesystem: redis-server, its libraries, passwd."""
    server = shutil.which("redis-server") or "/usr/bin/redis-server"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for d in ("data", "tmp", "etc"):
            info = tarfile.TarInfo(d)
            info.type = tarfile.DIRTYPE
            info.mode = 0o1777 if d == "tmp" else 0o755
            tar.addfile(info)
        for path in [server, *_library_paths(server)]:
            real = os.path.realpath(path)
            tar.add(real, arcname=path.lstrip("/"))
        for name, text in (
            ("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n"),
            ("etc/group", "root:x:0:\n"),
        ):
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _unmount_under(root: Path) -> None:
    """dockerd leaves its network namespace mounted in the exec root; undo that."""
    mounts = [
        line.split()[1]
        for line in Path("/proc/self/mounts").read_text().splitlines()
        if line.split()[1].startswith(str(root) + "/")
    ]
    for mount in sorted(mounts, reverse=True):
        subprocess.run(["umount", mount], capture_output=True, check=False)


@pytest.fixture(scope="session")
def docker_engine() -> Iterator[DockerEngine]:
    """A private dockerd (host networking only) with a locally made Redis image."""
    import docker

    dockerd = shutil.which("dockerd")
    if dockerd is None:
        pytest.fail(
            "dockerd is missing: the test command must install the Debian package 'docker.io'",
            pytrace=False,
        )
    _check_server("redis")
    root = Path(tempfile.mkdtemp(prefix="sqd-", dir="/tmp"))
    sock = root / "docker.sock"
    log = open(root / "dockerd.log", "wb")  # noqa: SIM115 - closed at teardown
    proc = subprocess.Popen(
        [
            dockerd,
            "--host",
            f"unix://{sock}",
            "--data-root",
            str(root / "data"),
            "--exec-root",
            str(root / "exec"),
            "--pidfile",
            str(root / "dockerd.pid"),
            "--bridge=none",
            "--iptables=false",
            "--ip6tables=false",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    base_url = f"unix://{sock}"
    client = None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if sock.exists():
            try:
                client = docker.DockerClient(base_url=base_url, version="auto", timeout=30)
                client.ping()
                break
            except docker.errors.DockerException:
                client = None
        time.sleep(0.2)
    if client is None:
        proc.kill()
        proc.wait()
        log.close()
        tail = (root / "dockerd.log").read_text(errors="replace").splitlines()[-15:]
        shutil.rmtree(root, ignore_errors=True)
        pytest.fail("the Docker engine (dockerd) did not start:\n" + "\n".join(tail))
    client.api.import_image_from_data(
        _redis_rootfs_tar(),
        repository="snoozeql-test/redis",
        tag="local",
        changes=['ENTRYPOINT ["/usr/bin/redis-server"]', "WORKDIR /data"],
    )
    try:
        yield DockerEngine(base_url, "snoozeql-test/redis", "local", root)
    finally:
        for container in client.containers.list(all=True):
            with contextlib.suppress(Exception):
                container.remove(force=True)
        client.close()
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        _unmount_under(root)
        shutil.rmtree(root, ignore_errors=True)
