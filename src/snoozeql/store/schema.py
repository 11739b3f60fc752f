"""The one ``MetaData`` every table is defined on, and where to find them all.

Each feature module of the store defines its tables on :data:`metadata`; nothing here
imports them, so a feature module never imports another just to be registered.
Migrations and the schema check call :func:`full_metadata`, which loads every module
that defines tables.
"""

from __future__ import annotations

import importlib

import sqlalchemy as sa

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
    }
)

# Every store module that defines tables on ``metadata``.
TABLE_MODULES: tuple[str, ...] = (
    "snoozeql.store.accounts",
    "snoozeql.store.actions",
    "snoozeql.store.apikeys",
    "snoozeql.store.identity",
    "snoozeql.store.instances",
    "snoozeql.store.job_runs",
    "snoozeql.store.jobs",
    "snoozeql.store.metrics",
    "snoozeql.store.prices",
    "snoozeql.store.recommendations",
    "snoozeql.store.schedules",
    "snoozeql.store.secrets",
    "snoozeql.store.stacks",
    "snoozeql.store.sync_parts",
    "snoozeql.store.versions",
    "snoozeql.store.web_sessions",
)


def full_metadata() -> sa.MetaData:
    """The metadata with every table of the schema defined on it."""
    for name in TABLE_MODULES:
        importlib.import_module(name)
    return metadata
