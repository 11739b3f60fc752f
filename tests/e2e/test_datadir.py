"""Issue 14, item 13: the data directory's local databases belong to one store
(a marker with the store's id), and `snoozeql info` says where everything is."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.cli import CliHarness

ROOT = Path(__file__).resolve().parents[2]


def test_a_second_store_is_refused_instead_of_told_already_exists(
    snoozeql_cli: CliHarness, local_data_dir: Path, debian_servers: None, tmp_path: Path
) -> None:
    cli = snoozeql_cli
    cli.env(SNOOZEQL_DATA_DIR=str(local_data_dir),
            SNOOZEQL_DATABASE_URL=f"sqlite:///{tmp_path / 'a.db'}")
    assert cli("migrate").exit_code == 0
    store_a = json.loads(cli("info", "--json").stdout)["store_id"]
    assert store_a
    r = cli("db", "create", "cache", "--engine", "redis")
    assert r.exit_code == 0, r.output
    marker = local_data_dir / "instances" / ".snoozeql-store"
    assert marker.read_text().strip() == store_a
    assert json.loads(cli("info", "--json").stdout)["local_databases_owner"] == store_a

    # Another store (another URL), same data dir: refused with the reason, not
    # "already exists" for a database this store never made; nothing recorded.
    cli.env(SNOOZEQL_DATABASE_URL=f"sqlite:///{tmp_path / 'b.db'}")
    assert cli("migrate").exit_code == 0
    b = json.loads(cli("info", "--json").stdout)
    assert b["store_id"] != store_a and b["local_databases_owner"] == store_a
    for name in ("cache", "other"):
        r = cli("db", "create", name, "--engine", "redis")
        assert r.exit_code == 2, r.output
        assert "belongs to another SnoozeQL store" in r.output
        assert "SNOOZEQL_DATA_DIR" in r.output and "already exists" not in r.output
    assert json.loads(cli("db", "list", "--json").stdout) == []
    assert "ANOTHER store" in cli("info").stdout

    # The owner keeps working with its databases.
    cli.env(SNOOZEQL_DATABASE_URL=f"sqlite:///{tmp_path / 'a.db'}")
    assert cli("db", "stop", "cache").exit_code == 0
    r = cli("db", "delete", "cache", "--yes")
    assert r.exit_code == 0, r.output


def test_info_shows_where_things_are_without_the_password(
    snoozeql_cli: CliHarness, tmp_path: Path
) -> None:
    cli = snoozeql_cli
    cli.env(SNOOZEQL_DATABASE_URL="postgresql://snooze:hunter2secret@127.0.0.1:1/nowhere",
            DOCKER_HOST="tcp://127.0.0.1:2375", SNOOZEQL_JOBS_ENABLED="false")
    r = cli("info", "--json")
    assert r.exit_code == 0, r.output
    found = json.loads(r.stdout)
    assert "hunter2secret" not in r.output
    assert found["store_url"] == "postgresql+psycopg://snooze:***@127.0.0.1:1/nowhere"
    assert found["data_dir"] == str(tmp_path / "data")
    assert found["key_file"] == str(tmp_path / "data" / "secret.key")
    assert found["docker_host"] == "tcp://127.0.0.1:2375"
    assert found["jobs"] is False
    assert found["store_id"] is None and "not reachable" in (found["store_error"] or "")
    assert found["version"]

    cli.env(SNOOZEQL_DATABASE_URL=f"sqlite:///{tmp_path / 's.db'}",
            SNOOZEQL_SECRET_KEY="x" * 44, SNOOZEQL_JOBS_ENABLED="true")
    cli("migrate")
    r = cli("info")
    assert r.exit_code == 0, r.output
    text = "".join(r.stdout.split())  # Rich wraps long paths: compare without spaces
    for expected in ("version", "data dir", str(tmp_path / "data"), "store id",
                     "SNOOZEQL_SECRET_KEY (from the environment)", "tcp://127.0.0.1:2375",
                     "jobs on", "no local database yet"):
        assert "".join(expected.split()) in text, expected


def test_docs_state_the_root_default_truthfully() -> None:
    from snoozeql.config import default_data_dir

    assert str(default_data_dir()) == "/var/lib/snoozeql" or default_data_dir().is_absolute()
    for doc in (ROOT / "README.md", ROOT / "docs" / "local-databases.md"):
        text = doc.read_text()
        assert "/var/lib/snoozeql" in text, doc
        assert "default (`/root/.local/share/snoozeql`)" not in text, doc
        assert "snoozeql info" in text, doc
