"""Live samples of running simulated instances, every five minutes of the window,
following each instance's activity pattern (:mod:`.simulation`)."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from snoozeql.config import Settings
from snoozeql.domain.metrics import Sample
from snoozeql.domain.types import Account
from snoozeql.providers.base import CollectResult, MetricTarget
from snoozeql.providers.demo.simulation import busy_level, fleet, metric_values, noise

__all__ = ["DemoMetricsCollector"]

SAMPLE_EVERY_MINUTES = 5


class DemoMetricsCollector:
    """Live samples of running simulated instances, every five minutes of the window."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def collect(self, account: Account, targets: Sequence[MetricTarget], start: datetime,
                end: datetime) -> CollectResult:
        result = CollectResult(api_calls=0)
        sims = {d.provider_id: d.extra.get("demo", {})
                for d in fleet(account.provider, account.config)}
        first = start.replace(second=0, microsecond=0)
        first += timedelta(minutes=-first.minute % SAMPLE_EVERY_MINUTES)
        for t in targets:
            sim = sims.get(t.provider_id)
            if sim is None:
                continue
            key: Hashable = t.key
            ts = first
            while ts < end:
                local = ts.astimezone(ZoneInfo(sim.get("zone", "UTC")))
                vals = metric_values(sim, busy_level(sim, local), noise(t.provider_id, ts))
                for metric, value in vals.items():
                    result.add(key, Sample(metric, ts, value))
                ts += timedelta(minutes=SAMPLE_EVERY_MINUTES)
        return result
