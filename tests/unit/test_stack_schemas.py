"""The stacks and templates response models (api/schemas): the JSON each domain value
answers with, secrets masked, without a database."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import pytest

from snoozeql.api.schemas.stacks import (
    EffectiveOut,
    EnvVarOut,
    HealthcheckOut,
    InstanceSecretsOut,
    StackInstanceOut,
    StackInstanceSummaryOut,
    StackOut,
    StackOverrideOut,
)
from snoozeql.api.schemas.templates import TemplateOut
from snoozeql.domain.stacks import EnvVar, Healthcheck, Template, effective, parse_override
from snoozeql.services.stacks.views import (
    InstanceSecrets,
    InstanceView,
    SecretValue,
    StackView,
)
from snoozeql.services.templates import TemplateInfo

T0 = datetime(2026, 12, 2, 4, 17, 5, tzinfo=UTC)
TEMPLATE = Template.from_dict({
    "name": "api", "image": "example/api:1", "command": ["run", "--fast"],
    "environment": {"A": "1", "TOKEN": {"value": "tpl-secret", "secret": True}, "UNSET": None},
    "healthcheck": {"test": "true", "retries": 3},
})


def dump(model: Any) -> Any:
    return model.model_dump(mode="json")


def test_a_secret_env_value_is_masked_and_an_unset_one_stays_null() -> None:
    assert dump(EnvVarOut.model_validate(EnvVar("T", "s3cr3t", secret=True))) == {
        "key": "T", "value": "***", "secret": True}
    assert dump(EnvVarOut.model_validate(EnvVar("T", None, secret=True)))["value"] is None
    assert dump(EnvVarOut.model_validate(EnvVar("P", "plain")))["value"] == "plain"


def test_a_healthcheck_shows_only_the_fields_it_sets() -> None:
    hc = HealthcheckOut.model_validate(Healthcheck(test=("CMD", "true"), retries=0))
    assert dump(hc) == {"test": ["CMD", "true"], "retries": 0}


SAMPLES: dict[str, tuple[Any, Any]] = {
    "ports": (["127.0.0.1:8080:80"], [{"host_ip": "127.0.0.1", "host_port": 8080,
                                       "container_port": 80, "protocol": "tcp"}]),
    "volumes": (["data:/data:ro"], [{"type": "volume", "source": "data", "target": "/data",
                                     "read_only": True}]),
    "env_vars": ([{"key": "S", "value": "s3cr3t", "secret": True}, "P=1"],
                 [{"key": "S", "value": "***", "secret": True},
                  {"key": "P", "value": "1", "secret": False}]),
    "labels": ({"a": "b"}, [{"key": "a", "value": "b"}]),
    "domains": (["app.localhost"], ["app.localhost"]),
    "healthcheck": ({"interval": "5s"}, {"interval": "5s"}),
    "config_files": ([{"target": "/c", "content": "x"}],
                     [{"target": "/c", "content": "x", "mode": "0644"}]),
}


@pytest.mark.parametrize("kind", sorted(SAMPLES))
def test_every_override_kind_answers_with_its_entries(kind: str) -> None:
    given, shown = SAMPLES[kind]
    o = parse_override(kind, {"mode": "replace", "entries": given})
    assert dump(StackOverrideOut.model_validate(o)) == {
        "kind": kind, "mode": "replace", "entries": shown}


def view(**changes: Any) -> InstanceView:
    overrides = (parse_override("env_vars", {"entries": [
        {"key": "S", "value": "s3cr3t", "secret": True}]}),)
    base: dict[str, Any] = dict(
        id=uuid4(), stack="shop", name="web", template="api", description="", enabled=True,
        container_name="snoozeql-shop-web", override_count=1, overrides=overrides,
        created_at=T0, updated_at=T0)
    return InstanceView(**{**base, **changes})


def test_an_instance_answers_with_masked_overrides_and_a_listing_without_them() -> None:
    v = view()
    full = dump(StackInstanceOut.model_validate(v))
    assert "s3cr3t" not in str(full)
    assert full["overrides"][0]["entries"][0]["value"] == "***"
    assert full["created_at"] == "2026-12-02T04:17:05+00:00"
    listed = dump(StackInstanceSummaryOut.model_validate(v))
    assert "overrides" not in listed and listed["id"] == str(v.id)


def test_a_stack_answers_with_nullable_times() -> None:
    s = StackView(uuid4(), "shop", "", 0, T0, T0, None, None)
    out = dump(StackOut.model_validate(s))
    assert out["deleted_at"] is None and out["last_applied_at"] is None
    assert out["updated_at"] == T0.isoformat()


def test_the_effective_service_masks_secrets_and_keeps_provenance() -> None:
    o = parse_override("env_vars", {"entries": {"A": "2"}})
    eff = effective(TEMPLATE, [o])
    out = dump(EffectiveOut.of(view(), eff))
    assert "tpl-secret" not in str(out)
    shown = {e["key"]: e["value"] for e in out["env_vars"]}
    assert shown == {"A": "2", "TOKEN": "***", "UNSET": None}
    assert out["entry_provenance"]["env_vars"]["A"] == "override"
    assert out["command"] == ["run", "--fast"]
    assert out["healthcheck"] == {"test": ["CMD-SHELL", "true"], "retries": 3}


def test_a_template_answers_masked_with_builtin() -> None:
    out = dump(TemplateOut.of(TemplateInfo(TEMPLATE, builtin=False)))
    assert "tpl-secret" not in str(out) and out["builtin"] is False
    assert list(out)[:4] == ["name", "description", "engine", "image"]


def test_the_secrets_answer_is_the_one_that_shows_values() -> None:
    s = InstanceSecrets("shop", "web", "snoozeql-shop-web", "postgres",
                        [SecretValue("S", "s3cr3t", "override")], "pw", "POSTGRES_PASSWORD")
    out = dump(InstanceSecretsOut.model_validate(s))
    assert out["env_vars"] == [{"key": "S", "value": "s3cr3t", "source": "override"}]
    assert out["database_password"] == "pw"
