"""Request bounds enforced before any route runs.

* Bodies: at most ``SNOOZEQL_MAX_BODY_BYTES`` (default 1 MiB). A declared
  ``Content-Length`` over the limit is answered 413 at once; a chunked body is counted
  as it arrives and refused with 413 as soon as it passes the limit, so an oversize
  upload is never held in memory whole.
* Query strings and paths: control characters (NUL, newlines, DEL ...) are refused with
  422. No filter means anything with them, and a store may not even take them in a
  query (SQLite's JSON paths, PostgreSQL's NUL).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qsl, unquote

from fastapi import HTTPException

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def describe_bytes(n: int) -> str:
    """``1048576 bytes (1 MiB)``: the exact figure and a readable one."""
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n} bytes ({n / size:g} {unit})"
    return f"{n} bytes"


def too_large_message(limit: int) -> str:
    return (f"request body too large: the limit is {describe_bytes(limit)} "
            "(setting SNOOZEQL_MAX_BODY_BYTES)")


def _has_control(text: str) -> bool:
    return any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in text)


def control_character_problem(path: str, query_string: bytes) -> str | None:
    """What is wrong with the path or query string, or None."""
    if _has_control(path):
        return "path: control characters are not allowed"
    try:
        pairs = parse_qsl(query_string.decode("latin-1"), keep_blank_values=True,
                          encoding="utf-8", errors="strict")
    except UnicodeDecodeError:
        return "query: not valid UTF-8"
    for name, value in pairs:
        if _has_control(name) or _has_control(value):
            shown = unquote(name) if not _has_control(name) else "?"
            return f"query parameter {shown!r}: control characters are not allowed"
    return None


class RequestBounds:
    """ASGI middleware: the body limit and the control-character rule (see module doc)."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int, prefix: str) -> None:
        self.app = app
        self.limit = max_body_bytes
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["path"].startswith(self.prefix):
            problem = control_character_problem(scope["path"], scope.get("query_string", b""))
            if problem:
                await _send_error(send, 422, "invalid_input", problem)
                return
        declared = _content_length(scope)
        if declared is not None and declared > self.limit:
            await _send_error(send, 413, "too_large", too_large_message(self.limit))
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise HTTPException(413, too_large_message(self.limit))
            return message

        await self.app(scope, counted, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _send_error(send: Send, status: int, code: str, message: str) -> None:
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
