"""The part of a local database's create that starts before the create is checked.

``snoozeql db create`` spends about a third of a second importing its modules (the
store, SQLAlchemy, the encryption) and opening the store before it can check the
request, and PostgreSQL's ``initdb`` then takes about twice that. Neither needs the
other: :func:`begin_create`, called first with the command's arguments and the
settings only, starts the native runtime's setup ahead (initdb in a staging directory,
:meth:`~snoozeql.providers.local.native.NativeRuntime.begin_create`) and returns its
handle; :meth:`LocalDatabaseService.create
<snoozeql.services.local_databases.LocalDatabaseService.create>` checks everything as
before, then moves it into place, or discards it (the process killed, the directory
removed) when the create is refused or fails.

This module imports only the native runtime's modules (no settings, store,
SQLAlchemy or cryptography), so calling it costs a few milliseconds.
"""

from __future__ import annotations

import logging
from pathlib import Path

from snoozeql.domain.engines import Runtime, parse_runtime, validate_name
from snoozeql.domain.errors import SnoozeError
from snoozeql.providers.local.native import CreateAhead, DataDir, NativeRuntime
from snoozeql.services.passwords import generate_password, validate_password

log = logging.getLogger(__name__)


def begin_create(
    data_dir: Path,
    *,
    name: str,
    engine: str,
    version: str | None = None,
    password: str | None = None,
    runtime: str = Runtime.NATIVE.value,
) -> CreateAhead | None:
    """Start what a native create of ``name`` can do ahead, or None (nothing to do
    ahead, or the request is invalid: the create says why). Never raises for a bad
    request. ``data_dir`` is the settings' (read without pydantic-settings where it
    can be: :mod:`snoozeql.early_settings`). Without ``password`` one is generated here;
    the create uses the handle's (:attr:`CreateAhead.password`) and prints it as
    generated.

    The caller passes the handle to the create and discards it in a ``finally`` (a
    no-op once the create used it), so that nothing is left when anything fails
    before the create gets it.
    """
    try:
        if parse_runtime(runtime) is not Runtime.NATIVE:
            return None  # the native runtime is the one with a setup ahead
        validate_name(name)
        secret = generate_password() if password is None else validate_password(password)
        version = (str(version).strip() or None) if version is not None else None
    except SnoozeError:
        return None
    return NativeRuntime(DataDir(data_dir)).begin_create(name, engine, version, secret)


__all__ = ["begin_create"]
