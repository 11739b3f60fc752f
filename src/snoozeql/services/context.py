"""The objects every service needs, built once per process."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import sqlalchemy as sa

from snoozeql.config import Settings
from snoozeql.providers.registry import ProviderRegistry
from snoozeql.store import db

log = logging.getLogger(__name__)


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class Context:
    settings: Settings
    engine: sa.Engine
    providers: ProviderRegistry
    clock: Callable[[], datetime] = field(default=utcnow)

    def now(self) -> datetime:
        return self.clock()


def build_context(settings: Settings, *, migrate: bool = True) -> Context:
    engine = db.create_engine(settings.effective_database_url)
    if migrate:
        db.upgrade(engine)
    return Context(settings=settings, engine=engine, providers=ProviderRegistry(settings))
