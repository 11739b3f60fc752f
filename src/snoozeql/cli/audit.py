"""`snoozeql audit list`: the audit trail of changes to accounts, schedules, keys, stacks."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from snoozeql.cli import state
from snoozeql.cli.output import handle_errors, print_json, print_table
from snoozeql.services.audit import KINDS, AuditService

app = typer.Typer(help="The audit trail: who changed what, when, from what to what.",
                  no_args_is_help=True)


def _short(value: object, n: int = 60) -> str:
    if value is None:
        return ""
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= n else text[: n - 1] + "…"


@app.command("list")
@handle_errors
def list_(
    kind: Annotated[str | None, typer.Option(help=", ".join(KINDS))] = None,
    obj: Annotated[str | None, typer.Option("--object", help="object name or id")] = None,
    actor: Annotated[str | None, typer.Option(help="API key name or 'cli'")] = None,
    since: Annotated[str | None, typer.Option(help="ISO time (UTC if no zone)")] = None,
    until: Annotated[str | None, typer.Option(help="ISO time, exclusive")] = None,
    limit: Annotated[int, typer.Option()] = 1000,
    as_json: Annotated[bool, typer.Option("--json")] = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="CSV with a header row")] = False,
) -> None:
    """Most recent changes first."""
    svc = AuditService(state.ctx())
    records = svc.list(kind=kind, obj=obj, actor=actor, since=since, until=until, limit=limit)
    if as_csv:
        typer.echo(svc.to_csv(records), nl=False)
        return
    if as_json:
        from snoozeql.api.schemas.audit import AuditEntryOut

        print_json([AuditEntryOut.of(r).model_dump() for r in records])
        return
    print_table(None, ["WHEN (UTC)", "WHO", "ACTION", "KIND", "OBJECT", "BEFORE", "AFTER"], [
        (r.at, r.actor, r.action, r.object_kind, r.object_name, _short(r.before),
         _short(r.after))
        for r in records
    ])
