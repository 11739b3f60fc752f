"""The merge: a template plus an instance's overrides gives the effective service.

One rule per kind, following the Compose specification's merge rules (docs/stacks.md
writes them down field by field):

=============  ============================================================  ===========
kind           merge mode: override entries ...                              matched by
=============  ============================================================  ===========
env_vars       replace the template's entry with the same key, else append   key
labels         replace the template's entry with the same key, else append   key
ports          are added unless the same mapping is already there            (host ip,
                                                                             host port,
                                                                             container
                                                                             port,
                                                                             protocol)
volumes        replace the template's mount at the same target, else append  target
config_files   replace the template's file at the same target, else append   target
domains        are added to the set                                          host name
healthcheck    set field by field; ``test`` is replaced whole                field
=============  ============================================================  ===========

In ``replace`` mode the template's entries of that kind are dropped and the override's
entries are the result (an empty replace removes them all).

Beside every value the result records where it came from (its provenance):
``template`` (unchanged from the template), ``override`` (set or changed by a merge
override) or ``replaced`` (the kind was replaced by the override).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from snoozeql.domain.errors import ValidationError
from snoozeql.domain.stacks.entries import (
    HEALTHCHECK_FIELDS,
    ConfigFile,
    EnvVar,
    Healthcheck,
    Label,
    PortMapping,
    VolumeMount,
)
from snoozeql.domain.stacks.overrides import (
    MergeMode,
    Override,
    OverrideKind,
    Overrides,
    overrides_map,
)
from snoozeql.domain.stacks.templates import Template

__all__ = ["EffectiveService", "Provenance", "effective", "entry_label"]

Provenance = Literal["template", "override", "replaced"]


def entry_label(kind: OverrideKind, entry: Any) -> str:
    """The text that names one entry in provenance maps and messages."""
    if isinstance(entry, PortMapping):
        return entry.short()
    if isinstance(entry, str):
        return entry
    return str(entry.key)


@dataclass(frozen=True)
class EffectiveService:
    """The merged service an instance runs: template values with its overrides applied."""

    template: str
    image: str
    engine: str | None = None
    command: str | tuple[str, ...] | None = None
    ports: tuple[PortMapping, ...] = ()
    volumes: tuple[VolumeMount, ...] = ()
    environment: tuple[EnvVar, ...] = ()
    labels: tuple[Label, ...] = ()
    domains: tuple[str, ...] = ()
    healthcheck: Healthcheck | None = None
    config_files: tuple[ConfigFile, ...] = ()
    provenance: Mapping[OverrideKind, Provenance] = field(default_factory=dict)
    entry_provenance: Mapping[OverrideKind, Mapping[str, Provenance]] = field(default_factory=dict)
    override_count: int = 0

    def env(self) -> dict[str, str | None]:
        """The environment as a mapping, secrets included (for the runtimes)."""
        return {e.key: e.value for e in self.environment}

    def unset_env(self) -> list[str]:
        """Variables declared without a value (e.g. a database password to be generated)."""
        return [e.key for e in self.environment if e.value is None]



def _merge_keyed(
    kind: OverrideKind,
    base: tuple[Any, ...],
    override: Override | None,
    key: Callable[[Any], Any],
) -> tuple[tuple[Any, ...], dict[str, Provenance]]:
    """Merge by key: an override entry replaces the base entry with its key in place,
    a new key is appended. Order: template order, then new override entries."""
    if override is None:
        return base, {entry_label(kind, e): "template" for e in base}
    entries = override.entries
    assert isinstance(entries, tuple)
    if override.mode is MergeMode.REPLACE:
        return entries, {entry_label(kind, e): "replaced" for e in entries}
    by_key = {key(e): e for e in entries}
    result: list[Any] = []
    prov: dict[str, Provenance] = {}
    for e in base:
        k = key(e)
        chosen = by_key.pop(k, None)
        if chosen is None:
            result.append(e)
            prov[entry_label(kind, e)] = "template"
        else:
            result.append(chosen)
            prov[entry_label(kind, chosen)] = "override"
    for e in entries:
        if key(e) in by_key:
            result.append(e)
            prov[entry_label(kind, e)] = "override"
    return tuple(result), prov


def _merge_healthcheck(
    base: Healthcheck | None, override: Override | None
) -> tuple[Healthcheck | None, dict[str, Provenance]]:
    """Field by field; ``test`` is one field, so a new test replaces the old list whole."""
    base_fields = base.set_values() if base else {}
    if override is None:
        return base, {f: "template" for f in base_fields}
    patch = override.entries
    assert isinstance(patch, Healthcheck)
    patch_fields = patch.set_values()
    if override.mode is MergeMode.REPLACE:
        hc = patch if patch_fields else None
        return hc, {f: "replaced" for f in patch_fields}
    merged = {**base_fields, **patch_fields}
    prov: dict[str, Provenance] = {
        f: ("override" if f in patch_fields else "template")
        for f in HEALTHCHECK_FIELDS
        if f in merged
    }
    return (Healthcheck.parse(merged) if merged else None), prov


def _kind_provenance(override: Override | None) -> Provenance:
    if override is None:
        return "template"
    if override.mode is MergeMode.REPLACE:
        return "replaced"
    return "override" if override.entry_count else "template"


def effective(
    template: Template, overrides: Iterable[Override] | Overrides | None = None
) -> EffectiveService:
    """Apply an instance's overrides (at most one per kind) to its template."""
    ov = overrides_map(overrides)
    K = OverrideKind
    ports, p_ports = _merge_keyed(K.PORTS, template.ports, ov.get(K.PORTS), lambda e: e.key)
    volumes, p_vol = _merge_keyed(K.VOLUMES, template.volumes, ov.get(K.VOLUMES), lambda e: e.key)
    env, p_env = _merge_keyed(K.ENV_VARS, template.environment, ov.get(K.ENV_VARS), lambda e: e.key)
    # A key the template marks secret stays secret whatever the override says, so a
    # password set through a plain override is never shown in clear.
    secret_keys = {e.key for e in template.environment if e.secret}
    env = tuple(
        EnvVar(e.key, e.value, secret=True) if e.key in secret_keys and not e.secret else e
        for e in env
    )
    labels, p_lab = _merge_keyed(K.LABELS, template.labels, ov.get(K.LABELS), lambda e: e.key)
    domains, p_dom = _merge_keyed(K.DOMAINS, template.domains, ov.get(K.DOMAINS), lambda e: e)
    configs, p_cfg = _merge_keyed(
        K.CONFIG_FILES, template.config_files, ov.get(K.CONFIG_FILES), lambda e: e.key
    )
    hc, p_hc = _merge_healthcheck(template.healthcheck, ov.get(K.HEALTHCHECK))

    mounted = {v.target for v in volumes}
    for c in configs:
        if c.target in mounted:
            raise ValidationError(
                f"config file {c.target} is also a volume target; a path can hold only one"
            )

    return EffectiveService(
        template=template.name,
        image=template.image,
        engine=template.engine,
        command=template.command,
        ports=ports,
        volumes=volumes,
        environment=env,
        labels=labels,
        domains=domains,
        healthcheck=hc,
        config_files=configs,
        provenance={k: _kind_provenance(ov.get(k)) for k in OverrideKind},
        entry_provenance={
            K.PORTS: p_ports,
            K.VOLUMES: p_vol,
            K.ENV_VARS: p_env,
            K.LABELS: p_lab,
            K.DOMAINS: p_dom,
            K.HEALTHCHECK: p_hc,
            K.CONFIG_FILES: p_cfg,
        },
        override_count=sum(o.entry_count for o in ov.values()),
    )
