"""What a provider is: its capabilities as Protocols, and the plugin that names them.

A provider translates an outside system (AWS, GCP, native processes, Docker) into
domain types. Nothing above this layer sees a boto3 dict or a container object. Each
provider is one package (``providers/aws/``, ``providers/gcp/``, ...) whose
``__init__`` declares a :class:`ProviderPlugin`: where its driver (:class:`Provider`),
metrics collector (:class:`MetricsCollector`, :class:`MetricHistory`), prices
(:class:`PriceSource`) and account settings (:class:`AccountConfigSchema`) live, as
import paths, and the flags services used to derive from the provider's name.
:mod:`snoozeql.providers.registry` maps each provider name to its plugin; services ask
it, never ``if provider == ...``.

Providers raise only :mod:`snoozeql.domain.errors` types:

* :class:`~snoozeql.domain.errors.ProviderError` when the outside system fails or
  cannot be reached (bad credentials, connection refused, retries exhausted);
* :class:`~snoozeql.domain.errors.ActionRefused` when the system (or a rule the
  provider knows, such as "stop the Aurora cluster, not its member") will not do it.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

from snoozeql.domain.endpoints import check_endpoint
from snoozeql.domain.errors import ProviderError, ValidationError
from snoozeql.domain.types import Account, ActionOutcome, DiscoveredInstance, Instance, InstanceKind

# domain.metrics imports numpy: only a collector at work needs it, not every CLI command
# that consults the registry.
if TYPE_CHECKING:
    from snoozeql.config import Settings
    from snoozeql.domain.metrics import HourlyAggregate, Sample


def allowed_endpoint(url: str | None, settings: Any, what: str) -> str | None:
    """``url`` when the operator allowed it (``allowed_endpoints``), else ProviderError.

    Checked before any request is made, so a stored account whose endpoint is no longer
    allowed never receives a signed request.
    """
    if not url:
        return None
    try:
        return check_endpoint(url, getattr(settings, "allowed_endpoints", None) or [], what)
    except ValidationError as exc:
        raise ProviderError(exc.message) from None


def reject_unknown(raw: dict[str, Any], allowed: set[str], shown: set[str] | None = None
                   ) -> None:
    """A ValidationError naming the settings of ``raw`` not in ``allowed`` (and listing
    ``shown``, by default ``allowed``, as what may be given)."""
    unknown = set(raw) - allowed
    if unknown:
        raise ValidationError(
            f"unknown setting(s) {', '.join(sorted(unknown))}; "
            f"allowed: {', '.join(sorted(allowed if shown is None else shown))}"
        )


class Provider(Protocol):
    """The driver: discovery and lifecycle for one kind of outside system."""

    kind: str

    def discover(self, account: Account) -> list[DiscoveredInstance]:
        """Every database the account holds, complete, or raise ProviderError.

        Must not return a partial list: a sync that cannot see everything fails, so
        that no stored instance is wrongly marked missing.
        """
        ...

    def start(self, account: Account | None, instance: Instance) -> ActionOutcome: ...

    def stop(self, account: Account | None, instance: Instance) -> ActionOutcome: ...

    def restart(self, account: Account | None, instance: Instance) -> ActionOutcome: ...

    def status(self, account: Account | None, instance: Instance) -> ActionOutcome:
        """The instance's state now, read from the outside system (no change made)."""
        ...


class WebhookSender(Protocol):
    """Delivers one JSON body to one webhook URL (:mod:`snoozeql.providers.webhook`)."""

    def post(self, url: str, body: dict[str, Any], timeout: float) -> str | None:
        """None when the receiver took it (a 2xx answer); otherwise what went wrong,
        without the URL (``HTTP 500``, ``ConnectTimeout``). Never raises for the
        receiver."""
        ...


# Shared metric types: what every metrics collector takes and returns.

@dataclass(frozen=True)
class MetricTarget:
    """One database to measure: ``key`` is the caller's (the instance id)."""

    key: Hashable
    provider_id: str
    kind: InstanceKind
    engine: str
    region: str | None = None
    name: str | None = None


@dataclass
class CollectResult:
    """What one collection of one account brought back."""

    samples: dict[Hashable, list[Sample]] = field(default_factory=dict)
    api_calls: int = 0
    errors: list[str] = field(default_factory=list)

    def add(self, key: Hashable, sample: Sample) -> None:
        self.samples.setdefault(key, []).append(sample)

    @property
    def sample_count(self) -> int:
        return sum(len(v) for v in self.samples.values())


Sink = Callable[[dict[Hashable, list["HourlyAggregate"]]], None]
"""Takes the hours of a batch of targets as soon as their calls are done."""


@dataclass
class HistoryResult:
    """What one history read of one account brought back.

    With a ``sink``, each batch of whole hours goes there as soon as it is read (the
    service writes it, so a thousand instances' history is never all in memory);
    without one, the hours are kept in ``hours``."""

    sink: Sink | None = None
    hours: dict[Hashable, list[HourlyAggregate]] = field(default_factory=dict)
    hour_count: int = 0
    api_calls: int = 0
    errors: list[str] = field(default_factory=list)

    def deliver(self, values: dict[Hashable, dict[tuple[str, datetime], dict[str, float]]]
                ) -> None:
        batch = {k: a for k, v in values.items() if (a := hour_aggregates(v))}
        self.hour_count += sum(len(v) for v in batch.values())
        if self.sink is not None:
            if batch:
                self.sink(batch)
        else:
            for k, v in batch.items():
                self.hours.setdefault(k, []).extend(v)


Progress = Callable[[str], None]
"""Called with one line per region (project) as it is read."""


def hour_aggregates(
    values: dict[tuple[str, datetime], dict[str, float]],
) -> list[HourlyAggregate]:
    """(metric, hour) -> {"avg": .., "max": ..} as aggregates. An hour's min is not
    read (one statistic fewer to pay for): it is the lower of its mean and max."""
    from snoozeql.domain import metrics

    out = []
    for (metric, hour), v in sorted(values.items()):
        avg = v.get("avg", v.get("max"))
        peak = v.get("max", avg)
        if avg is None or peak is None:
            continue
        peak = max(peak, avg)
        out.append(metrics.HourlyAggregate(metric, hour, avg, min(avg, peak), peak, 60))
    return out


def read_history_by_group(
    groups: Sequence[tuple[str, list[MetricTarget]]],
    read: Callable[[str, list[MetricTarget]], None],
    result: HistoryResult, progress: Progress | None, calls_named: str,
) -> HistoryResult:
    """Read each group (an AWS region, a GCP project) with ``read``; a group's failure
    lands in ``result.errors`` and the others go on; one progress line per group."""
    for group, targets in groups:
        calls = result.api_calls
        try:
            read(group, targets)
        except ProviderError as exc:
            result.errors.append(exc.message)
            if progress:
                progress(f"{group}: {len(targets)} database(s) - FAILED: {exc.message}")
            continue
        if progress:
            progress(f"{group}: {len(targets)} database(s), "
                     f"{result.api_calls - calls} {calls_named} call(s)")
    return result


class MetricsCollector(Protocol):
    """Samples of an account's databases, read from the provider (one collection cycle).

    Failures of a part (a region, a project) land in the result's ``errors``; the
    other parts' samples are kept."""

    def collect(self, account: Account, targets: Sequence[MetricTarget], start: datetime,
                end: datetime) -> CollectResult: ...


class MetricHistory(Protocol):
    """The hours a provider already keeps (day-one history, ``metrics backfill``)."""

    def history(self, account: Account, targets: Sequence[MetricTarget], start: datetime,
                end: datetime, progress: Progress | None = None, sink: Sink | None = None,
                ) -> HistoryResult: ...


class HostMetricsCollector(Protocol):
    """Samples read from databases running on this host (the engines themselves).

    ``targets`` are the collector's own target type (how to reach each database)."""

    def collect(self, targets: Sequence[Any], now: datetime) -> CollectResult: ...


# Prices.

PriceKey = tuple[str, str, str, str, str]
"""(provider, instance class, engine, region, deployment): what one price depends on;
deployment is ``single-az`` or ``multi-az``."""


class PriceSource(Protocol):
    """A provider's price list: on-demand USD per hour of one database instance."""

    def hourly_usd(self, account: Account, key: PriceKey) -> Decimal | None:
        """The price, or None when the price list has no such product (never a guess).

        Raises a SnoozeError when the price list cannot be asked."""
        ...


# Account settings.

@dataclass(frozen=True)
class ConfigField:
    """One setting of a provider's accounts, as the CLI and the dashboard describe it."""

    name: str
    help: str
    required: bool = False
    many: bool = False
    """A list (given comma-separated)."""
    secret: bool = False
    """Kept encrypted, never in the account's row, shown as ``set``."""
    label: str = ""
    """The dashboard form's label (default: the name in words)."""
    placeholder: str = ""
    """An example the dashboard form shows in the empty field."""

    @property
    def title(self) -> str:
        return self.label or self.name.replace("_", " ").capitalize()


class AccountConfigSchema(Protocol):
    """The settings of one provider's accounts (``Account.config``)."""

    fields: tuple[ConfigField, ...]
    scope_key: str | None
    """The list setting a sync is split by (AWS regions, GCP projects); None: whole."""

    def normalize(self, raw: dict[str, Any], settings: Settings) -> dict[str, Any]:
        """The settings as stored, or a ValidationError naming what is wrong.

        ``raw`` holds only the settings given (empty values already dropped)."""
        ...

    def scopes(self, account: Account) -> list[str]:
        """The values of ``scope_key`` in the account's settings (SnoozeError if bad)."""
        ...


# The plugin.

class Measured(StrEnum):
    """How a provider's running databases are measured."""

    PER_ACCOUNT = "per-account"
    """By a :class:`MetricsCollector` per account, from the provider's monitoring API."""
    ON_HOST = "on-host"
    """By a :class:`HostMetricsCollector`, from the databases on this host themselves."""


@dataclass(frozen=True)
class ProviderPlugin:
    """One provider: where each capability lives, and what services need to know.

    The capabilities are import paths (``"package.module:attribute"``), imported on
    first use, so describing a provider never imports its client library.
    """

    name: str
    """The provider's name (``ProviderKind`` value, ``Account.provider``)."""
    driver: str
    """A :class:`Provider` class, built with the Settings."""
    config: str | None = None
    """An :class:`AccountConfigSchema` object; None: the provider has no accounts."""
    metrics: str | None = None
    """The collector class: built with the Settings (``PER_ACCOUNT``) or with no
    arguments (``ON_HOST``, shared by the plugins that name the same class)."""
    measured: Measured = Measured.PER_ACCOUNT
    metric_history: bool = False
    """The collector also reads the hours the provider keeps (:class:`MetricHistory`)."""
    pricing: str | None = None
    """A function (Settings) -> :class:`PriceSource` or None (turned off by settings)."""
    cloud: bool = False
    """A real cloud: users add accounts of it (``snoozeql accounts add``)."""
    simulated: bool = False
    """A simulated cloud (``snoozeql demo``): its accounts live only in the demo's store."""
    process_cpu: bool = False
    """Its databases are server processes on this host: their CPU is read by pid."""
    title: str = ""
    """How the dashboard names it (default: the name in capitals)."""

    @property
    def display_name(self) -> str:
        return self.title or self.name.upper()
