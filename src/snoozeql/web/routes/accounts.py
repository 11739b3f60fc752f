"""Accounts: list with connection status; admins add (the CLI's fields), check and
remove; operators sync now, with progress polled into the row."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from starlette.concurrency import run_in_threadpool

from snoozeql.domain.errors import SnoozeError
from snoozeql.domain.types import ProviderKind
from snoozeql.providers import registry
from snoozeql.services.accounts import (
    AccountService,
    cloud_forms,
    cloud_providers,
    normalize_config,
    setting_names,
)
from snoozeql.services.background_sync import start_sync, sync_progress
from snoozeql.services.inventory import InventoryService
from snoozeql.web.core import Admin, Operator, Viewer, WebRoute, csrf_protect, ctx_of, render

router = APIRouter(route_class=WebRoute, include_in_schema=False)


def _page(request: Request, form: dict[str, Any] | None = None, error: str | None = None,
          notice: str | None = None, status_code: int = 200) -> Response:
    ctx = ctx_of(request)
    accounts = AccountService(ctx).list()
    counts = InventoryService(ctx).summary().by_account
    clouds = cloud_forms()
    return render(request, "accounts.html", {
        "accounts": accounts, "counts": counts, "clouds": clouds,
        "form": form or {"provider": clouds[0].name if clouds else ""},
        "error": error, "notice": notice, "progress": sync_progress(ctx),
    }, status_code=status_code)


@router.get("/accounts")
def accounts_page(request: Request, _: Viewer) -> Response:
    return _page(request)


@router.post("/accounts", dependencies=[Depends(csrf_protect)])
async def add_account(request: Request, session: Admin) -> Response:
    """The form has one field per setting of each cloud (``<cloud>.<setting>``, from
    the providers' plugins); only the chosen cloud's are read."""
    posted = await request.form()

    def text(key: str) -> str:
        value = posted.get(key, "")
        return value if isinstance(value, str) else ""

    provider, name = text("provider"), text("name")
    intent, sync = text("intent") or "add", text("sync")
    values = {key.partition(".")[2]: text(key) for key in posted
              if key.startswith(f"{provider}.")}
    form = {"provider": provider, "name": name, "sync": sync,
            **{f"{provider}.{k}": v for k, v in values.items()}}
    return await run_in_threadpool(_add, request, session.key_name, provider, name,
                                   values, form, intent, sync)


def _add(request: Request, actor: str, provider: str, name: str, values: dict[str, str],
         form: dict[str, Any], intent: str, sync: str) -> Response:
    ctx = ctx_of(request)
    try:
        kind = ProviderKind(provider)
    except ValueError:
        return _page(request, form, f"unknown provider {provider!r}; use "
                     f"{' or '.join(cloud_providers())}", None, 422)
    allowed = setting_names(kind)
    mine = {k: v.strip() for k, v in values.items() if v.strip() and k in allowed}
    try:
        if intent == "validate":
            cfg = normalize_config(kind, mine)
            hidden = registry.secret_config_keys()
            return _page(request, form, None, "The settings are valid: " + ", ".join(
                f"{k}={'(set)' if k in hidden else v}" for k, v in cfg.items()))
        account = AccountService(ctx).add(provider, name.strip(), mine, actor=actor)
    except SnoozeError as exc:
        return _page(request, form, exc.message, None, exc.http_status)
    notice = f"Added {account.name}."
    if sync:
        start_sync(ctx, str(account.id))
        notice += " Syncing now."
    return _page(request, None, None, notice)


@router.post("/accounts/{account}/sync", dependencies=[Depends(csrf_protect)])
def sync_account(request: Request, account: str, _: Operator) -> Response:
    """Start a sync in the background; the row polls itself until it is done."""
    ctx = ctx_of(request)
    found = AccountService(ctx).get(account)
    start_sync(ctx, str(found.id))
    return _row(request, str(found.id))


@router.get("/accounts/{account}/row")
def account_row(request: Request, account: str, _: Viewer) -> Response:
    return _row(request, account)


def _row(request: Request, account: str) -> Response:
    ctx = ctx_of(request)
    a = AccountService(ctx).get(account)
    counts = InventoryService(ctx).summary().by_account
    return render(request, "partials/account_row.html",
                  {"a": a, "counts": counts, "progress": sync_progress(ctx)})


@router.post("/accounts/{account}/remove", dependencies=[Depends(csrf_protect)])
def remove_account(request: Request, account: str, session: Admin) -> Response:
    ctx = ctx_of(request)
    removed = AccountService(ctx).remove(account, actor=session.key_name)
    return _page(request, None, None,
                 f"Removed {removed.name} and its discovered databases from the inventory.")


