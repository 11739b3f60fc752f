"""Local databases over the API: create, delete, live status, logs and URL.

Start, stop and restart are the generic ``/instances/{id}/start|stop|restart`` routes
(:mod:`snoozeql.api.routers.instances`): a local database is an instance like any other.
"""

from __future__ import annotations

from fastapi import APIRouter, Query, Response

from snoozeql.api.deps import CtxDep, Operator, Viewer
from snoozeql.api.schemas.instances import InstanceOut
from snoozeql.api.schemas.local_instances import (
    ExternalInstanceCreate,
    LocalInstanceCreate,
    LocalInstanceCreated,
    LocalLogsOut,
    LocalStatusOut,
    LocalUrlOut,
)
from snoozeql.services.external import ExternalInstanceService
from snoozeql.services.local_databases import LocalDatabaseService

router = APIRouter(prefix="/instances", tags=["local databases"])


@router.post("", status_code=201, response_model=LocalInstanceCreated | InstanceOut)
def create_local_instance(
    body: LocalInstanceCreate | ExternalInstanceCreate, ctx: CtxDep, key: Operator
) -> LocalInstanceCreated | InstanceOut:
    """Create a local database and wait until it answers with its password; or, with
    ``"provider": "external"``, register a database SnoozeQL cannot discover (push its
    metrics to get recommendations; start and stop on it are refused)."""
    if isinstance(body, ExternalInstanceCreate):
        registered = ExternalInstanceService(ctx).register(
            body.name, body.engine, body.hourly_cost, body.tags
        )
        return InstanceOut.of(registered)
    created = LocalDatabaseService(ctx).create(
        name=body.name, engine=body.engine, version=body.version, image=body.image,
        tag=body.tag, port=body.port, password=body.password, runtime=body.runtime,
        actor=key.name,
    )
    return LocalInstanceCreated(
        **InstanceOut.of(created.instance).model_dump(),
        status_detail=created.state.detail,
        password=created.generated_password,
    )


@router.delete("/{instance}", status_code=204, response_class=Response)
def delete_local_instance(
    instance: str,
    ctx: CtxDep,
    key: Operator,
    keep_data: bool = Query(False, description="keep the data directory or volume"),
) -> Response:
    LocalDatabaseService(ctx).delete(instance, keep_data=keep_data, actor=key.name)
    return Response(status_code=204)


@router.get("/{instance}/status", response_model=LocalStatusOut)
def local_instance_status(instance: str, ctx: CtxDep, _: Viewer) -> LocalStatusOut:
    """Measured now: process or container alive, port open, login with the password."""
    measured = LocalDatabaseService(ctx).status(instance)
    return LocalStatusOut.of(InstanceOut.of(measured.instance), measured.state)


@router.get("/{instance}/logs", response_model=LocalLogsOut)
def local_instance_logs(
    instance: str, ctx: CtxDep, _: Viewer, n: int = Query(50, ge=0, le=10_000)
) -> LocalLogsOut:
    return LocalLogsOut(lines=LocalDatabaseService(ctx).logs(instance, n))


@router.get("/{instance}/url", response_model=LocalUrlOut)
def local_instance_url(instance: str, ctx: CtxDep, _: Operator) -> LocalUrlOut:
    """A connection URL; it holds the password, hence the operator role."""
    return LocalUrlOut(url=LocalDatabaseService(ctx).url(instance))
