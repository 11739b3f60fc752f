"""The `snoozeql` command."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from snoozeql import __version__
from snoozeql.cli import state
from snoozeql.cli.lazy import LazyCommand, LazyGroup
from snoozeql.cli.output import console, handle_errors


class _Commands(LazyGroup):
    # Imported when run (cli/lazy.py): `snoozeql --help` imports none of them.
    lazy = {
        "accounts": LazyCommand("snoozeql.cli.accounts", "app",
                                "Cloud accounts SnoozeQL discovers databases in."),
        "instances": LazyCommand("snoozeql.cli.instances", "app",
                                 "Databases in the inventory (cloud and local)."),
        "actions": LazyCommand("snoozeql.cli.actions", "app",
                               "The action log: who did what to which database, and how it "
                               "went."),
        "apikeys": LazyCommand("snoozeql.cli.apikeys", "app", "API keys for the REST API."),
        "templates": LazyCommand("snoozeql.cli.templates", "app",
                                 "Service templates that stack instances are made from."),
        "stacks": LazyCommand("snoozeql.cli.stacks", "app",
                              "Stacks of service instances made from templates."),
        "db": LazyCommand("snoozeql.cli.db", "app",
                          "Local databases: PostgreSQL, MySQL, MariaDB, Redis, MongoDB on this "
                          "machine."),
        "metrics": LazyCommand("snoozeql.cli.metrics", "metrics_app",
                               "Hourly metrics of an instance."),
        "recommendations": LazyCommand("snoozeql.cli.metrics", "recommendations_app",
                                       "When each database could sleep, and what that saves."),
        "activity": LazyCommand("snoozeql.cli.metrics", "activity",
                                "When the instance is used: a week-by-hour heatmap in its time "
                                "zone."),
        "schedules": LazyCommand("snoozeql.cli.schedules", "app",
                                 "Sleep schedules: when databases should run."),
        "audit": LazyCommand("snoozeql.cli.audit", "app",
                             "The audit trail: who changed what, when, from what to what."),
        "savings": LazyCommand("snoozeql.cli.savings", "savings",
                               "What stopping databases saved, and what every schedule will "
                               "save per month."),
        "info": LazyCommand("snoozeql.cli.info", "info",
                            "Version, data directory, store URL (password hidden), key file, "
                            "Docker host, jobs, and which store owns the data directory's "
                            "local databases."),
        "jobs": LazyCommand("snoozeql.cli.jobs", "app",
                            "Background tasks: recent and running runs; run one now."),
        "demo": LazyCommand("snoozeql.cli.demo", "demo",
                            "Serve the dashboard over a simulated fleet (two clouds, 14 days "
                            "of history)."),
    }


app = typer.Typer(
    name="snoozeql",
    help="SnoozeQL: find every database, see when it is used, put it to sleep when it is not.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    cls=_Commands,
    # Plain help here: Typer's Rich help imports Rich's Markdown, Syntax and Traceback
    # (0.2 s of CPU) to print this list. Sub-commands keep Rich help.
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"snoozeql {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="print version")
    ] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="log debug output")] = False,
) -> None:
    from snoozeql import early_settings

    # The settings (pydantic-settings) only when something may set the log format:
    # `db create` starts initdb before it reads them.
    as_json = early_settings.log_json()
    if as_json is None:
        from snoozeql.config import get_settings

        as_json = get_settings().log_json
    state.configure_logging("DEBUG" if verbose else "WARNING", as_json)


@app.command()
@handle_errors
def serve(
    host: Annotated[str | None, typer.Option(help="default 127.0.0.1 (SNOOZEQL_HOST)")] = None,
    port: Annotated[int | None, typer.Option(help="default 8080 (SNOOZEQL_PORT)")] = None,
    jobs: Annotated[bool, typer.Option(
        "--jobs/--no-jobs", help="run the background jobs in this process too (on "
        "PostgreSQL a queue worker; --no-jobs: an API replica only)")] = True,
) -> None:
    """Run the API (and the background jobs) on the configured store; migrates it first.

    On SQLite the jobs run in this process. On PostgreSQL this process also runs a
    queue worker unless --no-jobs (then run `snoozeql worker` processes)."""
    import uvicorn

    from snoozeql.api.app import create_app
    from snoozeql.api.instrument import keep_peer
    from snoozeql.config import get_settings
    from snoozeql.jobs.queue import BackgroundWorker, close_deferrer, queue_enabled
    from snoozeql.jobs.runner import JobRunner

    s = get_settings()
    state.configure_logging(s.log_level, s.log_json)
    ctx = state.ctx()
    _refresh_local_databases(ctx)
    runner: JobRunner | BackgroundWorker | None = None
    if jobs and s.jobs_enabled:
        runner = (BackgroundWorker(ctx, concurrency=s.worker_concurrency)
                  if queue_enabled(ctx) else JobRunner(ctx))
        runner.start()
    url = ctx.engine.url.render_as_string(hide_password=True)
    console.print(f"SnoozeQL {__version__}: store {url}", highlight=False)
    mode = ("off" if runner is None else "queue worker in this process"
            if isinstance(runner, BackgroundWorker) else "in process")
    console.print(
        f"API on http://{host or s.host}:{port or s.port}/api/v1 "
        f"(docs at /api/v1/docs); jobs {mode}",
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
        close_deferrer(ctx)


@app.command()
@handle_errors
def worker(
    concurrency: Annotated[int | None, typer.Option(
        "--concurrency", min=1, max=64,
        help="tasks run at once (default SNOOZEQL_WORKER_CONCURRENCY, 4)")] = None,
    queues: Annotated[list[str] | None, typer.Option(
        "--queues", "-q", help="only these queues (repeat, or comma-separated): sync, "
        "metrics, reconcile, maintenance; default all")] = None,
    metrics_port: Annotated[int | None, typer.Option(
        "--metrics-port", min=1, max=65535,
        help="serve /metrics and /healthz on this port (host SNOOZEQL_HOST)")] = None,
) -> None:
    """Run a queue worker (PostgreSQL only): the background jobs of this store, until
    SIGINT or SIGTERM (running tasks finish first, up to 30 s)."""
    from snoozeql.config import get_settings
    from snoozeql.jobs.queue import check_queues, require_queue, run_worker

    s = get_settings()
    require_queue(s.effective_database_url, "`snoozeql worker`")  # before making a store
    state.configure_logging(s.log_level, s.log_json)
    ctx = state.ctx()
    wanted = check_queues([q.strip() for item in (queues or []) for q in item.split(",")
                           if q.strip()])
    n = concurrency or s.worker_concurrency
    server = None
    if metrics_port is not None:
        server = _metrics_server(ctx, s.host, metrics_port)
    url = ctx.engine.url.render_as_string(hide_password=True)
    console.print(f"SnoozeQL {__version__} worker: store {url}; {n} at once; queues "
                  f"{', '.join(wanted) if wanted else 'all'}"
                  + (f"; /metrics on http://{s.host}:{metrics_port}" if server else ""),
                  highlight=False)
    try:
        run_worker(ctx, concurrency=n, queues=wanted)
    finally:
        if server is not None:
            server.should_exit = True


def _metrics_server(ctx: state.Context, host: str, port: int) -> Any:
    """/metrics and /healthz of a worker, served from a thread."""
    import socket
    import threading

    import uvicorn

    from snoozeql.api.app import create_metrics_app
    from snoozeql.api.instrument import keep_peer
    from snoozeql.domain.errors import ValidationError

    with socket.socket() as probe:  # a clear error now rather than a dead thread later
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise ValidationError(f"--metrics-port {port}: cannot listen on {host}: "
                                  f"{exc.strerror}") from None
    config = uvicorn.Config(keep_peer(create_metrics_app(ctx)), host=host, port=port,
                            log_level="warning", log_config=None, proxy_headers=False)
    server = uvicorn.Server(config)
    threading.Thread(target=server.run, name="snoozeql-metrics", daemon=True).start()
    return server


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
