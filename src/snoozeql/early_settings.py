"""Two settings read without pydantic-settings, for the commands that need them first.

Importing pydantic-settings costs about 0.1-0.2 s of CPU, and ``snoozeql db create``
wants the data directory before that, to start PostgreSQL's ``initdb`` while the rest
of the command loads (:mod:`snoozeql.services.local_ahead`); the top-level callback
wants only the log format. The answer here is exactly what
:class:`~snoozeql.config.Settings` would read when it is certain (the variable is
set, or it is unset and there is no ``.env`` file that could set it); otherwise None,
and the caller reads the settings. Nothing here is trusted further than that: the
native runtime checks that a setup made ahead lies beside the instance it becomes.
"""

from __future__ import annotations

import os
from pathlib import Path

ENV_PREFIX = "SNOOZEQL_"
ENV_FILE = ".env"


def default_data_dir() -> Path:
    """The user's data directory; /var/lib/snoozeql for root.

    Native database servers never run as root, and the system users they run as
    cannot enter /root, so a root install keeps its data where a service would.
    """
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        return Path("/var/lib/snoozeql")
    import platformdirs

    return Path(platformdirs.user_data_dir("snoozeql", appauthor=False))


def _env(field: str) -> tuple[bool, str | None]:
    """(certain, value) of a field's environment variable, matched without regard to
    case as the settings do; not certain when a ``.env`` file could set it or when
    several spellings are set."""
    wanted = (ENV_PREFIX + field).lower()
    values = [v for k, v in os.environ.items() if k.lower() == wanted]
    if len(values) > 1:
        return False, None
    if values:
        return True, values[0]
    return not Path(ENV_FILE).exists(), None


def data_dir() -> Path | None:
    """``SNOOZEQL_DATA_DIR`` or the default, as the settings would have it; None when
    only the settings can tell."""
    certain, value = _env("data_dir")
    if not certain:
        return None
    return Path(value) if value is not None else default_data_dir()


def log_json() -> bool | None:
    """False when nothing sets ``SNOOZEQL_LOG_JSON``; None (ask the settings) when
    something may."""
    certain, value = _env("log_json")
    return False if certain and value is None else None


__all__ = ["ENV_FILE", "ENV_PREFIX", "data_dir", "default_data_dir", "log_json"]
