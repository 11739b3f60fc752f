"""Sub-commands imported only when they run.

Every command module imports the services it calls, and they import the store
(SQLAlchemy, Alembic), settings (pydantic-settings) and providers: over a second of
CPU. ``snoozeql --help`` needs none of it, and ``snoozeql instances list`` needs only
what ``instances`` imports. A :class:`LazyGroup` lists its lazy sub-commands from a
table (name, module, attribute, one-line help) and imports a module the first time
one of its commands is resolved. ``tests/e2e/test_cli_startup.py`` checks that the table's
help lines match the real ones.
"""

from __future__ import annotations

import gc
import importlib
from typing import Any, ClassVar, NamedTuple

import typer
from typer import _click as click  # Typer vendors its own Click: its types, not click's
from typer.core import DEFAULT_MARKUP_MODE, TyperCommand, TyperGroup


class LazyCommand(NamedTuple):
    module: str
    attribute: str  # a typer.Typer (a group) or a function (a single command)
    help: str


def load_command(name: str, spec: LazyCommand) -> click.Command:
    """Import the module and build the Click command Typer would have built."""
    # The import makes tens of thousands of objects that live as long as the process
    # (modules, classes, SQLAlchemy's and pydantic's tables): the cyclic collector,
    # run every 700 allocations, would walk them again and again for nothing (0.03-0.05
    # s of `instances list`). It waits until the import is done.
    enabled = gc.isenabled()
    gc.disable()
    try:
        module = importlib.import_module(spec.module)
    finally:
        if enabled:
            gc.enable()
    obj: Any = getattr(module, spec.attribute)
    cmd: click.Command
    if isinstance(obj, typer.Typer):
        # Always a group, as add_typer makes it (even with a single command).
        cmd = typer.main.get_group(obj)
    else:
        # No completion options: those belong to the top-level command only.
        single = typer.Typer(add_completion=False)
        single.command(name)(obj)
        cmd = typer.main.get_command(single)
    cmd.name = name
    return cmd


class LazyGroup(TyperGroup):
    """A Typer group with sub-commands from :attr:`lazy`, imported on first use."""

    lazy: ClassVar[dict[str, LazyCommand]] = {}
    _help_only = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The group itself may print plain help (no Rich import for the command list);
        # the commands defined on it directly keep Rich help, as lazy ones do.
        for cmd in self.commands.values():
            if isinstance(cmd, (TyperCommand, TyperGroup)):
                cmd.rich_markup_mode = DEFAULT_MARKUP_MODE

    def list_commands(self, ctx: click.Context) -> list[str]:
        names = super().list_commands(ctx)
        return [*names, *(n for n in self.lazy if n not in names)]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.commands or cmd_name not in self.lazy:
            return super().get_command(ctx, cmd_name)
        spec = self.lazy[cmd_name]
        if self._help_only:  # listing the commands in --help: the name and its line
            return TyperCommand(cmd_name, help=spec.help)
        cmd = load_command(cmd_name, spec)
        self.add_command(cmd, cmd_name)
        return cmd

    def format_help(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        self._help_only = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._help_only = False

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        # Typos are matched against every name ("Did you mean ...?"), lazy ones too.
        if args and args[0] not in self.commands and args[0] not in self.lazy:
            for name, spec in self.lazy.items():
                self.commands.setdefault(name, TyperCommand(name, help=spec.help))
        return super().resolve_command(ctx, args)
