"""The CLI starts without the store: sub-commands are imported when they run."""

from __future__ import annotations

import gc
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer
from typer import _click as click  # Typer vendors its own Click: its types, not click's
from typer.core import TyperGroup

from snoozeql import __version__
from snoozeql.cli import main
from snoozeql.cli.lazy import LazyCommand, load_command

HEAVY = ("sqlalchemy", "alembic", "pydantic_settings", "fastapi", "boto3", "psycopg")


def _modules_after(code: str, tmp_path: Path) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", code + "\nimport sys, json\n"
         "print(json.dumps(sorted(sys.modules)), file=sys.stderr)"],
        capture_output=True, text=True, check=False,
        env={"SNOOZEQL_DATA_DIR": str(tmp_path), "PATH": "/usr/bin:/bin",
             "COLUMNS": "200"},
    )
    return set(json.loads(out.stderr.strip().splitlines()[-1]))


def test_importing_the_cli_imports_no_store(tmp_path: Path) -> None:
    loaded = _modules_after("import snoozeql.cli.main", tmp_path)
    assert not {m for m in loaded if m.split(".")[0] in HEAVY}
    assert "snoozeql.cli.instances" not in loaded
    assert "snoozeql.services.context" not in loaded


def test_help_and_version_import_no_store(tmp_path: Path) -> None:
    for args in (["--help"], ["--version"]):
        code = (
            "import sys\nfrom snoozeql.cli.main import app\n"
            f"sys.argv = ['snoozeql', *{args!r}]\n"
            "try:\n    app()\nexcept SystemExit:\n    pass\n"
        )
        loaded = _modules_after(code, tmp_path)
        assert not {m for m in loaded if m.split(".")[0] in HEAVY}, args


def test_help_lists_every_command_with_its_own_help(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "snoozeql.cli.main", "--help"], capture_output=True,
        text=True, check=True,
        env={"SNOOZEQL_DATA_DIR": str(tmp_path), "PATH": "/usr/bin:/bin", "COLUMNS": "250"},
    ).stdout
    for name in [*main._Commands.lazy, "serve", "migrate"]:
        assert f" {name} " in out, name
    assert "Cloud accounts SnoozeQL discovers databases in." in out


def test_the_lazy_table_says_what_each_command_says() -> None:
    for name, spec in main._Commands.lazy.items():
        cmd = load_command(name, spec)
        assert cmd.name == name
        real = " ".join((cmd.help or "").strip().split("\n\n")[0].split())
        assert real == spec.help, f"{name}: {spec.help!r} but the command says {real!r}"


def test_commands_run_and_typos_are_suggested(snoozeql_cli: Any) -> None:  # noqa: ANN401
    r = snoozeql_cli("instances", "list", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout) == []
    r = snoozeql_cli("--version")
    assert r.exit_code == 0 and r.stdout.strip() == f"snoozeql {__version__}"
    r = snoozeql_cli("instance", "list")
    assert r.exit_code == 2
    assert "instances" in r.output
    r = snoozeql_cli("activity", "--help")
    assert r.exit_code == 0 and "heatmap" in r.output


def test_lazy_groups_stay_groups(snoozeql_cli: Any) -> None:  # noqa: ANN401
    group = typer.main.get_command(main.app)
    assert isinstance(group, TyperGroup)
    ctx = click.Context(group)
    db = group.get_command(ctx, "db")
    assert isinstance(db, TyperGroup) and "create" in db.list_commands(ctx)
    # `actions` has a single command: still `snoozeql actions list`, as before.
    actions = group.get_command(ctx, "actions")
    assert isinstance(actions, TyperGroup) and actions.list_commands(ctx) == ["list"]
    r = snoozeql_cli("actions", "list", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout) == []


def test_a_command_on_a_migrated_store_does_not_load_alembic(tmp_path: Path) -> None:
    code = (
        "import sys\nfrom snoozeql.cli.main import app\n"
        "sys.argv = ['snoozeql', 'instances', 'list', '--json']\n"
        "try:\n    app()\nexcept SystemExit:\n    pass\n"
    )
    first = _modules_after(code, tmp_path)  # a new store: migrated by Alembic
    assert "alembic" in first
    again = _modules_after(code, tmp_path)
    assert "sqlalchemy" in again and "alembic" not in again
    assert "psycopg" not in again and "snoozeql.services.bulk" not in again


# What `instances list --json` does not need, and which it once imported (issue 19,
# item 7): the account service (with the audit log, the secret box, Fernet and the
# provider registry behind it) is for an --account filter only, Rich for tables, the
# selector language for bulk actions, prometheus-client for a process that counts.
NOT_FOR_A_LISTING = (
    "snoozeql.services.accounts", "snoozeql.services.audit", "snoozeql.services.secrets",
    "snoozeql.store.actions", "snoozeql.store.secrets", "snoozeql.domain.selectors",
    "cryptography", "rich", "prometheus_client",
)


def test_a_json_listing_imports_only_what_it_needs(tmp_path: Path) -> None:
    code = (
        "import sys\nfrom snoozeql.cli.main import app\n"
        "sys.argv = ['snoozeql', 'instances', 'list', '--json']\n"
        "try:\n    app()\nexcept SystemExit:\n    pass\n"
    )
    _modules_after(code, tmp_path)  # a new store, migrated
    loaded = _modules_after(code, tmp_path)
    assert "snoozeql.services.inventory" in loaded and "sqlalchemy" in loaded
    needless = {m for m in loaded for lazy in NOT_FOR_A_LISTING
                if m == lazy or m.startswith(lazy + ".")}
    assert not needless


def test_a_listing_by_account_still_finds_the_account(snoozeql_cli: Any) -> None:  # noqa: ANN401
    r = snoozeql_cli("instances", "list", "--account", "nosuch", "--json")
    assert r.exit_code != 0
    assert "nosuch" in r.output


def test_loading_a_command_leaves_the_collector_as_it_was() -> None:
    """The cyclic collector waits while a command module is imported, then runs again
    (also when the import fails); one a caller turned off stays off."""
    try:
        assert gc.isenabled()
        load_command("audit", main._Commands.lazy["audit"])
        assert gc.isenabled()
        with pytest.raises(ModuleNotFoundError):
            load_command("nosuch", LazyCommand("snoozeql.cli.nosuch", "app", "none"))
        assert gc.isenabled()
        gc.disable()
        load_command("jobs", main._Commands.lazy["jobs"])
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_on_its_way_out_the_cli_closes_the_store_then_freezes_the_heap(
    tmp_path: Path,
) -> None:
    """The exit hook is registered once per process, closes the pooled connections and
    leaves the objects still alive to the process's end (no last collection)."""
    code = (
        "import atexit, gc, sys\nfrom snoozeql.cli import state\n"
        "made = []\nregister = atexit.register\n"
        "atexit.register = lambda f: (made.append(f), register(f))[1]\n"
        "state.ctx()\nstate._ctx = None\n"  # a second context: no second hook
        "with state.ctx().engine.connect():\n    pass\n"
        "pool = state.ctx().engine.pool\n"
        "print(made.count(state._at_exit), pool.checkedin(), gc.get_freeze_count(), "
        "file=sys.stderr)\n"
        "state._at_exit()\n"
        "print(pool.checkedin(), gc.get_freeze_count() > 0, file=sys.stderr)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True,
        env={"SNOOZEQL_DATA_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"},
    ).stderr.splitlines()
    assert out[-2:] == ["1 1 0", "0 True"]


def test_db_create_imports_the_action_counter_while_the_server_starts(tmp_path: Path) -> None:
    """At the native create's first step, prometheus-client (which counts the action) is
    imported in a thread while initdb leaves the CPU idle; not before the first step.
    (The probe's client library is the runtime's to load meanwhile: the engine modules'
    ``client_modules``.)"""
    code = (
        "import logging, sys, threading\nfrom snoozeql.cli.db import _progress\n"
        "class Status:\n    def update(self, text):\n        pass\n"
        "def imported():\n"
        "    [t.join() for t in threading.enumerate() if t.name == 'snoozeql-imports']\n"
        "    return 'prometheus_client' in sys.modules\n"
        "source = logging.getLogger('snoozeql.providers.local')\n"
        "with _progress(Status(), 'r1'):\n"
        "    source.info('initialising the data directory of r1')\n"
        "print(imported(), file=sys.stderr)\n"
        "with _progress(Status(), 'pg1', meanwhile=True):\n"
        "    before = imported()\n"
        "    source.info('initialising the data directory of pg1')\n"
        "    source.info('starting postgres')\n"
        "print(before, imported(), threading.active_count(), file=sys.stderr)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True,
        env={"SNOOZEQL_DATA_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"},
    ).stderr.splitlines()
    assert out[-2:] == ["False", "False True 1"]


def _eager_app() -> typer.Typer:
    """The command tree as an eager import builds it: every command module imported and
    registered with add_typer / command, as cli/main.py did before it was lazy."""
    from snoozeql.cli import (
        accounts,
        actions,
        apikeys,
        audit,
        db,
        demo,
        info,
        instances,
        jobs,
        metrics,
        savings,
        schedules,
        stacks,
        templates,
    )

    app = typer.Typer(name="snoozeql", help=main.app.info.help)
    for name, sub in (
        ("accounts", accounts.app), ("instances", instances.app), ("actions", actions.app),
        ("apikeys", apikeys.app), ("templates", templates.app), ("stacks", stacks.app),
        ("db", db.app), ("metrics", metrics.metrics_app),
        ("recommendations", metrics.recommendations_app), ("schedules", schedules.app),
        ("audit", audit.app), ("jobs", jobs.app),
    ):
        app.add_typer(sub, name=name)
    app.command("activity")(metrics.activity)
    app.command("savings")(savings.savings)
    app.command("info")(info.info)
    app.command("demo")(demo.demo)
    app.registered_commands.extend(main.app.registered_commands)  # serve, worker, migrate
    app.registered_callback = main.app.registered_callback
    return app


def _tree(cmd: click.Command, ctx: click.Context, path: str = "") -> dict[str, Any]:
    """Every command path with what a user sees of it: help, options, arguments."""
    params = sorted(
        (p.name or "", tuple(p.opts), tuple(p.secondary_opts), p.required,
         repr(p.default), getattr(p, "help", None))
        for p in cmd.params if p.name not in ("install_completion", "show_completion")
    )
    found: dict[str, Any] = {path or "<root>": (isinstance(cmd, TyperGroup),
                                                (cmd.help or "").strip(), params)}
    if isinstance(cmd, TyperGroup):
        sub_ctx = click.Context(cmd, info_name=path or "snoozeql", parent=ctx)
        for name in cmd.list_commands(sub_ctx):
            sub = cmd.get_command(sub_ctx, name)
            assert sub is not None, f"{path} {name}"
            found |= _tree(sub, sub_ctx, f"{path} {name}".strip())
    return found


def test_the_lazy_cli_has_the_command_tree_of_an_eager_import() -> None:
    eager_group = typer.main.get_command(_eager_app())
    lazy_group = typer.main.get_command(main.app)
    eager = _tree(eager_group, click.Context(eager_group))
    lazy = _tree(lazy_group, click.Context(lazy_group))
    assert sorted(lazy) == sorted(eager)
    assert len(eager) > 80  # every group's sub-commands, not only the top level
    for path, seen in eager.items():
        assert lazy[path] == seen, path


def test_every_command_group_module_is_reachable_from_the_cli() -> None:
    """A Typer app defined in a command module but registered nowhere would be a
    command nobody can run; the lazy table (or a group in it) must reach every one."""
    import importlib
    import pkgutil

    import snoozeql.cli as cli_pkg

    reachable: set[int] = set()

    def add(app: typer.Typer) -> None:
        reachable.add(id(app))
        for info in app.registered_groups:
            if info.typer_instance is not None:
                add(info.typer_instance)

    for spec in main._Commands.lazy.values():
        obj = getattr(importlib.import_module(spec.module), spec.attribute)
        if isinstance(obj, typer.Typer):
            add(obj)
    for mod in pkgutil.iter_modules(cli_pkg.__path__):
        module = importlib.import_module(f"snoozeql.cli.{mod.name}")
        for attr, obj in vars(module).items():
            if isinstance(obj, typer.Typer) and obj is not main.app:
                assert id(obj) in reachable, f"snoozeql.cli.{mod.name}.{attr}"
