"""Loopback ports: is one taken, is one answering, and a free one for a new database."""

from __future__ import annotations

import socket

from snoozeql.domain.errors import ProviderError

HOST = "127.0.0.1"


def port_open(port: int, host: str = HOST, timeout: float = 0.5) -> bool:
    """True when something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def port_in_use(port: int, host: str = HOST) -> bool:
    """True when a server already holds host:port (or 0.0.0.0:port)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return port_open(port, host, timeout=0.2)


def port_taken(port: int, protocol: str = "tcp") -> bool:
    """True when something on this host holds the port (on any address)."""
    kind = socket.SOCK_DGRAM if protocol == "udp" else socket.SOCK_STREAM
    with socket.socket(socket.AF_INET, kind) as sock:
        if kind == socket.SOCK_STREAM:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("0.0.0.0", port))
        except OSError:
            return True
    return protocol == "tcp" and port_open(port, HOST, timeout=0.2)


def free_port(exclude: set[int] | frozenset[int] = frozenset()) -> int:
    """A loopback port nobody listens on now, outside ``exclude`` (ports of instances)."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((HOST, 0))
            port = int(sock.getsockname()[1])
        if port >= 1024 and port not in exclude:
            return port
    raise ProviderError("no free loopback port found")


__all__ = ["HOST", "free_port", "port_in_use", "port_open", "port_taken"]
