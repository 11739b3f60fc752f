"""`snoozeql stacks ...` and `snoozeql stacks instances ...`."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from pydantic import BaseModel

from snoozeql.api.schemas.stacks import (
    EffectiveOut,
    InstanceDeletePreviewOut,
    InstanceSecretsOut,
    LiveStateOut,
    PlanOut,
    StackDeletePreviewOut,
    StackDetailOut,
    StackInstanceOut,
    StackInstanceSummaryOut,
    StackOut,
    StackStateOut,
    StepsOut,
)
from snoozeql.cli import state
from snoozeql.cli.files import read_text_file
from snoozeql.cli.output import (
    confirm,
    console,
    err_console,
    handle_errors,
    line,
    print_fields,
    print_json,
    print_table,
    styled,
)
from snoozeql.domain.errors import ValidationError
from snoozeql.domain.stacks import ComposeExport
from snoozeql.services.stacks import InstanceView, StackService, StackView, StepResult

app = typer.Typer(help="Stacks of service instances made from templates.", no_args_is_help=True)
instances_app = typer.Typer(help="Service instances in a stack.", no_args_is_help=True)
app.add_typer(instances_app, name="instances")

JsonOpt = Annotated[bool, typer.Option("--json")]


def _svc() -> StackService:
    return StackService(state.ctx())


def _json(model: BaseModel | list[Any], **options: Any) -> None:
    """Print an API response model (or a list of them) as the API answers it."""
    if isinstance(model, list):
        print_json([m.model_dump(mode="json", **options) for m in model])
    else:
        print_json(model.model_dump(mode="json", **options))


def _print_stack(s: StackView) -> None:
    print_fields([
        ("name", s.name), ("description", s.description or None),
        ("instances", s.instance_count), ("created", s.created_at),
        ("deleted", s.deleted_at),
    ])


# ----------------------------------------------------------------------------- stacks


@app.command("create")
@handle_errors
def create(
    name: str,
    description: Annotated[str, typer.Option("--description", "-d")] = "",
    as_json: JsonOpt = False,
) -> None:
    """Create an empty stack."""
    s = _svc().create_stack(name, description)
    if as_json:
        _json(StackOut.model_validate(s))
    else:
        console.print(line("created stack ", styled(s.name, "bold")))


@app.command("list")
@handle_errors
def list_(
    deleted: Annotated[bool, typer.Option("--deleted", help="include deleted stacks")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Stacks with their number of instances."""
    items = _svc().list_stacks(include_deleted=deleted)
    if as_json:
        _json([StackOut.model_validate(s) for s in items])
        return
    if deleted:
        # the id comes second: it is what `stacks restore NAME --id ID` takes
        print_table(None, ["NAME", "ID", "DELETED (UTC)", "INSTANCES", "DESCRIPTION"],
                    [(s.name, str(s.id), s.deleted_at, s.instance_count, s.description)
                     for s in items])
        return
    print_table(None, ["NAME", "INSTANCES", "DESCRIPTION", "LAST APPLIED (UTC)", "CREATED (UTC)"],
                [(s.name, s.instance_count, s.description, s.last_applied_at, s.created_at)
                 for s in items])


@app.command("show")
@handle_errors
def show(name: str, as_json: JsonOpt = False) -> None:
    """A stack and its instances."""
    svc = _svc()
    s = svc.get_stack(name)
    items = svc.list_instances(name)
    if as_json:
        _json(StackDetailOut.of(s, items))
        return
    _print_stack(s)
    _instances_table(items)


@app.command("update")
@handle_errors
def update(
    name: str,
    description: Annotated[str, typer.Option("--description", "-d")],
    as_json: JsonOpt = False,
) -> None:
    """Change a stack's description."""
    s = _svc().update_stack(name, description)
    if as_json:
        _json(StackOut.model_validate(s))
    else:
        console.print(f"updated stack {s.name}")


@app.command("delete")
@handle_errors
def delete(
    name: str,
    yes: Annotated[bool, typer.Option("--yes", "-y")] = False,
    down: Annotated[bool, typer.Option(
        "--down", help="stop what apply brought up before deleting")] = False,
) -> None:
    """Soft-delete a stack (restore it with `snoozeql stacks restore`)."""
    svc = _svc()
    if not yes:
        p = svc.delete_stack_preview(name)
        what = f"{len(p.instances)} instance(s)"
        if p.running and not down:
            what += (f"; still running and left running: {', '.join(p.running)} "
                     "(add --down to stop them)")
        confirm(f"delete stack {name} with {what}?", refused="not deleted",
                hint="add --yes to delete without asking")
    s = svc.delete_stack(name, down=down)
    console.print(f"deleted stack {name} (restore with: snoozeql stacks restore {name} "
                  f"--id {s.id})", highlight=False)


@app.command("delete-preview")
@handle_errors
def delete_preview(name: str, as_json: JsonOpt = False) -> None:
    """What deleting the stack would take away (instances, applied objects)."""
    p = StackDeletePreviewOut.model_validate(_svc().delete_stack_preview(name))
    _print_preview(p, as_json)


@app.command("state")
@handle_errors
def state_(name: str, as_json: JsonOpt = False) -> None:
    """The stack's state measured now, and each instance's."""
    overall, states = _svc().stack_states(name)
    if as_json:
        _json(StackStateOut(stack=name, state=overall, instances={
            n: LiveStateOut.model_validate(s) for n, s in states.items()}))
        return
    console.print(f"stack {name}: {overall}", highlight=False)
    print_table(None, ["INSTANCE", "STATE", "DETAIL"],
                [(n, s.status, s.detail) for n, s in states.items()])


@app.command("restore")
@handle_errors
def restore(
    name: str,
    stack_id: Annotated[str | None, typer.Option(
        "--id", help="the deleted stack's id (stacks list --deleted)")] = None,
    deleted_at: Annotated[str | None, typer.Option(
        "--deleted-at", help="its deletion time in UTC, e.g. 2026-12-02T04:17 (minute) or "
        "2026-12-02T04:17:05 (second)")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Restore a deleted stack: the only deleted one of that name, or the one picked
    with --id or --deleted-at when several are."""
    s = _svc().restore_stack(name, stack_id=stack_id, deleted_at=deleted_at)
    if as_json:
        _json(StackOut.model_validate(s))
    else:
        console.print(f"restored stack {s.name} with {s.instance_count} instance(s)")


def write_export(export: ComposeExport, folder: Path) -> list[Path]:
    """compose.yaml, the config files with their modes and, if any secret, a 0600 .env."""
    folder.mkdir(parents=True, exist_ok=True)
    written = [folder / "compose.yaml"]
    written[0].write_text(export.yaml(), encoding="utf-8")
    for f in export.files:
        path = folder / f.path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f.content, encoding="utf-8")
        path.chmod(int(f.mode, 8))
        written.append(path)
    if export.env:
        env_file = folder / ".env"
        fd = os.open(env_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(export.env_file())
        env_file.chmod(0o600)
        written.append(env_file)
    return written


@app.command("export")
@handle_errors
def export(
    name: str,
    output: Annotated[Path | None, typer.Option(
        "--output", "-o",
        help="directory to write compose.yaml, config files and .env (secrets, 0600) to; "
        "without it the Compose file is printed",
    )] = None,
    reveal_secrets: Annotated[bool, typer.Option(
        "--reveal-secrets", help="write secret values into the Compose file itself")] = False,
    config_style: Annotated[str, typer.Option(
        help="bind (files beside compose.yaml) or content (inline, Compose v2.23+)")] = "bind",
) -> None:
    """The stack as a Compose file (enabled instances). Secrets are never printed unless
    --reveal-secrets: they become ${VARIABLES} whose values go to the .env file."""
    if config_style not in ("bind", "content"):
        raise ValidationError("--config-style must be bind or content")
    if output is None:
        ex = _svc().compose(name, secrets="reveal" if reveal_secrets else "interpolate",
                            config_style="content" if config_style == "content" else "bind")
        sys.stdout.write(ex.yaml())
        if ex.env:
            err_console.print(
                f"secret values are referenced as variables ({', '.join(sorted(ex.env))}); "
                "use --output DIR to write them to a .env file", highlight=False)
        if ex.files:
            err_console.print(
                f"{len(ex.files)} config file(s) are bind-mounted from ./configs; use --output "
                "DIR to write them", highlight=False)
        return
    ex = _svc().compose(name, secrets="reveal" if reveal_secrets else "interpolate",
                        config_style="content" if config_style == "content" else "bind")
    written = write_export(ex, output)
    for p in written:
        console.print(f"wrote {p}", highlight=False)
    console.print(f"run it with: docker compose -p {ex.project} -f {written[0]} up -d",
                  highlight=False)


def _steps(steps: list[StepResult], as_json: bool, stack: str) -> None:
    ok = all(s.ok for s in steps)
    if as_json:
        _json(StepsOut.of(stack, steps))
    elif not steps:
        console.print("nothing to do")
    else:
        print_table(None, ["ACTION", "INSTANCE", "RUNTIME NAME", "OK", "STATUS", "DETAIL"],
                    [(s.action, s.instance, s.runtime_name, s.ok, s.status, s.detail)
                     for s in steps])
    if not ok:
        raise typer.Exit(1)


@app.command("plan")
@handle_errors
def plan(name: str, as_json: JsonOpt = False) -> None:
    """What `apply` would change, compared with what it last applied."""
    p = _svc().plan(name)
    if as_json:
        _json(PlanOut.model_validate(p))
        return
    print_table(f"plan for {p.stack}: {p.changes} change(s)",
                ["ACTION", "INSTANCE", "RUNTIME NAME", "RUNTIME", "STATE", "REASON", "CHANGES"],
                [(i.action, i.instance, i.runtime_name, i.runtime, i.state, i.reason,
                  json.dumps(i.changes) if i.changes else None) for i in p.items])


@app.command("apply")
@handle_errors
def apply(name: str, as_json: JsonOpt = False) -> None:
    """Bring every enabled instance up through the local runtimes."""
    _steps(_svc().apply(name), as_json, name)


@app.command("down")
@handle_errors
def down(name: str, as_json: JsonOpt = False) -> None:
    """Stop what apply brought up (kept; the next apply starts it again)."""
    _steps(_svc().down(name), as_json, name)


# -------------------------------------------------------------------------- instances


def _instances_table(items: list[InstanceView]) -> None:
    print_table(None, ["NAME", "TEMPLATE", "ENABLED", "OVERRIDES", "CONTAINER", "DESCRIPTION"],
                [(i.name, i.template, i.enabled, i.override_count, i.container_name,
                  i.description) for i in items])


def _print_preview(p: BaseModel, as_json: bool) -> None:
    data = p.model_dump(mode="json")
    if as_json:
        print_json(data)
        return
    print_fields([(k, json.dumps(v) if isinstance(v, list | dict) else v)
                  for k, v in data.items()])


def _print_instance(i: InstanceView, as_json: bool) -> None:
    shown = StackInstanceOut.model_validate(i)
    if as_json:
        _json(shown)
        return
    print_fields([
        ("stack", i.stack), ("name", i.name), ("template", i.template),
        ("enabled", i.enabled), ("container", i.container_name),
        ("description", i.description or None), ("override count", i.override_count),
    ])
    for o in shown.model_dump(mode="json")["overrides"]:
        console.print(line(styled(o["kind"], "bold"),
                           f" ({o['mode']}): {json.dumps(o['entries'])}"), highlight=False)


def _load_entries(value: str) -> Any:
    """Entries from JSON/YAML text, a file (@path) or '-' (stdin)."""
    if value == "-" or value.startswith("@"):
        text = read_text_file(value if value == "-" else value[1:])
    else:
        text = value
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        raise ValidationError("entries must be JSON or YAML") from None


@instances_app.command("add")
@handle_errors
def instance_add(
    stack: str,
    name: str,
    template: Annotated[str, typer.Option("--template", "-t")],
    description: Annotated[str, typer.Option("--description", "-d")] = "",
    disabled: Annotated[bool, typer.Option("--disabled")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Create an instance from a template."""
    i = _svc().create_instance(stack, name, template, description=description,
                               enabled=not disabled)
    if as_json:
        _json(StackInstanceOut.model_validate(i))
    else:
        console.print(f"created {i.stack}/{i.name} from {i.template} ({i.container_name})")


@instances_app.command("list")
@handle_errors
def instance_list(
    stack: str,
    search: Annotated[str | None, typer.Option(help="in name, template, description")] = None,
    enabled: Annotated[bool | None, typer.Option("--enabled/--disabled",
                                                 help="only enabled / disabled")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Live instances in creation order."""
    items = _svc().list_instances(stack, search=search, enabled=enabled)
    if as_json:
        _json([StackInstanceSummaryOut.model_validate(i) for i in items])
    else:
        _instances_table(items)


@instances_app.command("show")
@handle_errors
def instance_show(stack: str, name: str, as_json: JsonOpt = False) -> None:
    """An instance with every override (secrets as ***)."""
    _print_instance(_svc().get_instance(stack, name), as_json)


@instances_app.command("update")
@handle_errors
def instance_update(
    stack: str,
    name: str,
    description: Annotated[str | None, typer.Option("--description", "-d")] = None,
    enabled: Annotated[bool | None, typer.Option("--enable/--disable")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Change description or enabled."""
    _print_instance(
        _svc().update_instance(stack, name, description=description, enabled=enabled), as_json
    )


@instances_app.command("delete")
@handle_errors
def instance_delete(stack: str, name: str,
                    yes: Annotated[bool, typer.Option("--yes", "-y")] = False) -> None:
    """Soft-delete an instance; its name is free again at once."""
    svc = _svc()
    if not yes:
        preview = svc.delete_preview(stack, name)
        confirm(f"delete {stack}/{name} with {preview.override_count} override entries?",
                refused="not deleted", hint="add --yes to delete without asking")
    svc.delete_instance(stack, name)
    console.print(f"deleted {stack}/{name}")


@instances_app.command("delete-preview")
@handle_errors
def instance_delete_preview(stack: str, name: str, as_json: JsonOpt = False) -> None:
    """What deleting the instance would remove."""
    p = InstanceDeletePreviewOut.model_validate(_svc().delete_preview(stack, name))
    _print_preview(p, as_json)


@instances_app.command("duplicate")
@handle_errors
def instance_duplicate(
    stack: str,
    name: str,
    new_name: Annotated[str | None, typer.Option("--name", help="default <name>-copy")] = None,
    disabled: Annotated[bool, typer.Option("--disabled", help="create the copy disabled")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Copy an instance with all its overrides."""
    i = _svc().duplicate_instance(stack, name, new_name, enabled=False if disabled else None)
    if as_json:
        _json(StackInstanceOut.model_validate(i))
    else:
        console.print(f"created {i.stack}/{i.name} as a copy of {name}")


@instances_app.command("rename")
@handle_errors
def instance_rename(stack: str, name: str, new_name: str, as_json: JsonOpt = False) -> None:
    """Rename an instance (its container name follows)."""
    i = _svc().rename_instance(stack, name, new_name)
    if as_json:
        _json(StackInstanceOut.model_validate(i))
    else:
        console.print(f"renamed {stack}/{name} to {i.name} ({i.container_name})")


@instances_app.command("override")
@handle_errors
def instance_override(
    stack: str,
    name: str,
    kind: Annotated[str, typer.Argument(help="ports, volumes, env_vars, labels, domains, "
                                             "healthcheck or config_files")],
    entries: Annotated[str | None, typer.Argument(
        help="JSON/YAML entries, @FILE or - for stdin")] = None,
    mode: Annotated[str, typer.Option(help="merge or replace")] = "merge",
    clear: Annotated[bool, typer.Option(
        "--clear", help="remove every entry of this kind (instead of ENTRIES)")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Replace one kind of override, e.g. ports '["127.0.0.1:15432:5432"]' --mode replace.

    An empty ENTRIES is an error; removing every entry of a kind is `--clear`."""
    if clear:
        if entries is not None:
            raise ValidationError("give ENTRIES or --clear, not both")
        body: dict[str, Any] = {"mode": "replace", "entries": []}
    else:
        loaded = None if entries is None else _load_entries(entries)
        if loaded is None or (isinstance(loaded, str | list | dict) and not loaded
                               ) or (isinstance(loaded, str) and not loaded.strip()):
            raise ValidationError(
                f"no {kind} entries given (empty value); to remove every {kind} entry, "
                f"pass --clear instead: snoozeql stacks instances override {stack} {name} "
                f"{kind} --clear"
            )
        body = {"mode": mode, "entries": loaded}
    i = _svc().put_override(stack, name, kind, body)
    _print_instance(i, as_json)


@instances_app.command("secrets")
@handle_errors
def instance_secrets(stack: str, name: str, as_json: JsonOpt = False) -> None:
    """The instance's secret values (generated passwords too) and its database password.

    Shown in clear: the CLI acts with the local operator's full rights."""
    data = _svc().secrets(stack, name)
    if as_json:
        _json(InstanceSecretsOut.model_validate(data))
        return
    rows = [(e.key, e.value if e.value is not None else "(no value)", e.source)
            for e in data.env_vars]
    if data.engine:
        shown = data.database_password
        rows.append(("(database password)", shown if shown is not None else
                     "(none yet: generated at the first apply)",
                     data.database_password_from or "-"))
    if not rows:
        console.print(f"{stack}/{name} has no secrets")
        return
    print_table(None, ["KEY", "VALUE", "FROM"], rows)


@instances_app.command("effective")
@handle_errors
def instance_effective(stack: str, name: str, as_json: JsonOpt = False) -> None:
    """The template merged with the overrides, with where each value came from."""
    view, svc = _svc().effective(stack, name)
    data = EffectiveOut.of(view, svc)
    if as_json:
        _json(data, exclude={"enabled"})
        return
    rows = []
    for kind, prov in data.provenance.items():
        for entry, p in data.entry_provenance.get(kind, {}).items():
            rows.append((kind, entry, p))
        if not data.entry_provenance.get(kind):
            rows.append((kind, "-", prov))
    print_fields([("image", svc.image), ("container", view.container_name),
                  ("override count", svc.override_count)])
    print_table(None, ["KIND", "ENTRY", "FROM"], rows)
