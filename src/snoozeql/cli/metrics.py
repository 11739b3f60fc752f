"""`snoozeql metrics show`, `snoozeql activity` and `snoozeql recommendations ...`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from snoozeql.cli import state
from snoozeql.cli.output import console, handle_errors, model_json, print_json, print_table
from snoozeql.domain.metrics import METRIC_UNITS

if TYPE_CHECKING:
    from snoozeql.api.schemas.metrics import ActivityOut

metrics_app = typer.Typer(help="Hourly metrics of an instance.", no_args_is_help=True)
recommendations_app = typer.Typer(
    help="When each database could sleep, and what that saves.", no_args_is_help=True
)

_SHADES = " ·░▒▓█"


@metrics_app.command("collect")
@handle_errors
def collect(
    account: Annotated[str | None, typer.Option(
        "--account", help="only this account's instances (id or name)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the report as JSON")] = False,
) -> None:
    """Run one metrics collection now (what the collector job does), with progress.

    Exit code 1 if a source failed (its error is shown), 0 otherwise."""
    from snoozeql.services.metrics import AccountCollection, MetricsService

    def progress(source: str, done: AccountCollection | None) -> None:
        if as_json:
            return
        if done is None:
            console.print(f"collecting {source} ...", highlight=False)
            return
        line = (f"{source} ({done.provider}): {done.instances} instance(s), "
                f"{done.samples} samples, {done.buckets_changed} hours updated, "
                f"{done.api_calls} API calls")
        console.print(line + (" - FAILED: " + "; ".join(done.errors) if done.errors else ""),
                      highlight=False)

    report = MetricsService(state.ctx()).collect(account=account, progress=progress)
    if as_json:
        print_json({
            "start": report.start.isoformat(), "end": report.end.isoformat(),
            "sources": [{"source": s.source, "provider": s.provider, "instances": s.instances,
                         "samples": s.samples, "buckets_changed": s.buckets_changed,
                         "api_calls": s.api_calls, "errors": list(s.errors)}
                        for s in report.sources],
        })
    elif not report.sources:
        console.print("nothing to collect: no running instance"
                      + (f" in account {account}" if account else ""), highlight=False)
    else:
        console.print(f"done: {report.buckets_changed} hours updated from "
                      f"{len(report.sources)} source(s), {len(report.failed)} failing",
                      highlight=False)
    if report.failed:
        raise typer.Exit(1)


@metrics_app.command("backfill")
@handle_errors
def backfill(
    account: Annotated[str, typer.Argument(
        help="account (id or name); 'local' for the local databases (nothing to read)")],
    days: Annotated[int, typer.Option(
        "--days", help="how far back, 1-63 (cut to the metrics retention)")] = 14,
    as_json: Annotated[bool, typer.Option("--json", help="print the report as JSON")] = False,
) -> None:
    """Read the metric history the provider already keeps (CloudWatch, Cloud
    Monitoring) for the account's databases, so recommendations need not wait a day.

    One line per region or project as it is read. Exit code 1 if a source failed."""
    from snoozeql.api.schemas.metrics import BackfillOut
    from snoozeql.services.metrics import MetricsService

    def progress(message: str) -> None:
        if not as_json:
            console.print(f"{account}: {message}", highlight=False, markup=False)

    svc = MetricsService(state.ctx())
    svc.check_backfill_days(days)
    if not as_json:
        console.print(f"reading {days} days of metric history of {account} ...",
                      highlight=False, markup=False)
    report = svc.backfill(account, days, progress=progress)
    if as_json:
        print_json(model_json(BackfillOut.of(report)))
    else:
        if report.note:
            console.print(f"{report.account}: {report.note}", highlight=False, markup=False)
        console.print(
            f"done: {report.hours_written} hours written from {report.hours_read} hourly "
            f"values of {report.instances} database(s), {report.api_calls} API calls, "
            f"{report.start:%Y-%m-%d %H:00} to {report.end:%Y-%m-%d %H:00} UTC"
            + (" - FAILED: " + "; ".join(report.errors) if report.errors else ""),
            highlight=False, markup=False,
        )
    if report.failed:
        raise typer.Exit(1)


@metrics_app.command("show")
@handle_errors
def show(
    name: Annotated[str, typer.Argument(help="instance name, id or ARN")],
    metric: Annotated[str | None, typer.Option(help="cpu, connections, read_iops, write_iops")]
    = None,
    since: Annotated[str, typer.Option(help="how far back: 3d, 12h, or an ISO time")] = "24h",
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """The hourly aggregates (avg, min, max, samples) of one instance."""
    from snoozeql.services.metrics import MetricsService

    found, start, end, rows = MetricsService(state.ctx()).series(name, metric, since, None)
    if as_json:
        print_json({
            "instance_id": str(found.id), "instance_name": found.name,
            "start": start.isoformat(), "end": end.isoformat(),
            "points": [
                {"metric": a.metric, "hour": a.hour.isoformat(), "avg": a.avg, "min": a.min,
                 "max": a.max, "count": a.count}
                for a in rows
            ],
        })
        return
    if not rows:
        console.print(f"no metrics for {found.name} since {start:%Y-%m-%d %H:%M} UTC",
                      highlight=False)
        return
    print_table(
        f"{found.name}: hourly metrics (UTC)",
        ["hour", "metric", "avg", "min", "max", "samples"],
        [
            (a.hour.strftime("%Y-%m-%d %H:00"), f"{a.metric} ({METRIC_UNITS[a.metric]})",
             f"{a.avg:.2f}", f"{a.min:.2f}", f"{a.max:.2f}", a.count)
            for a in sorted(rows, key=lambda a: (a.hour, a.metric))
        ],
    )


def heatmap_lines(profile: ActivityOut) -> list[str]:
    """A text heatmap: one row per weekday, one cell per local hour.

    A cell's shade is its highest connection count (or mean CPU where a source gives no
    connections) relative to the busiest cell; a blank cell had no data, ``·`` data
    and no activity.
    """
    conn, cpu = profile.connections_max, profile.cpu
    values = [
        [c if c is not None else u for c, u in zip(crow, urow, strict=True)]
        for crow, urow in zip(conn, cpu, strict=True)
    ]
    top = max((v for row in values for v in row if v is not None), default=0.0) or 1.0
    lines = ["     " + "".join(f"{h:<3d}" for h in range(24))]
    for day, row in zip(profile.weekdays, values, strict=True):
        cells = []
        for v in row:
            if v is None:
                cells.append("   ")
            elif v <= 0:
                cells.append(" · ")
            else:
                level = 2 + min(3, int(v / top * 3.999))
                cells.append(_SHADES[level] * 2 + " ")
        lines.append(f"{day:<5}" + "".join(cells))
    return lines


@handle_errors
def activity(
    name: Annotated[str, typer.Argument(help="instance name, id or ARN")],
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """When the instance is used: a week-by-hour heatmap in its time zone."""
    from snoozeql.api.schemas.metrics import ActivityOut
    from snoozeql.services.metrics import MetricsService

    found, profile, hours = MetricsService(state.ctx()).activity(name)
    data = ActivityOut.of(found, profile, hours)
    if as_json:
        print_json(model_json(data))
        return
    console.print(
        f"{found.name}: activity by local hour ({profile.timezone}), {hours} hours observed",
        highlight=False,
    )
    for line in heatmap_lines(data):
        console.print(line, highlight=False, markup=False)
    console.print("shade: highest connections (CPU where none); '·' idle, blank no data",
                  highlight=False)


_WITHOUT_SHOWN = 20


def _money(cents: int | None) -> str:
    return "-" if cents is None else f"${cents / 100:,.2f}"


@recommendations_app.command("list")
@handle_errors
def list_recommendations(
    all_: Annotated[bool, typer.Option("--all", help="include dismissed ones")] = False,
    without: Annotated[bool, typer.Option(
        "--without", help=f"list every instance without a recommendation (default: the "
                          f"first {_WITHOUT_SHOWN} and a count)")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Recommended sleep windows per instance (largest savings first), then instances
    without one and why. --json prints every entry (the API pages them)."""
    from snoozeql.services.recommendations import RecommendationService

    items = RecommendationService(state.ctx()).list(include_dismissed=all_)
    if as_json:
        print_json(items)
        return
    recs = [r for r in items if r["status"] != "none"]
    none = [r for r in items if r["status"] == "none"]
    if recs:
        rows = []
        for r in recs:
            if r["kind"] == "always_idle":
                when = "STOP IT: always idle (idle in every hour of the lookback)"
            else:
                when = "; ".join(
                    f"{w['weekdays']} {w['begin']}-{w['end']}" for w in r["windows"]
                )
            rows.append((
                r["id"], r["instance_name"], f"{when} ({r['timezone']})",
                f"{r['sleep_hours_per_week']:g}", f"{r['confidence']:.2f}",
                _money(r["monthly_savings_cents"]), r["status"],
            ))
        print_table("Recommendations", ["id", "instance", "sleep", "h/week", "confidence",
                                        "saves/month", "status"], rows)
        for r in recs:
            for note in r.get("notes") or []:
                console.print(f"{r['instance_name']}: {note}", highlight=False)
    else:
        console.print("no recommendations yet", highlight=False)
    if none:
        shown = none if without else none[:_WITHOUT_SHOWN]
        print_table("No recommendation", ["instance", "reason"],
                    [(r["instance_name"], "; ".join([r["reason"], *(r.get("notes") or [])]))
                     for r in shown])
        if len(shown) < len(none):
            console.print(f"... and {len(none) - len(shown)} more instances without a "
                          "recommendation (--without lists them all)", highlight=False)


@recommendations_app.command("dismiss")
@handle_errors
def dismiss(
    rec_id: Annotated[str, typer.Argument(help="recommendation id")],
    reason: Annotated[str | None, typer.Option(
        help="why it does not fit (kept in the audit trail)")] = None,
) -> None:
    """Hide a recommendation until the analysis recommends something different."""
    from snoozeql.services.recommendations import RecommendationService

    r = RecommendationService(state.ctx()).dismiss(rec_id, actor=state.ACTOR, reason=reason)
    console.print(f"dismissed the recommendation for {r['instance_name']}", highlight=False)


@recommendations_app.command("apply")
@handle_errors
def apply(
    rec_id: Annotated[str, typer.Argument(help="recommendation id")],
    name: Annotated[str | None, typer.Option(help="schedule name")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Create the recommended schedule and assign it to the instance."""
    from snoozeql.api.schemas.metrics import AppliedOut
    from snoozeql.services.recommendations import RecommendationService

    r = RecommendationService(state.ctx()).apply(rec_id, actor=state.ACTOR, name=name)
    if as_json:
        print_json(model_json(AppliedOut.of(r)))
        return
    console.print(f"created schedule {r.schedule_name} and assigned it to "
                  f"{r.instance_name}", highlight=False)
