"""Store upkeep the interfaces expose: health checks and migrations."""

from __future__ import annotations

from dataclasses import dataclass

from snoozeql.config import Settings
from snoozeql.services.context import Context
from snoozeql.store import db


def store_reachable(ctx: Context) -> bool:
    return db.reachable(ctx.engine)


@dataclass(frozen=True)
class MigrationReport:
    store: str
    before: str | None
    after: str | None


def migrate(settings: Settings, revision: str = "head", down: bool = False) -> MigrationReport:
    engine = db.create_engine(settings.effective_database_url)
    try:
        before = db.current_revision(engine)
        db.migrate(engine, revision, down=down)
        return MigrationReport(
            db.safe_url(settings.effective_database_url), before, db.current_revision(engine)
        )
    finally:
        engine.dispose()
