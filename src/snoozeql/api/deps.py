"""Request dependencies: the service context and the caller's API key."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

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


def get_ctx(request: Request) -> Context:
    return request.app.state.ctx  # type: ignore[no-any-return]


CtxDep = Annotated[Context, Depends(get_ctx)]


def current_key(
    ctx: CtxDep,
    header: Annotated[str | None, Depends(_header)],
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> ApiKeyRecord:
    key = header or (bearer.credentials if bearer else None)
    if not key:
        raise Unauthorized("an API key is required (X-API-Key or Authorization: Bearer)")
    record = ApiKeyService(ctx).authenticate(key)
    if record is None:
        raise Unauthorized("invalid or revoked API key")
    return record


def require(role: Role) -> Callable[[ApiKeyRecord], ApiKeyRecord]:
    def check(key: Annotated[ApiKeyRecord, Depends(current_key)]) -> ApiKeyRecord:
        if not key.role.allows(role):
            raise PermissionDenied(
                f"this needs the {role.value} role; key {key.name!r} is {key.role}"
            )
        return key

    return check


Viewer = Annotated[ApiKeyRecord, Depends(require(Role.VIEWER))]
Operator = Annotated[ApiKeyRecord, Depends(require(Role.OPERATOR))]
Admin = Annotated[ApiKeyRecord, Depends(require(Role.ADMIN))]
