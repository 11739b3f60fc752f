"""Which store owns the local-database directory, and what ``snoozeql info`` shows.

Local databases keep their files in ``<data_dir>/instances/`` while their records live
in the store. The data directory does not depend on the store URL (as root it is
``/var/lib/snoozeql`` for every store on the machine), so two stores could otherwise
share one directory and one would see "already exists" for a database it never made.
The first store to create a local database there writes its id into a marker file,
``<data_dir>/instances/.snoozeql-store``; any other store is refused with the reason and
the way out (a ``SNOOZEQL_DATA_DIR`` of its own).
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

from snoozeql import __version__
from snoozeql.config import Settings, default_data_dir
from snoozeql.domain.errors import ConflictError
from snoozeql.providers.local.docker import DEFAULT_DOCKER_URL
from snoozeql.services.context import Context
from snoozeql.store import identity

MARKER_NAME = ".snoozeql-store"


def instances_dir(settings: Settings) -> Path:
    return settings.data_dir / "instances"


def marker_path(settings: Settings) -> Path:
    return instances_dir(settings) / MARKER_NAME


def store_id(ctx: Context) -> str:
    """The store's id (read once per process: it never changes)."""
    cached = ctx.memo.get("store_id")
    if isinstance(cached, str):
        return cached
    with ctx.engine.begin() as conn:
        found = identity.store_id(conn)
    ctx.memo["store_id"] = found
    return found


def marker_owner(settings: Settings) -> str | None:
    """The store id in the marker, or None when there is no marker."""
    try:
        return marker_path(settings).read_text(encoding="utf-8").strip() or None
    except FileNotFoundError:
        return None


def _refusal(settings: Settings, owner: str, mine: str) -> ConflictError:
    return ConflictError(
        f"the local-database directory {instances_dir(settings)} belongs to another "
        f"SnoozeQL store (id {owner}); this store's id is {mine}. Give this store a data "
        "directory of its own with SNOOZEQL_DATA_DIR (see 'snoozeql info')"
    )


def check_local_dir(ctx: Context, *, claim: bool) -> None:
    """Refuse when the local-database directory belongs to another store.

    With ``claim`` (creating a local database) an unmarked directory becomes this
    store's: the marker is created exclusively, so of two stores racing, one wins and
    the other is refused."""
    settings = ctx.settings
    mine = store_id(ctx)
    owner = marker_owner(settings)
    if owner is None and claim:
        directory = instances_dir(settings)
        directory.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):
            fd = os.open(marker_path(settings), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(mine + "\n")
        owner = marker_owner(settings)
    if owner is not None and owner != mine:
        raise _refusal(settings, owner, mine)


@dataclass(frozen=True)
class Info:
    """What ``snoozeql info`` prints: where this installation keeps what."""

    version: str
    data_dir: Path
    data_dir_source: str
    store_url: str
    store_id: str | None
    store_error: str | None
    key_file: str
    docker_host: str
    jobs: bool
    local_dir: Path
    local_dir_owner: str | None


def info(settings: Settings, ctx: Context | None, store_error: str | None = None) -> Info:
    """Facts about this installation; ``ctx`` is None when the store could not be opened."""
    from snoozeql.services.secrets import KEY_FILE_NAME
    from snoozeql.store.db import safe_url

    try:
        url = safe_url(settings.effective_database_url)
    except Exception:  # noqa: BLE001 - never shown as written: it may hold a password
        url = "(not a valid database URL)"
    sid = None
    if ctx is not None:
        from snoozeql.services.maintenance import store_reachable

        if not store_reachable(ctx):
            store_error = "store not reachable"
        else:
            try:
                sid = store_id(ctx)
            except Exception:  # noqa: BLE001 - reported, not raised: info must print
                store_error = "store not initialised (run: snoozeql migrate)"
    if settings.secret_key:
        key = "SNOOZEQL_SECRET_KEY (from the environment)"
    else:
        key = str(settings.data_dir / KEY_FILE_NAME)
    docker = settings.docker_host or os.environ.get("DOCKER_HOST") or DEFAULT_DOCKER_URL
    return Info(
        version=__version__, data_dir=settings.data_dir,
        data_dir_source=("default" if settings.data_dir == default_data_dir()
                         else "SNOOZEQL_DATA_DIR"),
        store_url=url, store_id=sid, store_error=store_error, key_file=key,
        docker_host=docker, jobs=settings.jobs_enabled, local_dir=instances_dir(settings),
        local_dir_owner=marker_owner(settings),
    )
