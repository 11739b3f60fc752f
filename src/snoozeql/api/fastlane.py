"""A fast lane for the hottest request, ``GET /api/v1/instances``.

FastAPI spends about a millisecond of CPU on each request to the listing before the
route runs: matching the route among all the API's, then solving its dependencies and
validating its twelve query parameters one by one (each a handful of introspection
calls on its annotation, then a pydantic validation). That is as much as the page
itself costs the database (docs/benchmarks.md, issue 19 item 4).

:class:`ListingFastLane` is an ASGI middleware, the innermost of ours, that answers a
plain listing request itself and hands every other request on untouched. It answers
only when the outcome is certain to be the one FastAPI would give:

- exactly ``GET /api/v1/instances``, no ``root_path``, FastAPI's own OpenTelemetry
  instrumentation not active for the request;
- an ``X-API-Key`` header (the dependency takes it before any bearer token), no
  ``Authorization`` header, and a key whose lookup is cached (:meth:`ApiKeyService.cached`)
  with a role that may list; an unknown, revoked, uncached or under-privileged key
  goes the usual way (and gets the usual 401 or 403, or the lookup in a thread);
- every query parameter one of the route's, given once (``tag`` as often as wanted),
  with a value whose validation cannot fail: ``limit`` as digits from 1 to 1000,
  ``missing`` as ``true`` or ``false``; anything else (an unknown parameter, another
  spelling of a boolean, a bad number) goes through FastAPI, which validates it and
  words the error.

It then calls the route's own function (in a worker thread, as FastAPI would) with the
values FastAPI would have passed: the same service calls, the same body and headers.
A store or validation error (:class:`SnoozeError`) is answered as the app's handler
answers it; anything else propagates to the app's server-error handling, as from the
route. The matched route is put in the scope, as the router does, so that the request
is counted under its template (``api/instrument.py``). The defaults come from the
route's signature; the app does not start when the route has parameters (or ``limit``
bounds) the lane does not know (:func:`route_defaults`).
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qsl

from pydantic.fields import FieldInfo
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from snoozeql.domain.errors import SnoozeError
from snoozeql.domain.types import Role
from snoozeql.services.apikeys import ApiKeyService
from snoozeql.services.context import Context

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: The route's query parameters taken as text, as they are.
_TEXT = frozenset({"provider", "account", "region", "engine", "status", "kind", "q",
                   "sort", "cursor"})
_QUERY = _TEXT | {"tag", "limit", "missing"}
_DEPENDENCIES = ("ctx", "_")  # the route's first two parameters: context, caller's key
_LIMITS = (1, 1000)
_BOOLEANS = {"true": True, "false": False}


def route_defaults(endpoint: Callable[..., Any]) -> dict[str, Any]:
    """The values FastAPI passes ``endpoint`` for query parameters not given. Raises
    TypeError when its parameters are not the ones this lane knows how to read: a new
    parameter must be taught to :func:`listing_arguments` first."""
    params = list(inspect.signature(endpoint).parameters.values())
    names = [p.name for p in params]
    if tuple(names[:2]) != _DEPENDENCIES or set(names[2:]) != _QUERY:
        raise TypeError(f"the listing's fast lane reads {sorted(_QUERY)}, not the route's "
                        f"{names[2:]}: teach api/fastlane.listing_arguments the change")
    defaults = {}
    for p in params[2:]:
        default = p.default.default if isinstance(p.default, FieldInfo) else p.default
        defaults[p.name] = default
        if p.name == "limit":
            meta = p.default.metadata if isinstance(p.default, FieldInfo) else []
            bounds = {type(m).__name__: m for m in meta}
            if (getattr(bounds.get("Ge"), "ge", None),
                    getattr(bounds.get("Le"), "le", None)) != _LIMITS:
                raise TypeError(f"the listing's fast lane takes limits {_LIMITS}: "
                                "teach api/fastlane.listing_arguments the change")
    return defaults


def listing_arguments(query_string: bytes, defaults: dict[str, Any]) -> dict[str, Any] | None:
    """The keyword arguments FastAPI passes ``list_instances`` for this query string
    (``defaults``: :func:`route_defaults`), or None when its validation might not simply
    accept them (then FastAPI decides)."""
    args = dict(defaults)
    seen: set[str] = set()
    tags: list[str] = []
    # As Starlette's QueryParams parses it.
    for name, value in parse_qsl(query_string.decode("latin-1"), keep_blank_values=True):
        if name == "tag":
            tags.append(value)
            continue
        if name in seen:
            return None
        seen.add(name)
        if name in _TEXT:
            args[name] = value
        elif name == "limit":
            if not (value.isascii() and value.isdigit() and len(value) <= 4):
                return None
            limit = int(value)
            if not _LIMITS[0] <= limit <= _LIMITS[1]:
                return None
            args["limit"] = limit
        elif name == "missing":
            if value not in _BOOLEANS:
                return None
            args["missing"] = _BOOLEANS[value]
        else:
            return None
    if tags:
        args["tag"] = tags
    return args


def _header(scope: Scope, name: bytes) -> tuple[bytes | None, bool]:
    """The first value of header ``name`` (lower case), and whether an
    ``Authorization`` header was sent."""
    found = None
    authorization = False
    for key, value in scope.get("headers", ()):
        if key == name and found is None:
            found = value
        elif key == b"authorization":
            authorization = True
    return found, authorization


class ListingFastLane:
    """ASGI middleware: answers plain ``GET {prefix}/instances`` requests (module doc)."""

    def __init__(self, app: ASGIApp, *, ctx: Context, prefix: str,
                 route: Any, endpoint: Callable[..., Response],
                 error: Callable[[int, str], Response]) -> None:
        self.app = app
        self.ctx = ctx
        self.path = f"{prefix}/instances"
        self.route = route  # what the router puts in the scope for this path
        self.endpoint = endpoint
        self.defaults = route_defaults(endpoint)
        self.error = error  # the app's answer to a SnoozeError

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (scope["type"] != "http" or scope["path"] != self.path
                or scope.get("method") != "GET" or scope.get("root_path")
                or scope.get("fastapi.telemetry") is not None):
            await self.app(scope, receive, send)
            return
        args = listing_arguments(scope.get("query_string", b""), self.defaults)
        raw_key, authorization = _header(scope, b"x-api-key")
        key = raw_key.decode("latin-1") if raw_key is not None else ""
        record = (ApiKeyService(self.ctx).cached(key)
                  if args is not None and key and not authorization else None)
        if args is None or record is None or not record.role.allows(Role.VIEWER):
            await self.app(scope, receive, send)
            return
        scope["route"] = self.route
        try:
            response = await run_in_threadpool(self.endpoint, self.ctx, record, **args)
        except SnoozeError as exc:
            response = self.error(exc.http_status, exc.message)
        await response(scope, receive, send)
