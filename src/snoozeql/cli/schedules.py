"""`snoozeql schedules ...`: define, import, check, preview and assign sleep schedules."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
import yaml

from snoozeql.api.schemas.schedules import (
    AssignmentOut,
    ConflictOut,
    EvaluationOut,
    MatchOut,
    PreviewOut,
    ReconcileOut,
    ScheduleOut,
    SegmentOut,
)
from snoozeql.cli import state
from snoozeql.cli.files import read_text_file
from snoozeql.cli.output import (
    console,
    handle_errors,
    line,
    model_json,
    print_fields,
    print_json,
    print_table,
    styled,
)
from snoozeql.domain.errors import ValidationError
from snoozeql.services.schedules import Evaluation, MatchView, ScheduleService, ScheduleView

if TYPE_CHECKING:
    from snoozeql.domain.schedules import Schedule

app = typer.Typer(help="Sleep schedules: when databases should run.", no_args_is_help=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="print JSON")]

_PERIOD_KEYS = ("begintime", "endtime", "weekdays", "monthdays", "months", "name",
                "description")


def _read(path: Path) -> Any:
    """A JSON or YAML file ('-' reads standard input)."""
    text = read_text_file(path)
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        try:
            return yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ValidationError(f"{path}: neither JSON nor YAML ({exc})") from None


def parse_period(text: str) -> dict[str, str]:
    """``"begintime=08:00 endtime=19:00 weekdays=mon-fri"`` -> a period dict."""
    out: dict[str, str] = {}
    for part in text.split():
        key, sep, value = part.partition("=")
        if not sep or key not in _PERIOD_KEYS:
            raise ValidationError(
                f"--period {text!r}: {part!r} must be key=value with key one of "
                f"{', '.join(_PERIOD_KEYS)}"
            )
        out[key] = value
    if not out:
        raise ValidationError("--period: empty")
    return out


def parse_exception(text: str) -> dict[str, str] | str:
    """``2026-12-25`` (stopped all day) or ``2026-12-31=running``."""
    day, sep, st = text.partition("=")
    return {"date": day, "state": st} if sep else day


def _fields(
    name: str | None, timezone: str | None, period: list[str] | None,
    description: str | None, enforced: bool | None, dry_run: bool | None,
    override_status: str | None, exception: list[str] | None, priority: int | None = None,
    start_cron: str | None = None, stop_cron: str | None = None,
) -> dict[str, Any]:
    d: dict[str, Any] = {}
    if start_cron is not None or stop_cron is not None:
        # a cron pair replaces the periods (a schedule has one or the other)
        d["periods"] = []
        if start_cron is not None:
            d["start_cron"] = start_cron
        if stop_cron is not None:
            d["stop_cron"] = stop_cron
    if priority is not None:
        d["priority"] = priority
    if name is not None:
        d["name"] = name
    if timezone is not None:
        d["timezone"] = timezone
    if period:
        if start_cron is not None or stop_cron is not None:
            raise ValidationError("give --period or --start-cron/--stop-cron, not both")
        d.update(periods=[parse_period(p) for p in period], start_cron=None, stop_cron=None)
    if description is not None:
        d["description"] = description
    if enforced is not None:
        d["enforced"] = enforced
    if dry_run is not None:
        d["dry_run"] = dry_run
    if override_status is not None:
        d["override_status"] = None if override_status in ("", "none") else override_status
    if exception:
        d["exceptions"] = [parse_exception(e) for e in exception]
    return d


def _show(view: ScheduleView, as_json: bool) -> None:
    if as_json:
        print_json(model_json(ScheduleOut.of(view)))
        return
    s = view.schedule
    print_fields([
        ("id", view.id), ("name", s.name), ("timezone", s.timezone),
        ("description", s.description), ("priority", view.priority),
        ("override", s.override_status),
        ("enforced", s.enforced), ("dry run", s.dry_run),
        ("exceptions", ", ".join(f"{e.date.isoformat()} {e.state}" for e in s.exceptions)
         or None),
    ])
    if s.start_cron is not None:
        print_fields([("mode", "cron"), ("start cron", s.start_cron),
                      ("stop cron", s.stop_cron)])
        return
    print_table("periods", ["#", "NAME", "PERIOD"],
                [(i, p.name, p.describe()) for i, p in enumerate(s.periods)])


Name = Annotated[str | None, typer.Option("--name", help="schedule name")]
Zone = Annotated[str | None, typer.Option("--timezone", "--tz", help="IANA zone")]
PeriodOpt = Annotated[list[str] | None, typer.Option(
    "--period", help="'begintime=08:00 endtime=19:00 weekdays=mon-fri' (repeatable)")]
StartCron = Annotated[str | None, typer.Option(
    "--start-cron", help="cron pair: when to start, e.g. '0 7 * * 1-5' (with --stop-cron)")]
StopCron = Annotated[str | None, typer.Option(
    "--stop-cron", help="cron pair: when to stop, e.g. '0 19 * * 1-5' (with --start-cron)")]
Desc = Annotated[str | None, typer.Option("--description")]
Enf = Annotated[bool | None, typer.Option("--enforced/--not-enforced",
                                          help="converge on every run")]
Dry = Annotated[bool | None, typer.Option("--dry-run/--no-dry-run",
                                          help="record, do not act")]
Ovr = Annotated[str | None, typer.Option("--override-status", help="running, stopped, none")]
Exc = Annotated[list[str] | None, typer.Option(
    "--exception", help="2026-12-25 (stopped) or 2026-12-31=running (repeatable)")]
Prio = Annotated[int | None, typer.Option(
    "--priority", help="when schedules disagree on an instance the highest wins (default 0)")]


@app.command("add")
@handle_errors
def add(
    file: Annotated[Path | None, typer.Argument(help="JSON/YAML schedule ('-' = stdin)")] = None,
    name: Name = None, timezone: Zone = None, period: PeriodOpt = None,
    description: Desc = None, enforced: Enf = None, dry_run: Dry = None,
    override_status: Ovr = None, exception: Exc = None, priority: Prio = None,
    start_cron: StartCron = None, stop_cron: StopCron = None, as_json: JsonOpt = False,
) -> None:
    """Create a schedule from a file or from options (options override the file): periods
    (--period) or a cron pair (--start-cron and --stop-cron)."""
    base = _read(file) if file else {}
    if not isinstance(base, dict):
        raise ValidationError(f"{file}: expected one schedule object")
    base.update(_fields(name, timezone, period, description, enforced, dry_run,
                        override_status, exception, priority, start_cron, stop_cron))
    view = ScheduleService(state.ctx()).create(base, actor=state.ACTOR)
    if as_json:
        print_json(model_json(ScheduleOut.of(view)))
        return
    console.print(line("created schedule ", styled(view.name, "bold"), f" ({view.id})"))


def _describe(s: Schedule) -> str:
    if s.periods:
        return "; ".join(p.describe() for p in s.periods)
    if s.start_cron is not None:
        return f"cron: start {s.start_cron!r}, stop {s.stop_cron!r}"
    return f"always {s.override_status}"


@app.command("list")
@handle_errors
def list_(as_json: JsonOpt = False) -> None:
    """Every schedule."""
    views = ScheduleService(state.ctx()).list()
    if as_json:
        print_json([model_json(ScheduleOut.of(v)) for v in views])
        return
    print_table(None, ["NAME", "TIMEZONE", "PERIODS", "ENFORCED", "DRY RUN", "ID"], [
        (v.name, v.schedule.timezone, _describe(v.schedule), v.schedule.enforced,
         v.schedule.dry_run, str(v.id)[:8])
        for v in views
    ])


@app.command("show")
@handle_errors
def show(ref: Annotated[str, typer.Argument(help="name or id")], as_json: JsonOpt = False
         ) -> None:
    """One schedule in detail."""
    _show(ScheduleService(state.ctx()).get(ref), as_json)


@app.command("update")
@handle_errors
def update(
    ref: Annotated[str, typer.Argument(help="name or id")],
    file: Annotated[Path | None, typer.Argument(help="whole new definition (JSON/YAML)")] = None,
    name: Name = None, timezone: Zone = None, period: PeriodOpt = None,
    description: Desc = None, enforced: Enf = None, dry_run: Dry = None,
    override_status: Ovr = None, exception: Exc = None, priority: Prio = None,
    start_cron: StartCron = None, stop_cron: StopCron = None, as_json: JsonOpt = False,
) -> None:
    """Replace a schedule with FILE, or change only the fields given as options (a cron
    pair replaces the periods, and periods replace a cron pair)."""
    changes = _fields(name, timezone, period, description, enforced, dry_run,
                      override_status, exception, priority, start_cron, stop_cron)
    svc = ScheduleService(state.ctx())
    if file:
        data = _read(file)
        if not isinstance(data, dict):
            raise ValidationError(f"{file}: expected one schedule object")
        view = svc.update(ref, {**data, **changes}, replace=True, actor=state.ACTOR)
    elif changes:
        view = svc.update(ref, changes, actor=state.ACTOR)
    else:
        raise ValidationError("nothing to change: give a FILE or options")
    _show(view, as_json)


@app.command("delete")
@handle_errors
def delete(ref: Annotated[str, typer.Argument(help="name or id")]) -> None:
    """Delete a schedule and its assignments."""
    view = ScheduleService(state.ctx()).delete(ref, actor=state.ACTOR)
    console.print(f"deleted schedule {view.name}")


@app.command("import")
@handle_errors
def import_(
    custodian: Annotated[str | None, typer.Option(
        "--custodian", help="a Cloud Custodian offhours tag value")] = None,
    instance_scheduler: Annotated[Path | None, typer.Option(
        "--instance-scheduler", help="Instance Scheduler configuration (JSON/YAML file)")] = None,
    name: Annotated[str | None, typer.Option(help="name for the Custodian schedule")] = None,
    default_tz: Annotated[str, typer.Option(
        "--default-tz", "--default_tz", help="Custodian policy: default zone")] = "et",
    onhour: Annotated[int, typer.Option(
        min=0, max=23, help="Custodian policy: default on hour")] = 7,
    offhour: Annotated[int, typer.Option(
        min=0, max=23, help="Custodian policy: default off hour")] = 19,
    weekends: Annotated[bool, typer.Option(
        "--weekends/--no-weekends",
        help="Custodian policy: default days Mon-Fri (--no-weekends: every day)")] = True,
    weekends_only: Annotated[bool, typer.Option(
        "--weekends-only", help="Custodian policy: off Friday at offhour, on Monday")] = False,
    opt_out: Annotated[bool, typer.Option(
        "--opt-out", help="Custodian policy: resources without the tag get the defaults "
                          "(--custodian may then be left out)")] = False,
    default_timezone: Annotated[str, typer.Option(
        help="zone of Instance Scheduler schedules that name none")] = "UTC",
    as_json: JsonOpt = False,
) -> None:
    """Import schedules people already have."""
    svc = ScheduleService(state.ctx())
    from_custodian = custodian is not None or opt_out
    if from_custodian == (instance_scheduler is not None):
        raise ValidationError("give exactly one of --custodian or --instance-scheduler")
    warnings: list[str] = []
    if from_custodian:
        if not name:
            raise ValidationError("--name: a schedule imported from a Custodian tag needs one")
        views = [svc.import_custodian(
            custodian, name=name, default_tz=default_tz, onhour=onhour, offhour=offhour,
            weekends=weekends, weekends_only=weekends_only, opt_out=opt_out,
            warnings=warnings)]
    else:
        assert instance_scheduler is not None
        views, warnings = svc.import_instance_scheduler(
            _read(instance_scheduler), default_timezone=default_timezone
        )
    if as_json:
        print_json({"schedules": [model_json(ScheduleOut.of(v)) for v in views],
                    "warnings": warnings})
        return
    for v in views:
        console.print(line("imported schedule ", styled(v.name, "bold"),
                           f" ({v.schedule.timezone})"))
    for w in warnings:
        console.print(line(styled("warning:", "yellow"), " ", w), highlight=False)


def _eval_json(e: Evaluation) -> dict[str, Any]:
    return model_json(EvaluationOut.of(e))


@app.command("check")
@handle_errors
def check(
    ref: Annotated[str, typer.Argument(help="name or id")],
    at: Annotated[str | None, typer.Option(
        "--at", help="instant with offset, e.g. 2026-11-23T19:30:00+01:00; default now")] = None,
    as_json: JsonOpt = False,
) -> None:
    """The desired state at an instant and the next transition."""
    ev = ScheduleService(state.ctx()).evaluate(ref, at)
    if as_json:
        print_json(_eval_json(ev))
        return
    console.print(line(f"at {ev.at.isoformat()}: ", styled(ev.decision.state, "bold"),
                       f" ({ev.decision.reason})"), highlight=False)
    if ev.next:
        console.print(f"next: {ev.next.state} at {ev.next.at.isoformat()} ({ev.next.reason})",
                      highlight=False)
    else:
        console.print("next: no change within 400 days")


@app.command("preview")
@handle_errors
def preview_(
    ref: Annotated[str, typer.Argument(help="name or id")],
    days: Annotated[int, typer.Option(help="how many days")] = 7,
    start: Annotated[str | None, typer.Option(help="ISO instant with offset; default now")]
    = None,
    as_json: JsonOpt = False,
) -> None:
    """The desired state over the coming days, in the schedule's time zone."""
    view, segments = ScheduleService(state.ctx()).preview(ref, start=start, days=days)
    if as_json:
        print_json(model_json(PreviewOut(schedule=view.name, timezone=view.schedule.timezone,
                                         segments=[SegmentOut.of(s) for s in segments])))
        return
    print_table(f"{view.name} ({view.schedule.timezone})", ["FROM", "TO", "STATE", "WHY"], [
        (s.start.strftime("%a %Y-%m-%d %H:%M %z"), s.end.strftime("%a %Y-%m-%d %H:%M %z"),
         str(s.state), s.reason)
        for s in segments
    ])


Target = Annotated[str | None, typer.Option("--instance", help="instance id, ARN or name")]
TagT = Annotated[str | None, typer.Option("--tag", help="key=value")]
AcctT = Annotated[str | None, typer.Option("--account", help="account name or id")]
SelT = Annotated[str | None, typer.Option(
    "--selector", help="a selector rule tree: a JSON/YAML FILE ('-' = stdin) or inline JSON")]


def _selector(value: str | None) -> Any:
    """``--selector``: inline JSON (starts with ``{``) or a JSON/YAML file."""
    if value is None:
        return None
    if value.lstrip().startswith("{"):
        return value  # parsed (with positions in errors) by the service
    return _read(Path(value))


@app.command("assign")
@handle_errors
def assign(ref: str, instance: Target = None, tag: TagT = None, account: AcctT = None,
           selector: SelT = None, as_json: JsonOpt = False) -> None:
    """Assign a schedule to an instance, a tag (key=value), an account or a selector."""
    a = ScheduleService(state.ctx()).assign(ref, instance=instance, tag=tag, account=account,
                                            selector=_selector(selector), actor=state.ACTOR)
    if as_json:
        print_json(model_json(AssignmentOut.of(a)))
        return
    console.print(f"schedule {a.schedule_name} assigned to {a.description}", highlight=False)


@app.command("unassign")
@handle_errors
def unassign(ref: str, instance: Target = None, tag: TagT = None, account: AcctT = None,
             selector: SelT = None) -> None:
    """Remove one assignment."""
    ScheduleService(state.ctx()).unassign(ref, instance=instance, tag=tag, account=account,
                                          selector=_selector(selector), actor=state.ACTOR)
    console.print("assignment removed")


def _print_matches(title: str, found: list[MatchView], as_json: bool) -> None:
    if as_json:
        print_json({"count": len(found),
                    "instances": [model_json(MatchOut.of(m)) for m in found]})
        return
    print_table(title, ["INSTANCE", "PROVIDER", "ACCOUNT", "REGION", "ENGINE", "STATUS",
                        "MATCHED BY"], [
        (m.instance.name, m.instance.provider.value, m.account_name, m.instance.region,
         m.instance.engine, m.instance.status.value, ", ".join(v.target for v in m.via))
        for m in found
    ])
    console.print(f"{len(found)} instance(s)", style="dim")


@app.command("matches")
@handle_errors
def matches(
    ref: Annotated[str | None, typer.Argument(help="schedule name or id")] = None,
    selector: SelT = None, as_json: JsonOpt = False,
) -> None:
    """The instances a schedule applies to now (through any assignment), or that an
    unsaved --selector would match."""
    svc = ScheduleService(state.ctx())
    if (ref is None) == (selector is None):
        raise ValidationError("give a schedule NAME or --selector (not both)")
    if selector is not None:
        _print_matches("selector preview", svc.preview_selector(_selector(selector)), as_json)
        return
    assert ref is not None
    view, found = svc.matches(ref)
    _print_matches(view.name, found, as_json)


@app.command("conflicts")
@handle_errors
def conflicts(ref: Annotated[str, typer.Argument(help="name or id")],
              as_json: JsonOpt = False) -> None:
    """Other schedules that want the opposite state on shared instances (next 7 days)."""
    found = ScheduleService(state.ctx()).conflicts(ref)
    if as_json:
        print_json([model_json(ConflictOut.of(c)) for c in found])
        return
    print_table(None, ["OTHER SCHEDULE", "FIRST CONFLICT", "THIS", "OTHER", "WINNER", "RULE",
                       "INSTANCES"], [
        (c.other_name, c.first_at.isoformat(), c.state, c.other_state, c.winner, c.rule,
         ", ".join(c.instances))
        for c in found
    ])
    if not found:
        console.print("no conflicts in the next 7 days", style="dim")


@app.command("assignments")
@handle_errors
def assignments(ref: Annotated[str | None, typer.Argument(help="name or id; default all")]
                = None, as_json: JsonOpt = False) -> None:
    """Where schedules are assigned (the instance tag snoozeql-schedule=NAME also works)."""
    items = ScheduleService(state.ctx()).assignments(ref)
    if as_json:
        print_json([model_json(AssignmentOut.of(a)) for a in items])
        return
    print_table(None, ["SCHEDULE", "KIND", "TARGET", "SINCE"],
                [(a.schedule_name, a.kind, a.description, a.created_at) for a in items])


@app.command("reconcile")
@handle_errors
def reconcile(
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="show what a run would do now, per instance and why; do nothing")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Run the reconciler once now (what `serve` does every minute).

    Exit 1 when an action failed (a provider error); refusals (a read replica, a
    protected instance) are reported but are not failures of the run."""
    from snoozeql.services.reconciler import Reconciler

    report = Reconciler(state.ctx()).run(dry_run=dry_run)
    if as_json:
        print_json(model_json(ReconcileOut.of(report)))
    else:
        print_table(None, ["INSTANCE", "ACTION", "RESULT", "REASON", "ERROR"], [
            (i.instance_name, i.action, i.result, i.reason, i.error) for i in report.items
        ])
        if dry_run:
            acting = sum(1 for i in report.items if i.action not in ("none", "skip"))
            console.print(f"dry run: {report.considered} scheduled instance(s), a run now "
                          f"would act on {acting}; nothing was done", style="dim",
                          highlight=False)
        else:
            console.print(f"{report.considered} scheduled instance(s), "
                          f"{len(report.items)} action(s)", style="dim")
    if any(i.result == "failed" for i in report.items):
        raise typer.Exit(1)
