"""Issue 20: the layering rules, read from the source (no import is executed).

- ``domain`` is pure: it imports no store, provider, service, web layer, nor any
  framework or client library;
- services run no SQL: they import SQLAlchemy only for annotations (under
  ``TYPE_CHECKING``), except ``services/context.py``, which holds the engine;
- only the store sees a database error: nothing outside ``store/`` names
  ``IntegrityError``;
- services choose nothing by a provider's name: no comparison with a provider kind
  outside ``providers/`` (the registry's plugins say what a provider can do).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "snoozeql"

DOMAIN_MAY_NOT_IMPORT = (
    "snoozeql.store", "snoozeql.providers", "snoozeql.services", "snoozeql.api",
    "snoozeql.cli", "snoozeql.web", "snoozeql.jobs", "sqlalchemy", "fastapi", "httpx",
    "boto3", "botocore", "docker", "psycopg",
)


def _modules(folder: str) -> Iterator[Path]:
    yield from sorted((SRC / folder).rglob("*.py"))


def _imports(tree: ast.AST, *, skip_type_checking: bool) -> Iterator[tuple[int, str]]:
    """(line, module) of every import, leaving out ``if TYPE_CHECKING:`` blocks."""
    skipped: set[int] = set()
    if skip_type_checking:
        for node in ast.walk(tree):
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                for inner in node.body:
                    skipped.update(id(n) for n in ast.walk(inner))
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module


def _under(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def _rel(path: Path) -> str:
    return str(path.relative_to(SRC.parent))


def test_the_domain_imports_no_other_layer_and_no_framework() -> None:
    found = [
        f"{_rel(path)}:{line} imports {module}"
        for path in _modules("domain")
        for line, module in _imports(ast.parse(path.read_text()), skip_type_checking=False)
        if _under(module, DOMAIN_MAY_NOT_IMPORT)
    ]
    assert found == []


def test_services_import_sqlalchemy_for_annotations_only() -> None:
    found = [
        f"{_rel(path)}:{line} imports {module}"
        for path in _modules("services") if path.name != "context.py"
        for line, module in _imports(ast.parse(path.read_text()), skip_type_checking=True)
        if _under(module, ("sqlalchemy",))
    ]
    assert found == []


@pytest.mark.parametrize("folder", ["services", "api", "cli", "web", "jobs", "providers"])
def test_only_the_store_handles_database_errors(folder: str) -> None:
    found = [
        f"{_rel(path)}:{node.lineno}"
        for path in _modules(folder)
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, (ast.Name, ast.Attribute))
        and (node.id if isinstance(node, ast.Name) else node.attr) == "IntegrityError"
    ]
    assert found == []


def test_nothing_outside_providers_branches_on_a_provider_name() -> None:
    """``x == ProviderKind.AWS`` / ``x is ProviderKind.GCP`` / ``x == "aws"`` outside the
    providers (the demo seeding its own accounts names them, which is not a branch)."""
    names = {"aws", "gcp", "local", "docker", "demo-aws", "demo-gcp", "external"}
    found = []
    for folder in ("services", "api", "cli", "web", "jobs"):
        for path in _modules(folder):
            for node in ast.walk(ast.parse(path.read_text())):
                if not isinstance(node, ast.Compare):
                    continue
                for side in (node.left, *node.comparators):
                    text = ast.unparse(side)
                    named = isinstance(side, ast.Constant) and side.value in names and (
                        "provider" in ast.unparse(node) or "kind" in ast.unparse(node))
                    if named or (text.startswith("ProviderKind.")
                                 and text != "ProviderKind.EXTERNAL"):
                        found.append(f"{_rel(path)}:{node.lineno}: {ast.unparse(node)}")
    assert found == []
