"""Shared test configuration.

The tests come in three tiers, one folder each; the folder sets the marker:

- ``tests/unit``: pure logic (domain rules, parsers, planners, analysis). No store, no
  network, no processes; ``./test --fast`` runs this tier alone.
- ``tests/store``: services, API and CLI in process over a real store, on SQLite and on
  the local PostgreSQL (tests on PostgreSQL also carry the ``postgres`` marker).
- ``tests/e2e``: everything that talks to an outside peer: a moto server, the GCP API
  test server, database server processes, a real ``snoozeql serve``, Chromium.

Every module in ``tests/support/`` is loaded as a pytest plugin, so fixtures that
start real peers (a moto server, the GCP API test server, database processes) live
there, one module per peer, and any test can ask for them by name.
"""

from __future__ import annotations

import os
import pathlib
import tempfile

import pytest

_SUPPORT = pathlib.Path(__file__).parent / "support"
pytest_plugins = sorted(
    f"tests.support.{p.stem}" for p in _SUPPORT.glob("*.py") if p.stem != "__init__"
)

# Every outside peer of the tests (moto, the GCP API server, webhook receivers, stubs)
# listens on loopback, and key files are written under pytest's temporary folders: allow
# both for every test and every `snoozeql` process a test starts (the environment is
# inherited). Tests of the allow-list itself pass their own settings.
os.environ.setdefault("SNOOZEQL_ALLOWED_ENDPOINTS", '["127.0.0.1", "localhost", "[::1]"]')
os.environ.setdefault("SNOOZEQL_CREDENTIALS_DIR", tempfile.gettempdir())


_TESTS = pathlib.Path(__file__).parent
TIERS = ("unit", "store", "e2e")


def _on_postgres(item: pytest.Item) -> bool:
    fixtures = getattr(item, "fixturenames", ())
    callspec = getattr(item, "callspec", None)
    params = callspec.params if callspec is not None else {}
    return "pg_url" in fixtures or params.get("store_url") == "postgres"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        parts = item.path.relative_to(_TESTS).parts
        if parts and parts[0] in TIERS:
            item.add_marker(getattr(pytest.mark, parts[0]))
        if _on_postgres(item):
            item.add_marker(pytest.mark.postgres)


@pytest.fixture(scope="session", autouse=True)
def _credentials_dir_is_pytest_tmp(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Key files come from tmp_path folders: make sure they count as the credentials
    directory even when pytest's base temp is not under the system temp folder."""
    base = tmp_path_factory.getbasetemp().resolve()
    current = pathlib.Path(os.environ["SNOOZEQL_CREDENTIALS_DIR"]).resolve()
    if not base.is_relative_to(current):
        os.environ["SNOOZEQL_CREDENTIALS_DIR"] = str(base)
