"""Override rows and template definitions <-> domain values (store/stacks.py), every kind,
without a database."""

from __future__ import annotations

from typing import Any

import pytest

from snoozeql.domain.stacks import Override, OverrideKind, Template, parse_override
from snoozeql.store.stacks import (
    OverrideRow,
    override_data,
    override_entry_rows,
    row_to_override,
    template_definition,
)

SAMPLES: dict[str, tuple[str, Any]] = {
    "ports": ("merge", ["127.0.0.1:8080:80/tcp", "9000/udp"]),
    "volumes": ("replace", ["data:/data", "./conf:/etc/app:ro"]),
    "env_vars": ("merge", [{"key": "A", "value": "1"}, {"key": "B", "value": None}]),
    "labels": ("merge", {"tier": "web", "team": "core"}),
    "domains": ("replace", ["app.localhost", "www.localhost"]),
    "healthcheck": ("merge", {"test": ["CMD", "true"], "interval": "10s", "retries": 3}),
    "config_files": ("merge", [{"target": "/etc/app/app.ini", "content": "a=1\n",
                                "mode": "0644"}]),
}


def _never(key: str) -> str | None:
    raise AssertionError(f"no entry is stored, yet {key!r} was asked for")


def test_every_kind_is_covered() -> None:
    assert set(SAMPLES) == {k.value for k in OverrideKind}


@pytest.mark.parametrize("kind", sorted(SAMPLES))
def test_rows_round_trip_to_the_same_override(kind: str) -> None:
    mode, entries = SAMPLES[kind]
    o = parse_override(kind, {"mode": mode, "entries": entries})
    rows = override_entry_rows(o)
    assert isinstance(rows, list) and all(isinstance(r, dict) for r in rows)
    back = row_to_override(OverrideRow(kind, mode, rows), _never)
    assert back == o
    assert override_data(back) == override_data(o)
    assert override_data(o)["kind"] == kind and override_data(o)["mode"] == mode


def test_healthcheck_and_domains_are_stored_one_row_per_field_or_domain() -> None:
    hc = parse_override("healthcheck", {"mode": "merge", "entries": {"retries": 5}})
    assert override_entry_rows(hc) == [{"field": "retries", "value": 5}]
    dom = parse_override("domains", {"mode": "merge", "entries": ["a.localhost"]})
    assert override_entry_rows(dom) == [{"domain": "a.localhost"}]


def test_a_stored_env_entry_gets_its_value_from_the_callback() -> None:
    rows = [
        {"key": "PLAIN", "value": "x", "secret": False},
        {"key": "TOKEN", "value": None, "secret": True, "stored": True},
        {"key": "GONE", "value": None, "secret": True, "stored": True},
    ]
    asked: list[str] = []

    def stored(key: str) -> str | None:
        asked.append(key)
        return "s3cr3t" if key == "TOKEN" else None

    o = row_to_override(OverrideRow("env_vars", "merge", rows), stored)
    assert isinstance(o, Override) and o.kind is OverrideKind.ENV_VARS
    values = {e.key: (e.value, e.secret) for e in o.entries}  # type: ignore[union-attr]
    assert values == {"PLAIN": ("x", False), "TOKEN": ("s3cr3t", True), "GONE": (None, True)}
    assert asked == ["TOKEN", "GONE"]
    assert rows[1]["stored"] is True  # the caller's rows are left as they were


def test_a_stored_env_key_keeps_no_value_in_its_row() -> None:
    o = parse_override("env_vars", {"entries": [{"key": "T", "value": "s3cr3t", "secret": True},
                                                 {"key": "P", "value": "p"}]})
    assert override_entry_rows(o, stored=["T"]) == [
        {"key": "T", "value": None, "secret": True, "stored": True},
        {"key": "P", "value": "p", "secret": False},
    ]


def test_a_template_round_trips_through_its_stored_definition() -> None:
    t = Template.from_dict({
        "name": "api", "image": "example/api:1", "description": "d", "engine": "postgres",
        "command": ["run", "--fast"],
        "environment": {"A": "1", "T": {"value": "x", "secret": True}},
        "labels": {"a": "b"}, "ports": ["127.0.0.1:80:80"], "volumes": ["v:/v:ro"],
        "healthcheck": {"test": "true", "retries": 2},
        "config_files": [{"target": "/c", "content": "x\n", "mode": "0600"}],
        "domains": ["a.localhost"],
    })
    data = template_definition(t)
    assert data.pop("x-stored-secrets") == []
    assert Template.from_dict(data) == t


def test_a_stored_secret_leaves_the_template_definition() -> None:
    t = Template.from_dict({"name": "api", "image": "i",
                            "environment": {"T": {"value": "s3cr3t", "secret": True}}})
    data = template_definition(t, stored={"T"})
    assert "s3cr3t" not in str(data)
    assert data["environment"] == [{"key": "T", "value": None, "secret": True}]
    assert data["x-stored-secrets"] == ["T"]
