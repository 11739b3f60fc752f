"""Request dependencies: the service context and the caller's API key.

They are coroutines: FastAPI runs a plain function dependency in a worker thread, and
those hops cost more than the work (a listing request made three of them). Only a key
whose lookup is not cached goes to a thread, to read the store.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from snoozeql.domain.errors import PermissionDenied, SnoozeError
from snoozeql.domain.types import Role
from snoozeql.services.apikeys import ApiKeyService
from snoozeql.services.context import Context
from snoozeql.store.apikeys import ApiKeyRecord


class Unauthorized(SnoozeError):
    http_status = 401
    exit_code = 2


_header = APIKeyHeader(name="X-API-Key", auto_error=False)
_bearer = HTTPBearer(auto_error=False)


async def get_ctx(request: Request) -> Context:
    return request.app.state.ctx  # type: ignore[no-any-return]


CtxDep = Annotated[Context, Depends(get_ctx)]


async def current_key(
    ctx: CtxDep,
    header: Annotated[str | None, Depends(_header)],
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> ApiKeyRecord:
    key = header or (bearer.credentials if bearer else None)
    if not key:
        raise Unauthorized("an API key is required (X-API-Key or Authorization: Bearer)")
    svc = ApiKeyService(ctx)
    record = svc.cached(key) or await run_in_threadpool(svc.authenticate, key)
    if record is None:
        raise Unauthorized("invalid or revoked API key")
    return record


def require(role: Role) -> Callable[[ApiKeyRecord], Awaitable[ApiKeyRecord]]:
    async def check(key: Annotated[ApiKeyRecord, Depends(current_key)]) -> ApiKeyRecord:
        if not key.role.allows(role):
            raise PermissionDenied(
                f"this needs the {role.value} role; key {key.name!r} is {key.role}"
            )
        return key

    return check


Viewer = Annotated[ApiKeyRecord, Depends(require(Role.VIEWER))]
Operator = Annotated[ApiKeyRecord, Depends(require(Role.OPERATOR))]
Admin = Annotated[ApiKeyRecord, Depends(require(Role.ADMIN))]
