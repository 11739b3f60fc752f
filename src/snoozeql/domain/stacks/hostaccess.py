"""What a stack container may reach on the host: bind-mount sources and port addresses.

A container that mounts ``/`` or the Docker socket owns the host, so these rules hold
for every role (admins included; an admin widens them only through the
``allowed_host_paths`` setting):

- a bind source written with ``..`` (path traversal) is refused;
- the Docker socket (any ``*.sock``, ``/run``, ``/var/run``), ``/``, ``/etc``,
  ``/proc``, ``/sys``, ``/root``, ``/dev`` and ``/boot`` are refused, always, including
  through a symbolic link (the caller passes the resolved path too);
- an absolute (or ``~``) source must lie in the stack's own data directory
  (``<data_dir>/stack-data/<stack>``) or under one of ``allowed_host_paths``;
- a relative source (``./init``) is relative to the exported Compose file's folder,
  so it stays inside it (the apply runtime refuses it separately).

Host ports publish on 127.0.0.1 when no address is given (:func:`loopback_default`);
any other address than a loopback one needs the admin role (:func:`needs_admin`).

Pure: paths are compared as text; the service resolves symbolic links beforehand.
"""

from __future__ import annotations

import ipaddress
import posixpath
from collections.abc import Iterable, Sequence
from dataclasses import replace

from snoozeql.domain.errors import PermissionDenied, ValidationError
from snoozeql.domain.stacks.entries import PortMapping, VolumeMount

__all__ = [
    "LOOPBACK",
    "PROTECTED_PATHS",
    "bind_sources",
    "check_bind_source",
    "check_port_addresses",
    "loopback_default",
    "public_ports",
]

LOOPBACK = "127.0.0.1"
PROTECTED_PATHS = (
    "/etc", "/proc", "/sys", "/root", "/dev", "/boot", "/run", "/var/run", "/var/lib/docker",
)


def _under(path: str, base: str) -> bool:
    base = base.rstrip("/") or "/"
    return path == base or path.startswith(base + "/") or base == "/"


def _protected(path: str) -> str | None:
    """Why ``path`` (absolute, normalised) can never be mounted, or None."""
    if path == "/":
        return "the host's root directory"
    if path.endswith(".sock"):
        return "a container engine socket"
    for p in PROTECTED_PATHS:
        if _under(path, p):
            return f"under {p}"
    return None


def check_bind_source(
    source: str,
    *,
    resolved: str | None,
    stack_dir: str,
    allowed: Sequence[str] = (),
) -> None:
    """Refuse a bind-mount source the rules above do not allow (ValidationError).

    ``resolved`` is the absolute path with ``~`` expanded and symbolic links followed
    (None for a relative source); ``stack_dir`` and ``allowed`` are resolved too.
    """
    parts = source.replace("\\", "/").split("/")
    if ".." in parts:
        where = f" inside the stack's data directory {stack_dir}" if stack_dir else ""
        raise ValidationError(
            f"bind mount source {source!r} uses '..' (path traversal); write the path "
            f"without '..'{where}"
        )
    if resolved is None:
        return  # ./relative: inside the exported Compose file's folder
    for path in {posixpath.normpath(source) if source.startswith("/") else resolved, resolved}:
        why = _protected(path)
        if why is not None:
            raise ValidationError(
                f"bind mount source {source!r} is {why}: the Docker socket, /, /etc, /proc, "
                "/sys, /root, /dev, /boot and /run are never mounted into a stack container"
            )
    if _under(resolved, stack_dir) and resolved != "/":
        return
    if any(_under(resolved, a) for a in allowed):
        return
    raise ValidationError(
        f"bind mount source {source!r} is outside the stack's data directory {stack_dir}; "
        "put the files there, or have an admin list the folder in "
        "SNOOZEQL_ALLOWED_HOST_PATHS"
    )


def loopback_default(ports: Iterable[PortMapping]) -> tuple[PortMapping, ...]:
    """The ports with 127.0.0.1 as the host address where none is given."""
    return tuple(p if p.host_ip else replace(p, host_ip=LOOPBACK) for p in ports)


def public_ports(ports: Iterable[PortMapping]) -> list[PortMapping]:
    """Ports published on an address other than a loopback one."""
    out = []
    for p in ports:
        if p.host_ip and not ipaddress.ip_address(p.host_ip).is_loopback:
            out.append(p)
    return out


def check_port_addresses(ports: Iterable[PortMapping], admin: bool) -> None:
    """PermissionDenied when a non-admin publishes a port beyond loopback."""
    public = public_ports(ports)
    if public and not admin:
        shown = ", ".join(p.short() for p in public)
        raise PermissionDenied(
            f"publishing {shown} on an address other than 127.0.0.1 needs the admin role; "
            "leave the address out (ports publish on 127.0.0.1) or ask an admin"
        )


def bind_sources(volumes: Iterable[VolumeMount]) -> list[str]:
    """The sources of the bind mounts."""
    return [v.source for v in volumes if v.type == "bind" and v.source]
