"""Templates: Compose-style service definitions that instances are made from.

A template is written like one service of a Compose file (``image``, ``command``,
``environment``, ``labels``, ``ports``, ``volumes``, ``healthcheck``) plus three
SnoozeQL fields: ``config_files`` (files with inline content), ``domains`` (host names
the service answers on) and ``engine`` (set on database templates, so the engine
catalogue can run the instance natively or through Docker).

Instances never copy a template: they keep a reference to it and per-kind overrides,
and :func:`snoozeql.domain.stacks.merge.effective` combines the two when needed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import yaml

from snoozeql.domain.errors import ValidationError
from snoozeql.domain.stacks.entries import (
    ConfigFile,
    EnvVar,
    Healthcheck,
    Label,
    PortMapping,
    VolumeMount,
    unique_domains,
    unique_entries,
)
from snoozeql.domain.stacks.names import is_dns_label, suggest_name
from snoozeql.domain.validation import bounded_text

__all__ = [
    "TEMPLATE_FIELDS",
    "Template",
    "load_builtin_templates",
    "parse_env",
    "parse_labels",
    "parse_template_yaml",
]

TEMPLATE_FIELDS = (
    "name",
    "description",
    "engine",
    "image",
    "command",
    "environment",
    "labels",
    "ports",
    "volumes",
    "healthcheck",
    "config_files",
    "domains",
)
_ENGINE = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
_MAX_YAML_BYTES = 1024 * 1024


@dataclass(frozen=True)
class Template:
    """One service definition. Entry lists keep the order they were written in."""

    name: str
    image: str
    description: str = ""
    engine: str | None = None
    command: str | tuple[str, ...] | None = None
    environment: tuple[EnvVar, ...] = ()
    labels: tuple[Label, ...] = ()
    ports: tuple[PortMapping, ...] = ()
    volumes: tuple[VolumeMount, ...] = ()
    healthcheck: Healthcheck | None = None
    config_files: tuple[ConfigFile, ...] = ()
    domains: tuple[str, ...] = field(default=())

    @classmethod
    def from_dict(cls, data: Any, *, name: str | None = None) -> Template:
        """Parse and validate a Compose-style service definition.

        ``name`` is used when the mapping has no ``name`` (a file named after it).
        """
        if not isinstance(data, dict):
            raise ValidationError("a template must be a mapping of service fields")
        unknown = sorted(set(map(str, data)) - set(TEMPLATE_FIELDS))
        if unknown:
            hint = " (use config_files with inline content)" if "configs" in unknown else ""
            raise ValidationError(
                f"template: unknown field(s) {', '.join(unknown)}{hint}; "
                f"allowed: {', '.join(TEMPLATE_FIELDS)}"
            )
        tname = data.get("name", name)
        if not isinstance(tname, str) or not is_dns_label(tname):
            raise ValidationError(
                f"template name {tname!r} is not valid: use lower-case letters, digits and "
                f"hyphens; try {suggest_name(str(tname or ''), 'template')!r}"
            )
        image = data.get("image")
        if not isinstance(image, str) or not image.strip() or any(c.isspace() for c in image):
            raise ValidationError(f"template {tname}: image must be an image reference")
        engine = data.get("engine")
        if engine is not None and (not isinstance(engine, str) or not _ENGINE.match(engine)):
            raise ValidationError(f"template {tname}: engine {engine!r} is not an engine name")
        description = data.get("description") or ""
        if not isinstance(description, str):
            raise ValidationError(f"template {tname}: description must be text")
        bounded_text(description, f"template {tname}: description")
        try:
            return cls(
                name=tname,
                image=image,
                description=description,
                engine=engine,
                command=_parse_command(data.get("command")),
                environment=unique_entries(
                    parse_env(data.get("environment")), "environment variable"
                ),
                labels=unique_entries(parse_labels(data.get("labels")), "label"),
                ports=unique_entries(
                    [PortMapping.parse(p) for p in _as_list(data, "ports")], "port"
                ),
                volumes=unique_entries(
                    [VolumeMount.parse(v) for v in _as_list(data, "volumes")], "volume target"
                ),
                healthcheck=(
                    Healthcheck.parse(data["healthcheck"])
                    if data.get("healthcheck") is not None
                    else None
                ),
                config_files=unique_entries(
                    [ConfigFile.parse(c) for c in _as_list(data, "config_files")],
                    "config file target",
                ),
                domains=unique_domains(_as_list(data, "domains")),
            )
        except ValidationError as exc:
            if exc.message.startswith(f"template {tname}"):
                raise
            raise ValidationError(f"template {tname}: {exc.message}") from None


def _as_list(data: dict[str, Any], key: str) -> list[Any]:
    value = data.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise ValidationError(f"{key} must be a list")
    return value


def _parse_command(value: Any) -> str | tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise ValidationError("command must be a string or a list of strings")


def parse_env(value: Any) -> list[EnvVar]:
    """Compose ``environment``: a mapping or a list of ``KEY=value`` / entry dicts."""
    if value is None:
        return []
    if isinstance(value, dict):
        return [EnvVar.from_pair(k, v) for k, v in value.items()]
    if isinstance(value, list):
        return [EnvVar.parse(v) for v in value]
    raise ValidationError("environment must be a mapping or a list")


def parse_labels(value: Any) -> list[Label]:
    """Compose ``labels``: a mapping or a list of ``key=value`` / entry dicts."""
    if value is None:
        return []
    if isinstance(value, dict):
        return [Label.from_pair(k, v) for k, v in value.items()]
    if isinstance(value, list):
        return [Label.parse(v) for v in value]
    raise ValidationError("labels must be a mapping or a list")


def parse_template_yaml(text: str, *, name: str | None = None) -> Template:
    """Parse a template from YAML text (``safe_load`` only: a template is untrusted input)."""
    if len(text.encode("utf-8")) > _MAX_YAML_BYTES:
        raise ValidationError("template file is larger than 1 MiB")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ValidationError(f"template is not valid YAML{where}") from None
    if isinstance(data, dict) and "services" in data:
        services = data["services"]
        if not isinstance(services, dict) or len(services) != 1:
            raise ValidationError("a template file with 'services' must hold exactly one service")
        ((sname, body),) = services.items()
        if not isinstance(body, dict):
            raise ValidationError(f"service {sname!r} must be a mapping")
        return Template.from_dict(body, name=name or str(sname))
    return Template.from_dict(data, name=name)


def load_builtin_templates() -> dict[str, Template]:
    """The catalogue shipped in ``snoozeql/domain/data/templates/*.yaml``, by name.

    Reading package data is the only I/O here; the files are part of the code.
    """
    folder = resources.files("snoozeql.domain").joinpath("data", "templates")
    out: dict[str, Template] = {}
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if not entry.name.endswith((".yaml", ".yml")):
            continue
        stem = entry.name.rsplit(".", 1)[0]
        template = parse_template_yaml(entry.read_text(encoding="utf-8"), name=stem)
        if template.name != stem:
            raise ValidationError(f"built-in template {entry.name} is named {template.name!r}")
        out[template.name] = template
    return out
