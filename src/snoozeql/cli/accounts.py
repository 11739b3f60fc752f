"""`snoozeql accounts ...`"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.text import Text

from snoozeql.cli import state
from snoozeql.cli.output import (
    confirm,
    console,
    handle_errors,
    line,
    print_fields,
    print_json,
    print_table,
    styled,
)
from snoozeql.domain.errors import ValidationError
from snoozeql.domain.types import Account, AccountStatus
from snoozeql.services.accounts import AccountService, cloud_forms, public_config
from snoozeql.services.discovery import DiscoveryService, SyncReport

app = typer.Typer(help="Cloud accounts SnoozeQL discovers databases in.", no_args_is_help=True)


def _account_json(a: Account) -> dict[str, Any]:
    """The account as the API shows it to a non-admin (secret settings read ``set``)."""
    from snoozeql.api.schemas.accounts import AccountOut

    return AccountOut.of(a).model_dump()


@app.command("add")
@handle_errors
def add(
    provider: Annotated[str, typer.Argument(help="aws or gcp")],
    name: Annotated[str, typer.Argument(help="a short name (DNS label)")],
    regions: Annotated[str | None, typer.Option(help="AWS: comma-separated regions")] = None,
    profile: Annotated[str | None, typer.Option(help="AWS: named profile")] = None,
    role_arn: Annotated[str | None, typer.Option(help="AWS: role to assume")] = None,
    external_id: Annotated[str | None, typer.Option(help="AWS: external id for the role")] = None,
    endpoint_url: Annotated[
        str | None, typer.Option(help="AWS: endpoint (LocalStack, moto)")
    ] = None,
    projects: Annotated[str | None, typer.Option(help="GCP: comma-separated projects")] = None,
    credentials_file: Annotated[
        str | None, typer.Option(help="GCP: service-account key file (the path is stored)")
    ] = None,
    api_endpoint: Annotated[str | None, typer.Option(help="GCP: API endpoint")] = None,
    setting: Annotated[list[str] | None, typer.Option(
        "--set", metavar="KEY=VALUE",
        help="any setting of the provider (repeatable; `snoozeql accounts settings` "
             "lists them), e.g. --set regions=eu-west-1,us-east-1")] = None,
    sync: Annotated[bool, typer.Option("--sync", help="discover its databases now")] = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Add a cloud account. Credentials come from the provider's own chain, never the store.

    With --sync, exit 1 when the sync fails (the account stays added, status failed)."""
    config: dict[str, Any] = {
        "regions": regions, "profile": profile, "role_arn": role_arn,
        "external_id": external_id, "endpoint_url": endpoint_url, "projects": projects,
        "credentials_file": credentials_file, "api_endpoint": api_endpoint,
    }
    for item in setting or []:
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise ValidationError(f"--set {item!r}: expected KEY=VALUE")
        if config.get(key.strip()) is not None:
            raise ValidationError(f"{key.strip()} is given twice")
        config[key.strip()] = value
    account = AccountService(state.ctx()).add(provider, name, config)
    if as_json:
        print_json(_account_json(account))
    else:
        console.print(line(f"added {account.provider.value} account ",
                           styled(account.name, "bold")))
    if sync and _sync_one(account.name, as_json=as_json).status != AccountStatus.CONNECTED:
        raise typer.Exit(1)  # the account is added, but the sync asked for failed


@app.command("settings")
@handle_errors
def settings(
    provider: Annotated[str | None, typer.Argument(help="one cloud (default: every one)")]
    = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """The settings each cloud's accounts take (``accounts add --set KEY=VALUE``)."""
    forms = [c for c in cloud_forms() if provider is None or c.name == provider]
    if provider is not None and not forms:
        raise ValidationError(f"unknown cloud {provider!r}; use one of: "
                              f"{', '.join(c.name for c in cloud_forms())}")
    fields = [(c.name, f) for c in forms for f in c.fields]
    if as_json:
        print_json([{"provider": name, "setting": f.name, "required": f.required,
                     "list": f.many, "secret": f.secret, "help": f.help}
                    for name, f in fields])
        return
    print_table("account settings", ["provider", "setting", "required", "help"],
                [[name, f.name, "yes" if f.required else "",
                  f.help + (" (kept encrypted)" if f.secret else "")] for name, f in fields])


@app.command("list")
@handle_errors
def list_(
    provider: Annotated[str | None, typer.Option(help="aws or gcp")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Accounts with their connection status."""
    accounts = AccountService(state.ctx()).list(provider)
    if as_json:
        print_json([_account_json(a) for a in accounts])
        return
    print_table(
        None,
        ["NAME", "PROVIDER", "STATUS", "LAST SYNC (UTC)", "SCOPE", "LAST ERROR"],
        [
            (a.name, a.provider, _status(a.status), a.last_sync_at,
             ",".join(a.config.get("regions") or a.config.get("projects") or []), a.last_error)
            for a in accounts
        ],
    )


def _status(s: AccountStatus) -> Text:
    color = {"connected": "green", "failed": "red", "syncing": "yellow"}.get(s.value, "dim")
    return styled(s.value, color)


@app.command("show")
@handle_errors
def show(name: str, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """One account in detail."""
    a = AccountService(state.ctx()).get(name)
    if as_json:
        print_json(_account_json(a))
        return
    print_fields([
        ("id", a.id), ("name", a.name), ("provider", a.provider), ("status", a.status),
        ("last sync", a.last_sync_at), ("last error", a.last_error),
        *[(k, v if not isinstance(v, list) else ",".join(v))
          for k, v in public_config(a).items()],
    ])


@app.command("sync")
@handle_errors
def sync(
    name: Annotated[str | None, typer.Argument(help="account; omit with --all")] = None,
    all_: Annotated[bool, typer.Option("--all", help="sync every account")] = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Discover an account's databases now (the server also does it periodically)."""
    if bool(name) == all_:
        from snoozeql.cli.output import fail

        fail("name one account, or pass --all", 2)
    names = [name] if name else [a.name for a in AccountService(state.ctx()).list()]
    reports = [_sync_one(n, as_json=False, quiet=as_json) for n in names]
    if as_json:
        print_json([_report_json(r) for r in reports])
    if any(r.status != AccountStatus.CONNECTED for r in reports):
        raise typer.Exit(1)


def _sync_one(name: str, as_json: bool, quiet: bool = False) -> SyncReport:
    svc = DiscoveryService(state.ctx())
    if quiet or as_json:
        report = svc.sync(name)
    else:
        with console.status(f"syncing {name}...") as status:
            report = svc.sync(name, progress=lambda msg: status.update(f"{name}: {msg}"))
    if as_json:
        print_json(_report_json(report))
    elif not quiet:
        if report.status == AccountStatus.CONNECTED:
            console.print(line(
                styled(f"{name}: connected", "green"),
                f" - {report.found} databases "
                f"({report.new} new, {report.changed} changed, {report.missing} missing) "
                f"in {report.seconds:.1f}s",
            ))
        else:
            console.print(line(styled(f"{name}: failed", "red"), f" - {report.error}"))
    # A first sync starts reading the account's metric history in the background; a
    # CLI process waits for it before it exits (it would be cut off otherwise).
    from snoozeql.services.background_sync import wait_for_history

    if quiet or as_json:
        wait_for_history(state.ctx(), timeout=600)
    else:
        with console.status(f"{name}: reading its metric history..."):
            wait_for_history(state.ctx(), timeout=600)
    return report


def _report_json(r: SyncReport) -> dict:
    return {
        "account": r.account_name, "status": r.status.value, "found": r.found, "new": r.new,
        "changed": r.changed, "missing": r.missing, "seconds": round(r.seconds, 3),
        "error": r.error,
    }


@app.command("remove")
@handle_errors
def remove(
    name: str,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="do not ask")] = False,
) -> None:
    """Remove an account and its discovered instances from the inventory."""
    svc = AccountService(state.ctx())
    account = svc.get(name)
    if not yes:
        confirm(f"remove account {account.name} and its instances from the inventory?",
                refused="not removed", hint="add --yes to remove without asking")
    svc.remove(account.id)
    console.print(f"removed account {account.name}")
