"""`snoozeql info`: where this installation keeps what (no secret shown)."""

from __future__ import annotations

from typing import Annotated

import typer

from snoozeql.cli.output import handle_errors, print_fields, print_json


@handle_errors
def info(as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False) -> None:
    """Version, data directory, store URL (password hidden), key file, Docker host, jobs,
    and which store owns the data directory's local databases."""
    from snoozeql.config import get_settings
    from snoozeql.services import datadir
    from snoozeql.services.context import build_context

    settings = get_settings()
    ctx = None
    error = None
    try:
        ctx = build_context(settings, migrate=False)
    except Exception as exc:  # noqa: BLE001 - info reports what it cannot reach
        error = f"store not reachable: {type(exc).__name__}"
    found = datadir.info(settings, ctx, error)
    if as_json:
        from snoozeql.api.schemas.info import InfoOut

        print_json(InfoOut.of(found).model_dump())
        return
    owner = found.local_dir_owner
    if owner is None:
        owned = "no local database yet (unclaimed)"
    elif owner == found.store_id:
        owned = "this store"
    else:
        owned = f"ANOTHER store ({owner}): set SNOOZEQL_DATA_DIR for this one"
    print_fields([
        ("version", found.version),
        ("data dir", f"{found.data_dir} ({found.data_dir_source})"),
        ("store", found.store_url),
        ("store id", found.store_id or found.store_error or "not created yet (snoozeql migrate)"),
        ("key file", found.key_file),
        ("docker host", found.docker_host),
        ("jobs", "on" if found.jobs else "off"),
        ("local databases", f"{found.local_dir}: {owned}"),
    ])
