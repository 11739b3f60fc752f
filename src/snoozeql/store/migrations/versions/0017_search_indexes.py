"""Indexes for search, tag filters and sorts of the instance listing.

- ``q=`` (substring over name, provider id, engine, endpoint): on PostgreSQL, trigram
  GIN indexes (``pg_trgm``) on the lowered columns the query compares; on SQLite, an
  FTS5 table with the trigram tokenizer (``instances_search``, external content kept
  in step by triggers). If ``pg_trgm`` cannot be created (no superuser, extension
  not installed) or SQLite has no FTS5 trigram tokenizer, the migration logs a warning
  and searches scan the table as before: same answers, slower.
- ``tag=k=v``: a GIN index (``jsonb_path_ops``) on ``tags`` on PostgreSQL; on SQLite a
  table of (instance, key, value) rows (``instance_tags``) kept in step by triggers.
- sorts: ``(sort key, id)`` indexes for every sort key of the listing but
  ``last_seen_at``, which is derived from the account's last sync.
- filters with the default sort: ``(column, name, id)`` for provider, engine, status,
  region and kind, and a partial ``(name, id)`` index of the missing instances.

None of these objects is in the store's table definitions: they are not tables the code
writes, and ``store/search.py`` names them for the schema comparison.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-01
"""

from __future__ import annotations

import logging

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

log = logging.getLogger("snoozeql.store.migrations")

# (index name, indexed expression) for the sort keys: the expressions are exactly the
# ones store/instances.py orders by.
_SORT_INDEXES = (
    ("ix_instances_sort_engine", "engine, id"),
    ("ix_instances_sort_provider", "provider, id"),
    ("ix_instances_sort_status", "status, id"),
    ("ix_instances_sort_region", "coalesce(region, ''), id"),
    ("ix_instances_sort_instance_class", "coalesce(instance_class, ''), id"),
    ("ix_instances_sort_hourly_cost", "coalesce(hourly_cost_cents, -1), id"),
    ("ix_instances_sort_first_seen_at", "first_seen_at, id"),
)
# A filter on one of these columns with the default sort (name) reads its page from
# (column, name, id); so does "missing=true" from a partial index.
_FILTER_INDEXES = (
    ("ix_instances_filter_provider", "provider, name, id"),
    ("ix_instances_filter_engine", "engine, name, id"),
    ("ix_instances_filter_status", "status, name, id"),
    ("ix_instances_filter_region", "region, name, id"),
    ("ix_instances_filter_kind", "kind, name, id"),
)
_MISSING_INDEX = "ix_instances_filter_missing"
# The lowered columns a search compares (store/instances.py, _search_columns).
_TRGM_INDEXES = (
    ("ix_instances_trgm_name", "lower(name)"),
    ("ix_instances_trgm_provider_id", "lower(provider_id)"),
    ("ix_instances_trgm_engine", "lower(engine)"),
    ("ix_instances_trgm_endpoint_host", "lower(coalesce(endpoint_host, ''))"),
)
_FTS_COLUMNS = "name, provider_id, engine, endpoint_host"


def upgrade() -> None:
    bind = op.get_bind()
    for name, expr in _SORT_INDEXES + _FILTER_INDEXES:
        op.execute(f"CREATE INDEX {name} ON instances ({expr})")
    op.execute(f"CREATE INDEX {_MISSING_INDEX} ON instances (name, id) "
               "WHERE missing_since IS NOT NULL")
    if bind.dialect.name == "postgresql":
        _upgrade_pg(bind)
    else:
        _upgrade_sqlite(bind)


# GIN indexes take new entries into a pending list that every search reads in full
# until it is merged (by VACUUM, or by an insert once it exceeds this many kB). With
# the default limit (4 MB) a search after a big sync read megabytes of pending
# entries: 40 ms for a term that matches nothing, 0.6 ms once merged. A small limit
# keeps the list short; inserts merge it more often.
_GIN_OPTIONS = "WITH (gin_pending_list_limit = 64)"


def _upgrade_pg(bind: sa.Connection) -> None:
    op.execute("CREATE INDEX ix_instances_tags ON instances USING gin (tags jsonb_path_ops) "
               f"{_GIN_OPTIONS}")
    try:
        with bind.begin_nested():
            bind.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    except sa.exc.DBAPIError as exc:
        log.warning(
            "could not create the pg_trgm extension (%s); instance search will scan the "
            "table. Run CREATE EXTENSION pg_trgm as a superuser, then "
            "`snoozeql migrate --down 0016 && snoozeql migrate`.", exc.orig,
        )
        return
    for name, expr in _TRGM_INDEXES:
        op.execute(f"CREATE INDEX {name} ON instances USING gin (({expr}) gin_trgm_ops) "
                   f"{_GIN_OPTIONS}")


def _upgrade_sqlite(bind: sa.Connection) -> None:
    op.execute(
        "CREATE TABLE instance_tags (instance_id CHAR(32) NOT NULL, key TEXT NOT NULL, "
        "value TEXT)"
    )
    op.execute("CREATE INDEX ix_instance_tags_key_value ON instance_tags (key, value, instance_id)")
    op.execute("CREATE INDEX ix_instance_tags_instance_id ON instance_tags (instance_id)")
    add_tags = ("INSERT INTO instance_tags (instance_id, key, value) "
                "SELECT new.id, j.key, j.value FROM json_each(new.tags) AS j;")
    drop_tags = "DELETE FROM instance_tags WHERE instance_id = old.id;"
    op.execute(f"CREATE TRIGGER instances_tags_ai AFTER INSERT ON instances BEGIN {add_tags} END")
    op.execute(
        f"CREATE TRIGGER instances_tags_au AFTER UPDATE OF tags ON instances "
        f"BEGIN {drop_tags} {add_tags} END"
    )
    op.execute(f"CREATE TRIGGER instances_tags_ad AFTER DELETE ON instances BEGIN {drop_tags} END")
    op.execute(
        "INSERT INTO instance_tags (instance_id, key, value) "
        "SELECT i.id, j.key, j.value FROM instances AS i, json_each(i.tags) AS j"
    )
    try:
        with bind.begin_nested():
            bind.exec_driver_sql(
                f"CREATE VIRTUAL TABLE instances_search USING fts5({_FTS_COLUMNS}, "
                "content='instances', tokenize='trigram')"
            )
    except sa.exc.DBAPIError as exc:
        log.warning(
            "SQLite here has no FTS5 trigram tokenizer (%s; it needs 3.34 or later); "
            "instance search will scan the table.", exc.orig,
        )
        return
    new = ", ".join(f"new.{c.strip()}" for c in _FTS_COLUMNS.split(","))
    old = ", ".join(f"old.{c.strip()}" for c in _FTS_COLUMNS.split(","))
    add = f"INSERT INTO instances_search (rowid, {_FTS_COLUMNS}) VALUES (new.rowid, {new});"
    drop = (f"INSERT INTO instances_search (instances_search, rowid, {_FTS_COLUMNS}) "
            f"VALUES ('delete', old.rowid, {old});")
    op.execute(f"CREATE TRIGGER instances_search_ai AFTER INSERT ON instances BEGIN {add} END")
    op.execute(
        f"CREATE TRIGGER instances_search_au AFTER UPDATE OF {_FTS_COLUMNS} ON instances "
        f"BEGIN {drop} {add} END"
    )
    op.execute(f"CREATE TRIGGER instances_search_ad AFTER DELETE ON instances BEGIN {drop} END")
    op.execute("INSERT INTO instances_search (instances_search) VALUES ('rebuild')")


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        for name, _ in _TRGM_INDEXES:
            op.execute(f"DROP INDEX IF EXISTS {name}")
        op.execute("DROP INDEX IF EXISTS ix_instances_tags")
        # pg_trgm stays: other databases' objects may use it, and it is harmless.
    else:
        for trig in ("instances_search_ai", "instances_search_au", "instances_search_ad",
                     "instances_tags_ai", "instances_tags_au", "instances_tags_ad"):
            op.execute(f"DROP TRIGGER IF EXISTS {trig}")
        op.execute("DROP TABLE IF EXISTS instances_search")
        op.execute("DROP TABLE IF EXISTS instance_tags")
    for name, _ in _SORT_INDEXES + _FILTER_INDEXES:
        op.execute(f"DROP INDEX IF EXISTS {name}")
    op.execute(f"DROP INDEX IF EXISTS {_MISSING_INDEX}")
