"""The one interface every provider implements.

A provider translates an outside system (AWS, GCP, native processes, Docker) into
domain types. Nothing above this layer sees a boto3 dict or a container object.
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
from typing import Any, Protocol

from snoozeql.domain.endpoints import check_endpoint
from snoozeql.domain.errors import ProviderError, ValidationError
from snoozeql.domain.metrics import HourlyAggregate, Sample
from snoozeql.domain.types import Account, ActionOutcome, DiscoveredInstance, Instance, InstanceKind


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


class Provider(Protocol):
    """Discovery and lifecycle for one kind of outside system."""

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


Sink = Callable[[dict[Hashable, list[HourlyAggregate]]], None]
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
    out = []
    for (metric, hour), v in sorted(values.items()):
        avg = v.get("avg", v.get("max"))
        peak = v.get("max", avg)
        if avg is None or peak is None:
            continue
        peak = max(peak, avg)
        out.append(HourlyAggregate(metric, hour, avg, min(avg, peak), peak, 60))
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
