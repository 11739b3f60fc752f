"""The engine registry: an engine's name -> the module that knows everything about it.

Each engine is one small module (as testcontainers keeps one per database) whose object
implements :class:`~snoozeql.providers.local.base.LocalEngine`. The runtimes, the probes
and the metrics collector ask :func:`get` and never branch on an engine's name. Adding
an engine: its facts in the domain catalogue (:mod:`snoozeql.domain.engines`), one
module here, one line in :data:`ENGINES`.
"""

from __future__ import annotations

from snoozeql.domain.engines import Engine, parse_engine
from snoozeql.providers.local.base import LocalEngine
from snoozeql.providers.local.engines import mongodb, mysql, postgres, redis

ENGINES: dict[Engine, LocalEngine] = {
    Engine.POSTGRES: postgres.ENGINE,
    Engine.MYSQL: mysql.MYSQL,
    Engine.MARIADB: mysql.MARIADB,
    Engine.REDIS: redis.ENGINE,
    Engine.MONGODB: mongodb.ENGINE,
}


def get(engine: str | Engine) -> LocalEngine:
    """The engine module's object for a name or alias (``pg``, ``mongo``); an unknown
    name is a ValidationError that lists the engines."""
    return ENGINES[parse_engine(engine)]


__all__ = ["ENGINES", "get"]
