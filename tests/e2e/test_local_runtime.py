"""The native runtime against real PostgreSQL, MariaDB and Redis server processes.

Each server is started from Debian's binaries on a free loopback port, in a data dir
under /tmp, and probed with its own protocol.
"""

from __future__ import annotations

import os
import pwd
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pymysql
import pytest

from snoozeql.config import Settings
from snoozeql.domain.engines import Engine, LocalDatabaseSpec
from snoozeql.domain.errors import (
    ActionRefused,
    ConflictError,
    NotFoundError,
    ProviderError,
    ValidationError,
)
from snoozeql.domain.types import InstanceStatus
from snoozeql.providers.local import probes
from snoozeql.providers.local.engines import postgres as postgres_engine
from snoozeql.providers.local.native import NativeRuntime, installed_versions
from snoozeql.providers.local.ports import free_port, port_open

PASSWORD = "s3cret-'quote\"-pw"
SERVER_USER = {"postgres": "postgres", "mariadb": "mysql", "redis": "redis"}


def _spec(name: str, engine: str, port: int | None = None, **kw: Any) -> LocalDatabaseSpec:
    return LocalDatabaseSpec.build(name=name, engine=engine, port=port or free_port(), **kw)


def _listen_addresses(port: int) -> set[str]:
    """Local addresses with a listening TCP socket on ``port``, from /proc/net/tcp."""
    found: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            addr, hexport = fields[1].split(":")
            if int(hexport, 16) == port and fields[3] == "0A":
                found.add(addr)
    return found


def _write_and_read(engine: str, port: int, password: str, value: str | None) -> str | None:
    """Store ``value`` (when given) and read it back, through the engine's own client."""
    if engine == "postgres":
        with psycopg.connect(
            host="127.0.0.1", port=port, user="postgres", password=password, autocommit=True
        ) as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS kv (v text)")
            if value is not None:
                conn.execute("INSERT INTO kv VALUES (%s)", (value,))
            row = conn.execute("SELECT max(v) FROM kv").fetchone()
            return row[0] if row else None
    conn = pymysql.connect(host="127.0.0.1", port=port, user="root", password=password)
    try:
        with conn.cursor() as cur:
            cur.execute("CREATE DATABASE IF NOT EXISTS t")
            cur.execute("CREATE TABLE IF NOT EXISTS t.kv (v varchar(50))")
            if value is not None:
                cur.execute("INSERT INTO t.kv VALUES (%s)", (value,))
                conn.commit()
            cur.execute("SELECT max(v) FROM t.kv")
            row = cur.fetchone()
            return row[0] if row else None
    finally:
        conn.close()


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A real foreign server holding a loopback port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    yield sock
    sock.close()


@pytest.mark.parametrize("engine", ["postgres", "mariadb", "redis"])
def test_full_lifecycle_of_a_real_server(native_runtime: NativeRuntime, engine: str) -> None:
    rt = native_runtime
    port = free_port()
    state = rt.create(_spec("db1", engine, port), PASSWORD)

    assert state.status is InstanceStatus.RUNNING and state.probe_ok is True
    assert state.version == installed_versions(Engine(engine))[-1]
    # Bound to loopback only (0100007F is 127.0.0.1 in /proc/net/tcp).
    assert _listen_addresses(port) == {"0100007F"}
    # Runs as an unprivileged user.
    owner = os.stat(f"/proc/{state.pid}").st_uid
    if os.geteuid() == 0:
        assert owner == pwd.getpwnam(SERVER_USER[engine]).pw_uid
    else:
        assert owner == os.geteuid()

    # The password is required: a wrong one is refused by the server itself.
    wrong = probes.probe(engine, port, "wrong-password")
    assert not wrong.ok and wrong.reachable
    assert "wrong-password" not in wrong.detail
    assert probes.probe(engine, port, PASSWORD).ok

    # A fresh runtime object (SnoozeQL restarted) measures the same reality.
    again = NativeRuntime(rt.settings).status("db1", PASSWORD)
    assert (again.status, again.pid) == (InstanceStatus.RUNNING, state.pid)

    if engine != "redis":  # the fast test settings keep no Redis snapshot
        assert _write_and_read(engine, port, PASSWORD, "kept") == "kept"

    stopped = rt.stop("db1")
    assert stopped.status is InstanceStatus.STOPPED
    assert not port_open(port)
    assert not probes.probe(engine, port, PASSWORD).reachable

    started = rt.start("db1", PASSWORD)
    assert started.status is InstanceStatus.RUNNING
    if engine != "redis":
        assert _write_and_read(engine, port, PASSWORD, None) == "kept"

    restarted = rt.restart("db1", PASSWORD)
    assert restarted.status is InstanceStatus.RUNNING and restarted.pid != started.pid

    assert rt.logs("db1", 5) and len(rt.logs("db1", 5)) <= 5
    assert all(PASSWORD not in line for line in rt.logs("db1", 500))

    root = Path(rt.settings.data_dir) / "instances" / "db1"
    assert root.is_dir()
    assert rt.delete("db1") is None
    assert not root.exists() and rt.names() == []
    assert not port_open(port)
    with pytest.raises(NotFoundError):
        rt.status("db1", PASSWORD)


@pytest.mark.parametrize("engine", ["postgres", "mariadb", "redis"])
def test_a_server_killed_behind_our_back_shows_as_failed_with_its_log(
    native_runtime: NativeRuntime, engine: str
) -> None:
    rt = native_runtime
    state = rt.create(_spec("k1", engine), PASSWORD)
    assert state.pid is not None
    os.kill(state.pid, signal.SIGKILL)
    deadline = time.monotonic() + 15
    while rt.status("k1", PASSWORD).process_alive and time.monotonic() < deadline:
        time.sleep(0.1)

    for runtime in (rt, NativeRuntime(rt.settings)):
        failed = runtime.status("k1", PASSWORD)
        assert failed.status is InstanceStatus.FAILED
        assert "exited" in (failed.detail or "")
        assert failed.log_tail, "the last log lines explain the crash"

    # It can be started again, and a stop after that is a clean "stopped".
    assert rt.start("k1", PASSWORD).status is InstanceStatus.RUNNING
    assert rt.stop("k1").status is InstanceStatus.STOPPED
    assert NativeRuntime(rt.settings).status("k1", None).status is InstanceStatus.STOPPED


def test_servers_outlive_the_process_that_created_them(native_runtime: NativeRuntime) -> None:
    port = free_port()
    script = f"""
import sys
from snoozeql.config import Settings
from snoozeql.domain.engines import LocalDatabaseSpec
from snoozeql.providers.local.native import NativeRuntime
rt = NativeRuntime(Settings(data_dir={str(native_runtime.settings.data_dir)!r}), durable=False)
spec = LocalDatabaseSpec.build(name="cli1", engine="redis", port={port})
print(rt.create(spec, sys.stdin.read()).status)
"""
    out = subprocess.run(
        [sys.executable, "-c", script],
        input=PASSWORD,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert out.stdout.strip() == "running"
    state = native_runtime.status("cli1", PASSWORD)
    assert state.status is InstanceStatus.RUNNING and state.probe_ok
    assert os.getsid(state.pid or 0) == state.pid, "the server leads its own session"
    native_runtime.delete("cli1")


def test_a_port_already_in_use_is_refused_at_create_and_nothing_is_made(
    native_runtime: NativeRuntime, listener: socket.socket
) -> None:
    port = listener.getsockname()[1]
    with pytest.raises(ConflictError, match=f"port {port} .* already in use"):
        native_runtime.create(_spec("busy", "redis", port), PASSWORD)
    assert native_runtime.names() == []
    assert not (native_runtime.instances_dir / "busy").exists()


def test_a_port_taken_while_stopped_is_refused_at_start(native_runtime: NativeRuntime) -> None:
    rt = native_runtime
    port = free_port()
    rt.create(_spec("r1", "redis", port), PASSWORD)
    rt.stop("r1")
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        with pytest.raises(ConflictError, match="already in use"):
            rt.start("r1", PASSWORD)
        assert rt.status("r1", PASSWORD).status is InstanceStatus.STOPPED
    assert rt.start("r1", PASSWORD).status is InstanceStatus.RUNNING


def test_names_and_ports_of_instances_are_unique(native_runtime: NativeRuntime) -> None:
    rt = native_runtime
    port = free_port()
    rt.create(_spec("r1", "redis", port), PASSWORD)
    rt.stop("r1")
    # A stopped instance keeps its port.
    with pytest.raises(ConflictError, match=f"port {port} belongs to local database 'r1'"):
        rt.create(_spec("r2", "redis", port), PASSWORD)
    with pytest.raises(ConflictError, match="already exists"):
        rt.create(_spec("r1", "redis"), PASSWORD)
    assert rt.names() == ["r1"]


def test_urls_connect_with_the_engine_clients(native_runtime: NativeRuntime) -> None:
    rt = native_runtime
    rt.create(_spec("pg", "postgres"), PASSWORD)
    with psycopg.connect(rt.url("pg", PASSWORD)) as conn:
        assert conn.execute("SELECT current_user").fetchone() == ("postgres",)
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(rt.url("pg", "wrong"))


def test_a_version_that_is_not_installed_lists_what_is(native_runtime: NativeRuntime) -> None:
    installed = installed_versions(Engine.POSTGRES)
    with pytest.raises(ValidationError, match="PostgreSQL 9 is not installed here") as info:
        native_runtime.create(_spec("old", "postgres", version="9"), PASSWORD)
    assert all(v in info.value.message for v in installed)
    assert native_runtime.names() == []


def test_a_missing_server_binary_names_the_debian_package(
    native_runtime: NativeRuntime, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Point the PostgreSQL driver at an empty directory: as on a machine without it.
    monkeypatch.setattr(postgres_engine.Postgres, "root", tmp_path)
    with pytest.raises(ActionRefused, match="apt-get install postgresql"):
        native_runtime.create(_spec("pg", "postgres"), PASSWORD)
    assert native_runtime.names() == []


def test_unknown_instances_and_missing_passwords(native_runtime: NativeRuntime) -> None:
    with pytest.raises(NotFoundError, match="no local database named 'ghost'"):
        native_runtime.start("ghost", PASSWORD)
    with pytest.raises(ValidationError, match="password is required"):
        native_runtime.create(_spec("r", "redis"), "")


def test_a_data_dir_the_server_user_cannot_enter_is_refused_clearly(tmp_path: Path) -> None:
    hidden = tmp_path / "private"
    hidden.mkdir(mode=0o700)
    rt = NativeRuntime(Settings(data_dir=hidden / "data"), durable=False)
    if os.geteuid() == 0:
        with pytest.raises(ActionRefused, match="SNOOZEQL_DATA_DIR"):
            rt.create(_spec("r", "redis"), PASSWORD)
        assert rt.names() == []
    else:  # Without root the server runs as us and can enter our own directory.
        assert rt.create(_spec("r", "redis"), PASSWORD).status is InstanceStatus.RUNNING
        rt.delete("r")


def test_a_server_that_dies_at_create_is_cleaned_up_with_its_log(
    native_runtime: NativeRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_argv = postgres_engine.Postgres.argv

    def broken_argv(self: Any, *args: Any) -> list[str]:
        return [*real_argv(self, *args), "-c", "no_such_setting=1"]

    monkeypatch.setattr(postgres_engine.Postgres, "argv", broken_argv)
    with pytest.raises(ProviderError, match="did not become ready") as info:
        native_runtime.create(_spec("bad", "postgres"), PASSWORD)
    assert "no_such_setting" in info.value.message, "the log lines say why"
    assert PASSWORD not in info.value.message
    assert native_runtime.names() == []
    assert not (native_runtime.instances_dir / "bad").exists()


def test_a_server_that_cannot_start_reports_its_log(native_runtime: NativeRuntime) -> None:
    rt = native_runtime
    rt.create(_spec("pg", "postgres"), PASSWORD)
    rt.stop("pg")
    conf = rt.instances_dir / "pg" / "config" / "postgresql.conf"
    conf.write_text(conf.read_text() + "shared_buffers = 'lots'\n")
    with pytest.raises(ProviderError, match="server exited") as info:
        rt.start("pg", PASSWORD)
    assert "shared_buffers" in info.value.message
    # A start that failed leaves nothing running behind: the instance is stopped.
    assert rt.status("pg", PASSWORD).status is InstanceStatus.STOPPED


def test_delete_can_keep_the_data(native_runtime: NativeRuntime) -> None:
    rt = native_runtime
    port = free_port()
    rt.create(_spec("pg", "postgres", port), PASSWORD)
    assert _write_and_read("postgres", port, PASSWORD, "precious") == "precious"
    kept = rt.delete("pg", keep_data=True)
    assert kept is not None and (kept / "data" / "PG_VERSION").is_file()
    assert rt.names() == [] and not port_open(port)
    # The name is free again.
    assert rt.create(_spec("pg", "postgres"), PASSWORD).status is InstanceStatus.RUNNING
