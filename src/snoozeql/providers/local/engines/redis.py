"""Redis: a config file holding the password (``requirepass``, file mode 0600), on
Docker ``--requirepass`` on the command line; readiness is ``AUTH`` then ``PING`` and
the connection count ``INFO clients``, in a few lines of RESP over a socket (no client
library)."""

from __future__ import annotations

import shutil
import socket
from pathlib import Path

from snoozeql.domain.engines import Engine
from snoozeql.providers.local.base import (
    EngineDefaults,
    InstanceLayout,
    NativeSetup,
    ProbeResult,
    ServerBinaries,
)
from snoozeql.providers.local.ports import HOST
from snoozeql.providers.local.process import version_of


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def redis_conf(layout: InstanceLayout, port: int, password: str, durable: bool) -> str:
    """The instance's ``redis.conf``; it holds the password, so it is written 0600."""
    lines = [
        f"bind {HOST}",
        f"port {port}",
        "protected-mode yes",
        "daemonize no",
        'logfile ""',
        f"dir {_quote(str(layout.data))}",
        "dbfilename dump.rdb",
        "appendonly no",
        "save 3600 1 300 100 60 10000" if durable else 'save ""',
        f"requirepass {_quote(password)}",
    ]
    return "\n".join(lines) + "\n"


def resp_command(*parts: str) -> bytes:
    """One command in RESP, Redis' wire format."""
    out = [f"*{len(parts)}\r\n".encode()]
    for part in parts:
        data = part.encode("utf-8")
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


def read_line(sock: socket.socket, buf: bytearray) -> str:
    """The next CRLF-terminated reply line; ``buf`` keeps what was read beyond it."""
    while b"\r\n" not in buf:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionResetError("the server closed the connection")
        buf.extend(chunk)
    line, _, rest = bytes(buf).partition(b"\r\n")
    buf[:] = rest
    return line.decode("utf-8", "replace")


class Redis(EngineDefaults):
    engine = Engine.REDIS
    looked_for = "looked for redis-server"

    def installed(self) -> list[ServerBinaries]:
        path = shutil.which("redis-server") or (
            "/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists() else None
        )
        if path is None:
            return []
        version = version_of([path, "--version"], r"v=(\d+\.\d+\.\d+)")
        return [ServerBinaries(version, Path(path), {})]

    def initialise(self, setup: NativeSetup) -> None:
        setup.write_private(
            setup.layout.config / "redis.conf",
            redis_conf(setup.layout, setup.port, setup.password, setup.durable),
        )

    def argv(self, layout: InstanceLayout, bins: ServerBinaries, port: int) -> list[str]:
        return [str(bins.server), str(layout.config / "redis.conf")]

    def docker_command(self, port: int, password: str) -> list[str]:
        # The official image reads no password variable: it goes on the command line.
        return ["--port", str(port), "--bind", HOST, "--requirepass", password]

    def probe(self, host: str, port: int, user: str, password: str, timeout: float
              ) -> ProbeResult:
        """AUTH then PING: a simple-string reply starts with ``+``, an error ``-``."""
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            buf = bytearray()
            try:
                sock.sendall(resp_command("AUTH", password))
                auth = read_line(sock, buf)
                if not auth.startswith("+"):
                    return ProbeResult(False, True, f"AUTH refused: {auth.lstrip('-')}")
                sock.sendall(resp_command("PING"))
                pong = read_line(sock, buf)
            except (TimeoutError, ConnectionResetError) as exc:
                return ProbeResult(False, True, f"no answer: {exc}")
        if pong != "+PONG":
            return ProbeResult(False, True, f"PING answered {pong.lstrip('-+')!r}")
        return ProbeResult(True, True, "PING answered PONG")

    def connections(self, host: str, port: int, user: str, password: str, timeout: float
                    ) -> float:
        """``connected_clients`` of ``INFO clients``, minus the asking connection."""
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            buf = bytearray()
            if password:
                sock.sendall(resp_command("AUTH", password))
                reply = read_line(sock, buf)
                if not reply.startswith("+"):
                    raise PermissionError("Redis refused the password")
            sock.sendall(resp_command("INFO", "clients"))
            head = read_line(sock, buf)
            if not head.startswith("$"):
                raise ConnectionError(f"INFO answered {head[:80]!r}")
            size = int(head[1:])
            while len(buf) < size:
                chunk = sock.recv(4096)
                if not chunk:
                    raise ConnectionResetError("the server closed the connection")
                buf.extend(chunk)
        for line in bytes(buf[:size]).decode("utf-8", "replace").splitlines():
            if line.startswith("connected_clients:"):
                return max(0.0, float(line.split(":", 1)[1]) - 1)
        raise ConnectionError("INFO clients has no connected_clients")


ENGINE = Redis()
