"""The provider registry: every plugin resolves, its flags say what services used to
derive from the provider's name, and an unknown provider is a clear ValidationError."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import pytest

from snoozeql.config import Settings
from snoozeql.domain.errors import ProviderError, ValidationError
from snoozeql.domain.types import Account, ProviderKind
from snoozeql.providers import registry
from snoozeql.providers.base import ConfigField, Measured, ProviderPlugin
from snoozeql.services.accounts import cloud_providers, normalize_config, setting_names


def _settings(tmp_path: Path, **kw: Any) -> Settings:
    return Settings(data_dir=tmp_path, **kw)


def _account(provider: str, config: dict[str, Any]) -> Account:
    from uuid import uuid4

    return Account(id=uuid4(), name="a1", provider=ProviderKind(provider), config=config)


@pytest.mark.parametrize("name", registry.names())
def test_every_registered_plugin_resolves(name: str) -> None:
    plugin = registry.plugin(name)
    assert isinstance(plugin, ProviderPlugin)
    assert plugin.name == name
    assert ProviderKind(name).value == name  # Account.provider holds the enum
    driver = registry.load(plugin.driver)
    assert inspect.isclass(driver)
    for verb in ("discover", "start", "stop", "restart", "status"):
        assert callable(getattr(driver, verb)), (name, verb)
    if plugin.metrics is not None:
        collector = registry.load(plugin.metrics)
        assert callable(collector.collect)
        assert callable(getattr(collector, "history", None)) == plugin.metric_history
    if plugin.pricing is not None:
        assert callable(registry.load(plugin.pricing))
    schema = registry.config_schema(name)
    assert (schema is None) == (plugin.config is None)
    if schema is not None:
        assert all(isinstance(f, ConfigField) for f in schema.fields)
        assert schema.scope_key in {None, *(f.name for f in schema.fields if f.many)}


def test_every_provider_name_but_external_has_a_plugin() -> None:
    assert {k.value for k in ProviderKind} - set(registry.names()) == {"external"}
    assert registry.find(ProviderKind.EXTERNAL) is None
    assert registry.find("azure") is None


def test_the_flags_services_ask_for() -> None:
    assert registry.cloud_names() == ["aws", "gcp"]
    assert [p.name for p in registry.plugins() if p.simulated] == ["demo-aws", "demo-gcp"]
    assert [p.name for p in registry.plugins() if p.metric_history] == ["aws", "gcp"]
    assert [p.name for p in registry.plugins() if p.process_cpu] == ["local"]
    assert [n for n in registry.names() if registry.measured_on_host(n)] == ["local", "docker"]
    assert not registry.measured_on_host(ProviderKind.EXTERNAL)
    assert registry.plugin("aws").measured is Measured.PER_ACCOUNT
    assert registry.secret_config_keys() == ("external_id",)
    scope_keys = {n: (s.scope_key if (s := registry.config_schema(n)) else "-")
                  for n in registry.names()}
    assert scope_keys == {"aws": "regions", "gcp": "projects", "demo-aws": None,
                          "demo-gcp": None, "local": "-", "docker": "-"}


def test_an_unknown_provider_is_a_clear_validation_error(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match=r"unknown provider 'azure'; use one of: aws, gcp"):
        registry.plugin("azure")
    with pytest.raises(ValidationError, match="'external' has no plugin"):
        registry.plugin(ProviderKind.EXTERNAL)
    providers = registry.ProviderRegistry(_settings(tmp_path))
    with pytest.raises(ValidationError, match="'external' has no plugin"):
        providers.get(ProviderKind.EXTERNAL)
    with pytest.raises(ValidationError, match="no cloud metrics collector for local"):
        providers.metrics_collector("local")
    with pytest.raises(ValidationError, match="aws is not measured on this host"):
        providers.host_collector("aws")


def test_local_and_docker_share_one_host_collector(tmp_path: Path) -> None:
    providers = registry.ProviderRegistry(_settings(tmp_path))
    assert providers.host_collector("local") is providers.host_collector("docker")


def test_price_sources_follow_the_plugins_and_the_settings(tmp_path: Path) -> None:
    off = registry.ProviderRegistry(_settings(tmp_path, aws_price_list=False))
    on = registry.ProviderRegistry(_settings(tmp_path, aws_price_list=True))
    assert off.price_source("aws") is None
    assert on.price_source("aws") is not None
    assert on.price_source("gcp") is None and on.price_source("local") is None
    assert on.price_source("external") is None
    demo = on.price_source("demo-aws")
    assert demo is not None
    price = demo.hourly_usd(_account("demo-aws", {}),
                            ("demo-aws", "db.t3.micro", "postgres", "us-east-1", "multi-az"))
    assert price is not None and price > 0


def test_account_settings_are_checked_by_the_plugin(tmp_path: Path) -> None:
    s = _settings(tmp_path, allowed_endpoints=["127.0.0.1"])
    assert normalize_config("aws", {"regions": "eu-west-1, us-east-1",
                                    "endpoint_url": "http://127.0.0.1:5000"}, s) == {
        "regions": ["eu-west-1", "us-east-1"], "endpoint_url": "http://127.0.0.1:5000"}
    with pytest.raises(ValidationError, match=r"unknown setting\(s\) projects; allowed: "
                                              r"endpoint_url, external_id, profile"):
        normalize_config("aws", {"regions": "eu-west-1", "projects": "p1"}, s)
    with pytest.raises(ValidationError, match="only makes sense with --role-arn"):
        normalize_config("aws", {"regions": "eu-west-1", "external_id": "x"}, s)
    assert normalize_config("gcp", {"projects": "proj-one,proj-two", "regions": ""}, s) == {
        "projects": ["proj-one", "proj-two"]}
    with pytest.raises(ValidationError, match="at least one project"):
        normalize_config("gcp", {}, s)
    with pytest.raises(ValidationError, match=r"accounts are for cloud providers \(aws, gcp\)"):
        normalize_config("local", {}, s)
    with pytest.raises(ValidationError, match=r"accounts are for cloud providers"):
        normalize_config(ProviderKind.EXTERNAL, {}, s)


def test_the_settings_the_account_forms_take() -> None:
    assert cloud_providers() == ["aws", "gcp"]
    assert setting_names("aws") == {"regions", "profile", "role_arn", "external_id",
                                    "endpoint_url"}
    assert setting_names(ProviderKind.GCP) == {"projects", "credentials_file", "api_endpoint"}
    assert setting_names("demo-aws") == {"regions", "instances", "seed", "transition_seconds"}
    assert setting_names("local") == set() == setting_names(ProviderKind.EXTERNAL)


def test_scopes_come_from_the_schema() -> None:
    aws = registry.config_schema("aws")
    gcp = registry.config_schema("gcp")
    assert aws is not None and gcp is not None
    assert aws.scopes(_account("aws", {"regions": ["eu-west-1", "eu-west-1", "us-east-1"]})) \
        == ["eu-west-1", "us-east-1"]
    assert gcp.scopes(_account("gcp", {"projects": "p1, p2"})) == ["p1", "p2"]
    with pytest.raises(ProviderError, match="no regions configured"):
        aws.scopes(_account("aws", {}))


class _FakeSchema:
    fields = (ConfigField("zones", "comma-separated zones", required=True, many=True),)
    scope_key = "zones"

    def normalize(self, raw: dict[str, Any], settings: Settings) -> dict[str, Any]:
        return {"zones": sorted(str(raw.get("zones", "")).split(","))}

    def scopes(self, account: Account) -> list[str]:
        return list(account.config["zones"])


FAKE_SCHEMA = _FakeSchema()


def test_a_new_provider_is_one_registry_line(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """A plugin registered under a new name is what the account service checks with."""
    plugin = ProviderPlugin(name="fake", driver="snoozeql.providers.demo.driver:DemoAwsProvider",
                            config=f"{__name__}:FAKE_SCHEMA", cloud=True)
    monkeypatch.setitem(registry.PLUGINS, "fake", plugin)
    assert registry.plugin("fake") is plugin
    assert registry.cloud_names() == ["aws", "gcp", "fake"]
    assert normalize_config("fake", {"zones": "b,a"}, _settings(tmp_path)) == {
        "zones": ["a", "b"]}
