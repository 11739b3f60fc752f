"""Readiness: does the engine answer its own protocol, with the password?

A listening port or a "ready" log line proves little (PostgreSQL listens before it
accepts queries; the MySQL image restarts its server once during initialisation), so a
database counts as ready only when a real client logs in with the password and gets an
answer. How each engine is asked is its module's ``probe`` (``engines/``); this module
turns a failed connection into a result, keeps the password out of every result (even
when a driver echoes its input), and waits.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from snoozeql.providers.local import engines
from snoozeql.providers.local.base import ProbeResult
from snoozeql.providers.local.ports import HOST


def probe(
    engine: str,
    port: int,
    password: str,
    *,
    host: str = HOST,
    user: str | None = None,
    timeout: float = 3.0,
) -> ProbeResult:
    """One probe attempt for ``engine`` (a catalogue engine name)."""
    module = engines.get(engine)
    user = user or module.info.default_user
    try:
        result = module.probe(host, port, user, password, timeout)
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
    host: str = HOST,
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


__all__ = ["ProbeResult", "probe", "wait_ready"]
