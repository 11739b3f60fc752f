"""The Compose export, checked by a real Compose implementation's ``config`` command.

Debian's ``docker-compose`` (1.29) validates and normalises a file without a Docker
engine; ``docker compose`` (v2) does too. The test writes the export the way the CLI
will (compose.yaml, the config files with their modes, the .env for secrets), runs
``config`` on it and checks every effective value in the normalised output.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from snoozeql.api.schemas.stacks import ComposeOut
from snoozeql.domain.errors import ConflictError, ValidationError
from snoozeql.domain.stacks import (
    ComposeExport,
    EffectiveService,
    PortMapping,
    Template,
    effective,
    load_builtin_templates,
    parse_override,
    to_compose,
)
from snoozeql.domain.stacks.hostaccess import loopback_default

STACK = "shop"
PREFIX = "snoozeql"


def compose_command() -> list[str]:
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    if shutil.which("docker"):
        probe = subprocess.run(
            ["docker", "compose", "version"], capture_output=True, text=True, timeout=60
        )
        if probe.returncode == 0:
            return ["docker", "compose"]
    pytest.fail(
        "no Compose implementation found: install docker-compose "
        "(apt-get install -y docker-compose) so the exported file can be validated"
    )


def ov(kind: str, entries: Any, mode: str = "merge") -> Any:
    return parse_override(kind, {"mode": mode, "entries": entries})


def stack_instances() -> list[tuple[str, EffectiveService]]:
    cat = load_builtin_templates()
    custom = Template.from_dict(
        {
            "name": "worker",
            "image": "example/worker:2",
            "command": "sh -c 'echo $HOME && sleep 1'",
            "environment": {"QUEUE": "jobs", "PRICE": "$5 per unit"},
            "labels": {"team": "payments"},
            "ports": ["9100", "127.0.0.1:9101:9101/udp"],
            "volumes": ["./work:/work", {"type": "tmpfs", "target": "/scratch"}],
            "healthcheck": {"test": "test -f /tmp/ok", "interval": "1m30s"},
        }
    )
    return [
        (
            "db",
            effective(
                cat["postgres"],
                [
                    ov("env_vars", [{"key": "POSTGRES_PASSWORD", "value": "pa$$ 'w\"d",
                                     "secret": True}]),
                    ov("ports", ["127.0.0.1:15432:5432"], mode="replace"),
                    ov("healthcheck", {"interval": "2s", "retries": 30}),
                ],
            ),
        ),
        ("cache", effective(cat["redis"], [ov("volumes", [], mode="replace")])),
        (
            "web",
            effective(
                cat["nginx"],
                [
                    ov("config_files", [
                        {"target": "/etc/nginx/conf.d/default.conf",
                         "content": "server { listen 80; set $x 1; }\n", "mode": "0640"},
                        {"target": "/usr/share/nginx/html/index.html", "content": "<h1>hi</h1>"},
                    ]),
                    ov("domains", ["shop.localhost"]),
                    ov("labels", {"traefik.enable": "true"}),
                ],
            ),
        ),
        ("worker", effective(custom, [ov("healthcheck", {"disable": True})])),
        ("admin", effective(cat["adminer"], [ov("ports", ["127.0.0.1:18081:8080"], "replace")])),
    ]


def write_export(export: ComposeExport, folder: Path) -> Path:
    """What the CLI's export does: compose file, config files with their mode, .env."""
    compose_file = folder / "compose.yaml"
    compose_file.write_text(export.yaml(), encoding="utf-8")
    for f in export.files:
        path = folder / f.path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f.content, encoding="utf-8")
        path.chmod(int(f.mode, 8))
    env_file = folder / ".env"
    env_file.write_text(export.env_file(), encoding="utf-8")
    env_file.chmod(0o600)
    return compose_file


def compose_config(folder: Path, export: ComposeExport) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COMPOSE_", "DOCKER_"))}
    env.pop("POSTGRES_PASSWORD", None)
    proc = subprocess.run(
        [*compose_command(), "-f", "compose.yaml", "-p", export.project, "config"],
        cwd=folder, capture_output=True, text=True, timeout=120, env=env,
    )
    assert proc.returncode == 0, f"compose config failed:\n{proc.stderr}\n{export.yaml()}"
    data = yaml.safe_load(proc.stdout)
    assert isinstance(data, dict)
    return data


def unescape(value: Any) -> Any:
    return value.replace("$$", "$") if isinstance(value, str) else value


def as_mapping(value: Any) -> dict[str, Any]:
    """Compose prints environment/labels as a mapping or as KEY=value items."""
    if isinstance(value, dict):
        return value
    return dict(item.split("=", 1) if "=" in item else (item, None) for item in value or [])


def test_export_is_valid_compose_and_holds_every_effective_value(tmp_path: Path) -> None:
    instances = stack_instances()
    export = to_compose(STACK, instances, PREFIX)
    write_export(export, tmp_path)
    out = compose_config(tmp_path, export)
    services = out["services"]
    assert set(services) == {name for name, _ in instances}

    for name, eff in instances:
        svc = services[name]
        assert svc["image"] == eff.image
        assert svc["container_name"] == f"{PREFIX}-{STACK}-{name}"

        if eff.command is not None:
            cmd = svc["command"]
            want = eff.command if isinstance(eff.command, str) else list(eff.command)
            got = unescape(cmd) if isinstance(cmd, str) else [unescape(c) for c in cmd]
            assert got == want

        labels = {k: unescape(v) for k, v in as_mapping(svc.get("labels")).items()}
        for label in eff.labels:
            assert labels[label.key] == label.value
        assert labels["snoozeql.stack"] == STACK
        assert labels["snoozeql.instance"] == name
        assert labels["snoozeql.template"] == eff.template
        assert labels["snoozeql.managed"] == "true"
        if eff.domains:
            assert labels["snoozeql.domains"].split(",") == list(eff.domains)

        # secrets come in through the .env interpolation, with their real value
        environment = {k: unescape(v) for k, v in as_mapping(svc.get("environment")).items()}
        assert environment == {e.key: e.value for e in eff.environment}

        ports = [PortMapping.parse(p) for p in svc.get("ports", [])]
        # a port without an address is published on 127.0.0.1, never on every interface
        assert {p.key for p in ports} == {p.key for p in loopback_default(eff.ports)}

        mounts = {m["target"]: m for m in svc.get("volumes", [])}
        for v in eff.volumes:
            m = mounts[v.target]
            assert m["type"] == v.type
            assert bool(m.get("read_only", False)) == v.read_only
            if v.type == "volume":
                assert m["source"] == f"{name}_{v.source}"
                assert f"{name}_{v.source}" in out["volumes"]
            elif v.type == "bind":
                assert m["source"] == str((tmp_path / (v.source or "")).resolve())
        for c in eff.config_files:
            m = mounts[c.target]
            assert m["type"] == "bind" and m["read_only"] is True
            host = Path(m["source"])
            assert host.read_text(encoding="utf-8") == c.content
            assert stat.S_IMODE(host.stat().st_mode) == int(c.mode, 8)

        hc = eff.healthcheck
        if hc is None:
            assert "healthcheck" not in svc
        elif hc.disable:  # Compose allows no other option beside "disable: true"
            # (docker-compose 1.x normalises it to the equivalent test NONE)
            assert svc["healthcheck"] in ({"disable": True}, {"test": ["NONE"]})
        else:
            got_hc = svc["healthcheck"]
            for field in ("interval", "timeout", "start_period", "retries"):
                if getattr(hc, field) is not None:
                    assert got_hc[field] == getattr(hc, field), field
            if hc.test is not None:
                assert [unescape(t) for t in got_hc["test"]] == list(hc.test)


def test_secrets_are_not_in_the_compose_file_itself(tmp_path: Path) -> None:
    export = to_compose(STACK, stack_instances(), PREFIX)
    assert "pa$$ 'w" not in export.yaml() and "'w\"d" not in export.yaml()
    assert export.env == {"SNOOZEQL_DB_POSTGRES_PASSWORD": "pa$$ 'w\"d"}
    env = export.document["services"]["db"]["environment"]
    assert env["POSTGRES_PASSWORD"] == "${SNOOZEQL_DB_POSTGRES_PASSWORD}"
    assert "pa$$" not in ComposeOut.of(export).model_dump_json()
    redacted = to_compose(STACK, stack_instances(), PREFIX, secrets="redact")
    assert redacted.document["services"]["db"]["environment"]["POSTGRES_PASSWORD"] == "***"
    assert redacted.env == {}


def test_revealed_secrets_validate_too(tmp_path: Path) -> None:
    export = to_compose(STACK, stack_instances(), PREFIX, secrets="reveal")
    write_export(export, tmp_path)
    out = compose_config(tmp_path, export)
    got = as_mapping(out["services"]["db"]["environment"])["POSTGRES_PASSWORD"]
    assert unescape(got) == "pa$$ 'w\"d"


def test_every_builtin_template_exports_valid_compose(tmp_path: Path) -> None:
    catalogue = load_builtin_templates()
    instances = [(name, effective(t)) for name, t in catalogue.items()]
    export = to_compose("all-templates", instances, PREFIX)
    write_export(export, tmp_path)
    out = compose_config(tmp_path, export)
    assert set(out["services"]) == set(catalogue)
    assert set(out["volumes"]) == {
        f"{n}_{v.source}" for n, e in instances for v in e.volumes if v.type == "volume"
    }


def test_export_metadata_and_yaml_text() -> None:
    export = to_compose(STACK, stack_instances(), PREFIX)
    assert export.project == "snoozeql-shop"
    assert export.document["x-snoozeql"] == {
        "stack": STACK, "prefix": PREFIX, "project": "snoozeql-shop"
    }
    assert yaml.safe_load(export.yaml()) == export.document
    assert [f.path for f in export.files] == [
        "configs/web/etc/nginx/conf.d/default.conf",
        "configs/web/usr/share/nginx/html/index.html",
    ]


def test_content_style_uses_compose_configs_inline() -> None:
    export = to_compose(STACK, stack_instances(), PREFIX, config_style="content")
    web = export.document["services"]["web"]
    assert export.files == ()
    assert {c["target"]: c["mode"] for c in web["configs"]} == {
        "/etc/nginx/conf.d/default.conf": 0o640,
        "/usr/share/nginx/html/index.html": 0o644,
    }
    source = web["configs"][0]["source"]
    assert export.document["configs"][source]["content"] == "server { listen 80; set $$x 1; }\n"
    assert all(m["type"] != "bind" for m in web.get("volumes", []))


def test_custom_prefix_names_containers() -> None:
    export = to_compose(STACK, stack_instances()[:1], "acme")
    assert export.document["services"]["db"]["container_name"] == "acme-shop-db"


def test_export_refuses_clashes_duplicates_and_long_names() -> None:
    cat = load_builtin_templates()
    pg = effective(cat["postgres"])
    with pytest.raises(ConflictError, match="host port 5432/tcp"):
        to_compose(STACK, [("a", pg), ("b", pg)])
    with pytest.raises(ValidationError, match="used twice"):
        to_compose(STACK, [("a", pg), ("a", pg)])
    with pytest.raises(ValidationError, match="limit is 63"):
        to_compose("s" * 40, [("i" * 20, pg)])
    with pytest.raises(ValidationError, match="reserved"):
        to_compose("all", [("a", pg)])
