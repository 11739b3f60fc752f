"""Fixtures for the local-database service, API and CLI tests.

``local_ctx`` is the ``ctx`` of tests/support/store.py (parametrised over SQLite and
PostgreSQL) but with its data directory in ``local_data_dir``, which the servers'
unprivileged users can enter, and with the real provider registry: the ``local`` and
``docker`` providers are the ones the product builds.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from snoozeql.config import Settings
from snoozeql.providers.registry import ProviderRegistry
from snoozeql.services.context import Context
from snoozeql.store import db
from snoozeql.store.schema import full_metadata


def local_settings(store_url: str, data_dir: Path, **extra: object) -> Settings:
    return Settings(
        data_dir=data_dir, database_url=store_url, aws_price_list=False,
        _env_file=None,  # type: ignore[call-arg]
        **extra,  # type: ignore[arg-type]
    )


@pytest.fixture
def local_ctx(store_url: str, local_data_dir: Path, debian_servers: None) -> Iterator[Context]:
    settings = local_settings(store_url, local_data_dir)
    engine = db.create_engine(settings.effective_database_url)
    c = Context(settings=settings, engine=engine, providers=ProviderRegistry(settings))
    yield c
    engine.dispose()


def store_dump(ctx: Context) -> str:
    """Every row of every table, as text: to prove a secret is not stored in clear."""
    parts: list[str] = []
    with ctx.engine.connect() as conn:
        for table in full_metadata().sorted_tables:
            for row in conn.execute(sa.select(table)):
                parts.append(repr(tuple(row)))
    return "\n".join(parts)
