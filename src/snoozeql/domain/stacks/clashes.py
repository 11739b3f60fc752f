"""Host-port clashes between the enabled instances of one stack.

Two published ports clash when the host would have to bind the same port twice: same
host port and protocol, on the same host IP or where either side listens on every
address (no IP, ``0.0.0.0`` or ``::``). Ports without a host port (Docker picks one)
never clash. The check is a pure function of the instances' effective ports, so the
stacks service can run it before saving a change and answer 409 with the list.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from snoozeql.domain.errors import ConflictError
from snoozeql.domain.stacks.entries import PortMapping

__all__ = ["PortClash", "find_port_clashes", "raise_on_clashes"]

_WILDCARDS = frozenset({"", "0.0.0.0", "::"})


@dataclass(frozen=True)
class PortClash:
    """Two instances (or one instance twice) publishing the same host port."""

    host_port: int
    protocol: str
    first: tuple[str, PortMapping]
    second: tuple[str, PortMapping]

    def message(self) -> str:
        (a, pa), (b, pb) = self.first, self.second
        return (
            f"host port {self.host_port}/{self.protocol} is published by {a} ({pa.short()}) "
            f"and {b} ({pb.short()})"
        )


def _overlap(a: str, b: str) -> bool:
    return a == b or a in _WILDCARDS or b in _WILDCARDS


def find_port_clashes(
    instances: Iterable[tuple[str, Sequence[PortMapping]]],
) -> list[PortClash]:
    """Every pair of published ports that clash, in instance order.

    ``instances`` are (instance name, effective ports) of the stack's *enabled*
    instances; the caller leaves disabled ones out, since they do not run.
    """
    seen: list[tuple[str, PortMapping]] = []
    clashes: list[PortClash] = []
    for name, ports in instances:
        for port in ports:
            if port.host_port is None:
                continue
            for other_name, other in seen:
                if (
                    other.host_port == port.host_port
                    and other.protocol == port.protocol
                    and _overlap(other.host_ip, port.host_ip)
                ):
                    clashes.append(
                        PortClash(port.host_port, port.protocol, (other_name, other), (name, port))
                    )
            seen.append((name, port))
    return clashes


def raise_on_clashes(instances: Iterable[tuple[str, Sequence[PortMapping]]]) -> None:
    """Raise :class:`ConflictError` (409) naming every clash, if there is any."""
    clashes = find_port_clashes(instances)
    if clashes:
        details = "; ".join(c.message() for c in clashes)
        raise ConflictError(
            f"{details}. Give one of them another host port (a ports override in "
            "replace mode) or disable one of the instances"
        )
