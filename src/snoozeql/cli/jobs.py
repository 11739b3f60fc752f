"""`snoozeql jobs list | run`: what the background work did and does, and a task now."""

from __future__ import annotations

from typing import Annotated

import typer

from snoozeql.cli import state
from snoozeql.cli.output import console, fail, handle_errors, print_json, print_table

app = typer.Typer(help="Background tasks: recent and running runs; run one now.",
                  no_args_is_help=True)


@app.command("list")
@handle_errors
def list_(
    task: Annotated[str | None, typer.Option(help="only this task, e.g. sync-account")] = None,
    status: Annotated[str | None, typer.Option(
        help="queued, running, succeeded, failed, abandoned")] = None,
    limit: Annotated[int, typer.Option(help="rows per page (1-500)")] = 50,
    cursor: Annotated[str | None, typer.Option(help="next_cursor of the previous page")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Queued tasks (PostgreSQL), then runs newest first: status, worker, duration,
    error, retries."""
    from snoozeql.services.jobs import JobService

    page = JobService(state.ctx()).list(limit=limit, cursor=cursor, task=task, status=status)
    if as_json:
        from snoozeql.api.schemas.jobs import JobPageOut, JobRunOut

        print_json(JobPageOut(items=[JobRunOut.of(r) for r in page.items],
                              next_cursor=page.next_cursor).model_dump())
        return
    rows = []
    for r in page.items:
        args = ", ".join(f"{k}={v}" for k, v in r.args.items()
                         if k not in ("instance_ids", "timestamp"))
        rows.append([
            r.task, args, r.status, r.worker or "", r.started_at or r.scheduled_at,
            f"{r.seconds:.2f} s" if r.seconds is not None else "", r.attempt,
            (r.error or "")[:120],
        ])
    if not rows:
        console.print("no task has run yet", highlight=False)
        return
    print_table(None, ["task", "args", "status", "worker", "started", "duration", "retries",
                       "error"], rows)
    if page.next_cursor:
        console.print(f"more: --cursor '{page.next_cursor}'", highlight=False)


@app.command("run")
@handle_errors
def run(
    kind: Annotated[str, typer.Argument(help="what to run: sync")],
    account: Annotated[str | None, typer.Argument(help="account name or id")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Run a task now: on PostgreSQL it is queued for a worker; on SQLite it runs here."""
    from snoozeql.jobs.dispatch import run_now

    started = run_now(state.ctx(), kind, account, wait=True)
    if as_json:
        from snoozeql.api.schemas.jobs import JobStartedOut

        # The API answers before the run ends; here it was waited for: with its error.
        print_json(JobStartedOut.of(started).model_dump() | {"error": started.error})
    elif started.status == "queued":
        console.print(f"{started.task} queued (job {started.job_id}); see `snoozeql jobs "
                      "list`", highlight=False)
    elif started.status == "already_queued":
        console.print(f"{started.task} already waits in the queue (job {started.job_id})",
                      highlight=False)
    elif started.status == "succeeded":
        console.print(f"{started.task} done", highlight=False)
    if started.status == "failed":
        fail(f"{started.task} failed: {started.error}")
