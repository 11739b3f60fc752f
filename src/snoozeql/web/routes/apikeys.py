"""API keys (admin): create (the key is shown once), list, revoke."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request, Response

from snoozeql.domain.errors import SnoozeError
from snoozeql.domain.types import Role
from snoozeql.services.apikeys import ApiKeyService
from snoozeql.web.core import Admin, WebRoute, csrf_protect, ctx_of, render

router = APIRouter(route_class=WebRoute, include_in_schema=False)


def _page(request: Request, *, created: tuple[str, str] | None = None,
          notice: str | None = None, error: str | None = None, status_code: int = 200,
          form: dict[str, str] | None = None) -> Response:
    return render(request, "keys.html", {
        "keys": ApiKeyService(ctx_of(request)).list(), "roles": [r.value for r in Role],
        "created": created, "notice": notice, "error": error, "form": form or {},
    }, status_code=status_code, headers={"Cache-Control": "no-store"})


@router.get("/keys")
def keys_page(request: Request, _: Admin) -> Response:
    return _page(request)


@router.post("/keys", dependencies=[Depends(csrf_protect)])
def create_key(request: Request, session: Admin, name: Annotated[str, Form()] = "",
               role: Annotated[str, Form()] = "viewer") -> Response:
    try:
        record, key = ApiKeyService(ctx_of(request)).create(name.strip(), role,
                                                            actor=session.key_name)
    except SnoozeError as exc:
        return _page(request, error=exc.message, status_code=exc.http_status,
                     form={"name": name, "role": role})
    return _page(request, created=(record.name, key))


@router.post("/keys/{name}/revoke", dependencies=[Depends(csrf_protect)])
def revoke_key(request: Request, name: str, session: Admin) -> Response:
    record = ApiKeyService(ctx_of(request)).revoke(name, actor=session.key_name)
    if record.id == session.key_id:
        resp = Response(status_code=303, headers={"Location": "/login"})
        return resp
    return _page(request, notice=f"Revoked {record.name}; its sessions ended.")
