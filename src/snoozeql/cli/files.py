"""Files the CLI reads (schedules, templates, override entries): bounded in size.

A file over ``SNOOZEQL_MAX_FILE_BYTES`` (default 1 MiB, like the API's body limit) is
refused before it is read whole, with the limit in the message (exit code 2).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import IO

from snoozeql.domain.errors import ValidationError


def _limit() -> int:
    from snoozeql.config import get_settings

    return get_settings().max_file_bytes


def _too_large(what: str, limit: int) -> ValidationError:
    return ValidationError(
        f"{what} is larger than the limit of {limit} bytes ({limit / (1 << 20):g} MiB; "
        "setting SNOOZEQL_MAX_FILE_BYTES)"
    )


def read_bounded(stream: IO[bytes], what: str, limit: int | None = None) -> str:
    """At most ``limit`` bytes of UTF-8 text from ``stream``; more is refused."""
    limit = _limit() if limit is None else limit
    data = stream.read(limit + 1)
    if len(data) > limit:
        raise _too_large(what, limit)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ValidationError(f"{what} is not UTF-8 text") from None


def read_text_file(path: Path | str, limit: int | None = None) -> str:
    """A text file ('-' is standard input), refused when over the limit or unreadable."""
    if str(path) == "-":
        return read_bounded(sys.stdin.buffer, "standard input", limit)
    try:
        with open(path, "rb") as fh:
            return read_bounded(fh, str(path), limit)
    except OSError as exc:
        raise ValidationError(f"cannot read {path}: {exc.strerror}") from None
