"""Store fixtures: every store test runs on SQLite and on the real local PostgreSQL.

Fixtures:
- ``pg_url``: URL of a PostgreSQL database created for this test session (unique
  name, dropped at the end), migrated to head. The server comes from
  ``SNOOZEQL_TEST_PG_URL`` (the test command points it at 127.0.0.1:5432).
- ``store_url`` (parametrised ``sqlite`` / ``postgres``): a migrated, empty store. SQLite
  stores are copies of one template migrated once per session (``fresh_sqlite_store``),
  each given its own store identity; PostgreSQL tests share the session's database,
  emptied before each test.
- ``settings``: Settings whose data_dir is a temporary directory and whose store is
  ``store_url``.
- ``ctx``: a service Context on that store, with a controllable clock
  (``ctx.clock = lambda: ...``).
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from snoozeql.config import Settings
from snoozeql.providers.registry import ProviderRegistry
from snoozeql.services.background_sync import wait_for_history
from snoozeql.services.context import Context
from snoozeql.store import db
from snoozeql.store.schema import full_metadata

DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def admin_pg_url() -> str:
    return os.environ.get("SNOOZEQL_TEST_PG_URL", DEFAULT_PG)


def create_pg_database(prefix: str = "snoozeql_test") -> str:
    admin = sa.engine.make_url(admin_pg_url())
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    engine = sa.create_engine(admin, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as exc:  # pragma: no cover - environment problem
        pytest.fail(
            f"PostgreSQL is not reachable at {admin.render_as_string(hide_password=True)}: "
            f"{exc.orig}. Run the tests through ./test, which starts it."
        )
    finally:
        engine.dispose()
    return admin.set(database=name).render_as_string(hide_password=False)


def drop_pg_database(url: str) -> None:
    name = sa.engine.make_url(url).database
    engine = sa.create_engine(sa.engine.make_url(admin_pg_url()), isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    url = create_pg_database()
    engine = db.create_engine(url)
    db.upgrade(engine)
    engine.dispose()
    yield url
    drop_pg_database(url)


_sqlite_template: Path | None = None


def fresh_sqlite_store(path: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A migrated, empty SQLite store at ``path``: a copy of this session's template
    (migrating a new file costs far more than copying one), with a store identity of its
    own as a newly created store has. Returns its URL."""
    global _sqlite_template
    if _sqlite_template is None:
        template = tmp_path_factory.mktemp("store-template") / "template.db"
        engine = db.create_engine(f"sqlite:///{template}")
        db.upgrade(engine)
        engine.dispose()
        _sqlite_template = template
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(_sqlite_template, path)
    conn = sqlite3.connect(path)
    try:
        with conn:
            conn.execute("UPDATE store_identity SET id = ?", (str(uuid.uuid4()),))
    finally:
        conn.close()
    return f"sqlite:///{path}"


def _truncate_pg(url: str) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        names = [f'"{t.name}"' for t in full_metadata().sorted_tables]
        # The job queue's tables (procrastinate's, installed by the migrations) too.
        names += [f'"{n}"' for n in conn.execute(sa.text(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() "
            "AND tablename LIKE 'procrastinate%'")).scalars()]
        conn.execute(sa.text(f"TRUNCATE {', '.join(names)} CASCADE"))
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path,
              tmp_path_factory: pytest.TempPathFactory) -> str:
    if request.param == "sqlite":
        return fresh_sqlite_store(tmp_path / "store.db", tmp_path_factory)
    url = request.getfixturevalue("pg_url")
    _truncate_pg(url)
    return url


@pytest.fixture
def settings(store_url: str, tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path / "data", database_url=store_url, aws_price_list=False,
        _env_file=None,  # type: ignore[call-arg]
    )


@pytest.fixture
def ctx(settings: Settings) -> Iterator[Context]:
    engine = db.create_engine(settings.effective_database_url)
    c = Context(settings=settings, engine=engine, providers=ProviderRegistry(settings))
    yield c
    # A first sync reads the account's metric history in a background thread: let it
    # end before the store goes (it would hold a connection into the next test).
    wait_for_history(c)
    engine.dispose()
