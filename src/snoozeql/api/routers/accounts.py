from __future__ import annotations

from fastapi import APIRouter, Response

from snoozeql.api.deps import Admin, CtxDep, Operator, Viewer
from snoozeql.api.schemas import AccountCreate, AccountOut, AccountUpdate, SyncOut
from snoozeql.services.accounts import AccountService
from snoozeql.services.discovery import DiscoveryService

router = APIRouter(prefix="/accounts", tags=["accounts"])


@router.get("", response_model=list[AccountOut])
def list_accounts(ctx: CtxDep, _: Viewer, provider: str | None = None) -> list[AccountOut]:
    return [AccountOut.of(a) for a in AccountService(ctx).list(provider)]


@router.post("", response_model=AccountOut, status_code=201)
def create_account(body: AccountCreate, ctx: CtxDep, key: Admin) -> AccountOut:
    return AccountOut.of(AccountService(ctx).add(body.provider, body.name, body.config,
                                                 actor=key.name))


@router.get("/{account}", response_model=AccountOut)
def get_account(account: str, ctx: CtxDep, _: Viewer) -> AccountOut:
    return AccountOut.of(AccountService(ctx).get(account))


@router.patch("/{account}", response_model=AccountOut)
def update_account(account: str, body: AccountUpdate, ctx: CtxDep, key: Admin) -> AccountOut:
    return AccountOut.of(AccountService(ctx).update(account, body.config, actor=key.name))


@router.delete("/{account}", status_code=204)
def delete_account(account: str, ctx: CtxDep, key: Admin) -> Response:
    AccountService(ctx).remove(account, actor=key.name)
    return Response(status_code=204)


@router.post("/{account}/sync", response_model=SyncOut)
def sync_account(account: str, ctx: CtxDep, _: Operator) -> SyncOut:
    """Discover the account's databases now; returns when the sync is done."""
    return SyncOut.of(DiscoveryService(ctx).sync(account))
