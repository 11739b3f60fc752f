"""The store on SQLite and PostgreSQL: migrations, upserts, missing instances, paging."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from uuid import uuid4

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from snoozeql.domain.errors import ValidationError
from snoozeql.domain.types import (
    Account,
    DiscoveredInstance,
    InstanceKind,
    InstanceStatus,
    ProviderKind,
)
from snoozeql.store import accounts, actions, db
from snoozeql.store import instances as inst
from snoozeql.store.instances import InstanceFilter
from snoozeql.store.tables import metadata
from tests.support.store import create_pg_database, drop_pg_database

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def _discovered(i: int, region: str = "us-east-1", **kw) -> DiscoveredInstance:  # noqa: ANN003
    base = dict(
        provider=ProviderKind.AWS,
        provider_id=f"arn:aws:rds:{region}:123456789012:db:db-{i:05d}",
        name=f"db-{i:05d}",
        kind=InstanceKind.INSTANCE,
        engine="postgres" if i % 2 else "mysql",
        engine_version="15.4",
        instance_class="db.t3.micro",
        region=region,
        status=InstanceStatus.RUNNING,
        raw_status="available",
        tags={"env": "dev" if i % 3 else "prod", "team": f"t{i % 5}"},
    )
    base.update(kw)
    return DiscoveredInstance(**base)  # type: ignore[arg-type]


def _account(conn: sa.Connection) -> Account:
    a = Account(id=uuid4(), name=f"acct-{uuid4().hex[:6]}", provider=ProviderKind.AWS,
                config={"regions": ["us-east-1"]})
    accounts.insert(conn, a, T0)
    return a


@pytest.mark.parametrize("dialect", ["sqlite", "postgres"])
def test_migrations_upgrade_downgrade_and_match_tables(dialect: str, tmp_path) -> None:  # noqa: ANN001
    url = f"sqlite:///{tmp_path / 'm.db'}" if dialect == "sqlite" else create_pg_database()
    engine = db.create_engine(url)
    try:
        db.upgrade(engine)
        assert db.current_revision(engine) == db.head_revision()
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), metadata)
        assert diff == [], f"migrations and tables.py disagree: {diff}"
        db.downgrade(engine, "base")
        assert db.current_revision(engine) is None
        assert set(sa.inspect(engine).get_table_names()) <= {"alembic_version"}
        db.upgrade(engine)
        assert "instances" in sa.inspect(engine).get_table_names()
    finally:
        engine.dispose()
        if dialect == "postgres":
            drop_pg_database(url)


def test_upsert_keeps_identity_and_first_seen(ctx) -> None:  # noqa: ANN001
    with ctx.engine.begin() as conn:
        a = _account(conn)
        rows = [inst.discovered_row(_discovered(i), a.id, T0, None) for i in range(2500)]
        assert inst.upsert_batch(conn, rows) == 2500
    with ctx.engine.connect() as conn:
        before = {i.provider_id: i for i in inst.iter_all(conn)}
    assert len(before) == 2500

    later = T0 + timedelta(minutes=5)
    with ctx.engine.begin() as conn:
        rows = [
            inst.discovered_row(
                _discovered(i, status=InstanceStatus.STOPPED, raw_status="stopped"), a.id, later,
                Decimal("1.8"),
            )
            for i in range(2500)
        ]
        inst.upsert_batch(conn, rows)
    with ctx.engine.connect() as conn:
        after = {i.provider_id: i for i in inst.iter_all(conn)}
    assert len(after) == 2500
    sample = after[rows[7]["provider_id"]]
    assert sample.id == before[rows[7]["provider_id"]].id
    assert sample.first_seen_at == T0
    assert sample.last_seen_at == later
    assert sample.status == InstanceStatus.STOPPED
    assert sample.hourly_cost_cents == Decimal("1.8")
    assert sample.tags["team"] == "t2"


def test_missing_since_set_and_cleared(ctx) -> None:  # noqa: ANN001
    with ctx.engine.begin() as conn:
        a = _account(conn)
        other = _account(conn)
        inst.upsert_batch(conn, [inst.discovered_row(_discovered(i), a.id, T0, None)
                                 for i in range(10)])
        inst.upsert_batch(conn, [inst.discovered_row(_discovered(100, region="eu-west-1"),
                                                     other.id, T0, None)])
    t1 = T0 + timedelta(minutes=5)
    with ctx.engine.begin() as conn:
        inst.upsert_batch(conn, [inst.discovered_row(_discovered(i), a.id, t1, None)
                                 for i in range(8)])
        assert inst.mark_missing(conn, a.id, t1) == 2
    with ctx.engine.connect() as conn:
        missing = {i.name for i in inst.iter_all(conn, InstanceFilter(missing=True))}
    # Only this account's unseen instances; the other account is untouched.
    assert missing == {"db-00008", "db-00009"}

    t2 = T0 + timedelta(minutes=10)
    with ctx.engine.begin() as conn:
        inst.upsert_batch(conn, [inst.discovered_row(_discovered(i), a.id, t2, None)
                                 for i in range(10)])
        assert inst.mark_missing(conn, a.id, t2) == 0
    with ctx.engine.connect() as conn:
        assert inst.count(conn, InstanceFilter(missing=True)) == 0
        back = inst.find(conn, name="db-00009")[0]
        assert back.first_seen_at == T0  # the same record came back


@pytest.mark.parametrize("sort", ["name", "-name", "engine", "-region", "status", "hourly_cost"])
def test_cursor_pages_cover_everything_once_in_order(ctx, sort: str) -> None:  # noqa: ANN001
    with ctx.engine.begin() as conn:
        a = _account(conn)
        rows = [inst.discovered_row(_discovered(i, region=("us-east-1", "eu-west-1")[i % 2]),
                                    a.id, T0, Decimal(i % 4) if i % 5 else None)
                for i in range(237)]
        inst.upsert_batch(conn, rows)
    seen: list = []
    cursor = None
    with ctx.engine.connect() as conn:
        while True:
            page, cursor = inst.list_page(conn, InstanceFilter(), sort=sort, limit=50,
                                          cursor=cursor)
            seen.extend(page)
            if cursor is None:
                break
        everything, _ = inst.list_page(conn, InstanceFilter(), sort=sort, limit=1000)
    assert [i.id for i in seen] == [i.id for i in everything]
    assert len({i.id for i in seen}) == 237


def test_filters_by_tag_text_and_fields(ctx) -> None:  # noqa: ANN001
    with ctx.engine.begin() as conn:
        a = _account(conn)
        inst.upsert_batch(conn, [inst.discovered_row(_discovered(i), a.id, T0, None)
                                 for i in range(30)])
    with ctx.engine.connect() as conn:
        prod = inst.count(conn, InstanceFilter(tags={"env": "prod"}))
        assert prod == 10
        both = inst.count(conn, InstanceFilter(tags={"env": "prod", "team": "t0"}))
        assert both == len([i for i in range(30) if i % 3 == 0 and i % 5 == 0])
        assert inst.count(conn, InstanceFilter(tags={"nope": "x"})) == 0
        assert inst.count(conn, InstanceFilter(engine="mysql")) == 15
        assert inst.count(conn, InstanceFilter(text="DB-0001")) == 10
        assert inst.count(conn, InstanceFilter(text="100%")) == 0
        assert inst.count(conn, InstanceFilter(account_id=a.id, status="running")) == 30


def test_bad_cursor_is_a_validation_error(ctx) -> None:  # noqa: ANN001
    with ctx.engine.connect() as conn, pytest.raises(ValidationError):
        inst.list_page(conn, InstanceFilter(), cursor="not-a-cursor")
    with ctx.engine.connect() as conn, pytest.raises(ValidationError, match="cannot sort"):
        inst.list_page(conn, InstanceFilter(), sort="password")


def test_action_log_is_append_only(ctx) -> None:  # noqa: ANN001
    with ctx.engine.begin() as conn:
        actions.append(conn, at=T0, finished_at=T0, actor="cli", action="stop",
                       reason="manual", result="ok", instance_name="db-1")
    with pytest.raises(sa.exc.DBAPIError, match="append-only"), ctx.engine.begin() as conn:
        conn.execute(sa.text("UPDATE actions SET result = 'failed'"))
    with pytest.raises(sa.exc.DBAPIError, match="append-only"), ctx.engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM actions"))
    with ctx.engine.connect() as conn:
        [rec] = actions.list_recent(conn)
    assert rec.result == "ok" and rec.at == T0


def test_naive_timestamps_are_refused(ctx) -> None:  # noqa: ANN001
    with pytest.raises(sa.exc.StatementError, match="naive"), ctx.engine.begin() as conn:
        actions.append(conn, at=datetime(2026, 1, 1), finished_at=None, actor="cli",
                       action="stop", reason="manual", result="ok")
