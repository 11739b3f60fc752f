"""Engine creation and migrations.

SQLite is the zero-configuration default (a file in the data directory, WAL mode so
the API and the job runner can read while one writes); PostgreSQL (psycopg 3) is the
production store. Alembic migrations run on start and through ``snoozeql migrate``.
"""

from __future__ import annotations

import logging
import re
import time
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from snoozeql.domain.errors import ValidationError

if TYPE_CHECKING:  # Alembic is imported only when a migration runs (CLI start-up)
    from alembic.config import Config

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def safe_url(url: str) -> str:
    """The store URL to show a person: the password replaced by ``***``."""
    return sa.engine.make_url(url).render_as_string(hide_password=True)


def create_engine(url: str, **kwargs: Any) -> sa.Engine:
    """An engine with the per-dialect settings SnoozeQL relies on.

    SQLite keeps the sqlite3 module's own transaction handling: a transaction starts
    at its first write, so reads never hold a snapshot that a concurrent writer could
    invalidate (which fails at once with "database is locked" instead of waiting).
    The price: a SAVEPOINT must not be the first statement of a transaction on
    SQLite, or it commits on its own when released; write first, or avoid it.
    """
    if url.startswith("sqlite"):
        path = sa.engine.make_url(url).database
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 30}, **kwargs
        )

        @sa.event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        return engine
    pinged = "pool_pre_ping" not in kwargs
    engine = sa.create_engine(url, **kwargs)
    if pinged:
        _ping_when_idle(engine)
    return engine


# A pooled PostgreSQL connection is checked (one round trip) before it is handed out
# only when it has not been used for this long: one that served a statement a moment
# ago (or a new one) is taken as alive (a listing request made the check cost as much
# as its page).
# Should the server have gone away in between, the statement fails, SQLAlchemy sees a
# disconnection and discards the whole pool, and the next checkout connects anew.
PING_IDLE_SECONDS = 2.0
_RETURNED = "snoozeql.returned"


def _ping_when_idle(engine: sa.Engine) -> None:
    @sa.event.listens_for(engine, "connect")
    @sa.event.listens_for(engine, "checkin")
    def _fresh(_dbapi_conn: Any, record: Any) -> None:
        record.info[_RETURNED] = time.monotonic()

    @sa.event.listens_for(engine, "checkout")
    def _checked_out(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        returned = record.info.get(_RETURNED)
        if returned is not None and time.monotonic() - returned < PING_IDLE_SECONDS:
            return
        try:
            engine.dialect.do_ping(dbapi_conn)
        except Exception as exc:
            # The pool drops this connection and checks out another (a new one).
            raise sa.exc.DisconnectionError(str(exc)) from exc


def read_connection(engine: sa.Engine) -> sa.Connection:
    """A connection for reads that need no transaction around them (one statement,
    or statements that need no common snapshot: PostgreSQL's READ COMMITTED gives each
    its own anyway). On PostgreSQL it runs in autocommit, which spares the BEGIN before
    the first statement and the ROLLBACK when it goes back to the pool: two round
    trips. SQLite starts no transaction for a read in the first place."""
    conn = engine.connect()
    if engine.dialect.name == "postgresql":
        conn.execution_options(isolation_level="AUTOCOMMIT")
    return conn


def _alembic_config(engine: sa.Engine) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    # Only used for logging by Alembic; the live connection is passed in attributes.
    cfg.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=True))
    return cfg


def upgrade(engine: sa.Engine, revision: str = "head") -> None:
    from alembic import command

    cfg = _alembic_config(engine)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def downgrade(engine: sa.Engine, revision: str) -> None:
    from alembic import command

    cfg = _alembic_config(engine)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, revision)


def migrate(engine: sa.Engine, revision: str, *, down: bool = False) -> None:
    """:func:`upgrade` (or :func:`downgrade`) to ``revision``; ValidationError when
    Alembic refuses it (an unknown revision)."""
    from alembic.util.exc import CommandError

    try:
        if down:
            downgrade(engine, revision)
        else:
            upgrade(engine, revision)
    except CommandError as exc:
        raise ValidationError(f"cannot migrate to {revision!r}: {exc}") from None


def reachable(engine: sa.Engine) -> bool:
    """Whether the store answers a trivial query."""
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except sa.exc.SQLAlchemyError:
        return False
    return True


def current_revision(engine: sa.Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision() -> str | None:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return ScriptDirectory.from_config(cfg).get_current_head()


_REVISION = re.compile(r'^(down_revision|revision)\s*=\s*["\']([^"\']+)["\']', re.MULTILINE)


@cache
def _script_head() -> str | None:
    """The head revision read from the migration files' text, without Alembic; None
    when it is not one plain chain (then Alembic decides)."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in (MIGRATIONS_DIR / "versions").glob("*.py"):
        found = {m.group(1): m.group(2) for m in _REVISION.finditer(path.read_text())}
        if "revision" not in found:
            return None
        revisions.add(found["revision"])
        if "down_revision" in found:
            parents.add(found["down_revision"])
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 else None


def upgrade_if_needed(engine: sa.Engine) -> None:
    """:func:`upgrade` to head, unless the store is there already: every command opens
    the store, and asking Alembic costs more than the rest of a short command."""
    head = _script_head()
    if head is not None:
        try:
            with engine.connect() as conn:
                rows = conn.exec_driver_sql("SELECT version_num FROM alembic_version").all()
        except sa.exc.DBAPIError:
            rows = []
        if [r[0] for r in rows] == [head]:
            return
    upgrade(engine)
