"""A loopback HTTP proxy in front of moto that can hold back AWS answers.

Failover tests need a replica to die *while* a provider call is in flight: the call
has reached AWS (the database is starting) but its answer has not come back, so the
replica never writes its outcome. :class:`LatencyProxy` forwards every request to its
target at once and records the AWS ``Action`` of each; while :meth:`hold` is in effect
for an action, the answers to it are kept back until :meth:`release` (or a time
limit). A client killed meanwhile never gets its answer, exactly as after a real crash.

With ``latency_seconds`` every request waits that long before it is forwarded (a
far-away AWS region), and the proxy counts the requests in flight at once per region
(read from the request's signature): :meth:`max_in_flight`.

:meth:`throttle` makes the proxy answer the next N calls of an action itself with
AWS's throttling error (HTTP 400, code ``Throttling``), as a busy account does.

Point an account's ``endpoint_url`` (or boto3's) at ``proxy.url``.

``python -m tests.support.latency_proxy TARGET_URL LATENCY_SECONDS`` runs one in a
process of its own (a benchmark's, so that the proxy's threads do not share the
measured process's CPU and GIL, as real AWS latency would not): it prints its URL, then
answers lines on stdin: ``reset`` (:meth:`reset_in_flight`) and ``stats`` (a JSON line:
calls per action, the most in flight per region); it exits at the end of stdin.
"""

from __future__ import annotations

import json
import re
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_REGION = re.compile(r"Credential=[^/]+/\d{8}/([a-z0-9-]+)/")
_THROTTLING = ("<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code>"
               "<Message>Rate exceeded</Message></Error>"
               "<RequestId>00000000-0000-0000-0000-000000000000</RequestId></ErrorResponse>")
_HOP_BY_HOP = {"host", "connection", "keep-alive", "transfer-encoding", "content-length",
               "proxy-connection", "upgrade", "te", "trailer"}


class _Server(ThreadingHTTPServer):
    request_queue_size = 128  # many clients connect at once (the default backlog is 5)


@dataclass(frozen=True)
class Call:
    """A request forwarded to the target: its AWS action and the resource it names."""

    action: str
    identifier: str | None
    at: float  # time.time() when forwarded
    throttled: bool = False  # answered by the proxy with a throttling error


class LatencyProxy:
    def __init__(self, target_url: str, *, max_hold_seconds: float = 60.0,
                 latency_seconds: float = 0.0) -> None:
        self.target = target_url.rstrip("/")
        self.latency = latency_seconds
        self._in_flight: dict[str, int] = {}
        self._max_in_flight: dict[str, int] = {}
        self.calls: list[Call] = []
        self.max_hold = max_hold_seconds
        self._held_actions: set[str] = set()
        self._throttled: dict[str, int] = {}
        self._released = threading.Event()
        self._lock = threading.Lock()
        self._seen = threading.Condition(self._lock)
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _forward(self) -> None:
                auth = self.headers.get("Authorization") or ""
                scope = _REGION.search(auth)
                region = scope.group(1) if scope else ""
                with proxy._lock:
                    now = proxy._in_flight.get(region, 0) + 1
                    proxy._in_flight[region] = now
                    proxy._max_in_flight[region] = max(now, proxy._max_in_flight.get(region, 0))
                try:
                    if proxy.latency:
                        time.sleep(proxy.latency)
                    self._forward_now()
                finally:
                    with proxy._lock:
                        proxy._in_flight[region] -= 1

            def _forward_now(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                form = urllib.parse.parse_qs(body.decode("latin-1")) if body else {}
                query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
                action = (form.get("Action") or query.get("Action") or [""])[0]
                ident = (form.get("DBInstanceIdentifier") or form.get("DBClusterIdentifier")
                         or [None])[0]
                with proxy._lock:
                    left = proxy._throttled.get(action, 0)
                    if left:
                        proxy._throttled[action] = left - 1
                        proxy.calls.append(Call(action, ident, time.time(), throttled=True))
                        proxy._seen.notify_all()
                if left:
                    answer = _THROTTLING.encode()
                    self.send_response(400)
                    self.send_header("Content-Type", "text/xml")
                    self.send_header("Content-Length", str(len(answer)))
                    self.end_headers()
                    self.wfile.write(answer)
                    return
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() not in _HOP_BY_HOP}
                req = urllib.request.Request(proxy.target + self.path, data=body or None,
                                             headers=headers, method=self.command)
                try:
                    with urllib.request.urlopen(req, timeout=60) as resp:
                        status, answer = resp.status, resp.read()
                        resp_headers = list(resp.headers.items())
                except urllib.error.HTTPError as exc:
                    status, answer = exc.code, exc.read()
                    resp_headers = list(exc.headers.items())
                with proxy._lock:
                    if action:
                        proxy.calls.append(Call(action, ident, time.time()))
                        proxy._seen.notify_all()
                    held = action in proxy._held_actions
                if held:
                    proxy._released.wait(proxy.max_hold)
                try:
                    self.send_response(status)
                    for k, v in resp_headers:
                        if k.lower() not in _HOP_BY_HOP:
                            self.send_header(k, v)
                    self.send_header("Content-Length", str(len(answer)))
                    self.end_headers()
                    self.wfile.write(answer)
                except OSError:
                    pass  # the client died while its answer was held

            do_GET = do_POST = do_PUT = do_DELETE = _forward  # noqa: N815

            def log_message(self, *args: Any) -> None:
                pass

        self._server = _Server(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def max_in_flight(self, region: str) -> int:
        """The most requests signed for ``region`` that were in flight at once."""
        with self._lock:
            return self._max_in_flight.get(region, 0)

    def reset_in_flight(self) -> None:
        """Forget the maxima counted so far (say, those of a sync before the test)."""
        with self._lock:
            self._max_in_flight = dict(self._in_flight)

    def hold(self, *actions: str) -> None:
        """Keep back the answers to these AWS actions until :meth:`release`."""
        with self._lock:
            self._held_actions = set(actions)
            self._released.clear()

    def throttle(self, action: str, times: int) -> None:
        """Answer the next ``times`` calls of ``action`` with a throttling error."""
        with self._lock:
            self._throttled[action] = times

    def release(self) -> None:
        """Answer everything held, and hold nothing from now on."""
        with self._lock:
            self._held_actions = set()
        self._released.set()

    def calls_of(self, action: str) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if c.action == action]

    def wait_for(self, action: str, count: int, timeout: float) -> list[Call]:
        """Block until ``count`` calls of ``action`` were forwarded (or the timeout)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                got = [c for c in self.calls if c.action == action]
                left = deadline - time.monotonic()
                if len(got) >= count or left <= 0:
                    return got
                self._seen.wait(left)

    def close(self) -> None:
        self.release()
        self._server.shutdown()
        self._server.server_close()


def main(argv: list[str]) -> None:
    proxy = LatencyProxy(argv[0], latency_seconds=float(argv[1]))
    print(proxy.url, flush=True)
    for line in sys.stdin:
        if line.strip() == "reset":
            proxy.reset_in_flight()
            print("ok", flush=True)
        elif line.strip() == "stats":
            with proxy._lock:
                calls: dict[str, int] = {}
                for c in proxy.calls:
                    calls[c.action] = calls.get(c.action, 0) + 1
                print(json.dumps({"calls": calls, "max_in_flight": proxy._max_in_flight}),
                      flush=True)
    proxy.close()


if __name__ == "__main__":
    main(sys.argv[1:])
