"""Shared test configuration.

Every module in ``tests/support/`` is loaded as a pytest plugin, so fixtures that
start real peers (a moto server, the GCP API test server, database processes) live
there, one module per peer, and any test can ask for them by name.
"""

from __future__ import annotations

import pathlib

_SUPPORT = pathlib.Path(__file__).parent / "support"
pytest_plugins = sorted(
    f"tests.support.{p.stem}" for p in _SUPPORT.glob("*.py") if p.stem != "__init__"
)
