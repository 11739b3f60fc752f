"""Accounts: list with connection status; admins add (the CLI's fields), check and
remove; operators sync now, with progress polled into the row."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request, Response

from snoozeql.domain.errors import SnoozeError
from snoozeql.domain.types import ProviderKind
from snoozeql.services.accounts import (
    AccountService,
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
    return render(request, "accounts.html", {
        "accounts": accounts, "counts": counts, "form": form or {"provider": "aws"},
        "error": error, "notice": notice, "progress": sync_progress(ctx),
    }, status_code=status_code)


@router.get("/accounts")
def accounts_page(request: Request, _: Viewer) -> Response:
    return _page(request)


@router.post("/accounts", dependencies=[Depends(csrf_protect)])
def add_account(
    request: Request, session: Admin,
    provider: Annotated[str, Form()], name: Annotated[str, Form()] = "",
    regions: Annotated[str, Form()] = "", profile: Annotated[str, Form()] = "",
    role_arn: Annotated[str, Form()] = "", external_id: Annotated[str, Form()] = "",
    endpoint_url: Annotated[str, Form()] = "", projects: Annotated[str, Form()] = "",
    credentials_file: Annotated[str, Form()] = "", api_endpoint: Annotated[str, Form()] = "",
    intent: Annotated[str, Form()] = "add", sync: Annotated[str, Form()] = "",
) -> Response:
    ctx = ctx_of(request)
    values = {"regions": regions, "profile": profile, "role_arn": role_arn,
              "external_id": external_id, "endpoint_url": endpoint_url,
              "projects": projects, "credentials_file": credentials_file,
              "api_endpoint": api_endpoint}
    form = {"provider": provider, "name": name, "sync": sync, **values}
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
            return _page(request, form, None, "The settings are valid: "
                         + ", ".join(f"{k}={v}" for k, v in cfg.items()))
        account = AccountService(ctx).add(provider, name.strip(), mine, actor=session.key_name)
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


