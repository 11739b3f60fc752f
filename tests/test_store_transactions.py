"""Transactions behave the same on SQLite as on PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import uuid4

import pytest
import sqlalchemy as sa

from snoozeql.domain.types import Account, ProviderKind
from snoozeql.store import accounts
from snoozeql.store.tables import accounts as accounts_t

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def _account(name: str) -> Account:
    return Account(id=uuid4(), name=name, provider=ProviderKind.AWS, config={})


def test_a_savepoint_first_in_a_transaction_rolls_back_with_it(ctx) -> None:  # noqa: ANN001
    with pytest.raises(RuntimeError), ctx.engine.begin() as conn:
        with conn.begin_nested():
            accounts.insert(conn, _account("inner"), T0)
        accounts.insert(conn, _account("outer"), T0)
        raise RuntimeError("abort the whole transaction")
    with ctx.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(accounts_t)).scalar() == 0


def test_a_failed_savepoint_keeps_the_rest(ctx) -> None:  # noqa: ANN001
    with ctx.engine.begin() as conn:
        accounts.insert(conn, _account("a1"), T0)
        with pytest.raises(sa.exc.IntegrityError), conn.begin_nested():
            accounts.insert(conn, _account("a1"), T0)  # duplicate name
        accounts.insert(conn, _account("a2"), T0)
    with ctx.engine.connect() as conn:
        names = sorted(a.name for a in accounts.list_all(conn))
    assert names == ["a1", "a2"]
