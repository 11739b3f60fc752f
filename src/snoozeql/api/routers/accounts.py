from __future__ import annotations

from fastapi import APIRouter, Response

from snoozeql.api.deps import Admin, CtxDep, Operator, Viewer
from snoozeql.api.schemas.accounts import AccountCreate, AccountOut, AccountUpdate, SyncOut
from snoozeql.domain.types import Role
from snoozeql.services.accounts import AccountService
from snoozeql.services.discovery import DiscoveryService
from snoozeql.store.apikeys import ApiKeyRecord

router = APIRouter(prefix="/accounts", tags=["accounts"])


def _admin(key: ApiKeyRecord) -> bool:
    return key.role.allows(Role.ADMIN)


@router.get("", response_model=list[AccountOut])
def list_accounts(ctx: CtxDep, key: Viewer, provider: str | None = None) -> list[AccountOut]:
    """Secret settings (a role's ``external_id``) read ``set`` except to admins."""
    return [AccountOut.of(a, _admin(key)) for a in AccountService(ctx).list(provider)]


@router.post("", response_model=AccountOut, status_code=201)
def create_account(body: AccountCreate, ctx: CtxDep, key: Admin) -> AccountOut:
    return AccountOut.of(AccountService(ctx).add(body.provider, body.name, body.config,
                                                 actor=key.name), _admin(key))


@router.get("/{account}", response_model=AccountOut)
def get_account(account: str, ctx: CtxDep, key: Viewer) -> AccountOut:
    return AccountOut.of(AccountService(ctx).get(account), _admin(key))


@router.patch("/{account}", response_model=AccountOut)
def update_account(account: str, body: AccountUpdate, ctx: CtxDep, key: Admin) -> AccountOut:
    return AccountOut.of(AccountService(ctx).update(account, body.config, actor=key.name),
                         _admin(key))


@router.delete("/{account}", status_code=204)
def delete_account(account: str, ctx: CtxDep, key: Admin) -> Response:
    AccountService(ctx).remove(account, actor=key.name)
    return Response(status_code=204)


@router.post("/{account}/sync", response_model=SyncOut)
def sync_account(account: str, ctx: CtxDep, _: Operator) -> SyncOut:
    """Discover the account's databases now; returns when the sync is done."""
    return SyncOut.of(DiscoveryService(ctx).sync(account))
