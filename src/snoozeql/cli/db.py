"""`snoozeql db ...`: create and run local databases (native processes or containers).

Thin: every rule lives in :mod:`snoozeql.services.local_databases`; start, stop and
restart go through the lifecycle service like any instance, so they land in the action
log. A generated password is printed once, at create; ``db url`` shows it again on
request. Listings and ``--json`` never carry a password.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.text import Text

from snoozeql.cli import state
from snoozeql.cli.output import (
    action_line,
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
from snoozeql.domain.engines import Runtime, RuntimeState, engine_names
from snoozeql.domain.types import Instance, InstanceStatus

if TYPE_CHECKING:  # imported when a command runs: `db create` starts initdb first
    from snoozeql.services.context import Context
    from snoozeql.services.local_databases import LocalDatabaseService

app = typer.Typer(
    help="Local databases: PostgreSQL, MySQL, MariaDB, Redis, MongoDB on this machine.",
    no_args_is_help=True,
)

_STATUS_COLORS = {"running": "green", "stopped": "dim", "failed": "red", "starting": "yellow"}


def _colored(status: str) -> Text:
    return styled(status, _STATUS_COLORS.get(status, "yellow"))


def _runtime(i: Instance) -> str:
    return Runtime.of(i.provider).value


def db_json(i: Instance) -> dict[str, Any]:
    """What scripts see of a local database: never the password."""
    return {
        "id": str(i.id), "name": i.name, "engine": i.engine, "version": i.engine_version,
        "runtime": _runtime(i), "provider": i.provider.value, "host": i.endpoint_host,
        "port": i.endpoint_port, "status": i.status.value, "raw_status": i.raw_status,
        "image": i.extra.get("image"), "data_path": i.extra.get("data_path"),
        "last_error": i.last_error, "created_at": i.first_seen_at.isoformat(),
    }


def _service(ctx: Context | None = None) -> LocalDatabaseService:
    """The local databases' service, imported (with the store, SQLAlchemy and the
    encryption behind it) only when a command needs it."""
    from snoozeql.services.local_databases import LocalDatabaseService

    return LocalDatabaseService(ctx if ctx is not None else state.ctx())


def _import_meanwhile() -> None:
    """Import, in a thread, what ``db create`` needs once the server is up and that the
    runtime does not already load while it waits (the probe's client library: see the
    engine modules' ``client_modules``): prometheus-client, which counts the action.
    The server's initialisation and start leave the CPU idle for most of a second; a
    module that fails to import is left to the code that uses it, which reports it.
    """
    def run() -> None:
        with contextlib.suppress(ImportError):
            importlib.import_module("prometheus_client")

    threading.Thread(target=run, name="snoozeql-imports").start()


@contextlib.contextmanager
def _progress(status: Any, name: str, *, meanwhile: bool = False) -> Iterator[None]:
    """Show each step of a native create (the runtime logs them) with the time so far.

    At the first step, the server's initialisation and start are ahead: with
    ``meanwhile``, what the create needs after them is imported then
    (:func:`_import_meanwhile`)."""
    began = time.monotonic()
    first = True

    class _Step(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            nonlocal first
            if first and meanwhile:
                _import_meanwhile()
            first = False
            status.update(f"creating {name}: {record.getMessage()} "
                          f"({time.monotonic() - began:.1f} s)")

    source = logging.getLogger("snoozeql.providers.local")
    handler, level, propagate = _Step(logging.INFO), source.level, source.propagate
    source.addHandler(handler)
    source.setLevel(logging.INFO)
    # Shown on the status line; logged as well only when the log level asks for INFO.
    source.propagate = logging.getLogger().getEffectiveLevel() <= logging.INFO
    try:
        yield
    finally:
        source.removeHandler(handler)
        source.setLevel(level)
        source.propagate = propagate


@app.command("create")
@handle_errors
def create(
    name: Annotated[str, typer.Argument(help="a DNS label: lower-case letters, digits, '-'")],
    engine: Annotated[str, typer.Option(help=", ".join(engine_names()))],
    version: Annotated[str | None, typer.Option(help="natively: an installed version")] = None,
    image: Annotated[str | None, typer.Option(help="docker: image (default: official)")] = None,
    tag: Annotated[str | None, typer.Option(help="docker: image tag")] = None,
    port: Annotated[int | None, typer.Option(help="default: a free port")] = None,
    password: Annotated[
        str | None,
        typer.Option(envvar="SNOOZEQL_DB_PASSWORD", show_envvar=True,
                     help="default: generated and printed once"),
    ] = None,
    runtime: Annotated[str, typer.Option(help="native or docker")] = "native",
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Create a database, start it and wait until it answers with its password."""
    from snoozeql import early_settings
    from snoozeql.services.local_ahead import begin_create

    # First of all: PostgreSQL's initdb starts now, in a staging directory, and runs
    # while the settings, the store and the services are imported and the request is
    # checked; the create moves it into place or, refused, discards it
    # (docs/local-databases.md).
    data_dir = early_settings.data_dir()
    if data_dir is None:
        from snoozeql.config import get_settings

        data_dir = get_settings().data_dir
    ahead = begin_create(data_dir, name=name, engine=engine, version=version,
                         password=password, runtime=runtime)
    try:
        with err_console.status(f"creating {name}...") as status:
            svc = _service()
            with _progress(status, name, meanwhile=True):
                created = svc.create(
                    name=name, engine=engine, version=version, image=image, tag=tag,
                    port=port, password=password, runtime=runtime, actor=state.ACTOR,
                    ahead=ahead,
                )
    finally:
        if ahead is not None:
            ahead.discard()  # refused or failed before the create had it: nothing left
    i = created.instance
    if as_json:
        out = {**db_json(i), **{"detail": created.state.detail}}
        if created.generated_password:
            out["password"] = created.generated_password
        print_json(out)
        return
    console.print(line(
        f"created {i.name}: {i.engine} {i.engine_version or ''} ({_runtime(i)}) on "
        f"{i.endpoint_host}:{i.endpoint_port}, ", _colored(i.status.value),
    ), highlight=False)
    if created.generated_password:
        console.print(f"password: {created.generated_password}", highlight=False, markup=False)
        console.print(
            f"(shown once; 'snoozeql db url {i.name}' gives a connection URL)", style="dim",
            highlight=False, markup=False,
        )


def _act(action: str, name: str, as_json: bool, force: bool = False) -> None:
    # Start/stop/restart only: create, list and the rest start without the lifecycle
    # service (and the accounts, audit and leases it imports).
    from snoozeql.services.lifecycle import LifecycleService

    ctx = state.ctx()
    instance = _service(ctx).get(name)
    with err_console.status(f"{action} {instance.name}..."):
        report = LifecycleService(ctx).act(
            instance.id, action, actor=state.ACTOR, reason="manual", force=force
        )
    if as_json:
        print_json({
            "action_id": str(report.action_id), "action": report.action.value,
            "result": report.result.value, "message": report.message,
            "already": report.already, "instance": db_json(report.instance),
        })
        return
    console.print(action_line(action, report.instance.name, report.already, report.message,
                              _colored(report.instance.status.value)), highlight=False)


ForceOpt = Annotated[bool, typer.Option(
    "--force", help="act on a protected database (tagged snoozeql-protect=true)")]


@app.command("start")
@handle_errors
def start(name: str, as_json: Annotated[bool, typer.Option("--json")] = False,
          force: ForceOpt = False) -> None:
    """Start a stopped (or failed) database and wait until it answers."""
    _act("start", name, as_json, force)


@app.command("stop")
@handle_errors
def stop(name: str, as_json: Annotated[bool, typer.Option("--json")] = False,
         force: ForceOpt = False) -> None:
    """Stop gracefully (forced after 10 s)."""
    _act("stop", name, as_json, force)


@app.command("restart")
@handle_errors
def restart(name: str, as_json: Annotated[bool, typer.Option("--json")] = False,
            force: ForceOpt = False) -> None:
    """Stop, then start and wait until it answers."""
    _act("restart", name, as_json, force)


@app.command("delete")
@handle_errors
def delete(
    name: str,
    keep_data: Annotated[bool, typer.Option("--keep-data", help="keep the data")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="do not ask")] = False,
) -> None:
    """Stop and delete a database; its data too, unless --keep-data."""
    svc = _service()
    instance = svc.get(name)
    if not yes:
        what = "the database (data kept)" if keep_data else "the database AND ITS DATA"
        confirm(f"delete {instance.name}: {what}?", refused="not deleted",
                hint="add --yes to delete without asking")
    with err_console.status(f"deleting {instance.name}..."):
        deleted = svc.delete(instance.id, keep_data=keep_data, actor=state.ACTOR)
    msg = f"deleted {instance.name}"
    if deleted.kept_at:
        msg += f"; data kept at {deleted.kept_at}"
    console.print(msg, highlight=False)


@app.command("list")
@handle_errors
def list_(
    as_json: Annotated[bool, typer.Option("--json")] = False,
    measure: Annotated[
        bool, typer.Option("--measure/--cached", help="measure every status now (default)")
    ] = True,
) -> None:
    """Every local database, stopped ones included."""
    svc = _service()
    items = [m.instance for m in svc.refresh_all()] if measure else svc.list_all()
    if as_json:
        print_json([db_json(i) for i in items])
        return
    print_table(
        None,
        ["NAME", "ENGINE", "VERSION", "RUNTIME", "ENDPOINT", "STATUS", "DETAIL"],
        [
            (i.name, i.engine, i.engine_version, _runtime(i),
             f"{i.endpoint_host}:{i.endpoint_port}", _colored(i.status.value),
             i.last_error or i.raw_status)
            for i in items
        ],
    )
    console.print(f"{len(items)} database(s)", style="dim")


@app.command("status")
@handle_errors
def status(name: str, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """The status measured now: process or container, port, and a login with the password.

    Exit 0 when it is running, 3 when it is not (stopped, starting, failed), like
    ``systemctl status``, so scripts can test it; 2 when there is no such database."""
    measured = _service().status(name)
    i, s = measured.instance, measured.state
    if as_json:
        from snoozeql.api.schemas.instances import InstanceOut
        from snoozeql.api.schemas.local_instances import LocalStatusOut

        shown = LocalStatusOut.of(InstanceOut.of(i), s)  # the API's status answer
        print_json({**db_json(i), **shown.model_dump(mode="json", exclude={"instance"})})
    else:
        _print_status(i, s)
    if s.status != InstanceStatus.RUNNING:
        raise typer.Exit(NOT_RUNNING_EXIT)


#: ``db status`` exit code for a database that is not running (LSB "program is not running").
NOT_RUNNING_EXIT = 3


def _print_status(i: Instance, s: RuntimeState) -> None:
    print_fields([
        ("name", i.name), ("engine", f"{i.engine} {i.engine_version or ''}"),
        ("runtime", _runtime(i)), ("endpoint", f"{i.endpoint_host}:{i.endpoint_port}"),
        ("status", _colored(s.status.value)), ("detail", s.detail),
        ("process alive", s.process_alive), ("port open", s.port_open),
        ("login works", s.probe_ok), ("pid", s.pid),
        ("container", s.container_id[:12] if s.container_id else None),
        ("data", s.location),
    ])
    if s.log_tail:
        console.print("last log lines:", style="bold")
        for text in s.log_tail:
            console.print(text, highlight=False, markup=False)


@app.command("logs")
@handle_errors
def logs(
    name: str, n: Annotated[int, typer.Option("-n", "--lines", help="last N lines")] = 50
) -> None:
    """The last lines of the server's log (the password masked)."""
    for text in _service().logs(name, n):
        typer.echo(text)


@app.command("url")
@handle_errors
def url(name: str) -> None:
    """A connection URL, with the password in it."""
    typer.echo(_service().url(name))
