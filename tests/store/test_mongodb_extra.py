"""Issue 14, item 14: pymongo is the optional extra ``snoozeql[mongodb]``; without it,
MongoDB is refused with a message naming the extra, never a bare ModuleNotFoundError."""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from snoozeql.api.app import create_app
from snoozeql.providers.local import probes
from snoozeql.providers.local.metrics import LocalTarget, connections
from snoozeql.services.apikeys import ApiKeyService
from tests.support.cli import CliHarness

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def no_pymongo(monkeypatch: pytest.MonkeyPatch) -> None:
    """As if pymongo were not installed: importing it raises ImportError."""
    for name in [m for m in sys.modules if m == "pymongo" or m.startswith("pymongo.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "pymongo", None)


def test_pyproject_declares_the_mongodb_extra() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert any(d.startswith("pymongo") for d in project["optional-dependencies"]["mongodb"])
    assert not any(d.startswith("pymongo") for d in project["dependencies"])


def test_cli_create_without_pymongo_names_the_extra(
    snoozeql_cli: CliHarness, no_pymongo: None
) -> None:
    for runtime in ("native", "docker"):
        r = snoozeql_cli("db", "create", "m1", "--engine", "mongodb", "--runtime", runtime)
        assert r.exit_code == 1, r.output
        assert "pip install 'snoozeql[mongodb]'" in r.output
        assert "ModuleNotFoundError" not in r.output and "Traceback" not in r.output
    assert snoozeql_cli("db", "list", "--json").stdout.strip() == "[]"


def test_api_create_without_pymongo_is_409_naming_the_extra(ctx, no_pymongo: None) -> None:  # noqa: ANN001
    key = ApiKeyService(ctx).create("op", "operator")[1]
    client = TestClient(create_app(ctx), raise_server_exceptions=False)
    r = client.post("/api/v1/instances", headers={"X-API-Key": key},
                    json={"name": "m1", "engine": "mongodb"})
    assert r.status_code == 409, r.text
    assert "snoozeql[mongodb]" in r.json()["error"]["message"]


def test_probe_and_metrics_without_pymongo_name_the_extra(no_pymongo: None) -> None:
    result = probes.probe("mongodb", 1, "pw", timeout=0.5)
    assert not result.ok and "snoozeql[mongodb]" in (result.detail or "")
    from snoozeql.providers.local.engines.mongodb import MissingExtra

    target = LocalTarget(key="m1", name="m1", engine="mongodb", port=1, password="pw")
    with pytest.raises(MissingExtra, match=r"snoozeql\[mongodb\]"):
        connections(target, 0.5)
