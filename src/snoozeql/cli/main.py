"""The `snoozeql` command."""

from __future__ import annotations

from typing import Annotated

import typer

from snoozeql import __version__
from snoozeql.cli import accounts, actions, apikeys, instances, state
from snoozeql.cli import audit as audit_cli
from snoozeql.cli import db as db_cli
from snoozeql.cli import demo as demo_cli
from snoozeql.cli import info as info_cli
from snoozeql.cli import metrics as metrics_cli
from snoozeql.cli import savings as savings_cli
from snoozeql.cli import schedules as schedules_cli
from snoozeql.cli import stacks as stacks_cli
from snoozeql.cli import templates as templates_cli
from snoozeql.cli.output import console, handle_errors

app = typer.Typer(
    name="snoozeql",
    help="SnoozeQL: find every database, see when it is used, put it to sleep when it is not.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(accounts.app, name="accounts")
app.add_typer(instances.app, name="instances")
app.add_typer(actions.app, name="actions")
app.add_typer(apikeys.app, name="apikeys")
app.add_typer(templates_cli.app, name="templates")
app.add_typer(stacks_cli.app, name="stacks")
app.add_typer(db_cli.app, name="db")
app.add_typer(metrics_cli.metrics_app, name="metrics")
app.add_typer(metrics_cli.recommendations_app, name="recommendations")
app.command("activity")(metrics_cli.activity)
app.add_typer(schedules_cli.app, name="schedules")
app.add_typer(audit_cli.app, name="audit")
app.command("savings")(savings_cli.savings)
app.command("info")(info_cli.info)
app.command("demo")(demo_cli.demo)


def _version(value: bool) -> None:
    if value:
        console.print(f"snoozeql {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="print version")
    ] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="log debug output")] = False,
) -> None:
    from snoozeql.config import get_settings

    s = get_settings()
    state.configure_logging("DEBUG" if verbose else "WARNING", s.log_json)


@app.command()
@handle_errors
def serve(
    host: Annotated[str | None, typer.Option(help="default 127.0.0.1 (SNOOZEQL_HOST)")] = None,
    port: Annotated[int | None, typer.Option(help="default 8080 (SNOOZEQL_PORT)")] = None,
    jobs: Annotated[bool, typer.Option("--jobs/--no-jobs", help="run periodic jobs")] = True,
) -> None:
    """Run the API (and the periodic jobs) on the configured store; migrates it first."""
    import uvicorn

    from snoozeql.api.app import create_app
    from snoozeql.api.instrument import keep_peer
    from snoozeql.config import get_settings
    from snoozeql.jobs.runner import JobRunner

    s = get_settings()
    state.configure_logging(s.log_level, s.log_json)
    ctx = state.ctx()
    _refresh_local_databases(ctx)
    runner = JobRunner(ctx) if (jobs and s.jobs_enabled) else None
    if runner:
        runner.start()
    url = ctx.engine.url.render_as_string(hide_password=True)
    console.print(f"SnoozeQL {__version__}: store {url}", highlight=False)
    console.print(
        f"API on http://{host or s.host}:{port or s.port}/api/v1 "
        f"(docs at /api/v1/docs); jobs {'on' if runner else 'off'}",
        highlight=False,
    )
    console.print(f"Dashboard on http://{host or s.host}:{port or s.port}/ "
                  "(sign in with an API key)", highlight=False)
    try:
        # keep_peer: /metrics decides on the TCP peer, not on X-Forwarded-For.
        uvicorn.run(
            keep_peer(create_app(ctx)), host=host or s.host, port=port or s.port,
            log_level=s.log_level.lower(), log_config=None, proxy_headers=False,
        )
    finally:
        if runner:
            runner.stop()


def _refresh_local_databases(ctx: state.Context) -> None:
    """After a restart (of SnoozeQL or the machine) local statuses are recomputed."""
    import logging

    from snoozeql.services.local_databases import LocalDatabaseService

    try:
        LocalDatabaseService(ctx).refresh_all()
    except Exception:  # noqa: BLE001 - serving must not depend on it
        logging.getLogger(__name__).exception("could not refresh local database statuses")


@app.command()
@handle_errors
def migrate(
    revision: Annotated[str, typer.Argument(help="target revision")] = "head",
    down: Annotated[bool, typer.Option("--down", help="downgrade to REVISION")] = False,
) -> None:
    """Apply (or roll back) the store's schema migrations."""
    from snoozeql.config import get_settings
    from snoozeql.services.maintenance import migrate as run_migrations

    r = run_migrations(get_settings(), revision, down)
    console.print(f"store {r.store}: {r.before or 'empty'} -> {r.after or 'empty'}",
                  highlight=False)


if __name__ == "__main__":
    app()
