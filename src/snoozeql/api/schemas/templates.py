"""Response bodies of the templates API (the CLI's ``--json`` uses them too).

A template is shown with every secret env value as ``***``.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from snoozeql.api.schemas.stacks import (
    ConfigFileOut,
    EnvVarOut,
    HealthcheckOut,
    LabelOut,
    PortOut,
    VolumeOut,
)
from snoozeql.services.templates import TemplateInfo


class TemplateOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    name: str
    description: str
    engine: str | None
    image: str
    command: str | list[str] | None
    environment: list[EnvVarOut]
    labels: list[LabelOut]
    ports: list[PortOut]
    volumes: list[VolumeOut]
    healthcheck: HealthcheckOut | None
    config_files: list[ConfigFileOut]
    domains: list[str]
    builtin: bool

    @classmethod
    def of(cls, info: TemplateInfo) -> TemplateOut:
        t = info.template
        return cls(
            name=t.name, description=t.description, engine=t.engine, image=t.image,
            command=list(t.command) if isinstance(t.command, tuple) else t.command,
            environment=[EnvVarOut.model_validate(e) for e in t.environment],
            labels=[LabelOut.model_validate(x) for x in t.labels],
            ports=[PortOut.model_validate(p) for p in t.ports],
            volumes=[VolumeOut.model_validate(v) for v in t.volumes],
            healthcheck=HealthcheckOut.model_validate(t.healthcheck) if t.healthcheck else None,
            config_files=[ConfigFileOut.model_validate(c) for c in t.config_files],
            domains=list(t.domains), builtin=info.builtin,
        )
