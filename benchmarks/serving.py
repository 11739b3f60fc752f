"""The real API served in a thread of the benchmark's process, for HTTP-level timings."""

from __future__ import annotations

import os
import threading
import time

import uvicorn

from snoozeql.api.app import create_app
from snoozeql.services.context import Context


def serve_in_thread(ctx: Context) -> tuple[uvicorn.Server, threading.Thread, int]:
    """Start uvicorn on 127.0.0.1 with the app on ``ctx``; returns once it listens.
    Stop it with ``server.should_exit = True; thread.join()``."""
    port = 18000 + os.getpid() % 1000
    server = uvicorn.Server(
        uvicorn.Config(create_app(ctx), host="127.0.0.1", port=port, log_level="error")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    return server, thread, port
