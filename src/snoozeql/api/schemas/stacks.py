"""Request and response bodies of the stacks API (the CLI's ``--json`` and the
dashboard's downloads use the same response models).

Secret env values appear as ``***`` in every response but the operators'
``/secrets`` one.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, cast
from uuid import UUID

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    SerializerFunctionWrapHandler,
    WithJsonSchema,
    model_serializer,
    model_validator,
)
from typing_extensions import TypedDict

from snoozeql.domain.stacks import ComposeExport, EffectiveService, Override, OverrideKind
from snoozeql.domain.stacks.entries import Healthcheck
from snoozeql.domain.validation import MAX_DESCRIPTION_CHARS, MAX_NAME_CHARS
from snoozeql.services.stacks.views import InstanceView, StackView, StepResult


class StackCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(examples=["shop"], max_length=MAX_NAME_CHARS)
    description: str = Field("", max_length=MAX_DESCRIPTION_CHARS)


class StackRestore(BaseModel):
    """Which deleted stack to restore when several share the name."""

    model_config = ConfigDict(extra="forbid")
    id: str | None = Field(None, max_length=64,
                           description="the deleted stack's id (GET /stacks?deleted=true)")
    deleted_at: str | None = Field(
        None, max_length=64, examples=["2026-12-02T04:17:05"],
        description="its deletion time (UTC) at the precision written: a minute or a second")


class StackUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    description: str = Field(max_length=MAX_DESCRIPTION_CHARS)


class InstanceCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(examples=["db"], max_length=MAX_NAME_CHARS)
    template: str = Field(examples=["postgres"], max_length=MAX_NAME_CHARS)
    description: str = Field("", max_length=MAX_DESCRIPTION_CHARS)
    enabled: bool = True
    overrides: dict[str, Any] = Field(
        default_factory=dict,
        description="Optional overrides by kind: {kind: {mode, entries}}",
        examples=[{"ports": {"mode": "replace", "entries": ["127.0.0.1:15432:5432"]}}],
    )


class InstanceUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    description: str | None = Field(None, max_length=MAX_DESCRIPTION_CHARS)
    enabled: bool | None = None


class InstanceDuplicate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(None, description="default: <name>-copy",
                             max_length=MAX_NAME_CHARS)
    enabled: bool | None = Field(None, description="default: the source's")


class InstanceRename(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(max_length=MAX_NAME_CHARS)


class OverrideBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    mode: Literal["merge", "replace"] = "merge"
    entries: Any = Field(
        default=None,
        description="A list of entries (ports, volumes, env vars, labels, domains, config "
        "files) or a mapping of healthcheck fields; env vars and labels also as a mapping",
    )


# ------------------------------------------------------------------------ responses
#
# Built from the domain values and the stacks service's views; every secret env value
# is ``***`` (EnvVarOut masks it), except in InstanceSecretsOut, the operators' route.

# Times as ``datetime.isoformat()`` writes them (``+00:00``), as this API always has.
IsoTime = Annotated[
    datetime,
    PlainSerializer(lambda d: d.isoformat(), return_type=str),
    WithJsonSchema({"type": "string", "format": "date-time"}, mode="serialization"),
]


class PortOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    host_ip: str
    host_port: int | None
    container_port: int
    protocol: str


class VolumeOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    type: str
    source: str | None
    target: str
    read_only: bool


class EnvVarOut(BaseModel):
    """An env var; a secret's value is ``***`` (None stays None: nothing is set)."""

    model_config = ConfigDict(from_attributes=True)
    key: str
    value: str | None
    secret: bool

    @model_validator(mode="after")
    def _mask(self) -> EnvVarOut:
        if self.secret and self.value is not None:
            self.value = "***"
        return self


class LabelOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    key: str
    value: str


class ConfigFileOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    target: str
    content: str
    mode: str


class HealthcheckFields(TypedDict, total=False):
    """A healthcheck as answered: only the fields it sets."""

    test: list[str]
    interval: str
    timeout: str
    start_period: str
    retries: int
    disable: bool


class HealthcheckOut(BaseModel):
    """The fields a healthcheck (or an override's patch) sets; unset ones are left out."""

    model_config = ConfigDict(from_attributes=True)
    test: list[str] | None = None
    interval: str | None = None
    timeout: str | None = None
    start_period: str | None = None
    retries: int | None = None
    disable: bool | None = None

    @model_serializer(mode="wrap")
    def _set_only(self, handler: SerializerFunctionWrapHandler) -> HealthcheckFields:
        return cast(HealthcheckFields,
                    {k: v for k, v in handler(self).items() if v is not None})


OverrideEntries = (
    list[PortOut] | list[VolumeOut] | list[EnvVarOut] | list[LabelOut] | list[ConfigFileOut]
    | list[str] | HealthcheckOut
)
_ENTRY_MODELS: dict[OverrideKind, type[BaseModel]] = {
    OverrideKind.PORTS: PortOut,
    OverrideKind.VOLUMES: VolumeOut,
    OverrideKind.ENV_VARS: EnvVarOut,
    OverrideKind.LABELS: LabelOut,
    OverrideKind.CONFIG_FILES: ConfigFileOut,
}


class StackOverrideOut(BaseModel):
    """One kind of override: entries by kind (host names for domains, the patched
    fields for healthcheck)."""

    kind: str
    mode: Literal["merge", "replace"]
    entries: OverrideEntries

    @model_validator(mode="before")
    @classmethod
    def _from_override(cls, data: Any) -> Any:
        if not isinstance(data, Override):
            return data
        entries: Any
        if isinstance(data.entries, Healthcheck):
            entries = HealthcheckOut.model_validate(data.entries)
        elif data.kind is OverrideKind.DOMAINS:
            entries = list(data.entries)
        else:
            model = _ENTRY_MODELS[data.kind]
            entries = [model.model_validate(e) for e in data.entries]
        return {"kind": data.kind.value, "mode": data.mode.value, "entries": entries}


class StackOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: UUID
    name: str
    description: str
    instance_count: int
    created_at: IsoTime
    updated_at: IsoTime
    deleted_at: IsoTime | None
    last_applied_at: IsoTime | None


class StackInstanceSummaryOut(BaseModel):
    """An instance in a listing: without its overrides."""

    model_config = ConfigDict(from_attributes=True)
    id: UUID
    stack: str
    name: str
    template: str
    description: str
    enabled: bool
    container_name: str
    override_count: int
    created_at: IsoTime
    updated_at: IsoTime


class StackDetailOut(StackOut):
    instances: list[StackInstanceSummaryOut]

    @classmethod
    def of(cls, stack: StackView, instances: list[InstanceView]) -> StackDetailOut:
        return cls(**dict(StackOut.model_validate(stack)),
                   instances=[StackInstanceSummaryOut.model_validate(i) for i in instances])


class StackInstanceOut(StackInstanceSummaryOut):
    """An instance with its overrides (secret values ``***``)."""

    overrides: list[StackOverrideOut]


class LiveStateOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    status: str
    detail: str


class StackStateOut(BaseModel):
    stack: str
    state: str
    instances: dict[str, LiveStateOut]


class PreviewInstanceOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    name: str
    template: str
    enabled: bool
    override_count: int


class StackAppliedOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    runtime_name: str
    runtime: str
    instance: str
    state: str


class StackDeletePreviewOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    stack: str
    instances: list[PreviewInstanceOut]
    applied: list[StackAppliedOut]
    running: list[str]
    note: str


class InstanceAppliedOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    runtime_name: str
    runtime: str
    state: str


class InstanceDeletePreviewOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    stack: str
    instance: str
    container_name: str
    enabled: bool
    overrides: dict[str, int]
    override_count: int
    secret_env_vars: list[str]
    volumes: list[str]
    applied: list[InstanceAppliedOut]
    note: str


class SecretValueOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    key: str
    value: str | None
    source: str


class InstanceSecretsOut(BaseModel):
    """Secret values in clear: the operators' ``/secrets`` route only."""

    model_config = ConfigDict(from_attributes=True)
    stack: str
    instance: str
    container_name: str
    engine: str | None
    env_vars: list[SecretValueOut]
    database_password: str | None
    database_password_from: str | None


class EffectiveOut(BaseModel):
    """The template merged with the overrides, with per-field provenance."""

    stack: str
    instance: str
    container_name: str
    enabled: bool
    template: str
    image: str
    engine: str | None
    command: str | list[str] | None
    ports: list[PortOut]
    volumes: list[VolumeOut]
    env_vars: list[EnvVarOut]
    labels: list[LabelOut]
    domains: list[str]
    healthcheck: HealthcheckOut | None
    config_files: list[ConfigFileOut]
    provenance: dict[str, str]
    entry_provenance: dict[str, dict[str, str]]
    override_count: int

    @classmethod
    def of(cls, view: InstanceView, svc: EffectiveService) -> EffectiveOut:
        return cls(
            stack=view.stack, instance=view.name, container_name=view.container_name,
            enabled=view.enabled, template=svc.template, image=svc.image, engine=svc.engine,
            command=list(svc.command) if isinstance(svc.command, tuple) else svc.command,
            ports=[PortOut.model_validate(p) for p in svc.ports],
            volumes=[VolumeOut.model_validate(v) for v in svc.volumes],
            env_vars=[EnvVarOut.model_validate(e) for e in svc.environment],
            labels=[LabelOut.model_validate(x) for x in svc.labels],
            domains=list(svc.domains),
            healthcheck=(HealthcheckOut.model_validate(svc.healthcheck)
                         if svc.healthcheck else None),
            config_files=[ConfigFileOut.model_validate(c) for c in svc.config_files],
            provenance={k.value: v for k, v in svc.provenance.items()},
            entry_provenance={k.value: dict(v) for k, v in svc.entry_provenance.items()},
            override_count=svc.override_count,
        )


class ExportedFileOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    path: str
    content: str
    mode: str


class ComposeOut(BaseModel):
    """The Compose export: the document, the files beside it, and the names (never the
    values) of the variables its secrets are written as."""

    project: str
    compose: dict[str, Any]
    files: list[ExportedFileOut]
    env_variables: list[str]
    yaml: str

    @classmethod
    def of(cls, export: ComposeExport) -> ComposeOut:
        return cls(
            project=export.project, compose=export.document,
            files=[ExportedFileOut.model_validate(f) for f in export.files],
            env_variables=sorted(export.env), yaml=export.yaml(),
        )


class PlanItemOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    action: str
    instance: str
    runtime_name: str
    runtime: str | None
    reason: str
    changes: dict[str, Any]
    state: str | None


class PlanOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    stack: str
    changes: int
    items: list[PlanItemOut]


class StepOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    action: str
    instance: str
    runtime_name: str
    ok: bool
    status: str | None
    detail: str | None


class StepsOut(BaseModel):
    """What apply or down did, step by step."""

    stack: str
    ok: bool
    steps: list[StepOut]

    @classmethod
    def of(cls, stack: str, steps: list[StepResult]) -> StepsOut:
        return cls(stack=stack, ok=all(s.ok for s in steps),
                   steps=[StepOut.model_validate(s) for s in steps])
