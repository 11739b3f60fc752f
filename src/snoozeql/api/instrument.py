"""HTTP series per route template, and the connection's real peer.

:class:`HttpMetrics` is a plain ASGI middleware (no request object built): after the
app answered, the router has put the matched route in the scope, and the request is
counted under that route's *template* (``/api/v1/instances/{instance_id}``), never
its raw path, so ids and scanners' probes make no new series. The cost per request
is two clock reads, two dict lookups (route template, labelled child) and one
histogram observation (``benchmarks/bench_metrics.py`` measures it).

:func:`keep_peer` wraps the app given to uvicorn: it records the TCP peer in the scope
before uvicorn's proxy-headers middleware may replace ``client`` with an
``X-Forwarded-For`` address, so ``/metrics`` decides on the real peer while the rest
of the app keeps uvicorn's usual handling of a local TLS proxy's headers.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from typing import Any

from starlette.routing import BaseRoute, Match, Mount, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from snoozeql.observability import HTTP_METHODS, UNMATCHED, Telemetry

#: Scope key holding the connection's own (host, port), set by :func:`keep_peer`.
PEER = "snoozeql.peer"


def _plain_route(scope: Scope, routes: Sequence[BaseRoute]) -> str:
    """The template of a top-level Starlette route or mount (the OpenAPI document, the
    static assets), which do not record themselves in the scope as FastAPI's do."""
    # A mount rewrote root_path while routing: match on the request as it came in.
    scope = {"type": "http", "path": scope.get("path", ""), "root_path": "",
             "method": scope.get("method", "GET")}
    for route in routes:
        if isinstance(route, Route | Mount) and route.matches(scope)[0] is not Match.NONE:
            return f"{route.path}/{{path}}" if isinstance(route, Mount) else route.path
    return UNMATCHED


def route_template(scope: Scope, routes: Sequence[BaseRoute] = (),
                   cache: dict[tuple[int, int], str] | None = None) -> str:
    """The matched route's template with the prefix it was included under.

    FastAPI keeps an included router's routes with their own path
    (``/instances/{instance}/stop``) and the prefix apart; prefixes here are literal
    (``/api/v1``), so the prefix is the request path's leading segments that the
    route's template does not cover. ``cache`` keeps the answer per route object and
    depth, so a request usually costs a dict lookup (each router is included once, as
    in ``api/app.py``, so a route object and a depth name one prefix)."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    if not isinstance(path, str):
        return _plain_route(scope, routes)
    depth = scope.get("path", "").count("/")
    key = (id(route), depth)  # routes live as long as the app: ids are not reused
    if cache is not None and (known := cache.get(key)) is not None:
        return known
    if isinstance(route, Mount):
        template = f"{path}/{{path}}"
    elif ":path}" in path:
        template = path  # a template that spans segments: counted without its prefix
    else:
        extra = depth - path.count("/")
        template = path if extra <= 0 else "/".join(scope["path"].split("/")[: extra + 1]) + path
    if cache is not None:
        cache[key] = template
    return template


class HttpMetrics:
    def __init__(self, app: ASGIApp, telemetry: Telemetry,
                 routes: Callable[[], Sequence[BaseRoute]] = list) -> None:
        self.app = app
        self.telemetry = telemetry
        self.routes = routes  # the app's top-level routes, for those FastAPI does not mark
        self.templates: dict[tuple[int, int], str] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        began = time.perf_counter()
        status = 500  # what the server answers if the app raises before starting one

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            method = scope.get("method", "")
            self.telemetry.observe_request(
                route_template(scope, self.routes(), self.templates),
                method if method in HTTP_METHODS else "other", status,
                time.perf_counter() - began)


def peer_of(scope: Scope) -> str | None:
    """The connection's peer address: the recorded TCP peer, else the scope's client."""
    peer: Any = scope.get(PEER) or scope.get("client")
    return str(peer[0]) if peer else None


def keep_peer(app: ASGIApp) -> ASGIApp:
    """``app`` behind uvicorn's proxy-headers handling, with the TCP peer kept first."""
    from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

    # Trusts whom uvicorn would (FORWARDED_ALLOW_IPS, default 127.0.0.1). (uvicorn types
    # ASGI more narrowly than Starlette; both describe the same calls.)
    trusted = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
    inner: Any = ProxyHeadersMiddleware(app, trusted_hosts=trusted)  # type: ignore[arg-type]

    async def recorded(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            scope[PEER] = scope.get("client")
        await inner(scope, receive, send)

    return recorded
