"""`snoozeql templates ...`: the built-in catalogue and your own templates."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from snoozeql.api.schemas.templates import TemplateOut
from snoozeql.cli import state
from snoozeql.cli.files import read_text_file
from snoozeql.cli.output import (
    console,
    handle_errors,
    line,
    print_fields,
    print_json,
    print_table,
    styled,
)
from snoozeql.services.templates import TemplateService

app = typer.Typer(help="Service templates that stack instances are made from.",
                  no_args_is_help=True)


@app.command("list")
@handle_errors
def list_(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Built-in and user templates."""
    items = TemplateService(state.ctx()).list()
    if as_json:
        print_json([TemplateOut.of(t).model_dump(mode="json") for t in items])
        return
    print_table(
        None, ["NAME", "IMAGE", "ENGINE", "BUILT-IN", "DESCRIPTION"],
        [(t.name, t.template.image, t.template.engine, t.builtin, t.template.description)
         for t in items],
    )


@app.command("show")
@handle_errors
def show(name: str, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """One template (secret values shown as ***)."""
    info = TemplateService(state.ctx()).get(name)
    data = TemplateOut.of(info).model_dump(mode="json")
    if as_json:
        print_json(data)
        return
    t = info.template
    print_fields([
        ("name", t.name), ("built-in", info.builtin), ("image", t.image), ("engine", t.engine),
        ("description", t.description),
        ("command", " ".join(t.command) if isinstance(t.command, tuple) else t.command),
        ("environment", ", ".join(f"{e['key']}={e['value'] if e['value'] is not None else ''}"
                                  for e in data["environment"]) or None),
        ("labels", ", ".join(f"{x.key}={x.value}" for x in t.labels) or None),
        ("ports", ", ".join(p.short() for p in t.ports) or None),
        ("volumes", ", ".join(f"{v.source or ''}:{v.target}" for v in t.volumes) or None),
        ("healthcheck", data["healthcheck"]),
        ("config files", ", ".join(c.target for c in t.config_files) or None),
        ("domains", ", ".join(t.domains) or None),
    ])


@app.command("add")
@handle_errors
def add(
    file: Annotated[Path, typer.Argument(help="YAML: one service, or a Compose file with one")],
    name: Annotated[
        str | None, typer.Option(help="template name (default: the file's, else its stem)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Add a template from a Compose-style service definition."""
    text = read_text_file(file)
    info = TemplateService(state.ctx()).add(text, name=name, default_name=file.stem)
    if as_json:
        print_json(TemplateOut.of(info).model_dump(mode="json"))
    else:
        console.print(line("added template ", styled(info.name, "bold"),
                           f" ({info.template.image})"))


@app.command("remove")
@handle_errors
def remove(name: str) -> None:
    """Remove a user template that no instance uses."""
    TemplateService(state.ctx()).remove(name)
    console.print(f"removed template {name}")
