"""Alembic environment: always runs on a connection handed in by store.db."""

from __future__ import annotations

from alembic import context

from snoozeql.store.schema import full_metadata

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only reachable through the alembic CLI
    raise RuntimeError("run migrations through `snoozeql migrate`")

context.configure(
    connection=connection,
    target_metadata=full_metadata(),
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
