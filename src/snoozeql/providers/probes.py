"""Readiness probes: does the engine answer its own protocol, with the password?

A listening port or a "ready" log line proves little (PostgreSQL listens before it
accepts queries; the MySQL image restarts its server once during initialisation), so a
database counts as ready only when a real client logs in with the password and gets an
answer: ``SELECT 1`` for PostgreSQL (psycopg) and MySQL/MariaDB (PyMySQL), ``PING``
after ``AUTH`` for Redis (a few lines of RESP over a socket, no client library), and the
``ping`` command for MongoDB (pymongo, optional: imported only when used).

Probe results never contain the password, even when a driver echoes its input.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

from snoozeql.domain.engines import ProbeKind, engine_info
from snoozeql.providers.optional import mongodb_missing_message, pymongo_available

DEFAULT_HOST = "127.0.0.1"


@dataclass(frozen=True)
class ProbeResult:
    """``ok`` when the engine answered with the password; ``detail`` says what happened.

    ``reachable`` is False when nothing accepted the connection (so "not started yet"),
    True when something answered but refused or failed (wrong password, still starting).
    """

    ok: bool
    reachable: bool
    detail: str


def port_open(port: int, host: str = DEFAULT_HOST, timeout: float = 0.5) -> bool:
    """True when something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def probe(
    engine: str,
    port: int,
    password: str,
    *,
    host: str = DEFAULT_HOST,
    user: str | None = None,
    timeout: float = 3.0,
) -> ProbeResult:
    """One probe attempt for ``engine`` (a catalogue engine name)."""
    info = engine_info(engine)
    user = user or info.default_user
    kind = info.probe
    try:
        if kind is ProbeKind.POSTGRES_SELECT_1:
            result = _probe_postgres(host, port, user, password, timeout)
        elif kind is ProbeKind.MYSQL_SELECT_1:
            result = _probe_mysql(host, port, user, password, timeout)
        elif kind is ProbeKind.REDIS_PING:
            result = _probe_redis(host, port, password, timeout)
        else:
            result = _probe_mongodb(host, port, user, password, timeout)
    except ConnectionRefusedError:
        result = ProbeResult(False, False, "connection refused")
    except OSError as exc:
        result = ProbeResult(False, False, f"connection failed: {exc}")
    return _redacted(result, password)


def wait_ready(
    engine: str,
    port: int,
    password: str,
    *,
    timeout: float,
    host: str = DEFAULT_HOST,
    still_alive: Callable[[], bool] | None = None,
    interval: float = 0.25,
) -> ProbeResult:
    """Probe until the engine answers, the deadline passes, or the server dies.

    ``still_alive`` lets the caller stop waiting at once when the process or container
    exits, instead of waiting out the whole timeout.
    """
    deadline = time.monotonic() + timeout
    last = ProbeResult(False, False, "not probed yet")
    while True:
        if still_alive is not None and not still_alive():
            return ProbeResult(False, last.reachable, f"the server exited ({last.detail})")
        remaining = deadline - time.monotonic()
        last = probe(engine, port, password, host=host, timeout=max(0.5, min(3.0, remaining)))
        if last.ok:
            return last
        if time.monotonic() >= deadline:
            return ProbeResult(
                False, last.reachable, f"not ready after {timeout:g}s: {last.detail}"
            )
        time.sleep(interval)


def _redacted(result: ProbeResult, password: str) -> ProbeResult:
    if password and password in result.detail:
        return ProbeResult(result.ok, result.reachable, result.detail.replace(password, "***"))
    return result


def _probe_postgres(host: str, port: int, user: str, password: str, timeout: float) -> ProbeResult:
    import psycopg

    try:
        with psycopg.connect(
            host=host,
            port=port,
            user=user,
            password=password,
            dbname="postgres",
            connect_timeout=max(1, int(timeout)),
            autocommit=True,
        ) as conn:
            row = conn.execute("SELECT 1").fetchone()
    except psycopg.OperationalError as exc:
        text = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        refused = "Connection refused" in str(exc)
        return ProbeResult(False, not refused, text)
    except psycopg.Error as exc:
        return ProbeResult(False, True, f"{type(exc).__name__}: {exc}")
    if row != (1,):
        return ProbeResult(False, True, f"SELECT 1 returned {row!r}")
    return ProbeResult(True, True, "SELECT 1 answered")


def _probe_mysql(host: str, port: int, user: str, password: str, timeout: float) -> ProbeResult:
    import pymysql

    try:
        conn = pymysql.connect(
            host=host,
            port=port,
            user=user,
            password=password,
            connect_timeout=timeout,
            read_timeout=timeout,
            write_timeout=timeout,
        )
    except pymysql.err.OperationalError as exc:
        code = exc.args[0] if exc.args else None
        # 2003: cannot connect at all; anything else came from a server.
        return ProbeResult(False, code != 2003, _mysql_text(exc))
    except pymysql.err.MySQLError as exc:
        return ProbeResult(False, True, _mysql_text(exc))
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 1")
            row = cur.fetchone()
    except pymysql.err.MySQLError as exc:
        return ProbeResult(False, True, _mysql_text(exc))
    finally:
        conn.close()
    if row != (1,):
        return ProbeResult(False, True, f"SELECT 1 returned {row!r}")
    return ProbeResult(True, True, "SELECT 1 answered")


def _mysql_text(exc: Exception) -> str:
    if len(exc.args) >= 2:
        return f"({exc.args[0]}) {exc.args[1]}"
    return str(exc) or type(exc).__name__


def _resp_command(*parts: str) -> bytes:
    out = [f"*{len(parts)}\r\n".encode()]
    for part in parts:
        data = part.encode("utf-8")
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


def _read_line(sock: socket.socket, buf: bytearray) -> str:
    while b"\r\n" not in buf:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionResetError("the server closed the connection")
        buf.extend(chunk)
    line, _, rest = bytes(buf).partition(b"\r\n")
    buf[:] = rest
    return line.decode("utf-8", "replace")


def _probe_redis(host: str, port: int, password: str, timeout: float) -> ProbeResult:
    """AUTH then PING, in RESP: a simple-string reply starts with ``+``, an error ``-``."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        buf = bytearray()
        try:
            sock.sendall(_resp_command("AUTH", password))
            auth = _read_line(sock, buf)
            if not auth.startswith("+"):
                return ProbeResult(False, True, f"AUTH refused: {auth.lstrip('-')}")
            sock.sendall(_resp_command("PING"))
            pong = _read_line(sock, buf)
        except (TimeoutError, ConnectionResetError) as exc:
            return ProbeResult(False, True, f"no answer: {exc}")
    if pong != "+PONG":
        return ProbeResult(False, True, f"PING answered {pong.lstrip('-+')!r}")
    return ProbeResult(True, True, "PING answered PONG")


def _probe_mongodb(host: str, port: int, user: str, password: str, timeout: float) -> ProbeResult:
    if not pymongo_available():
        return ProbeResult(
            False, port_open(port, host), mongodb_missing_message("the MongoDB probe")
        )
    import pymongo
    import pymongo.errors
    client: pymongo.MongoClient = pymongo.MongoClient(
        host=host,
        port=port,
        username=user,
        password=password,
        authSource="admin",
        serverSelectionTimeoutMS=int(timeout * 1000),
        connectTimeoutMS=int(timeout * 1000),
        directConnection=True,
    )
    try:
        client.admin.command("ping")
        # ping needs no authentication: an authenticated command proves the password.
        client.admin.command("listDatabases", nameOnly=True)
    except pymongo.errors.OperationFailure as exc:
        return ProbeResult(False, True, f"refused: {exc.details.get('errmsg', exc)}")
    except pymongo.errors.PyMongoError as exc:
        return ProbeResult(False, False, f"no answer: {type(exc).__name__}")
    finally:
        client.close()
    return ProbeResult(True, True, "ping answered")
