"""Export a stack as a Compose file.

Each enabled instance becomes one service, keyed by the instance name, with
``container_name: <prefix>-<stack>-<instance>`` and identity labels
(``snoozeql.stack``, ``snoozeql.instance``, ``snoozeql.template``,
``snoozeql.managed=true``, plus ``snoozeql.engine`` and ``snoozeql.domains`` when set).

Choices that keep the file valid for every Compose implementation (Debian's
docker-compose 1.29 and Compose v2 alike) and safe to hand around:

- Values are literal in our model, so every ``$`` is written as ``$$`` (Compose would
  otherwise interpolate it).
- Named volumes are scoped to their instance (``<instance>_<name>``) and declared at the
  top level: two instances of one template must not share a database's data directory.
  Instance names cannot contain ``_``, so the scoped names cannot collide.
- Config files, by default (``config_style="bind"``), are written beside the Compose
  file under ``configs/<instance>/<target path>`` and bind-mounted read-only at their
  target; :attr:`ComposeExport.files` holds their content and mode for the caller to
  write. Compose ``configs`` with inline ``content:`` (``config_style="content"``) gives
  one self-contained file but needs Compose v2.23 or later: docker-compose 1.x refuses it
  and ignores ``configs`` outside Swarm.
- Secret env values, by default (``secrets="interpolate"``), are written as
  ``${SNOOZEQL_<INSTANCE>_<KEY>}`` references and their values returned in
  :attr:`ComposeExport.env` for a ``.env`` file, so the Compose file itself holds no
  secret. ``"redact"`` writes ``***``; ``"reveal"`` writes the values in place.

The project name ``<prefix>-<stack>`` is recorded under ``x-snoozeql`` (the top-level
``name`` key is newer than docker-compose 1.x); pass it with ``-p``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import yaml

from snoozeql.domain.errors import ValidationError
from snoozeql.domain.stacks.clashes import raise_on_clashes
from snoozeql.domain.stacks.hostaccess import loopback_default
from snoozeql.domain.stacks.merge import EffectiveService
from snoozeql.domain.stacks.names import DEFAULT_PREFIX, container_name, validate_stack_name

__all__ = [
    "ComposeExport",
    "ConfigStyle",
    "ExportedFile",
    "SecretMode",
    "config_file_path",
    "identity_labels",
    "secret_variable",
    "to_compose",
]

SecretMode = Literal["interpolate", "redact", "reveal"]
ConfigStyle = Literal["bind", "content"]
CONFIG_DIR = "configs"


@dataclass(frozen=True)
class ExportedFile:
    """A file the Compose file refers to, relative to the Compose file's directory."""

    path: str
    content: str
    mode: str


@dataclass(frozen=True)
class ComposeExport:
    """The Compose document plus what must be written beside it."""

    project: str
    document: dict[str, Any]
    files: tuple[ExportedFile, ...] = ()
    env: dict[str, str] = field(default_factory=dict)

    def yaml(self) -> str:
        return dump_yaml(self.document)

    def env_file(self) -> str:
        """``.env`` text for the interpolated secrets (holds secrets: write it 0600)."""
        lines = []
        for key, value in self.env.items():
            quoted = value.replace("\\", "\\\\").replace("'", "\\'")
            lines.append(f"{key}='{quoted}'")
        return "\n".join(lines) + ("\n" if lines else "")


class _Dumper(yaml.SafeDumper):
    """Safe dumper that writes multi-line text (config files) as literal blocks."""


def _str_representer(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    style = "|" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_Dumper.add_representer(str, _str_representer)


def dump_yaml(document: dict[str, Any]) -> str:
    return yaml.dump(
        document, Dumper=_Dumper, sort_keys=False, default_flow_style=False, allow_unicode=True
    )


def _esc(value: str) -> str:
    return value.replace("$", "$$")


def identity_labels(stack: str, instance: str, service: EffectiveService) -> dict[str, str]:
    labels = {
        "snoozeql.stack": stack,
        "snoozeql.instance": instance,
        "snoozeql.template": service.template,
        "snoozeql.managed": "true",
    }
    if service.engine:
        labels["snoozeql.engine"] = service.engine
    if service.domains:
        labels["snoozeql.domains"] = ",".join(service.domains)
    return labels


def secret_variable(instance: str, key: str) -> str:
    """The interpolation variable a secret is written as: ``SNOOZEQL_<INSTANCE>_<KEY>``."""
    return "SNOOZEQL_" + re.sub(r"[^A-Z0-9]", "_", f"{instance}_{key}".upper())


def config_file_path(instance: str, target: str) -> str:
    """Where a bind-style config file is written, relative to the Compose file."""
    return f"{CONFIG_DIR}/{instance}/{target.lstrip('/')}"


def _healthcheck(service: EffectiveService) -> dict[str, Any] | None:
    hc = service.healthcheck
    if hc is None:
        return None
    if hc.disable:
        # Compose refuses "disable: true" beside any other healthcheck option.
        return {"disable": True}
    out: dict[str, Any] = {}
    if hc.test is not None:
        out["test"] = [_esc(t) for t in hc.test]
    for name in ("interval", "timeout", "start_period", "retries"):
        value = getattr(hc, name)
        if value is not None:
            out[name] = value
    return out


def _service(
    stack: str,
    instance: str,
    svc: EffectiveService,
    prefix: str,
    secrets: SecretMode,
    config_style: ConfigStyle,
    env_out: dict[str, str],
    volumes_out: dict[str, Any],
    configs_out: dict[str, Any],
    files_out: list[ExportedFile],
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "image": svc.image,
        "container_name": container_name(prefix, stack, instance),
    }
    if svc.command is not None:
        body["command"] = (
            _esc(svc.command) if isinstance(svc.command, str) else [_esc(c) for c in svc.command]
        )
    if svc.environment:
        env: dict[str, str | None] = {}
        for e in svc.environment:
            if e.value is None:
                env[e.key] = None
            elif e.secret and secrets == "interpolate":
                var = base = secret_variable(instance, e.key)
                n = 1
                while var in env_out:  # "a-b"+"C" and "a"+"B_C" map to one name
                    n += 1
                    var = f"{base}_{n}"
                env_out[var] = e.value
                env[e.key] = "${" + var + "}"
            elif e.secret and secrets == "redact":
                env[e.key] = "***"
            else:
                env[e.key] = _esc(e.value)
        body["environment"] = env
    labels = {label.key: _esc(label.value) for label in svc.labels}
    labels.update(identity_labels(stack, instance, svc))
    body["labels"] = labels
    if svc.ports:
        # a port without an address publishes on 127.0.0.1, never on every interface
        body["ports"] = [p.short() for p in loopback_default(svc.ports)]
    mounts: list[dict[str, Any]] = []
    for v in svc.volumes:
        mount: dict[str, Any] = {"type": v.type}
        if v.type == "volume" and v.source:
            scoped = f"{instance}_{v.source}"
            volumes_out[scoped] = {}
            mount["source"] = scoped
        elif v.type == "bind":
            mount["source"] = _esc(v.source or "")
        mount["target"] = v.target
        if v.read_only:
            mount["read_only"] = True
        mounts.append(mount)
    service_configs: list[dict[str, Any]] = []
    for c in svc.config_files:
        if config_style == "bind":
            path = config_file_path(instance, c.target)
            files_out.append(ExportedFile(path=path, content=c.content, mode=c.mode))
            mounts.append(
                {"type": "bind", "source": f"./{path}", "target": c.target, "read_only": True}
            )
        else:
            key = f"{instance}_" + re.sub(r"[^A-Za-z0-9._-]", "_", c.target.strip("/"))
            configs_out[key] = {"content": _esc(c.content)}
            service_configs.append({"source": key, "target": c.target, "mode": c.mode_int})
    if mounts:
        body["volumes"] = mounts
    if service_configs:
        body["configs"] = service_configs
    hc = _healthcheck(svc)
    if hc is not None:
        body["healthcheck"] = hc
    return body


def to_compose(
    stack_name: str,
    instances: Sequence[tuple[str, EffectiveService]],
    prefix: str = DEFAULT_PREFIX,
    *,
    secrets: SecretMode = "interpolate",
    config_style: ConfigStyle = "bind",
) -> ComposeExport:
    """The Compose export of a stack's *enabled* instances (the caller filters).

    Raises :class:`ValidationError` for a bad or duplicate name and
    :class:`~snoozeql.domain.errors.ConflictError` if two instances publish one host port.
    """
    if secrets not in ("interpolate", "redact", "reveal"):
        raise ValidationError(f"unknown secrets mode {secrets!r}")
    if config_style not in ("bind", "content"):
        raise ValidationError(f"unknown config style {config_style!r}")
    validate_stack_name(stack_name, prefix)
    names = [name for name, _ in instances]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValidationError(f"instance name(s) used twice: {', '.join(duplicates)}")
    raise_on_clashes((name, svc.ports) for name, svc in instances)

    env_out: dict[str, str] = {}
    volumes_out: dict[str, Any] = {}
    configs_out: dict[str, Any] = {}
    files_out: list[ExportedFile] = []
    services = {
        name: _service(
            stack_name,
            name,
            svc,
            prefix,
            secrets,
            config_style,
            env_out,
            volumes_out,
            configs_out,
            files_out,
        )
        for name, svc in instances
    }
    project = f"{prefix}-{stack_name}"
    document: dict[str, Any] = {
        "x-snoozeql": {"stack": stack_name, "prefix": prefix, "project": project},
        "services": services,
    }
    if volumes_out:
        document["volumes"] = volumes_out
    if configs_out:
        document["configs"] = configs_out
    return ComposeExport(project=project, document=document, files=tuple(files_out), env=env_out)
