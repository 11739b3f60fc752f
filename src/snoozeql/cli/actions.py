"""`snoozeql actions list`: the append-only action log."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer

from snoozeql.cli import state
from snoozeql.cli.output import handle_errors, print_json, print_table
from snoozeql.services.actions import ActionLogService

app = typer.Typer(help="The action log: who did what to which database, and how it went.",
                  no_args_is_help=True)


@app.command("list")
@handle_errors
def list_(
    instance: Annotated[str | None, typer.Option(help="instance id, ARN or name")] = None,
    action: Annotated[str | None, typer.Option(help="start, stop, restart, ...")] = None,
    result: Annotated[str | None, typer.Option(
        help="ok, failed, refused, dry_run, pending, unknown")] = None,
    actor: Annotated[str | None, typer.Option(help="API key name or 'cli'")] = None,
    since: Annotated[datetime | None, typer.Option(help="ISO time (UTC if no zone)")] = None,
    limit: Annotated[int, typer.Option()] = 100,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Most recent actions first."""
    if since is not None and since.tzinfo is None:
        from datetime import UTC

        since = since.replace(tzinfo=UTC)
    records = ActionLogService(state.ctx()).list(
        instance=instance, action=action, result=result, actor=actor, since=since, limit=limit
    )
    if as_json:
        print_json([r.__dict__ | {"outcome": r.outcome} for r in records])
        return
    print_table(
        None, ["WHEN (UTC)", "WHO", "ACTION", "INSTANCE", "WHY", "RESULT", "ERROR"],
        [(r.at, r.actor, r.action, r.instance_name, r.reason, r.outcome, r.error)
         for r in records],
    )
