"""`snoozeql savings`: realized savings in a window and projected monthly savings."""

from __future__ import annotations

from typing import Annotated

import typer

from snoozeql.api.schemas.savings import SavingsOut
from snoozeql.cli import state
from snoozeql.cli.output import console, handle_errors, model_json, print_json, print_table
from snoozeql.services.savings import SavingsService


@handle_errors
def savings(
    from_: Annotated[str | None, typer.Option(
        "--from", help="ISO date/time with offset; default 30 days before --to")] = None,
    to: Annotated[str | None, typer.Option("--to", help="default now")] = None,
    group_by: Annotated[str, typer.Option(
        "--group-by", help="instance, account or schedule")] = "instance",
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
    as_csv: Annotated[bool, typer.Option(
        "--csv", help="export the stop intervals as CSV (rate stored at each stop)")] = False,
) -> None:
    """What stopping databases saved, and what every schedule will save per month."""
    if as_csv:
        typer.echo(SavingsService(state.ctx()).export_csv(start=from_, end=to), nl=False)
        return
    report = SavingsService(state.ctx()).report(start=from_, end=to, group_by=group_by)
    if as_json:
        print_json(model_json(SavingsOut.of(report)))
        return
    data = SavingsOut.of(report)
    print_table(
        f"realized {report.start:%Y-%m-%d %H:%M} - {report.end:%Y-%m-%d %H:%M} UTC "
        f"by {group_by}",
        [group_by.upper(), "HOURS STOPPED", "SAVED", "UNPRICED HOURS"],
        [(r.name, f"{r.stopped_hours:.1f}", f"${r.saved_usd:,.2f}",
          f"{r.unpriced_hours:.1f}") for r in data.realized],
    )
    console.print(f"realized total: ${data.realized_total_usd:,.2f}", highlight=False)
    print_table(
        "projected per month", ["SCHEDULE", "INSTANCES", "STOPPED H/WEEK", "$/MONTH", "UNPRICED"],
        [(p.schedule, p.instances, f"{p.stopped_hours_per_week:.1f}",
          f"${p.projected_monthly_usd:,.2f}", p.unpriced_instances)
         for p in data.projected],
    )
    console.print(f"projected total: ${data.projected_monthly_total_usd:,.2f}/month",
                  highlight=False)
