"""Which plugin implements which provider, and the objects built from them.

``PLUGINS`` maps each provider name to its :class:`~snoozeql.providers.base.ProviderPlugin`
(or where to import it): adding a provider is its package plus one line here (and its
name in :class:`~snoozeql.domain.types.ProviderKind`). Services ask this module about
a provider (its account settings, whether it is a cloud, how it is measured), never
``if provider == ...``.

Everything is imported lazily: a plugin names its capabilities by import path, so a
user who never adds a GCP account never pays for importing Google's client library.
"""

from __future__ import annotations

import importlib
from functools import cache
from typing import Any

from snoozeql.config import Settings
from snoozeql.domain.errors import ValidationError
from snoozeql.domain.types import ProviderKind
from snoozeql.observability import Telemetry
from snoozeql.providers.base import (
    AccountConfigSchema,
    HostMetricsCollector,
    Measured,
    MetricsCollector,
    PriceSource,
    Provider,
    ProviderPlugin,
)

PLUGINS: dict[str, str | ProviderPlugin] = {
    "aws": "snoozeql.providers.aws:PLUGIN",
    "gcp": "snoozeql.providers.gcp:PLUGIN",
    "demo-aws": "snoozeql.providers.demo:AWS_PLUGIN",
    "demo-gcp": "snoozeql.providers.demo:GCP_PLUGIN",
    "local": "snoozeql.providers.local:LOCAL_PLUGIN",
    "docker": "snoozeql.providers.local:DOCKER_PLUGIN",
}
"""Provider name -> its plugin, or ``"module:attribute"`` where it is declared."""


def load(target: str) -> Any:
    """The attribute named by ``"package.module:attribute"`` (imported now)."""
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def names() -> tuple[str, ...]:
    """Every registered provider's name."""
    return tuple(PLUGINS)


@cache
def _plugin(name: str) -> ProviderPlugin:
    entry = PLUGINS[name]
    found = load(entry) if isinstance(entry, str) else entry
    if not isinstance(found, ProviderPlugin) or found.name != name:
        raise TypeError(f"{entry!r} is not the ProviderPlugin of {name!r}")
    return found


def plugin(name: ProviderKind | str) -> ProviderPlugin:
    """The plugin of ``name``, or a ValidationError that says which providers exist."""
    key = str(name.value if isinstance(name, ProviderKind) else name)
    if key not in PLUGINS:
        if key in {k.value for k in ProviderKind}:
            raise ValidationError(
                f"provider {key!r} has no plugin: its databases are not discovered, "
                "measured or controlled by SnoozeQL")
        raise ValidationError(f"unknown provider {key!r}; use one of: {', '.join(PLUGINS)}")
    return _plugin(key)


def find(name: ProviderKind | str) -> ProviderPlugin | None:
    """The plugin of ``name``, or None when it has none (``external``, a typo)."""
    key = str(name.value if isinstance(name, ProviderKind) else name)
    return _plugin(key) if key in PLUGINS else None


def plugins() -> list[ProviderPlugin]:
    """Every plugin, in registration order."""
    return [_plugin(n) for n in PLUGINS]


def cloud_names() -> list[str]:
    """The real clouds users add accounts of (``aws``, ``gcp``)."""
    return [p.name for p in plugins() if p.cloud]


def config_schema(name: ProviderKind | str) -> AccountConfigSchema | None:
    """How the provider's account settings are checked; None: it has no accounts (or
    no plugin)."""
    found = find(name)
    if found is None or found.config is None:
        return None
    return load(found.config)  # type: ignore[no-any-return]


@cache
def secret_config_keys() -> tuple[str, ...]:
    """The account settings kept encrypted, of every provider (``ConfigField.secret``)."""
    keys: dict[str, None] = {}
    for p in plugins():
        schema = config_schema(p.name)
        keys.update((f.name, None) for f in (schema.fields if schema else ()) if f.secret)
    return tuple(keys)


def measured_on_host(name: ProviderKind | str) -> bool:
    """Whether the provider's databases are measured on this host (not per account)."""
    found = find(name)
    return found is not None and found.metrics is not None and (
        found.measured is Measured.ON_HOST)


def _build(target: str, settings: Settings, telemetry: Telemetry | None = None) -> Any:
    built = load(target)(settings)
    if telemetry is not None and hasattr(built, "telemetry"):
        built.telemetry = telemetry  # a provider that counts its API calls
    return built


class ProviderRegistry:
    """Builds each provider's driver once, on first use. Tests may inject their own."""

    def __init__(self, settings: Settings, overrides: dict[ProviderKind, Any] | None = None):
        self._settings = settings
        self._built: dict[ProviderKind, Provider] = dict(overrides or {})
        self._host_collectors: dict[str, HostMetricsCollector] = {}
        # Where providers count their API calls (the Context sets its own).
        self.telemetry: Telemetry | None = None

    def get(self, kind: ProviderKind | str) -> Provider:
        """The provider's driver (built once)."""
        kind = ProviderKind(kind)
        if kind not in self._built:
            self._built[kind] = _build(plugin(kind).driver, self._settings, self.telemetry)
        return self._built[kind]

    def metrics_collector(self, kind: ProviderKind | str) -> MetricsCollector:
        """A new metrics collector of a provider measured per account (a
        :class:`~snoozeql.providers.base.MetricHistory` too when the plugin says
        ``metric_history``)."""
        found = plugin(kind)
        if found.metrics is None or found.measured is not Measured.PER_ACCOUNT:
            raise ValidationError(f"no cloud metrics collector for {found.name}")
        return _build(found.metrics, self._settings, self.telemetry)  # type: ignore[no-any-return]

    def host_collector(self, kind: ProviderKind | str) -> HostMetricsCollector:
        """The collector of a provider measured on this host, built once and shared by
        the providers that name the same one (it keeps readings between cycles)."""
        found = plugin(kind)
        if found.metrics is None or found.measured is not Measured.ON_HOST:
            raise ValidationError(f"{found.name} is not measured on this host")
        if found.metrics not in self._host_collectors:
            self._host_collectors[found.metrics] = load(found.metrics)()
        return self._host_collectors[found.metrics]

    def price_source(self, kind: ProviderKind | str) -> PriceSource | None:
        """The provider's price list, or None (it has none, or the settings turn it
        off). A new one each call: the caller keeps it as long as it needs."""
        found = find(kind)
        if found is None or found.pricing is None:
            return None
        return load(found.pricing)(self._settings)  # type: ignore[no-any-return]
