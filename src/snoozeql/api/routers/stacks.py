"""Stacks and their service instances, Compose export, plan/apply/down."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Query, Response

from snoozeql.api.deps import CtxDep, Operator, Viewer
from snoozeql.api.schemas.stacks import (
    InstanceCreate,
    InstanceDuplicate,
    InstanceRename,
    InstanceUpdate,
    OverrideBody,
    StackCreate,
    StackRestore,
    StackUpdate,
)
from snoozeql.domain.types import Role
from snoozeql.services.stacks import StackService
from snoozeql.store.apikeys import ApiKeyRecord

router = APIRouter(prefix="/stacks", tags=["stacks"])


# ----------------------------------------------------------------------------- stacks


@router.get("")
def list_stacks(ctx: CtxDep, _: Viewer, deleted: bool = False) -> list[dict[str, Any]]:
    """Live stacks; ``?deleted=true`` adds the soft-deleted ones."""
    return [s.to_dict() for s in StackService(ctx).list_stacks(include_deleted=deleted)]


@router.post("", status_code=201)
def create_stack(body: StackCreate, ctx: CtxDep, key: Operator) -> dict[str, Any]:
    return StackService(ctx).create_stack(body.name, body.description,
                                          actor=key.name).to_dict()


@router.get("/{stack}")
def get_stack(stack: str, ctx: CtxDep, _: Viewer) -> dict[str, Any]:
    svc = StackService(ctx)
    out = svc.get_stack(stack).to_dict()
    out["instances"] = [i.to_dict(with_overrides=False) for i in svc.list_instances(stack)]
    return out


@router.put("/{stack}")
def update_stack(stack: str, body: StackUpdate, ctx: CtxDep, key: Operator) -> dict[str, Any]:
    return StackService(ctx).update_stack(stack, body.description, actor=key.name).to_dict()


@router.delete("/{stack}", status_code=204)
def delete_stack(
    stack: str, ctx: CtxDep, key: Operator,
    down: bool = Query(False, description="stop what apply brought up before deleting"),
) -> Response:
    StackService(ctx).delete_stack(stack, down=down, actor=key.name)
    return Response(status_code=204)


@router.get("/{stack}/delete-preview")
def stack_delete_preview(stack: str, ctx: CtxDep, _: Viewer) -> dict[str, Any]:
    """What a delete takes away: instances, and applied runtime objects measured now."""
    return StackService(ctx).delete_stack_preview(stack)


@router.get("/{stack}/state")
def stack_state(stack: str, ctx: CtxDep, _: Viewer) -> dict[str, Any]:
    """The stack's state measured now (up, partly up, down, empty) and each instance's
    (running, starting, stopped, failed, missing, unknown, not applied, disabled)."""
    overall, states = StackService(ctx).stack_states(stack)
    return {"stack": stack, "state": overall,
            "instances": {name: s.to_dict() for name, s in states.items()}}


@router.post("/{stack}/restore")
def restore_stack(
    stack: str, ctx: CtxDep, key: Operator, body: StackRestore | None = None
) -> dict[str, Any]:
    """Restore a deleted stack: the one with ``id`` or deleted at ``deleted_at``, or the
    only deleted one of that name (409 listing them when several are)."""
    body = body or StackRestore(id=None, deleted_at=None)
    return StackService(ctx).restore_stack(stack, stack_id=body.id, deleted_at=body.deleted_at,
                                           actor=key.name).to_dict()


@router.get("/{stack}/compose")
def stack_compose(
    stack: str,
    ctx: CtxDep,
    _: Viewer,
    secrets: Literal["interpolate", "redact"] = Query(
        "interpolate",
        description="interpolate: secrets as ${VARIABLE} references (values never "
        "returned); redact: '***'",
    ),
    config_style: Literal["bind", "content"] = "bind",
) -> dict[str, Any]:
    """The Compose file of the enabled instances, as a document and as YAML text."""
    export = StackService(ctx).compose(stack, secrets=secrets, config_style=config_style)
    return {**export.to_dict(), "yaml": export.yaml()}


@router.get("/{stack}/plan")
def stack_plan(stack: str, ctx: CtxDep, _: Viewer) -> dict[str, Any]:
    return StackService(ctx).plan(stack).to_dict()


@router.post("/{stack}/apply")
def stack_apply(stack: str, ctx: CtxDep, _: Operator) -> dict[str, Any]:
    steps = StackService(ctx).apply(stack)
    return {"stack": stack, "ok": all(s.ok for s in steps), "steps": [s.to_dict() for s in steps]}


@router.post("/{stack}/down")
def stack_down(stack: str, ctx: CtxDep, _: Operator) -> dict[str, Any]:
    steps = StackService(ctx).down(stack)
    return {"stack": stack, "ok": all(s.ok for s in steps), "steps": [s.to_dict() for s in steps]}


def _admin(key: ApiKeyRecord) -> bool:
    """Publishing a port beyond 127.0.0.1 needs the admin role."""
    return key.role.allows(Role.ADMIN)


# -------------------------------------------------------------------------- instances


@router.post("/{stack}/instances", status_code=201)
def create_instance(
    stack: str, body: InstanceCreate, ctx: CtxDep, key: Operator
) -> dict[str, Any]:
    return StackService(ctx).create_instance(
        stack, body.name, body.template, description=body.description, enabled=body.enabled,
        overrides=body.overrides, actor=key.name, admin=_admin(key),
    ).to_dict()


@router.get("/{stack}/instances")
def list_instances(
    stack: str,
    ctx: CtxDep,
    _: Viewer,
    search: str | None = Query(None, description="in name, template and description"),
    enabled: bool | None = None,
) -> list[dict[str, Any]]:
    """Live instances in creation order, with their template and override_count."""
    items = StackService(ctx).list_instances(stack, search=search, enabled=enabled)
    return [i.to_dict(with_overrides=False) for i in items]


@router.get("/{stack}/instances/{instance}")
def get_instance(stack: str, instance: str, ctx: CtxDep, _: Viewer) -> dict[str, Any]:
    return StackService(ctx).get_instance(stack, instance).to_dict()


@router.put("/{stack}/instances/{instance}")
def update_instance(
    stack: str, instance: str, body: InstanceUpdate, ctx: CtxDep, key: Operator
) -> dict[str, Any]:
    return StackService(ctx).update_instance(
        stack, instance, description=body.description, enabled=body.enabled, actor=key.name
    ).to_dict()


@router.delete("/{stack}/instances/{instance}", status_code=204)
def delete_instance(stack: str, instance: str, ctx: CtxDep, key: Operator) -> Response:
    StackService(ctx).delete_instance(stack, instance, actor=key.name)
    return Response(status_code=204)


@router.post("/{stack}/instances/{instance}/duplicate", status_code=201)
def duplicate_instance(
    stack: str,
    instance: str,
    ctx: CtxDep,
    key: Operator,
    body: InstanceDuplicate | None = None,
) -> dict[str, Any]:
    body = body or InstanceDuplicate(name=None, enabled=None)
    return StackService(ctx).duplicate_instance(
        stack, instance, body.name, enabled=body.enabled, actor=key.name
    ).to_dict()


@router.put("/{stack}/instances/{instance}/rename")
def rename_instance(
    stack: str, instance: str, body: InstanceRename, ctx: CtxDep, key: Operator
) -> dict[str, Any]:
    return StackService(ctx).rename_instance(stack, instance, body.name,
                                             actor=key.name).to_dict()


@router.get("/{stack}/instances/{instance}/delete-preview")
def delete_preview(stack: str, instance: str, ctx: CtxDep, _: Viewer) -> dict[str, Any]:
    return StackService(ctx).delete_preview(stack, instance)


@router.put("/{stack}/instances/{instance}/overrides/{kind}")
def put_override(
    stack: str, instance: str, kind: str, body: OverrideBody, ctx: CtxDep, key: Operator
) -> dict[str, Any]:
    """Replace one kind of override: ports, volumes, env_vars, labels, domains,
    healthcheck, config_files."""
    return StackService(ctx).put_override(
        stack, instance, kind, {"mode": body.mode, "entries": body.entries}, actor=key.name,
        admin=_admin(key),
    ).to_dict()


@router.delete("/{stack}/instances/{instance}/overrides/{kind}")
def delete_override(
    stack: str, instance: str, kind: str, ctx: CtxDep, key: Operator
) -> dict[str, Any]:
    return StackService(ctx).delete_override(stack, instance, kind, actor=key.name).to_dict()


@router.get("/{stack}/instances/{instance}/secrets")
def get_secrets(stack: str, instance: str, ctx: CtxDep, _: Operator) -> dict[str, Any]:
    """The instance's effective secret values (generated passwords included) and the
    password `apply` gives its database: operators only, never in other responses."""
    return StackService(ctx).secrets(stack, instance)


@router.get("/{stack}/instances/{instance}/effective")
def get_effective(stack: str, instance: str, ctx: CtxDep, _: Viewer) -> dict[str, Any]:
    """The template merged with the overrides, with per-field provenance."""
    view, svc = StackService(ctx).effective(stack, instance)
    return {
        "stack": view.stack, "instance": view.name, "container_name": view.container_name,
        "enabled": view.enabled, **svc.redacted(),
    }
