"""The CLI's lazily built service context (one per process)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported when first used: the CLI starts without the store
    from snoozeql.services.context import Context

_ctx: Context | None = None

ACTOR = "cli"


def ctx() -> Context:
    global _ctx
    if _ctx is None:
        from snoozeql.config import get_settings
        from snoozeql.services.context import build_context

        _ctx = build_context(get_settings())
    return _ctx


def configure_logging(level: str, as_json: bool = False) -> None:
    from snoozeql.logging import setup

    setup(level, as_json)
    logging.getLogger("botocore").setLevel(logging.WARNING)
    # Alembic names each of its plugins as it loads them; the migrations it runs still log.
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    # procrastinate writes several lines per job (start, end, deferrals); SnoozeQL's own
    # line per task run carries the same (task id, job id, worker, result, duration).
    # Its warnings and errors stay; SNOOZEQL_LOG_LEVEL=DEBUG (or -v) shows everything.
    logging.getLogger("procrastinate").setLevel(
        logging.DEBUG if level.upper() == "DEBUG" else logging.WARNING)
