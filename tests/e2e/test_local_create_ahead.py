"""Issue 19, item 8: `db create` starts PostgreSQL's initdb ahead, in a staging
directory, while it imports the store and checks the request; a create that is
refused or fails leaves no staging directory and no process behind. Real initdb and
PostgreSQL server processes."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg
import pytest

from snoozeql.cli import db as db_cli_module
from snoozeql.cli import state
from snoozeql.config import Settings
from snoozeql.domain.engines import LocalDatabaseSpec
from snoozeql.domain.errors import ConflictError, ProviderError
from snoozeql.domain.types import InstanceStatus
from snoozeql.providers.local.engines import postgres as postgres_engine
from snoozeql.providers.local.native import STAGING_PREFIX, CreateAhead, NativeRuntime
from snoozeql.providers.local.ports import free_port, port_open
from snoozeql.services import local_ahead
from snoozeql.services.context import Context
from snoozeql.services.local_databases import LocalDatabaseService
from tests.support.cli import CliHarness

PASSWORD = "ahead-pw-1"


def _staging(data_dir: Path) -> list[str]:
    instances = data_dir / "instances"
    if not instances.is_dir():
        return []
    return sorted(p.name for p in instances.iterdir() if p.name.startswith(STAGING_PREFIX))


def _setup_processes(data_dir: Path) -> list[str]:
    """Command lines of live processes working in a staging directory (initdb)."""
    needle = f"{data_dir}/instances/{STAGING_PREFIX}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if needle in cmdline:
            found.append(cmdline.replace(b"\0", b" ").decode(errors="replace"))
    return found


def _left_nothing(data_dir: Path) -> None:
    assert _staging(data_dir) == []
    assert _setup_processes(data_dir) == []


@pytest.fixture
def db_cli(snoozeql_cli: CliHarness, local_data_dir: Path, debian_servers: None) -> CliHarness:
    snoozeql_cli.env(SNOOZEQL_DATA_DIR=str(local_data_dir))
    return snoozeql_cli


def test_db_create_sets_up_ahead_before_it_imports_the_settings_and_the_store(
    tmp_path: Path,
) -> None:
    """In a new process: when the setup ahead starts, neither pydantic-settings nor
    SQLAlchemy nor cryptography is imported yet."""
    code = (
        "import sys\nfrom snoozeql.providers.local import native\n"
        "def spy(self, *args):\n"
        "    print(*(m in sys.modules for m in ('pydantic_settings', 'sqlalchemy', "
        "'cryptography')), self.instances_dir, file=sys.stderr)\n"
        "    raise SystemExit(0)\n"
        "native.NativeRuntime.begin_create = spy\n"
        "sys.argv = ['snoozeql', 'db', 'create', 'pg1', '--engine', 'postgres']\n"
        "from snoozeql.cli.main import app\napp()\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True,
        cwd=tmp_path, env={"SNOOZEQL_DATA_DIR": str(tmp_path / "d"), "PATH": "/usr/bin:/bin",
                           "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")},
    ).stderr.splitlines()
    assert out[-1] == f"False False False {tmp_path / 'd' / 'instances'}"


def test_db_create_runs_initdb_ahead_and_moves_it_into_place(
    db_cli: CliHarness, local_data_dir: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """initdb starts before the store is opened; its generated password is the one
    printed and stored; the staging directory becomes the instance's."""
    events: list[str] = []
    handles: list[CreateAhead | None] = []
    begin, ctx = NativeRuntime.begin_create, state.ctx

    def spy_begin(self: NativeRuntime, *args: Any) -> CreateAhead | None:
        handles.append(begin(self, *args))
        events.append("begin")
        return handles[-1]

    def spy_ctx() -> Context:
        events.append("store")
        return ctx()

    monkeypatch.setattr(NativeRuntime, "begin_create", spy_begin)
    monkeypatch.setattr(state, "ctx", spy_ctx)
    r = db_cli("db", "create", "pg1", "--engine", "postgres")
    assert r.exit_code == 0, r.output
    assert events[:2] == ["begin", "store"]
    [handle] = handles
    assert handle is not None and handle.running is not None
    [line] = [ln for ln in r.stdout.splitlines() if ln.startswith("password: ")]
    password = line.split()[1]
    assert password == handle.password

    root = local_data_dir / "instances" / "pg1"
    assert (root / "data" / "PG_VERSION").is_file() and (root / "instance.json").is_file()
    assert not (root / "config" / ".pwfile").exists()
    assert f"include '{root / 'config' / 'postgresql.conf'}'" in (
        root / "data" / "postgresql.conf").read_text()
    _left_nothing(local_data_dir)
    url = db_cli("db", "url", "pg1").stdout.strip()
    with psycopg.connect(url) as conn:
        assert conn.execute("SHOW port").fetchone() == (url.rsplit(":", 1)[1].split("/")[0],)
    assert db_cli("db", "delete", "pg1", "--yes").exit_code == 0


def test_refused_creates_leave_no_staging_directory_and_no_process(
    db_cli: CliHarness, local_data_dir: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each refusal comes after initdb started ahead (the port, the name in the store,
    the key are checked by the create): it is killed and its directory removed."""
    started: list[CreateAhead] = []
    begin = NativeRuntime.begin_create

    def spy_begin(self: NativeRuntime, *args: Any) -> CreateAhead | None:
        handle = begin(self, *args)
        if handle is not None:
            started.append(handle)
        return handle

    monkeypatch.setattr(NativeRuntime, "begin_create", spy_begin)
    r = db_cli("db", "create", "cache", "--engine", "redis", "--json")
    assert r.exit_code == 0, r.output
    assert started == []  # Redis has nothing to do ahead
    taken = json.loads(r.stdout)["port"]

    # A port held by another process.
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        busy = holder.getsockname()[1]
        r = db_cli("db", "create", "pg1", "--engine", "postgres", "--port", str(busy))
        assert r.exit_code == 2 and "already in use" in r.stderr, r.output
    _left_nothing(local_data_dir)
    # A port that belongs to another local database.
    r = db_cli("db", "create", "pg1", "--engine", "postgres", "--port", str(taken))
    assert r.exit_code == 2 and "belongs to local database 'cache'" in r.stderr, r.output
    _left_nothing(local_data_dir)
    # A secret key that is not a key.
    db_cli.env(SNOOZEQL_SECRET_KEY="not-a-fernet-key")
    r = db_cli("db", "create", "pg1", "--engine", "postgres")
    assert r.exit_code != 0 and "key" in r.output.lower(), r.output
    _left_nothing(local_data_dir)
    monkeypatch.delenv("SNOOZEQL_SECRET_KEY")
    db_cli.reset()
    assert len(started) == 3, "each of them had started initdb ahead"
    assert all(h.running is not None and h.running.proc.returncode is not None
               for h in started)
    # Nothing is started for a name already on disk (the store refuses it too; a name
    # taken while initdb runs: test_a_name_taken_meanwhile...) nor for a request that
    # is wrong on its face.
    for args in (("cache", "--engine", "postgres"), ("Bad_Name", "--engine", "postgres"),
                 ("pg1", "--engine", "oracle"),
                 ("pg1", "--engine", "postgres", "--runtime", "podman")):
        r = db_cli("db", "create", *args)
        assert r.exit_code == 2, r.output
    assert len(started) == 3
    _left_nothing(local_data_dir)
    listed = db_cli("db", "list", "--json", "--cached").stdout
    assert '"name": "cache"' in listed and "pg1" not in listed
    assert sorted(p.name for p in (local_data_dir / "instances").iterdir()
                  if not p.name.startswith(".")) == ["cache"]


def test_ctrl_c_while_the_cli_starts_up_kills_initdb_and_removes_its_directory(
    db_cli: CliHarness, local_data_dir: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[list[str]] = []

    def interrupted(ctx: Context | None = None) -> LocalDatabaseService:
        seen.append(_setup_processes(local_data_dir))  # initdb runs meanwhile
        raise KeyboardInterrupt

    monkeypatch.setattr(db_cli_module, "_service", interrupted)
    r = db_cli("db", "create", "pg1", "--engine", "postgres")
    assert r.exit_code != 0
    assert seen and any("initdb" in cmd for cmd in seen[0]), seen
    _left_nothing(local_data_dir)
    assert not (local_data_dir / "instances" / "pg1").exists()


def test_an_initdb_that_fails_ahead_fails_the_create_and_leaves_nothing(
    local_ctx: Context, monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = postgres_engine.initdb_argv
    monkeypatch.setattr(postgres_engine, "initdb_argv",
                        lambda *a: [*real(*a), "--no-such-option"])
    data_dir = local_ctx.settings.data_dir
    ahead = local_ahead.begin_create(local_ctx.settings.data_dir, name="pg1", engine="postgres",
                                     password=PASSWORD)
    assert ahead is not None
    svc = LocalDatabaseService(local_ctx)
    with pytest.raises(ProviderError, match="initdb failed") as info:
        svc.create(name="pg1", engine="postgres", password=PASSWORD, actor="t", ahead=ahead)
    assert PASSWORD not in info.value.message
    _left_nothing(data_dir)
    assert not (data_dir / "instances" / "pg1").exists()
    assert svc.list_all() == []


def test_a_name_taken_meanwhile_is_refused_and_the_setup_ahead_discarded(
    local_ctx: Context,
) -> None:
    """Two creates of one name: the one that set up ahead loses the race at the
    runtime's lock; its initdb is killed and its directory removed."""
    data_dir = local_ctx.settings.data_dir
    ahead = local_ahead.begin_create(local_ctx.settings.data_dir, name="pg1", engine="postgres",
                                     password=PASSWORD)
    assert ahead is not None and _staging(data_dir)
    runtime = NativeRuntime(local_ctx.settings, durable=False)
    port = free_port()
    runtime.create(LocalDatabaseSpec.build(name="pg1", engine="postgres", port=port), "other")
    try:
        with pytest.raises(ConflictError, match="already exists"):
            runtime.create(
                LocalDatabaseSpec.build(name="pg1", engine="postgres", port=free_port()),
                PASSWORD, ahead)
        _left_nothing(data_dir)
        assert runtime.status("pg1", "other").status is InstanceStatus.RUNNING
    finally:
        runtime.delete("pg1")


def test_a_setup_ahead_made_for_another_request_is_not_used(
    native_runtime: NativeRuntime, local_data_dir: Path,
) -> None:
    """Another password (or name, engine, server): the create does everything itself
    and the setup ahead is discarded."""
    ahead = native_runtime.begin_create("pg1", "postgres", None, "pw-ahead")
    assert ahead is not None
    port = free_port()
    spec = LocalDatabaseSpec.build(name="pg1", engine="postgres", port=port)
    state_ = native_runtime.create(spec, "pw-given", ahead)
    try:
        assert state_.status is InstanceStatus.RUNNING
        _left_nothing(local_data_dir)
        with psycopg.connect(host="127.0.0.1", port=port, user="postgres",
                             password="pw-given", dbname="postgres") as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
    finally:
        native_runtime.delete("pg1")
    assert not port_open(port)


def test_staging_directories_of_dead_creates_are_swept_and_nothing_is_made_in_vain(
    tmp_path: Path, native_runtime: NativeRuntime, local_data_dir: Path,
) -> None:
    instances = local_data_dir / "instances"
    instances.mkdir()
    dead = next(pid for pid in range(4_000_000, 3_000_000, -1)
                if not Path(f"/proc/{pid}").exists())
    stale = instances / f"{STAGING_PREFIX}old-{dead}-0badc0de"
    (stale / "data").mkdir(parents=True)
    mine = instances / f"{STAGING_PREFIX}mine-{os.getpid()}-0badc0de"
    mine.mkdir()
    ahead = native_runtime.begin_create("pg1", "postgres", None, PASSWORD)
    assert ahead is not None
    assert not stale.exists() and mine.exists()
    ahead.discard()
    ahead.discard()  # idempotent
    mine.rmdir()
    _left_nothing(local_data_dir)

    # No data directory yet (a first run), an engine without a setup ahead, a name on
    # disk already: nothing is started.
    fresh = NativeRuntime(Settings(data_dir=tmp_path / "none", secret_key=None))
    assert fresh.begin_create("pg1", "postgres", None, PASSWORD) is None
    assert not (tmp_path / "none").exists()
    assert native_runtime.begin_create("r1", "redis", None, PASSWORD) is None
    (instances / "pg1").mkdir()
    assert native_runtime.begin_create("pg1", "postgres", None, PASSWORD) is None
    _left_nothing(local_data_dir)


def test_a_setup_ahead_that_made_the_instances_directory_removes_it_again(
    native_runtime: NativeRuntime, local_data_dir: Path,
) -> None:
    assert not (local_data_dir / "instances").exists()
    ahead = native_runtime.begin_create("pg1", "postgres", None, PASSWORD)
    assert ahead is not None and (local_data_dir / "instances").is_dir()
    ahead.discard()
    assert not (local_data_dir / "instances").exists()

