"""Store upkeep the interfaces expose: health checks and migrations."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from alembic.util.exc import CommandError

from snoozeql.config import Settings
from snoozeql.domain.errors import ValidationError
from snoozeql.services.context import Context
from snoozeql.store import db


def store_reachable(ctx: Context) -> bool:
    try:
        with ctx.engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except sa.exc.SQLAlchemyError:
        return False
    return True


@dataclass(frozen=True)
class MigrationReport:
    store: str
    before: str | None
    after: str | None


def migrate(settings: Settings, revision: str = "head", down: bool = False) -> MigrationReport:
    engine = db.create_engine(settings.effective_database_url)
    try:
        before = db.current_revision(engine)
        try:
            if down:
                db.downgrade(engine, revision)
            else:
                db.upgrade(engine, revision)
        except CommandError as exc:  # e.g. an unknown revision
            raise ValidationError(f"cannot migrate to {revision!r}: {exc}") from None
        return MigrationReport(
            engine.url.render_as_string(hide_password=True), before, db.current_revision(engine)
        )
    finally:
        engine.dispose()
