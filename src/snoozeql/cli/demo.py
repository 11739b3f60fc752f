"""`snoozeql demo`: the dashboard and API over a simulated fleet, in a store of its own."""

from __future__ import annotations

import secrets
import sys
from pathlib import Path
from typing import Annotated

import typer

from snoozeql import __version__
from snoozeql.cli import state
from snoozeql.cli.output import console, handle_errors
from snoozeql.config import Settings
from snoozeql.domain.errors import ValidationError

DEMO_DB = "demo.db"
# Files the demo owns in its directory; only these are removed for a fresh demo.
_OWNED = (DEMO_DB, f"{DEMO_DB}-wal", f"{DEMO_DB}-shm", "demo-simulation.json")


def demo_settings(user: Settings, directory: Path) -> Settings:
    """The user's settings turned to the demo store: nothing of the user's store is used.

    Webhooks are dropped (the demo must not notify anyone), the price table and the AWS
    Price List are not consulted, and the account sync runs often so a stop or start
    shows up within seconds.
    """
    return user.model_copy(update={
        "data_dir": directory,
        "database_url": f"sqlite:///{directory / DEMO_DB}",
        "demo": True,
        "secret_key": None,
        "price_table": None,
        "aws_price_list": False,
        "webhook_urls": [],
        "slack_webhook_urls": [],
        "reconcile_dry_run": False,
        "jobs_enabled": True,
        "sync_interval_seconds": 10,
        "job_poll_seconds": 1.0,
    })


def demo_directory(user: Settings, given: Path | None) -> Path:
    directory = (given or user.data_dir / "demo").expanduser().resolve()
    if directory == user.data_dir.expanduser().resolve():
        raise ValidationError(
            f"{directory} is your SnoozeQL data directory; the demo needs a directory of "
            "its own (default <data dir>/demo)"
        )
    if (directory / "snoozeql.db").exists():
        raise ValidationError(
            f"{directory} holds a SnoozeQL store (snoozeql.db); pick another --dir for the demo"
        )
    return directory


def _say(message: str) -> None:
    console.print(f"[demo] {message}", highlight=False, markup=False, soft_wrap=True)
    sys.stdout.flush()


@handle_errors
def demo(
    instances: Annotated[int, typer.Option(help="simulated databases to create", min=1,
                                           max=200_000)] = 500,
    port: Annotated[int | None, typer.Option(help="default 8080 (SNOOZEQL_PORT)")] = None,
    host: Annotated[str | None, typer.Option(help="default 127.0.0.1 (SNOOZEQL_HOST)")] = None,
    directory: Annotated[Path | None, typer.Option(
        "--dir", help="the demo's own directory (default <data dir>/demo)")] = None,
    keep: Annotated[bool, typer.Option(
        "--keep", help="reuse the demo store of an earlier run instead of seeding afresh")
    ] = False,
    seed: Annotated[int, typer.Option(help="random seed of the simulated fleet")] = 1,
    jobs: Annotated[bool, typer.Option("--jobs/--no-jobs", help="run periodic jobs")] = True,
) -> None:
    """Serve the dashboard over a simulated fleet (two clouds, 14 days of history).

    The demo has its own store (<data dir>/demo/demo.db) and never reads or writes your
    store, whatever SNOOZEQL_DATABASE_URL says. Every database in it is simulated
    (providers demo-aws and demo-gcp); stops and starts act on the simulation.
    """
    import uvicorn

    from snoozeql.api.app import create_app
    from snoozeql.api.instrument import keep_peer
    from snoozeql.config import get_settings
    from snoozeql.jobs.runner import JobRunner
    from snoozeql.services.apikeys import ApiKeyService
    from snoozeql.services.context import build_context
    from snoozeql.services.demo import DemoService

    user = get_settings()
    directory = demo_directory(user, directory)
    settings = demo_settings(user, directory)
    # Quiet while seeding (the progress lines say what happens); the server logs as usual.
    state.configure_logging("WARNING", settings.log_json)
    directory.mkdir(parents=True, exist_ok=True)
    existing = (directory / DEMO_DB).exists()
    if not keep:
        for name in _OWNED:
            (directory / name).unlink(missing_ok=True)
    _say(f"demo store {directory / DEMO_DB} (simulated; your own store is not used)")
    ctx = build_context(settings)
    state._ctx = ctx  # every command path in this process uses the demo store
    from snoozeql.services.accounts import AccountService

    if keep and existing and AccountService(ctx).list():
        _, admin_key = ApiKeyService(ctx).create(
            f"demo-admin-{secrets.token_hex(3)}", "admin", actor="demo")
        viewer_key = None
        _say("reusing the demo store of an earlier run (--keep)")
    else:
        report = DemoService(ctx).seed(instances, seed=seed, progress=_say)
        admin_key, viewer_key = report.admin_key, report.viewer_key
        _say(
            f"seeded {report.instances} simulated databases in {len(report.accounts)} accounts "
            f"({', '.join(report.accounts)}), {report.metric_hours} metric hours, "
            f"{report.schedules} schedules governing {report.governed}, {report.actions} "
            f"past actions, {report.stop_intervals} stop intervals in {report.seconds:.1f} s"
        )
    h, p = host or settings.host, port or settings.port
    state.configure_logging(settings.log_level, settings.log_json)
    runner = JobRunner(ctx) if jobs else None
    if runner:
        runner.start()
    _say(f"SnoozeQL {__version__} demo")
    _say(f"dashboard: http://{h}:{p}/")
    _say(f"API: http://{h}:{p}/api/v1 (docs at /api/v1/docs)")
    _say(f"admin API key (sign in with it): {admin_key}")
    if viewer_key:
        _say(f"viewer API key (read only): {viewer_key}")
    _say("press Ctrl+C to stop; `snoozeql demo --keep` serves this demo store again")
    try:
        # keep_peer: /metrics decides on the TCP peer, not on X-Forwarded-For.
        uvicorn.run(keep_peer(create_app(ctx)), host=h, port=p,
                    log_level=settings.log_level.lower(), log_config=None, proxy_headers=False)
    finally:
        if runner:
            runner.stop()
