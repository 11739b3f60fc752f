"""Printing for the CLI: Rich tables for people, --json for scripts, errors to stderr."""

from __future__ import annotations

import dataclasses
import functools
import json
import sys
from collections.abc import Callable, Sequence
from datetime import datetime
from decimal import Decimal
from enum import Enum
from typing import TYPE_CHECKING, Any, TypeVar, cast
from uuid import UUID

import typer

if TYPE_CHECKING:
    from rich.console import Console
    from rich.text import Text


class _LazyConsole:
    """A Rich console made on first use: importing Rich costs more than the rest of
    ``snoozeql --version``."""

    def __init__(self, **options: Any) -> None:
        self._options = options
        self._console: Console | None = None

    def __getattr__(self, name: str) -> Any:
        if self._console is None:
            from rich.console import Console

            self._console = Console(**self._options)
        return getattr(self._console, name)


# Markup is off: names, tags, reasons and schedule text come from users and from the
# schedule grammar (``[all day monthdays 1/14]``), and must print as written. Colour is
# added on purpose with :func:`styled` / :func:`line` (Rich ``Text``), never with markup.
console = cast("Console", _LazyConsole(markup=False))
err_console = cast("Console", _LazyConsole(stderr=True, markup=False))

F = TypeVar("F", bound=Callable[..., Any])


def _default(o: Any) -> Any:
    if isinstance(o, datetime):
        return o.isoformat()
    if isinstance(o, (UUID, Decimal)):
        return str(o) if isinstance(o, UUID) else float(o)
    if isinstance(o, Enum):
        return o.value
    if dataclasses.is_dataclass(o) and not isinstance(o, type):
        return {f.name: getattr(o, f.name) for f in dataclasses.fields(o)}  # also slots
    if hasattr(o, "__dict__"):
        return o.__dict__
    raise TypeError(f"cannot serialise {type(o).__name__}")


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, default=_default, indent=2, sort_keys=False) + "\n")


def model_json(model: Any) -> Any:  # noqa: ANN401 - an API schema model (pydantic)
    """An API schema model as ``--json`` prints it: the fields it was given (a field
    left at its default is left out), instants in ISO form with their offset."""
    return model.model_dump(exclude_unset=True)


def styled(value: Any, style: str) -> Text:
    """``value`` as text in ``style`` (e.g. ``"green"``), never read as markup."""
    from rich.text import Text

    return Text(fmt(value), style=style)


def line(*parts: str | Text | tuple[str, str]) -> Text:
    """One line from plain strings, :func:`styled` pieces and ``(text, style)`` pairs."""
    from rich.text import Text

    return Text.assemble(*parts)


def action_line(action: str, name: str, already: bool, message: str | None,
                status: Text) -> Text:
    """``stop db1: ok, now stopped (StopDBInstance accepted)`` or, when nothing had to
    be done, ``stop db1: ok, already stopped``."""
    if already:
        return line(f"{action} {name}: ", styled("ok", "green"), f", {message}")
    return line(f"{action} {name}: ", styled("ok", "green"), ", now ", status,
                f" ({message})" if message else "")


def fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, dict):
        return ",".join(f"{k}={v}" for k, v in value.items()) or "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def print_table(title: str | None, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    from rich.table import Table
    from rich.text import Text

    table = Table(title=Text(title) if title else None, show_lines=False,
                  header_style="bold")
    for c in columns:
        table.add_column(c, overflow="fold")
    for row in rows:
        table.add_row(*(_cell(v) for v in row))
    console.print(table)


def _cell(value: Any) -> Text:
    from rich.text import Text

    return value if isinstance(value, Text) else Text(fmt(value))


def print_fields(pairs: Sequence[tuple[str, Any]]) -> None:
    from rich.table import Table
    from rich.text import Text

    table = Table(show_header=False, box=None)
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    for k, v in pairs:
        table.add_row(Text(k), _cell(v))
    console.print(table)


def fail(message: str, code: int = 1) -> None:
    err_console.print(line(("error:", "red"), " ", message), highlight=False)
    raise typer.Exit(code)


def confirm(question: str, *, refused: str, hint: str) -> None:
    """Ask ``question`` on the terminal; exit 1 with ``refused`` on "no".

    Without an answer (no terminal, stdin at its end) exit 2 with ``hint`` (e.g. "add
    --yes to delete without asking") rather than click's bare "Aborted!".
    """
    try:
        answer = typer.confirm(question, default=False, err=True)
    except typer.Abort:
        fail(f"{refused}: there is no terminal to ask {question!r} on; {hint}", 2)
    if not answer:
        err_console.print(refused, highlight=False)
        raise typer.Exit(1)


def handle_errors(fn: F) -> F:
    """Turn SnoozeQL errors into a message and the documented exit code, no traceback."""
    from snoozeql.domain.errors import SnoozeError

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except SnoozeError as exc:
            fail(exc.message, exc.exit_code)

    return wrapper  # type: ignore[return-value]
