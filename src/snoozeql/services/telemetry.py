"""Serving the process's Prometheus series, with the fleet read from the store.

Counters and histograms are kept by ``snoozeql.observability.Telemetry`` where the
work happens. What describes the fleet (instances by provider and status, what the
running ones cost, what schedules save, how long ago each account last synced) is not
counted anywhere: :class:`FleetCollector` reads it from the store at each scrape,
with ``store.fleet_stats`` (one GROUP BY, no instance loaded), so every replica and
worker reports the same figures, and a restarted process loses none.

Who may scrape: loopback peers, plus the networks in ``SNOOZEQL_METRICS_ALLOW``; the
peer is the TCP peer of the connection, never a forwarded-for header.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterator
from typing import Any

from prometheus_client.core import GaugeMetricFamily

from snoozeql.config import Settings
from snoozeql.services.context import Context
from snoozeql.store import fleet_stats

log = logging.getLogger(__name__)


class FleetCollector:
    """Scrape-time gauges read from the store."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def describe(self) -> list[Any]:
        return []  # nothing to check at registration; names are fixed below

    def collect(self) -> Iterator[GaugeMetricFamily]:
        up = GaugeMetricFamily("snoozeql_store_up", "1 if this scrape could read the store")
        try:
            with self.ctx.engine.connect() as conn:
                stats = fleet_stats.read(conn)
        except Exception:  # noqa: BLE001 - a scrape must still answer the other series
            log.warning("metrics: reading the fleet from the store failed", exc_info=True)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        now = self.ctx.now()
        inst = GaugeMetricFamily(
            "snoozeql_instances", "Instances in the inventory by provider and status "
            "('missing': not seen by the last sync)", labels=["provider", "status"])
        running = GaugeMetricFamily(
            "snoozeql_running_dollars_per_hour", "What the running instances cost per "
            "hour, by provider (priced instances only)", labels=["provider"])
        per_provider: dict[str, float] = {}
        for g in stats.instances:
            inst.add_metric([g.provider, g.status], g.count)
            per_provider[g.provider] = per_provider.get(g.provider, 0.0) + float(
                g.hourly_cost_cents) / 100
        for provider, dollars in sorted(per_provider.items()):
            running.add_metric([provider], dollars)
        yield inst
        yield running
        saved = GaugeMetricFamily(
            "snoozeql_saved_dollars_per_hour", "What the instances schedules keep stopped "
            "right now would cost per hour if running")
        saved.add_metric([], float(stats.saving_cents_per_hour) / 100)
        yield saved
        accounts = GaugeMetricFamily(
            "snoozeql_accounts", "Cloud accounts by provider and connection status",
            labels=["provider", "status"])
        counts: dict[tuple[str, str], int] = {}
        ages = GaugeMetricFamily(
            "snoozeql_account_last_sync_age_seconds", "Seconds since the account's last "
            "successful sync (absent until it has one)", labels=["account", "provider"])
        for a in stats.accounts:
            counts[(a.provider, a.status)] = counts.get((a.provider, a.status), 0) + 1
            if a.last_sync_at is not None:
                ages.add_metric([a.name, a.provider],
                                max(0.0, (now - a.last_sync_at).total_seconds()))
        for (provider, status), n in sorted(counts.items()):
            accounts.add_metric([provider, status], n)
        yield accounts
        yield ages


def exposition(ctx: Context) -> tuple[bytes, str]:
    """Every series of this process plus the fleet gauges, in the text format."""
    ctx.telemetry.add_collector_once("fleet", lambda: FleetCollector(ctx))
    return ctx.telemetry.exposition()


def scrape_allowed(settings: Settings, peer: str | None) -> bool:
    """Whether a connection from ``peer`` (an IP address) may read ``/metrics``."""
    if not peer:
        return False
    try:
        address = ipaddress.ip_address(peer.split("%", 1)[0])
    except ValueError:
        return False  # not an address (a Unix socket, a test client's name)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address.is_loopback:
        return True
    return any(address in network for network in settings.metrics_networks)
