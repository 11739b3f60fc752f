"""Local databases: list with live status, create, start/stop/restart/delete (with a
confirmation), logs (last N lines, refreshable), connection URL."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Query, Request, Response

from snoozeql.domain.engines import Runtime, engine_names
from snoozeql.domain.errors import SnoozeError, ValidationError
from snoozeql.services.lifecycle import LifecycleService
from snoozeql.services.local_databases import LocalDatabaseService
from snoozeql.web.core import (
    Operator,
    Viewer,
    WebRoute,
    csrf_protect,
    ctx_of,
    is_htmx,
    render,
)

router = APIRouter(route_class=WebRoute, include_in_schema=False)


def _page(request: Request, *, notice: str | None = None, error: str | None = None,
          form: dict[str, str] | None = None, created_password: str | None = None,
          status_code: int = 200) -> Response:
    dbs = LocalDatabaseService(ctx_of(request)).list_all()
    return render(request, "local.html", {
        "dbs": dbs, "engines": engine_names(), "runtimes": [r.value for r in Runtime],
        "notice": notice, "error": error, "form": form or {},
        "created_password": created_password,
    }, status_code=status_code)


@router.get("/local")
def local_page(request: Request, _: Viewer) -> Response:
    return _page(request)


@router.post("/local", dependencies=[Depends(csrf_protect)])
def create_local(
    request: Request, session: Operator,
    name: Annotated[str, Form()] = "", engine: Annotated[str, Form()] = "",
    version: Annotated[str, Form()] = "", port: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "", runtime: Annotated[str, Form()] = "native",
) -> Response:
    form = {"name": name, "engine": engine, "version": version, "port": port,
            "runtime": runtime}
    try:
        port_n: int | None = None
        if port.strip():
            if not port.strip().isdigit():
                raise ValidationError(f"port: {port!r} is not a number")
            port_n = int(port)
        created = LocalDatabaseService(ctx_of(request)).create(
            name=name.strip(), engine=engine, version=version.strip() or None, port=port_n,
            password=password or None, runtime=runtime, actor=session.key_name)
    except SnoozeError as exc:
        return _page(request, error=exc.message, form=form, status_code=exc.http_status)
    return _page(request, notice=f"Created {created.instance.name} "
                 f"({created.instance.engine}, port {created.instance.endpoint_port}).",
                 created_password=created.generated_password)


@router.post("/local/{instance}/action", dependencies=[Depends(csrf_protect)])
def local_action(request: Request, instance: str, session: Operator,
                 action: Annotated[str, Form()]) -> Response:
    ctx = ctx_of(request)
    svc = LocalDatabaseService(ctx)
    found = svc.get(instance)
    if action == "delete":
        svc.delete(found.id, actor=session.key_name)
        return _page(request, notice=f"Deleted {found.name} and its data.")
    report = LifecycleService(ctx).act(found.id, action, actor=session.key_name)
    return _page(request, notice=f"{report.action.value} of {found.name}: "
                 f"{report.result.value}; now {report.instance.status.value}.")


@router.get("/local/{instance}/status")
def local_status(request: Request, instance: str, _: Viewer) -> Response:
    """Measured now; the cell polls itself while the database is starting or stopping."""
    measured = LocalDatabaseService(ctx_of(request)).status(instance)
    return render(request, "partials/status_cell.html", {"i": measured.instance})


@router.get("/local/{instance}/logs")
def local_logs(request: Request, instance: str, _: Viewer,
               n: Annotated[int, Query(ge=1, le=2000)] = 100) -> Response:
    svc = LocalDatabaseService(ctx_of(request))
    found = svc.get(instance)
    lines = svc.logs(found.id, n)
    data = {"i": found, "lines": lines, "n": n}
    if is_htmx(request):
        return render(request, "partials/logs.html", data)
    return render(request, "local_logs.html", data)
