"""Overrides: what one instance changes about its template, kept per kind.

There are exactly seven kinds. Each override holds the entries of one kind and a
``mode``: ``merge`` (the default) combines them with the template's entries following
the Compose merge rules; ``replace`` drops the template's entries of that kind and uses
the override's alone. An override is stored as its own row (``store/stacks.py``), never
as a modified copy of the template, so a template change still reaches every instance
that did not override that part.

JSON form, the same for every kind::

    {"kind": "env_vars", "mode": "merge", "entries": [...]}

where ``entries`` is a list of entry dicts (ports, volumes, env vars, labels, config
files), a list of host names (domains) or a dict of healthcheck fields (healthcheck).
Lenient input is accepted too: env vars and labels as a ``{key: value}`` mapping,
ports and volumes in Compose short syntax.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from snoozeql.domain.errors import ValidationError
from snoozeql.domain.stacks.entries import (
    ConfigFile,
    Healthcheck,
    PortMapping,
    VolumeMount,
    unique_domains,
    unique_entries,
)
from snoozeql.domain.stacks.templates import parse_env, parse_labels

__all__ = ["MergeMode", "Override", "OverrideKind", "Overrides", "parse_override", "overrides_map"]


class OverrideKind(StrEnum):
    PORTS = "ports"
    VOLUMES = "volumes"
    ENV_VARS = "env_vars"
    LABELS = "labels"
    DOMAINS = "domains"
    HEALTHCHECK = "healthcheck"
    CONFIG_FILES = "config_files"

    @classmethod
    def parse(cls, value: Any) -> OverrideKind:
        text = str(value).strip().lower().replace("-", "_")
        aliases = {"env": "env_vars", "environment": "env_vars", "configs": "config_files"}
        text = aliases.get(text, text)
        try:
            return cls(text)
        except ValueError:
            kinds = ", ".join(k.value for k in cls)
            raise ValidationError(f"unknown override kind {value!r}; kinds: {kinds}") from None


class MergeMode(StrEnum):
    MERGE = "merge"
    REPLACE = "replace"


Entries = tuple[Any, ...] | Healthcheck


@dataclass(frozen=True)
class Override:
    """The override of one kind for one instance.

    ``entries`` is a tuple of entry objects (:class:`PortMapping`, :class:`VolumeMount`,
    :class:`EnvVar`, :class:`Label`, :class:`ConfigFile`, or host name strings for
    domains) or, for the healthcheck kind, one :class:`Healthcheck` patch.
    """

    kind: OverrideKind
    entries: Entries
    mode: MergeMode = MergeMode.MERGE

    @property
    def entry_count(self) -> int:
        """How many entries this override sets; an empty ``replace`` still counts as one.

        The sum over an instance's overrides is its ``override_count``; it needs no
        template, so a list of instances can show it without merging anything.
        """
        if isinstance(self.entries, Healthcheck):
            n = len(self.entries.fields_set())
        else:
            n = len(self.entries)
        return max(n, 1) if self.mode is MergeMode.REPLACE else n


def _list(value: Any, kind: OverrideKind) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list | tuple):
        raise ValidationError(f"{kind.value} override entries must be a list")
    return list(value)


def parse_override(kind: Any, data: Mapping[str, Any] | None) -> Override:
    """Validate one kind's override from its JSON form (``{"mode", "entries"}``)."""
    k = OverrideKind.parse(kind)
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ValidationError(f"{k.value} override must be a mapping with 'mode' and 'entries'")
    extra = sorted(set(data) - {"kind", "mode", "entries"})
    if extra:
        raise ValidationError(
            f"{k.value} override: unknown field(s) {', '.join(extra)}; allowed: kind, mode, entries"
        )
    if data.get("kind") is not None and OverrideKind.parse(data["kind"]) is not k:
        raise ValidationError(f"override kind {data['kind']!r} does not match {k.value!r}")
    mode_raw = data.get("mode") or "merge"
    try:
        mode = MergeMode(str(mode_raw).lower())
    except ValueError:
        raise ValidationError(
            f"{k.value} override mode must be 'merge' or 'replace', got {mode_raw!r}"
        ) from None
    raw = data.get("entries")
    try:
        entries = _parse_entries(k, raw)
    except ValidationError as exc:
        raise ValidationError(f"{k.value} override: {exc.message}") from None
    return Override(kind=k, entries=entries, mode=mode)


def _parse_entries(k: OverrideKind, raw: Any) -> Entries:
    if k is OverrideKind.PORTS:
        return unique_entries([PortMapping.parse(p) for p in _list(raw, k)], "port")
    if k is OverrideKind.VOLUMES:
        return unique_entries([VolumeMount.parse(v) for v in _list(raw, k)], "volume target")
    if k is OverrideKind.ENV_VARS:
        return unique_entries(parse_env(raw), "environment variable")
    if k is OverrideKind.LABELS:
        return unique_entries(parse_labels(raw), "label")
    if k is OverrideKind.DOMAINS:
        return unique_domains(_list(raw, k))
    if k is OverrideKind.CONFIG_FILES:
        return unique_entries([ConfigFile.parse(c) for c in _list(raw, k)], "config file target")
    return Healthcheck.parse(raw if raw is not None else {})


Overrides = Mapping[OverrideKind, Override]


def overrides_map(overrides: Iterable[Override] | Overrides | None) -> dict[OverrideKind, Override]:
    """Index overrides by kind, refusing two of one kind (each kind is one row)."""
    if overrides is None:
        return {}
    items = overrides.values() if isinstance(overrides, Mapping) else overrides
    out: dict[OverrideKind, Override] = {}
    for o in items:
        if o.kind in out:
            raise ValidationError(f"two {o.kind.value} overrides given; each kind has one")
        out[o.kind] = o
    return out


def override_count(overrides: Iterable[Override] | Overrides | None) -> int:
    return sum(o.entry_count for o in overrides_map(overrides).values())
