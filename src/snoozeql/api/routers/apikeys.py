from __future__ import annotations

from fastapi import APIRouter

from snoozeql.api.deps import Admin, CtxDep
from snoozeql.api.schemas.apikeys import ApiKeyCreate, ApiKeyCreated, ApiKeyOut
from snoozeql.services.apikeys import ApiKeyService

router = APIRouter(prefix="/apikeys", tags=["apikeys"])


@router.get("", response_model=list[ApiKeyOut])
def list_keys(ctx: CtxDep, _: Admin) -> list[ApiKeyOut]:
    return [ApiKeyOut.of(r) for r in ApiKeyService(ctx).list()]


@router.post("", response_model=ApiKeyCreated, status_code=201)
def create_key(body: ApiKeyCreate, ctx: CtxDep, caller: Admin) -> ApiKeyCreated:
    record, key = ApiKeyService(ctx).create(body.name, body.role, actor=caller.name)
    return ApiKeyCreated.of_new(record, key)


@router.delete("/{name}", response_model=ApiKeyOut)
def revoke_key(name: str, ctx: CtxDep, caller: Admin) -> ApiKeyOut:
    return ApiKeyOut.of(ApiKeyService(ctx).revoke(name, actor=caller.name))
