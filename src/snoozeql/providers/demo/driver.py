"""Discovery and lifecycle against the simulation (one class per simulated cloud).

The simulation mimics the clouds' refusals: an Aurora member cannot be stopped on its
own (stop the cluster), a read replica cannot be stopped, a stopped database cannot be
stopped again.
"""

from __future__ import annotations

import time

from snoozeql.config import Settings
from snoozeql.domain.errors import ActionRefused
from snoozeql.domain.types import (
    Account,
    ActionOutcome,
    DiscoveredInstance,
    Instance,
    InstanceKind,
    InstanceStatus,
    ProviderKind,
    already_message,
)
from snoozeql.providers.demo.config import DEFAULT_TRANSITION_SECONDS
from snoozeql.providers.demo.simulation import fleet, raw_status, simulation

__all__ = ["DemoAwsProvider", "DemoGcpProvider"]


class _DemoProvider:
    """Discovery and lifecycle against the simulation (one class per simulated cloud)."""

    kind: str

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.sim = simulation(settings)

    @property
    def _kind(self) -> ProviderKind:
        return ProviderKind(self.kind)

    def discover(self, account: Account) -> list[DiscoveredInstance]:
        now = time.time()
        state = self.sim.statuses()
        out = fleet(self._kind, account.config)
        for d in out:
            entry = state.get(d.provider_id)
            if entry is not None:
                d.status = InstanceStatus(
                    entry["final"] if now >= float(entry.get("until", 0)) else entry["during"]
                )
                d.raw_status = raw_status(self._kind, d.status)
        return out

    def preset(self, statuses: dict[str, InstanceStatus]) -> None:
        """Set statuses without a transition (used when the demo store is seeded)."""
        self.sim.preset(statuses)

    def _seconds(self, account: Account | None) -> float:
        cfg = account.config if account else {}
        return float(cfg.get("transition_seconds", DEFAULT_TRANSITION_SECONDS))

    def _ids(self, instance: Instance) -> list[str]:
        members = instance.extra.get("cluster_members") or []
        if instance.kind is InstanceKind.CLUSTER and members:
            prefix = instance.provider_id.rsplit(":cluster:", 1)[0]
            return [instance.provider_id, *(f"{prefix}:db:{m}" for m in members)]
        return [instance.provider_id]

    def _refuse_part(self, instance: Instance, verb: str) -> None:
        if instance.kind is InstanceKind.INSTANCE and instance.cluster_provider_id:
            cluster = instance.extra.get("cluster_identifier") or instance.cluster_provider_id
            raise ActionRefused(
                f"demo: {instance.name} is a member of Aurora cluster {cluster}; "
                f"{verb} the cluster instead"
            )
        source = instance.extra.get("read_replica_source")
        if source and verb in ("stop", "start"):
            why = "a read replica cannot be stopped" if verb == "stop" else (
                "it runs as long as its source does")
            raise ActionRefused(f"demo: {instance.name} is a read replica of {source}; {why}")

    def _move(self, account: Account | None, instance: Instance, verb: str,
              frm: InstanceStatus, during: InstanceStatus, final: InstanceStatus,
              ending: str) -> ActionOutcome:
        """Start a simulated stop or start (``verb``) from ``frm`` through ``during`` to
        ``final``; an instance already there (or on its way) is answered as such."""
        self._refuse_part(instance, verb)
        seconds = self._seconds(account)
        already = self.sim.transition(
            self._ids(instance), instance.status, allowed={frm}, during=during, final=final,
            seconds=seconds, name=instance.name, verb=verb,
        )
        if already is not None:
            return ActionOutcome(already, raw_status(self._kind, already),
                                 already_message(verb, already), already=True)
        return ActionOutcome(during, raw_status(self._kind, during),
                             f"{during.value} (simulated: {ending} in about {seconds:g} s)")

    def stop(self, account: Account | None, instance: Instance) -> ActionOutcome:
        return self._move(account, instance, "stop", InstanceStatus.RUNNING,
                          InstanceStatus.STOPPING, InstanceStatus.STOPPED, "stopped")

    def start(self, account: Account | None, instance: Instance) -> ActionOutcome:
        return self._move(account, instance, "start", InstanceStatus.STOPPED,
                          InstanceStatus.STARTING, InstanceStatus.RUNNING, "running")

    def status(self, account: Account | None, instance: Instance) -> ActionOutcome:
        """The simulated state now (what a takeover reads to resolve an intent)."""
        current = self.sim.current(instance.provider_id, instance.status)
        return ActionOutcome(current, raw_status(self._kind, current),
                             f"demo: {instance.name} is {current.value}")

    def restart(self, account: Account | None, instance: Instance) -> ActionOutcome:
        self._refuse_part(instance, "restart")
        seconds = self._seconds(account)
        self.sim.transition(
            self._ids(instance), instance.status, allowed={InstanceStatus.RUNNING},
            during=InstanceStatus.STARTING, final=InstanceStatus.RUNNING, seconds=seconds,
            name=instance.name, verb="restart",
        )
        return ActionOutcome(InstanceStatus.STARTING, "rebooting",
                             f"rebooting (simulated: running in about {seconds:g} s)")


class DemoAwsProvider(_DemoProvider):
    """The simulated AWS account (RDS instances, Aurora clusters)."""

    kind = ProviderKind.DEMO_AWS.value


class DemoGcpProvider(_DemoProvider):
    """The simulated GCP account (Cloud SQL instances)."""

    kind = ProviderKind.DEMO_GCP.value


