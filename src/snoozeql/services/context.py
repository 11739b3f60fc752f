"""The objects every service needs, built once per process."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from snoozeql.config import Settings
from snoozeql.observability import Telemetry
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
    # Results derived from the store and kept between requests of this process. Each
    # records the store's data versions it came from (store/versions.py) and is
    # recomputed when they moved, so it is never stale, also across processes.
    memo: dict[str, Any] = field(default_factory=dict)
    memo_lock: threading.Lock = field(default_factory=threading.Lock)
    # The heartbeat renewing this process's leases (services/leases.py), made on first use.
    lease_keeper: Any = None
    # This process's Prometheus series, on a registry of their own (observability.py).
    telemetry: Telemetry = field(default_factory=Telemetry)

    def __setattr__(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)
        # The providers always report their API calls to this context's series, also
        # when a registry is swapped in later (settings changed, a test's own).
        if name in ("providers", "telemetry") and hasattr(self, "telemetry") \
                and isinstance(getattr(self, "providers", None), ProviderRegistry):
            self.providers.telemetry = self.telemetry

    def now(self) -> datetime:
        return self.clock()


def build_context(settings: Settings, *, migrate: bool = True) -> Context:
    engine = db.create_engine(settings.effective_database_url)
    if migrate:
        db.upgrade_if_needed(engine)
    return Context(settings=settings, engine=engine, providers=ProviderRegistry(settings))
