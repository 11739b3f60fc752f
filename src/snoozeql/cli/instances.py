"""`snoozeql instances ...`: the inventory, read from the store."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated

import typer

from snoozeql.cli import state
from snoozeql.cli.output import (
    action_line,
    console,
    err_console,
    fail,
    handle_errors,
    line,
    print_fields,
    print_json,
    print_table,
    styled,
)
from snoozeql.domain.errors import ValidationError
from snoozeql.domain.types import ActionResult, Instance, InstanceKind
from snoozeql.services.inventory import InventoryService

if TYPE_CHECKING:
    from rich.text import Text

    from snoozeql.services.bulk import BulkItemResult

app = typer.Typer(help="Databases in the inventory (cloud and local).", no_args_is_help=True)


def _cost(i: Instance) -> str:
    if i.hourly_cost_cents is None:
        return "-"
    return f"${float(i.hourly_cost_cents) / 100:.3f}/h"


_STATUS_COLORS = {"running": "green", "stopped": "dim", "failed": "red", "unknown": "yellow"}


def _status(i: Instance) -> Text:
    s = styled(i.status.value, _STATUS_COLORS.get(i.status.value, "yellow"))
    return line(s, " ", styled("(missing)", "red")) if i.missing_since else s


@app.command("list")
@handle_errors
def list_(
    provider: Annotated[str | None, typer.Option(help="aws, gcp, local, docker")] = None,
    account: Annotated[str | None, typer.Option(help="account name or id")] = None,
    region: Annotated[str | None, typer.Option()] = None,
    engine: Annotated[str | None, typer.Option()] = None,
    status: Annotated[str | None, typer.Option(help="running, stopped, ...")] = None,
    kind: Annotated[str | None, typer.Option(help="instance or cluster")] = None,
    tag: Annotated[list[str] | None, typer.Option(help="key=value (repeatable, AND)")] = None,
    search: Annotated[str | None, typer.Argument(help="free text (name, ARN, ...)")] = None,
    missing: Annotated[
        bool | None, typer.Option("--missing/--present", help="only missing / only present")
    ] = None,
    sort: Annotated[str, typer.Option(help="name, engine, region, status...; -x = desc")] = "name",
    limit: Annotated[int | None, typer.Option(help="at most this many")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """List instances from the inventory (never live from the cloud)."""
    svc = InventoryService(state.ctx())
    f = svc.build_filter(
        provider=provider, account=account, region=region, engine=engine, status=status,
        kind=kind, tags=tag, text=search, missing=missing,
    )
    if limit is not None:
        items = svc.list(f, sort=sort, limit=limit).items
    else:
        items = svc.list_all(f, sort=sort)
    if as_json:
        from snoozeql.api.schemas.instances import InstanceOut

        print_json([InstanceOut.of(i).model_dump() for i in items])
        return
    print_table(
        None,
        ["NAME", "PROVIDER", "KIND", "ENGINE", "CLASS", "REGION", "STATUS", "COST", "ID"],
        [
            (i.name, i.provider, i.kind, f"{i.engine} {i.engine_version or ''}".strip(),
             i.instance_class, i.region, _status(i), _cost(i), str(i.id)[:8])
            for i in items
        ],
    )
    console.print(f"{len(items)} instance(s)", style="dim")


@app.command("show")
@handle_errors
def show(
    ref: Annotated[str, typer.Argument(help="id, ARN or name")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """One instance in detail (and the members of a cluster)."""
    svc = InventoryService(state.ctx())
    i = svc.get(ref)
    members = svc.members(i) if i.kind == InstanceKind.CLUSTER else []
    if as_json:
        from snoozeql.api.schemas.instances import InstanceDetail

        print_json(InstanceDetail.with_members(i, members).model_dump())
        return
    print_fields([
        ("id", i.id), ("name", i.name), ("provider", i.provider), ("provider id", i.provider_id),
        ("kind", i.kind), ("engine", f"{i.engine} {i.engine_version or ''}"),
        ("class", i.instance_class), ("region", i.region), ("status", _status(i)),
        ("raw status", i.raw_status), ("endpoint", f"{i.endpoint_host}:{i.endpoint_port}"
                                       if i.endpoint_host else None),
        ("multi-AZ", i.multi_az), ("nodes", i.node_count), ("cluster", i.cluster_provider_id),
        ("hourly cost", _cost(i)), ("tags", i.tags), ("first seen", i.first_seen_at),
        ("last seen", i.last_seen_at), ("missing since", i.missing_since),
        ("last error", i.last_error),
    ])
    if members:
        print_table(
            "members", ["NAME", "CLASS", "STATUS", "WRITER"],
            [(m.name, m.instance_class, _status(m), m.extra.get("is_cluster_writer"))
             for m in members],
        )


@app.command("register")
@handle_errors
def register(
    name: Annotated[str, typer.Argument(help="a DNS label")],
    engine: Annotated[str, typer.Option("--engine", help="postgres, mysql, ...")],
    hourly_cost: Annotated[float | None, typer.Option(
        "--hourly-cost", help="USD per hour, for savings")] = None,
    tags: Annotated[list[str] | None, typer.Option(
        "--tag", help="key=value; repeatable")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Register a database SnoozeQL cannot discover (provider 'external').

    Push its metrics (POST /api/v1/instances/{id}/metrics) to get recommendations and
    savings; start and stop on it are refused."""
    from snoozeql.services.external import ExternalInstanceService

    i = ExternalInstanceService(state.ctx()).register(name, engine, hourly_cost, tags or [])
    if as_json:
        from snoozeql.api.schemas.instances import InstanceOut

        print_json(InstanceOut.of(i).model_dump())
        return
    console.print(f"registered external database {i.name} ({i.engine}), id {i.id}; push its "
                  f"metrics to get recommendations", highlight=False)


def _act(action: str, ref: str, as_json: bool, force: bool = False) -> None:
    from snoozeql.services.lifecycle import LifecycleService

    report = LifecycleService(state.ctx()).act(ref, action, actor=state.ACTOR, reason="manual",
                                               force=force)
    if as_json:
        from snoozeql.api.schemas.instances import ActionResultOut

        print_json(ActionResultOut.of(report).model_dump())
        return
    console.print(action_line(action, report.instance.name, report.already, report.message,
                              _status(report.instance)), highlight=False)


RefsArg = Annotated[
    list[str] | None,
    typer.Argument(metavar="REF...", help="id, ARN or name; several for a bulk action",
                   show_default=False),
]
ProviderOpt = Annotated[str | None, typer.Option("--provider", help="aws, gcp, local, docker")]
TagOpt = Annotated[list[str] | None, typer.Option(
    "--tag", help="key=REGEX (whole value) or key (tag exists); repeatable, AND")]
NameOpt = Annotated[str | None, typer.Option("--name", help="regex over the whole name")]
AccountOpt = Annotated[str | None, typer.Option("--account", help="account name or id")]
RegionOpt = Annotated[str | None, typer.Option("--region")]
EngineOpt = Annotated[str | None, typer.Option("--engine")]
YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="do not ask for confirmation")]
ForceOpt = Annotated[bool, typer.Option(
    "--force", help="act on a protected instance (snoozeql-protect=true); one REF only")]
JsonOpt = Annotated[bool, typer.Option("--json")]


def _control(action: str, refs: list[str] | None, *, provider: str | None,
             tag: list[str] | None, name: str | None, account: str | None,
             region: str | None, engine: str | None, yes: bool, as_json: bool,
             force: bool = False) -> None:
    """One ref and no filter: act at once. Otherwise list the instances, confirm, act.

    Protected instances are refused ("protected") unless one REF alone is --force'd."""
    from snoozeql.domain.selectors import selector_from_filters

    selector = selector_from_filters(provider=provider, tags=tag, name=name, account=account,
                                     region=region, engine=engine)
    refs = refs or []
    if refs and selector is not None:
        raise ValidationError("name instances or give filters, not both")
    if not refs and selector is None:
        raise ValidationError("name at least one instance (id, ARN or name) or give a filter "
                              "(--provider, --tag, --name, --account, --region, --engine)")
    if len(refs) == 1 and selector is None:
        _act(action, refs[0], as_json, force)
        return
    if force:
        raise ValidationError("--force acts on one protected instance named alone; bulk and "
                              "filtered actions always leave protected instances out")
    from snoozeql.services.bulk import BulkService

    svc = BulkService(state.ctx())
    found = svc.resolve_detailed(refs or None, selector)
    out = err_console if as_json else console  # keep stdout pure JSON for scripts
    if selector is not None:
        out.print(f"selector: {selector.describe()}", highlight=False)
    for s in found.skipped:
        out.print(f"skipped {s.instance.name}: {s.reason}", style="yellow", highlight=False)
    n = len(found.instances)
    if n:
        from rich.table import Table
        from rich.text import Text

        table = Table(title=f"{action} {n} instance(s):", title_justify="left",
                      header_style="bold")
        for col in ("NAME", "PROVIDER", "REGION", "STATUS", "ID"):
            table.add_column(col, overflow="fold")
        for i in found.instances:
            table.add_row(Text(i.name), i.provider.value, Text(i.region or "-"), _status(i),
                          str(i.id)[:8])
        out.print(table)
    if not n:
        out.print("no instance matches; nothing to do")
        results: list[BulkItemResult] = []
    else:
        if not yes:
            if not sys.stdin.isatty():
                fail(f"not acting on {n} instance(s) without confirmation, and there is no "
                     "terminal to ask on; add --yes", 2)
            if not typer.confirm(f"{action} these {n} instance(s)?", default=False, err=True):
                fail("aborted; nothing was done", 1)
        results = svc.run(action, found.instances, state.ACTOR, reason="manual")
    if as_json:
        from snoozeql.api.schemas.instances import BulkItemOut, BulkOut, BulkSkippedOut

        print_json(BulkOut(
            action=action, dry_run=False, matched=n,
            results=[BulkItemOut.of(r) for r in results],
            skipped=[BulkSkippedOut.of(s) for s in found.skipped],
        ).model_dump())
    elif results:
        colors = {"ok": "green", "refused": "yellow", "failed": "red"}
        print_table(None, ["NAME", "RESULT", "STATUS", "MESSAGE"], [
            (r.instance.name, styled(r.result.value, colors[r.result.value]), r.status.value,
             r.message) for r in results])
        counts = {k: sum(r.result.value == k for r in results) for k in colors}
        console.print(", ".join(f"{v} {k}" for k, v in counts.items()), highlight=False)
    if any(r.result != ActionResult.OK for r in results):
        raise typer.Exit(1)


@app.command("start")
@handle_errors
def start(refs: RefsArg = None, provider: ProviderOpt = None, tag: TagOpt = None,
          name: NameOpt = None, account: AccountOpt = None, region: RegionOpt = None,
          engine: EngineOpt = None, yes: YesOpt = False, as_json: JsonOpt = False,
          force: ForceOpt = False) -> None:
    """Start instances or clusters through their providers.

    One REF acts at once; several REFs or filters list the instances and ask first
    (--yes to skip; without a terminal --yes is required). Exit 1 if any failed."""
    _control("start", refs, provider=provider, tag=tag, name=name, account=account,
             region=region, engine=engine, yes=yes, as_json=as_json, force=force)


@app.command("stop")
@handle_errors
def stop(refs: RefsArg = None, provider: ProviderOpt = None, tag: TagOpt = None,
         name: NameOpt = None, account: AccountOpt = None, region: RegionOpt = None,
         engine: EngineOpt = None, yes: YesOpt = False, as_json: JsonOpt = False,
         force: ForceOpt = False) -> None:
    """Stop instances or clusters through their providers.

    One REF acts at once; several REFs or filters list the instances and ask first
    (--yes to skip; without a terminal --yes is required). Exit 1 if any failed."""
    _control("stop", refs, provider=provider, tag=tag, name=name, account=account,
             region=region, engine=engine, yes=yes, as_json=as_json, force=force)


@app.command("restart")
@handle_errors
def restart(refs: RefsArg = None, provider: ProviderOpt = None, tag: TagOpt = None,
            name: NameOpt = None, account: AccountOpt = None, region: RegionOpt = None,
            engine: EngineOpt = None, yes: YesOpt = False, as_json: JsonOpt = False,
            force: ForceOpt = False) -> None:
    """Restart (reboot) instances, or every member of a cluster.

    One REF acts at once; several REFs or filters list the instances and ask first
    (--yes to skip; without a terminal --yes is required). Exit 1 if any failed."""
    _control("restart", refs, provider=provider, tag=tag, name=name, account=account,
             region=region, engine=engine, yes=yes, as_json=as_json, force=force)


def _override(ref: str, state_: str, until: str, tz: str | None, reason: str | None,
              as_json: bool) -> None:
    from snoozeql.services.schedules import OverrideService

    instance, rec = OverrideService(state.ctx()).set(
        ref, state_, until, actor=state.ACTOR, reason=reason, timezone=tz
    )
    if as_json:
        from snoozeql.api.schemas.instances import OverrideOut

        print_json(OverrideOut.of(instance.name, rec).model_dump())
        return
    word = "kept awake" if state_ == "running" else "asleep"
    console.print(f"{instance.name} stays {word} until {rec.until.isoformat()} "
                  "(the reconciler applies it at its next run)", highlight=False)


UntilOpt = Annotated[str, typer.Option(
    "--until", help="22:00, 'tomorrow 08:00', 2h, or an ISO time with offset")]
TzOpt = Annotated[str | None, typer.Option("--tz", help="zone of HH:MM; default the schedule's")]
ReasonOpt = Annotated[str | None, typer.Option("--reason")]


@app.command("keep-awake")
@handle_errors
def keep_awake(ref: str, until: UntilOpt, tz: TzOpt = None, reason: ReasonOpt = None,
               as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Keep an instance running until a time, whatever its schedule says."""
    _override(ref, "running", until, tz, reason, as_json)


@app.command("sleep")
@handle_errors
def sleep(ref: str, until: UntilOpt, tz: TzOpt = None, reason: ReasonOpt = None,
          as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Keep an instance stopped until a time, whatever its schedule says."""
    _override(ref, "stopped", until, tz, reason, as_json)
