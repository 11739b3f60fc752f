"""Stacks and their service instances, Compose export, plan/apply/down."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Query, Response

from snoozeql.api.deps import CtxDep, Operator, Viewer
from snoozeql.api.schemas.stacks import (
    ComposeOut,
    EffectiveOut,
    InstanceCreate,
    InstanceDeletePreviewOut,
    InstanceDuplicate,
    InstanceRename,
    InstanceSecretsOut,
    InstanceUpdate,
    LiveStateOut,
    OverrideBody,
    PlanOut,
    StackCreate,
    StackDeletePreviewOut,
    StackDetailOut,
    StackInstanceOut,
    StackInstanceSummaryOut,
    StackOut,
    StackRestore,
    StackStateOut,
    StackUpdate,
    StepsOut,
)
from snoozeql.domain.types import Role
from snoozeql.services.stacks import StackService
from snoozeql.store.apikeys import ApiKeyRecord

router = APIRouter(prefix="/stacks", tags=["stacks"])


# ----------------------------------------------------------------------------- stacks


@router.get("", response_model=list[StackOut])
def list_stacks(ctx: CtxDep, _: Viewer, deleted: bool = False) -> list[StackOut]:
    """Live stacks; ``?deleted=true`` adds the soft-deleted ones."""
    return [StackOut.model_validate(s)
            for s in StackService(ctx).list_stacks(include_deleted=deleted)]


@router.post("", status_code=201, response_model=StackOut)
def create_stack(body: StackCreate, ctx: CtxDep, key: Operator) -> StackOut:
    return StackOut.model_validate(
        StackService(ctx).create_stack(body.name, body.description, actor=key.name))


@router.get("/{stack}", response_model=StackDetailOut)
def get_stack(stack: str, ctx: CtxDep, _: Viewer) -> StackDetailOut:
    svc = StackService(ctx)
    return StackDetailOut.of(svc.get_stack(stack), svc.list_instances(stack))


@router.put("/{stack}", response_model=StackOut)
def update_stack(stack: str, body: StackUpdate, ctx: CtxDep, key: Operator) -> StackOut:
    return StackOut.model_validate(
        StackService(ctx).update_stack(stack, body.description, actor=key.name))


@router.delete("/{stack}", status_code=204, response_class=Response)
def delete_stack(
    stack: str, ctx: CtxDep, key: Operator,
    down: bool = Query(False, description="stop what apply brought up before deleting"),
) -> Response:
    StackService(ctx).delete_stack(stack, down=down, actor=key.name)
    return Response(status_code=204)


@router.get("/{stack}/delete-preview", response_model=StackDeletePreviewOut)
def stack_delete_preview(stack: str, ctx: CtxDep, _: Viewer) -> StackDeletePreviewOut:
    """What a delete takes away: instances, and applied runtime objects measured now."""
    return StackDeletePreviewOut.model_validate(StackService(ctx).delete_stack_preview(stack))


@router.get("/{stack}/state", response_model=StackStateOut)
def stack_state(stack: str, ctx: CtxDep, _: Viewer) -> StackStateOut:
    """The stack's state measured now (up, partly up, down, empty) and each instance's
    (running, starting, stopped, failed, missing, unknown, not applied, disabled)."""
    overall, states = StackService(ctx).stack_states(stack)
    return StackStateOut(stack=stack, state=overall, instances={
        name: LiveStateOut.model_validate(s) for name, s in states.items()})


@router.post("/{stack}/restore", response_model=StackOut)
def restore_stack(
    stack: str, ctx: CtxDep, key: Operator, body: StackRestore | None = None
) -> StackOut:
    """Restore a deleted stack: the one with ``id`` or deleted at ``deleted_at``, or the
    only deleted one of that name (409 listing them when several are)."""
    body = body or StackRestore(id=None, deleted_at=None)
    return StackOut.model_validate(StackService(ctx).restore_stack(
        stack, stack_id=body.id, deleted_at=body.deleted_at, actor=key.name))


@router.get("/{stack}/compose", response_model=ComposeOut)
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
) -> ComposeOut:
    """The Compose file of the enabled instances, as a document and as YAML text."""
    return ComposeOut.of(StackService(ctx).compose(stack, secrets=secrets,
                                                   config_style=config_style))


@router.get("/{stack}/plan", response_model=PlanOut)
def stack_plan(stack: str, ctx: CtxDep, _: Viewer) -> PlanOut:
    return PlanOut.model_validate(StackService(ctx).plan(stack))


@router.post("/{stack}/apply", response_model=StepsOut)
def stack_apply(stack: str, ctx: CtxDep, _: Operator) -> StepsOut:
    return StepsOut.of(stack, StackService(ctx).apply(stack))


@router.post("/{stack}/down", response_model=StepsOut)
def stack_down(stack: str, ctx: CtxDep, _: Operator) -> StepsOut:
    return StepsOut.of(stack, StackService(ctx).down(stack))


def _admin(key: ApiKeyRecord) -> bool:
    """Publishing a port beyond 127.0.0.1 needs the admin role."""
    return key.role.allows(Role.ADMIN)


# -------------------------------------------------------------------------- instances


@router.post("/{stack}/instances", status_code=201, response_model=StackInstanceOut)
def create_instance(
    stack: str, body: InstanceCreate, ctx: CtxDep, key: Operator
) -> StackInstanceOut:
    return StackInstanceOut.model_validate(StackService(ctx).create_instance(
        stack, body.name, body.template, description=body.description, enabled=body.enabled,
        overrides=body.overrides, actor=key.name, admin=_admin(key),
    ))


@router.get("/{stack}/instances", response_model=list[StackInstanceSummaryOut])
def list_instances(
    stack: str,
    ctx: CtxDep,
    _: Viewer,
    search: str | None = Query(None, description="in name, template and description"),
    enabled: bool | None = None,
) -> list[StackInstanceSummaryOut]:
    """Live instances in creation order, with their template and override_count."""
    items = StackService(ctx).list_instances(stack, search=search, enabled=enabled)
    return [StackInstanceSummaryOut.model_validate(i) for i in items]


@router.get("/{stack}/instances/{instance}", response_model=StackInstanceOut)
def get_instance(stack: str, instance: str, ctx: CtxDep, _: Viewer) -> StackInstanceOut:
    return StackInstanceOut.model_validate(StackService(ctx).get_instance(stack, instance))


@router.put("/{stack}/instances/{instance}", response_model=StackInstanceOut)
def update_instance(
    stack: str, instance: str, body: InstanceUpdate, ctx: CtxDep, key: Operator
) -> StackInstanceOut:
    return StackInstanceOut.model_validate(StackService(ctx).update_instance(
        stack, instance, description=body.description, enabled=body.enabled, actor=key.name
    ))


@router.delete("/{stack}/instances/{instance}", status_code=204, response_class=Response)
def delete_instance(stack: str, instance: str, ctx: CtxDep, key: Operator) -> Response:
    StackService(ctx).delete_instance(stack, instance, actor=key.name)
    return Response(status_code=204)


@router.post("/{stack}/instances/{instance}/duplicate", status_code=201,
             response_model=StackInstanceOut)
def duplicate_instance(
    stack: str,
    instance: str,
    ctx: CtxDep,
    key: Operator,
    body: InstanceDuplicate | None = None,
) -> StackInstanceOut:
    body = body or InstanceDuplicate(name=None, enabled=None)
    return StackInstanceOut.model_validate(StackService(ctx).duplicate_instance(
        stack, instance, body.name, enabled=body.enabled, actor=key.name
    ))


@router.put("/{stack}/instances/{instance}/rename", response_model=StackInstanceOut)
def rename_instance(
    stack: str, instance: str, body: InstanceRename, ctx: CtxDep, key: Operator
) -> StackInstanceOut:
    return StackInstanceOut.model_validate(
        StackService(ctx).rename_instance(stack, instance, body.name, actor=key.name))


@router.get("/{stack}/instances/{instance}/delete-preview",
            response_model=InstanceDeletePreviewOut)
def delete_preview(
    stack: str, instance: str, ctx: CtxDep, _: Viewer
) -> InstanceDeletePreviewOut:
    return InstanceDeletePreviewOut.model_validate(
        StackService(ctx).delete_preview(stack, instance))


@router.put("/{stack}/instances/{instance}/overrides/{kind}", response_model=StackInstanceOut)
def put_override(
    stack: str, instance: str, kind: str, body: OverrideBody, ctx: CtxDep, key: Operator
) -> StackInstanceOut:
    """Replace one kind of override: ports, volumes, env_vars, labels, domains,
    healthcheck, config_files."""
    return StackInstanceOut.model_validate(StackService(ctx).put_override(
        stack, instance, kind, {"mode": body.mode, "entries": body.entries}, actor=key.name,
        admin=_admin(key),
    ))


@router.delete("/{stack}/instances/{instance}/overrides/{kind}",
               response_model=StackInstanceOut)
def delete_override(
    stack: str, instance: str, kind: str, ctx: CtxDep, key: Operator
) -> StackInstanceOut:
    return StackInstanceOut.model_validate(
        StackService(ctx).delete_override(stack, instance, kind, actor=key.name))


@router.get("/{stack}/instances/{instance}/secrets", response_model=InstanceSecretsOut)
def get_secrets(stack: str, instance: str, ctx: CtxDep, _: Operator) -> InstanceSecretsOut:
    """The instance's effective secret values (generated passwords included) and the
    password `apply` gives its database: operators only, never in other responses."""
    return InstanceSecretsOut.model_validate(StackService(ctx).secrets(stack, instance))


@router.get("/{stack}/instances/{instance}/effective", response_model=EffectiveOut)
def get_effective(stack: str, instance: str, ctx: CtxDep, _: Viewer) -> EffectiveOut:
    """The template merged with the overrides, with per-field provenance."""
    return EffectiveOut.of(*StackService(ctx).effective(stack, instance))
