"""The unit tier: pure logic only.

A unit test that reaches for a store or the network fails here with the reason, rather
than passing slowly or depending on a service: such a test belongs in ``tests/store`` or
``tests/e2e``.
"""

from __future__ import annotations

import socket
from typing import Any

import pytest

_MOVE = "unit tests use no store, network or processes: move this test to tests/store or tests/e2e"


@pytest.fixture
def store_url() -> str:
    pytest.fail(f"store_url asked for in the unit tier; {_MOVE}")


@pytest.fixture
def pg_url() -> str:
    pytest.fail(f"pg_url asked for in the unit tier; {_MOVE}")


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(self: socket.socket, address: Any) -> None:
        raise AssertionError(f"network connection to {address!r} from the unit tier; {_MOVE}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
