"""In-process runs of the real `snoozeql` command, for CLI tests.

Fixture ``snoozeql_cli`` yields a :class:`CliHarness`. Before the first command it
points the CLI at a fresh SQLite store in ``tmp_path/"data"`` (a copy of the session's
migrated template, see ``tests/support/store.py``) and makes cloud calls
quick to fail (no Price List, two AWS attempts, 1 s connect timeout); tests change
any setting with ``harness.env(NAME=value)`` before the first command. Settings and
the service context are rebuilt for the test and dropped after it, so no state leaks
between tests.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import Result
from typer.testing import CliRunner

from snoozeql.cli import state
from snoozeql.cli.main import app
from snoozeql.config import get_settings
from snoozeql.services.context import Context


class CliHarness:
    def __init__(self, monkeypatch: pytest.MonkeyPatch, data_dir: Path,
                 tmp_path_factory: pytest.TempPathFactory) -> None:
        self._monkeypatch = monkeypatch
        self._tmp_path_factory = tmp_path_factory
        self._seeded = False
        #: False for a test that checks what the CLI itself writes (or refuses to).
        self.seed_store = True
        self._runner = CliRunner()
        self.env(
            SNOOZEQL_DATA_DIR=str(data_dir),
            SNOOZEQL_AWS_PRICE_LIST="false",
            SNOOZEQL_AWS_MAX_ATTEMPTS="2",
            SNOOZEQL_AWS_CONNECT_TIMEOUT="1",
        )
        for name in ("SNOOZEQL_DATABASE_URL", "SNOOZEQL_SECRET_KEY"):
            monkeypatch.delenv(name, raising=False)

    def env(self, **values: str) -> None:
        """Set environment variables and forget the settings read so far."""
        for name, value in values.items():
            self._monkeypatch.setenv(name, value)
        self.reset()

    def reset(self) -> None:
        if state._ctx is not None:
            from snoozeql.services.background_sync import wait_for_history

            wait_for_history(state._ctx)  # a first sync's history read, if one runs
            state._ctx.engine.dispose()
        state._ctx = None
        get_settings.cache_clear()

    def ctx(self) -> Context:
        """The service context the commands use (e.g. to set its clock)."""
        if not self._seeded:
            self._seed_store()
        return state.ctx()

    def _seed_store(self) -> None:
        """Before the first command, put a migrated empty store where the CLI will look,
        unless the test chose a store URL of its own or a store is already there."""
        from tests.support.store import fresh_sqlite_store  # a plugin of its own: load it first

        self._seeded = True
        if not self.seed_store or os.environ.get("SNOOZEQL_DATABASE_URL"):
            return
        path = Path(os.environ["SNOOZEQL_DATA_DIR"]) / "snoozeql.db"
        if not path.exists():
            fresh_sqlite_store(path, self._tmp_path_factory)

    def __call__(self, *args: str, input: str | None = None) -> Result:  # noqa: A002
        if not self._seeded:
            self._seed_store()
        return self._runner.invoke(app, list(args), input=input, catch_exceptions=False)


@pytest.fixture
def snoozeql_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                 tmp_path_factory: pytest.TempPathFactory) -> Iterator[CliHarness]:
    harness = CliHarness(monkeypatch, tmp_path / "data", tmp_path_factory)
    yield harness
    harness.reset()
