"""A real HTTP peer on 127.0.0.1 that records every request: a webhook receiver, a
cloud API endpoint that must (or must never) be called, a redirecting endpoint.

Fixture ``recording_server`` yields a factory; each server it makes is stopped after
the test. By default every request is answered 200 with ``server.body`` (JSON ``{}``);
``respond`` decides the answer from the recorded request instead.
"""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Answer:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


class RecordingServer:
    def __init__(self, respond: Callable[[Recorded], Answer] | None = None) -> None:
        self.requests: list[Recorded] = []
        self.body = b"{}"
        self.content_type = "application/json"
        self._respond = respond
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                rec = Recorded(self.command, self.path, dict(self.headers),
                               self.rfile.read(length))
                server.requests.append(rec)
                answer = server.answer(rec)
                self.send_response(answer.status)
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer.body)))
                self.end_headers()
                self.wfile.write(answer.body)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _answer  # noqa: N815

            def log_message(self, *args: Any) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def answer(self, request: Recorded) -> Answer:
        if self._respond is not None:
            return self._respond(request)
        return Answer(200, self.body, {"Content-Type": self.content_type})

    @property
    def paths(self) -> list[str]:
        return [r.path for r in self.requests]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def recording_server() -> Iterator[Callable[..., RecordingServer]]:
    made: list[RecordingServer] = []

    def make(respond: Callable[[Recorded], Answer] | None = None) -> RecordingServer:
        server = RecordingServer(respond)
        made.append(server)
        return server

    yield make
    for server in made:
        server.close()
