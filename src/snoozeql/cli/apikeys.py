"""`snoozeql apikeys ...`"""

from __future__ import annotations

from typing import Annotated

import typer

from snoozeql.cli import state
from snoozeql.cli.output import console, handle_errors, line, print_json, print_table, styled
from snoozeql.services.apikeys import ApiKeyService

app = typer.Typer(help="API keys for the REST API.", no_args_is_help=True)


@app.command("create")
@handle_errors
def create(
    name: str,
    role: Annotated[str, typer.Option(help="viewer, operator or admin")] = "viewer",
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Create a key. It is printed once; only its hash is stored."""
    record, key = ApiKeyService(state.ctx()).create(name, role)
    if as_json:
        from snoozeql.api.schemas.apikeys import ApiKeyCreated

        print_json(ApiKeyCreated.of_new(record, key).model_dump())
        return
    console.print(line(f"created {record.role.value} key ", styled(record.name, "bold"), ":"))
    console.print(key, highlight=False, soft_wrap=True)
    console.print("store it now: it cannot be shown again", style="yellow")


@app.command("list")
@handle_errors
def list_(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Keys (never their secret part)."""
    keys = ApiKeyService(state.ctx()).list()
    if as_json:
        from snoozeql.api.schemas.apikeys import ApiKeyOut

        print_json([ApiKeyOut.of(k).model_dump() for k in keys])
        return
    print_table(
        None, ["NAME", "ROLE", "PREFIX", "CREATED", "LAST USED", "REVOKED"],
        [(k.name, k.role, k.prefix + "...", k.created_at, k.last_used_at, k.revoked_at)
         for k in keys],
    )


@app.command("revoke")
@handle_errors
def revoke(name: str) -> None:
    """Revoke a key; requests with it are refused from now on."""
    ApiKeyService(state.ctx()).revoke(name)
    console.print(f"revoked key {name}")
