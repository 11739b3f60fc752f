"""Log setup: readable lines for people, one JSON object per line for machines.

Log records never carry secrets: SnoozeQL does not put credentials, keys or passwords
into messages, and this formatter does not add request bodies. As a second line of
defence the JSON formatter masks the password of any ``scheme://user:password@host``
URL in what it writes (a store URL in a driver's error, say).

Task runs and actions log one line each with structured fields
(``snoozeql.observability``): in JSON they become top-level keys of the object, so
``task_id``, ``action_id``, ``instance_id`` and ``account_id`` join lines.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any

from snoozeql.observability import FIELDS

_URL_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.-]*://[^/\s:@]*:)[^@\s/]+@")


def mask_url_passwords(text: str) -> str:
    """``postgresql://u:secret@h/db`` -> ``postgresql://u:***@h/db``."""
    return _URL_PASSWORD.sub(r"\g<head>***@", text) if "://" in text else text


def _masked(value: Any) -> Any:
    return mask_url_passwords(value) if isinstance(value, str) else value


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": mask_url_passwords(record.getMessage()),
        }
        fields = getattr(record, FIELDS, None)
        if isinstance(fields, dict):
            for key, value in fields.items():
                out.setdefault(key, _masked(value))
        if record.exc_info:
            out["exc"] = mask_url_passwords(self.formatException(record.exc_info))
        return json.dumps(out, default=str)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return mask_url_passwords(super().format(record))


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to ``sys.stderr`` as it is when a record comes, not as it was at setup: a
    background thread (a history read, a sync) may log after whoever ran the command
    swapped or closed the stream it had (an in-process CLI run, a test's capture)."""

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


def setup(level: str = "INFO", as_json: bool = False) -> None:
    handler = _StderrHandler()
    handler.setFormatter(
        JsonFormatter()
        if as_json
        else TextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
