"""`snoozeql instances ...`: the inventory, read from the store."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from snoozeql.cli import state
from snoozeql.cli.output import console, handle_errors, print_fields, print_json, print_table
from snoozeql.domain.types import Instance, InstanceKind
from snoozeql.services.inventory import InventoryService
from snoozeql.services.lifecycle import LifecycleService
from snoozeql.services.schedules import OverrideService

app = typer.Typer(help="Databases in the inventory (cloud and local).", no_args_is_help=True)


def instance_json(i: Instance) -> dict[str, Any]:
    return {
        "id": str(i.id), "account_id": str(i.account_id) if i.account_id else None,
        "provider": i.provider.value, "provider_id": i.provider_id, "kind": i.kind.value,
        "name": i.name, "engine": i.engine, "engine_version": i.engine_version,
        "instance_class": i.instance_class, "region": i.region, "status": i.status.value,
        "raw_status": i.raw_status, "tags": i.tags, "endpoint_host": i.endpoint_host,
        "endpoint_port": i.endpoint_port, "multi_az": i.multi_az, "node_count": i.node_count,
        "cluster_provider_id": i.cluster_provider_id,
        "hourly_cost_cents": float(i.hourly_cost_cents) if i.hourly_cost_cents is not None
        else None,
        "first_seen_at": i.first_seen_at.isoformat(), "last_seen_at": i.last_seen_at.isoformat(),
        "missing_since": i.missing_since.isoformat() if i.missing_since else None,
        "last_error": i.last_error,
    }


def _cost(i: Instance) -> str:
    if i.hourly_cost_cents is None:
        return "-"
    return f"${float(i.hourly_cost_cents) / 100:.3f}/h"


_STATUS_COLORS = {"running": "green", "stopped": "dim", "failed": "red", "unknown": "yellow"}


def _status(i: Instance) -> str:
    c = _STATUS_COLORS.get(i.status.value, "yellow")
    s = f"[{c}]{i.status.value}[/{c}]"
    return s + (" [red](missing)[/red]" if i.missing_since else "")


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
        print_json([instance_json(i) for i in items])
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
        print_json({**instance_json(i), "members": [instance_json(m) for m in members]})
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


def _act(action: str, ref: str, as_json: bool) -> None:
    report = LifecycleService(state.ctx()).act(ref, action, actor=state.ACTOR, reason="manual")
    if as_json:
        print_json({
            "action_id": str(report.action_id), "action": report.action.value,
            "result": report.result.value, "message": report.message,
            "instance": instance_json(report.instance),
        })
        return
    console.print(
        f"{action} {report.instance.name}: [green]ok[/green], now "
        f"{report.instance.status.value}"
        + (f" ({report.message})" if report.message else "")
    )


@app.command("start")
@handle_errors
def start(ref: str, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Start an instance or cluster through its provider."""
    _act("start", ref, as_json)


@app.command("stop")
@handle_errors
def stop(ref: str, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Stop an instance or cluster through its provider."""
    _act("stop", ref, as_json)


@app.command("restart")
@handle_errors
def restart(ref: str, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Restart (reboot) an instance, or every member of a cluster."""
    _act("restart", ref, as_json)


def _override(ref: str, state_: str, until: str, tz: str | None, reason: str | None,
              as_json: bool) -> None:
    instance, rec = OverrideService(state.ctx()).set(
        ref, state_, until, actor=state.ACTOR, reason=reason, timezone=tz
    )
    if as_json:
        print_json({"instance_id": str(rec.instance_id), "instance": instance.name,
                    "state": rec.state, "until": rec.until.isoformat(), "reason": rec.reason,
                    "created_by": rec.created_by, "created_at": rec.created_at.isoformat()})
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
