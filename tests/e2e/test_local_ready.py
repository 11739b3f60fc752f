"""Local PostgreSQL says itself when it is ready (systemd's notify protocol), and a
create reports its steps while it waits. Real server processes."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import psycopg
import pytest

from snoozeql.config import Settings
from snoozeql.domain.engines import LocalDatabaseSpec
from snoozeql.domain.types import InstanceStatus
from snoozeql.providers.local import process
from snoozeql.providers.local.native import NativeRuntime
from snoozeql.providers.local.ports import free_port

PASSWORD = "ready-pw"


def test_postgres_create_waits_for_the_servers_own_ready_signal(
    native_runtime: NativeRuntime, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    said: list[bool] = []
    sockets: list[Path] = []
    wait = process.ReadySignal.wait

    def spy(self: Any, timeout: float, alive: Any) -> bool:  # noqa: ANN401
        sockets.append(self.path)
        said.append(wait(self, timeout, alive))
        return said[-1]

    monkeypatch.setattr(process.ReadySignal, "wait", spy)
    caplog.set_level(logging.INFO, logger="snoozeql.providers.local")
    port = free_port()
    state = native_runtime.create(
        LocalDatabaseSpec.build(name="ready1", engine="postgres", port=port), PASSWORD
    )
    assert said == [True]  # READY=1 came from the server, not from polling
    assert state.status is InstanceStatus.RUNNING
    assert not sockets[0].parent.exists()  # the notify socket is cleaned up
    with psycopg.connect(host="127.0.0.1", port=port, user="postgres", password=PASSWORD,
                         dbname="postgres") as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    steps = [r.getMessage() for r in caplog.records if r.name == "snoozeql.providers.local.native"]
    assert [s.split()[0] for s in steps] == ["initialising", "starting", "waiting"]


def test_a_server_that_never_says_ready_is_still_probed(
    native_runtime: NativeRuntime, monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A build without systemd support sends nothing: the probe decides.
    monkeypatch.setattr(process.ReadySignal, "env", lambda self: {})
    monkeypatch.setattr(process.ReadySignal, "wait",
                        lambda self, timeout, alive: False)
    state = native_runtime.create(
        LocalDatabaseSpec.build(name="ready2", engine="postgres", port=free_port()), PASSWORD
    )
    assert state.status is InstanceStatus.RUNNING


def test_initdb_runs_without_fsync_even_for_durable_servers(
    local_data_dir: Path, debian_servers: None, monkeypatch: pytest.MonkeyPatch,
) -> None:
    runtime = NativeRuntime(Settings(data_dir=local_data_dir, secret_key=None), durable=True)
    seen: list[list[str]] = []
    run = process.SetupRunner.__call__

    def spy(self: Any, argv: list[str], *a: Any, **kw: Any) -> None:  # noqa: ANN401
        seen.append(argv)
        run(self, argv, *a, **kw)

    monkeypatch.setattr(process.SetupRunner, "__call__", spy)
    port = free_port()
    runtime.create(LocalDatabaseSpec.build(name="durable1", engine="postgres", port=port),
                   PASSWORD)
    initdb = next(a for a in seen if a[0].endswith("/initdb"))
    assert "--no-sync" in initdb
    with psycopg.connect(host="127.0.0.1", port=port, user="postgres", password=PASSWORD,
                         dbname="postgres") as conn:
        assert conn.execute("SHOW fsync").fetchone() == ("on",)


def test_db_create_shows_each_step_on_its_status_line() -> None:
    from snoozeql.cli.db import _progress

    class Status:
        lines: list[str] = []

        def update(self, text: str) -> None:
            self.lines.append(text)

    status = Status()
    source = logging.getLogger("snoozeql.providers.local")
    with _progress(status, "pg1"):
        source.info("starting %s on port %d", "postgres", 5432)
    source.info("not shown: the create is over")
    assert len(status.lines) == 1
    assert status.lines[0].startswith("creating pg1: starting postgres on port 5432 (")
