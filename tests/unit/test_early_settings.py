"""The data directory and the log format read without pydantic-settings agree with
the settings whenever they answer, and leave it to the settings when a ``.env`` file
or two spellings of a variable could change the answer."""

from __future__ import annotations

from pathlib import Path

import pytest

from snoozeql import early_settings
from snoozeql.config import Settings


@pytest.fixture(autouse=True)
def _clean(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import os

    for name in list(os.environ):
        if name.lower().startswith("snoozeql_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


@pytest.mark.parametrize("env", [
    {},
    {"SNOOZEQL_DATA_DIR": "/srv/snooze"},
    {"snoozeql_data_dir": "/srv/lower"},
    {"SNOOZEQL_LOG_JSON": "true"},
    {"SNOOZEQL_LOG_JSON": "0", "SNOOZEQL_DATA_DIR": "relative/dir"},
])
def test_the_early_answers_are_the_settings(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = Settings()
    assert early_settings.data_dir() == settings.data_dir
    log_json = early_settings.log_json()
    assert log_json is None or log_json == settings.log_json
    if not any(n.lower() == "snoozeql_log_json" for n in env):
        assert log_json is False


def test_a_dotenv_file_or_two_spellings_leave_it_to_the_settings(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    (tmp_path / ".env").write_text("SNOOZEQL_DATA_DIR=/from/dotenv\nSNOOZEQL_LOG_JSON=1\n")
    assert early_settings.data_dir() is None and early_settings.log_json() is None
    assert Settings().data_dir == Path("/from/dotenv") and Settings().log_json is True
    monkeypatch.setenv("SNOOZEQL_DATA_DIR", "/from/env")
    assert early_settings.data_dir() == Settings().data_dir == Path("/from/env")
    (tmp_path / ".env").unlink()
    monkeypatch.setenv("snoozeql_data_dir", "/other")
    assert early_settings.data_dir() is None
