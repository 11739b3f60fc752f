"""In-process runs of the real `snoozeql` command, for CLI tests.

Fixture ``snoozeql_cli`` yields a :class:`CliHarness`. Before the first command it
points the CLI at a fresh SQLite store in ``tmp_path/"data"`` and makes cloud calls
quick to fail (no Price List, two AWS attempts, 1 s connect timeout); tests change
any setting with ``harness.env(NAME=value)`` before the first command. Settings and
the service context are rebuilt for the test and dropped after it, so no state leaks
between tests.
"""

from __future__ import annotations

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
    def __init__(self, monkeypatch: pytest.MonkeyPatch, data_dir: Path) -> None:
        self._monkeypatch = monkeypatch
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
            state._ctx.engine.dispose()
        state._ctx = None
        get_settings.cache_clear()

    def ctx(self) -> Context:
        """The service context the commands use (e.g. to set its clock)."""
        return state.ctx()

    def __call__(self, *args: str, input: str | None = None) -> Result:  # noqa: A002
        return self._runner.invoke(app, list(args), input=input, catch_exceptions=False)


@pytest.fixture
def snoozeql_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliHarness]:
    harness = CliHarness(monkeypatch, tmp_path / "data")
    yield harness
    harness.reset()
