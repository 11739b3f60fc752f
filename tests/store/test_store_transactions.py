"""Transactions behave the same on SQLite as on PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import uuid4

import pytest

from snoozeql.domain.errors import ConflictError
from snoozeql.domain.types import Account, ProviderKind
from snoozeql.store import accounts

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def _account(name: str) -> Account:
    return Account(id=uuid4(), name=name, provider=ProviderKind.AWS, config={})


def test_a_failed_savepoint_keeps_the_rest(ctx) -> None:  # noqa: ANN001
    with ctx.engine.begin() as conn:
        accounts.insert(conn, _account("a1"), T0)
        with pytest.raises(ConflictError), conn.begin_nested():
            accounts.insert(conn, _account("a1"), T0)  # duplicate name: the store says so
        accounts.insert(conn, _account("a2"), T0)
    with ctx.engine.connect() as conn:
        names = sorted(a.name for a in accounts.list_all(conn))
    assert names == ["a1", "a2"]
