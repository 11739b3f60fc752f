"""Templates: the built-in catalogue and the user's own (Compose-style definitions)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Response

from snoozeql.api.deps import CtxDep, Operator, Viewer
from snoozeql.api.schemas.templates import TemplateOut
from snoozeql.domain.types import Role
from snoozeql.services.templates import TemplateService

router = APIRouter(prefix="/templates", tags=["templates"])


@router.get("", response_model=list[TemplateOut])
def list_templates(ctx: CtxDep, _: Viewer) -> list[TemplateOut]:
    return [TemplateOut.of(t) for t in TemplateService(ctx).list()]


@router.get("/{name}", response_model=TemplateOut)
def get_template(name: str, ctx: CtxDep, _: Viewer) -> TemplateOut:
    return TemplateOut.of(TemplateService(ctx).get(name))


@router.post("", status_code=201, response_model=TemplateOut)
def create_template(
    ctx: CtxDep,
    key: Operator,
    definition: dict[str, Any] = Body(
        ...,
        examples=[{"name": "api", "image": "example/api:1", "ports": ["127.0.0.1:8000:8000"],
                   "environment": {"LOG_LEVEL": "info"}}],
        description="One Compose-style service (with a name), or a Compose file with "
        "exactly one service under 'services'",
    ),
) -> TemplateOut:
    admin = key.role.allows(Role.ADMIN)
    return TemplateOut.of(TemplateService(ctx).add(definition, admin=admin))


@router.delete("/{name}", status_code=204, response_class=Response)
def delete_template(name: str, ctx: CtxDep, _: Operator) -> Response:
    TemplateService(ctx).remove(name)
    return Response(status_code=204)
