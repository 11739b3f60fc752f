"""Templates: the built-in catalogue and the user's own; one template's service; add
one from a YAML file (validated as by `snoozeql templates add`); remove a user one."""

from __future__ import annotations

from pathlib import PurePath
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request, Response, UploadFile

from snoozeql.api.schemas.templates import TemplateOut
from snoozeql.domain.errors import SnoozeError, ValidationError
from snoozeql.domain.stacks.compose import dump_yaml
from snoozeql.domain.types import Role
from snoozeql.services.templates import TemplateService
from snoozeql.web.core import (
    Operator,
    Viewer,
    WebRoute,
    csrf_protect,
    ctx_of,
    flash,
    flashed,
    render,
    see_other,
)

router = APIRouter(route_class=WebRoute, include_in_schema=False)

MAX_UPLOAD = 1024 * 1024  # as the YAML reader's own limit


def _page(request: Request, *, error: str | None = None, notice: str | None = None,
          q: str = "", status_code: int = 200) -> Response:
    items = TemplateService(ctx_of(request)).list()
    if q:
        needle = q.lower()
        items = [t for t in items if needle in t.name or needle in t.template.description.lower()
                 or needle in t.template.image.lower()]
    return render(request, "stacks/templates.html", {
        "items": items, "error": error, "notice": notice, "q": q,
    }, status_code=status_code)


@router.get("/templates")
def templates_page(request: Request, _: Viewer, q: str = "") -> Response:
    return flashed(request, _page(request, q=q.strip(), notice=flash(request)))


@router.get("/templates/{name}")
def template_page(request: Request, name: str, _: Viewer) -> Response:
    notice = flash(request)
    info = TemplateService(ctx_of(request)).get(name)
    data = TemplateOut.of(info).model_dump(mode="json", exclude={"builtin"})
    shown = {k: v for k, v in data.items() if v not in (None, [], "")}
    return flashed(request, render(request, "stacks/template.html", {
        "t": info, "notice": notice, "yaml": dump_yaml({"services": {info.name: {
            k: v for k, v in shown.items() if k != "name"}}}),
    }))


@router.post("/templates", dependencies=[Depends(csrf_protect)])
async def add_template(request: Request, session: Operator, file: UploadFile | None = None,
                       name: Annotated[str, Form()] = "") -> Response:
    try:
        if file is None or not file.filename:
            raise ValidationError("choose a YAML file with one service to upload")
        raw = await file.read(MAX_UPLOAD + 1)
        if len(raw) > MAX_UPLOAD:
            raise ValidationError(f"{file.filename}: larger than {MAX_UPLOAD // 1024} KiB")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ValidationError(f"{file.filename}: not UTF-8 text") from None
        stem = PurePath(file.filename).stem
        info = TemplateService(ctx_of(request)).add(
            text, name.strip() or None, default_name=stem,
            admin=session.role.allows(Role.ADMIN))
    except SnoozeError as exc:
        return _page(request, error=exc.message, status_code=exc.http_status)
    return see_other(f"/templates/{info.name}", f"Added template {info.name}.")


@router.post("/templates/{name}/remove", dependencies=[Depends(csrf_protect)])
def remove_template(request: Request, name: str, _: Operator) -> Response:
    try:
        TemplateService(ctx_of(request)).remove(name)
    except SnoozeError as exc:
        return _page(request, error=exc.message, status_code=exc.http_status)
    return see_other("/templates", f"Removed template {name}.")
