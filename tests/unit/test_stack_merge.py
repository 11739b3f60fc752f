"""Templates, the seven override kinds and the merge rules, field by field (docs/stacks.md)."""

from __future__ import annotations

from typing import Any

import pytest

from snoozeql.domain.errors import ConflictError, ValidationError
from snoozeql.domain.stacks import (
    Override,
    OverrideKind,
    Template,
    effective,
    find_port_clashes,
    load_builtin_templates,
    override_count,
    parse_override,
    parse_template_yaml,
    raise_on_clashes,
)
from snoozeql.domain.stacks.entries import PortMapping

BASE: dict[str, Any] = {
    "name": "app",
    "image": "example/app:1",
    "environment": {"A": "1", "B": "2", "PASSWORD": {"value": "tpl-secret", "secret": True}},
    "labels": {"tier": "web", "team": "core"},
    "ports": ["127.0.0.1:8080:80/tcp", "9000/udp"],
    "volumes": ["data:/data", "./conf:/etc/app:ro"],
    "healthcheck": {"test": ["CMD", "curl", "-f", "http://localhost"], "interval": "10s",
                    "retries": 3},
    "config_files": [{"target": "/etc/app/app.ini", "content": "a=1\n", "mode": "0644"}],
    "domains": ["app.localhost", "www.localhost"],
}


def tpl(**changes: Any) -> Template:
    return Template.from_dict({**BASE, **changes})


def ov(kind: str, entries: Any, mode: str = "merge") -> Override:
    return parse_override(kind, {"mode": mode, "entries": entries})


# ---------------------------------------------------------------- merge, per kind


def test_no_overrides_gives_the_template_with_template_provenance() -> None:
    eff = effective(tpl())
    assert eff.image == "example/app:1"
    assert [e.key for e in eff.environment] == ["A", "B", "PASSWORD"]
    assert set(eff.provenance.values()) == {"template"}
    assert eff.override_count == 0
    assert eff.entry_provenance[OverrideKind.ENV_VARS] == {
        "A": "template", "B": "template", "PASSWORD": "template"
    }


@pytest.mark.parametrize(
    ("entries", "expected", "prov"),
    [
        # same key: value replaced in place, order kept
        ({"B": "20"}, [("A", "1"), ("B", "20"), ("PASSWORD", "tpl-secret")],
         {"A": "template", "B": "override", "PASSWORD": "template"}),
        # new key: appended
        ({"C": "3"}, [("A", "1"), ("B", "2"), ("PASSWORD", "tpl-secret"), ("C", "3")],
         {"A": "template", "B": "template", "PASSWORD": "template", "C": "override"}),
        # list syntax, empty value and pass-through (None) values
        (["A=", "D"], [("A", ""), ("B", "2"), ("PASSWORD", "tpl-secret"), ("D", None)],
         {"A": "override", "B": "template", "PASSWORD": "template", "D": "override"}),
    ],
)
def test_env_vars_merge_by_key(entries: Any, expected: list[Any], prov: dict[str, str]) -> None:
    eff = effective(tpl(), [ov("env_vars", entries)])
    assert [(e.key, e.value) for e in eff.environment] == expected
    assert eff.entry_provenance[OverrideKind.ENV_VARS] == prov
    assert eff.provenance[OverrideKind.ENV_VARS] == "override"


@pytest.mark.parametrize(
    ("entries", "expected"),
    [
        ({"team": "data"}, {"tier": "web", "team": "data"}),
        ([{"key": "owner", "value": "ana"}], {"tier": "web", "team": "core", "owner": "ana"}),
        ({"tier": 3, "debug": True}, {"tier": "3", "team": "core", "debug": "true"}),
    ],
)
def test_labels_merge_by_key(entries: Any, expected: dict[str, str]) -> None:
    eff = effective(tpl(), [ov("labels", entries)])
    assert {label.key: label.value for label in eff.labels} == expected


@pytest.mark.parametrize(
    ("entries", "expected"),
    [
        # a different host port is a different mapping: both are published
        (["127.0.0.1:8081:80/tcp"],
         ["127.0.0.1:8080:80/tcp", "9000/udp", "127.0.0.1:8081:80/tcp"]),
        # the same (host ip, host port, container port, protocol): not duplicated
        (["127.0.0.1:8080:80"], ["127.0.0.1:8080:80/tcp", "9000/udp"]),
        # same numbers, other protocol: another mapping
        (["127.0.0.1:8080:80/udp"],
         ["127.0.0.1:8080:80/tcp", "9000/udp", "127.0.0.1:8080:80/udp"]),
        # same numbers, other host ip: another mapping
        (["8080:80"], ["127.0.0.1:8080:80/tcp", "9000/udp", "8080:80/tcp"]),
        # long syntax with Compose's names
        ([{"target": 443, "published": 8443, "host_ip": "::1"}],
         ["127.0.0.1:8080:80/tcp", "9000/udp", "[::1]:8443:443/tcp"]),
    ],
)
def test_ports_merge_by_ip_host_container_protocol(entries: Any, expected: list[str]) -> None:
    eff = effective(tpl(), [ov("ports", entries)])
    assert [p.short() for p in eff.ports] == expected


@pytest.mark.parametrize("template_port", ["18700:80", "0.0.0.0:18700:80"])
@pytest.mark.parametrize("override_port", ["0.0.0.0:18700:80", "18700:80/tcp"])
def test_no_host_ip_and_0000_are_one_socket(template_port: str, override_port: str) -> None:
    """Compose reads an address-less port as every IPv4 interface (0.0.0.0): the override
    replaces the template's mapping instead of binding the same socket twice."""
    eff = effective(tpl(ports=[template_port, "9000/udp"]), [ov("ports", [override_port])])
    assert [p.short() for p in eff.ports] == [
        PortMapping.parse(override_port).short(), "9000/udp"]
    assert find_port_clashes([("app", eff.ports)]) == []


@pytest.mark.parametrize(("a", "b"), [("18700:80", "0.0.0.0:18700:80"),
                                      ("[::]:8080:80", "[0:0::0]:8080:80"),
                                      ("[::1]:8080:80", "[0:0:0:0:0:0:0:1]:8080:80/tcp")])
def test_one_socket_written_two_ways_in_one_list_is_refused(a: str, b: str) -> None:
    with pytest.raises(ValidationError, match="listed twice"):
        ov("ports", [a, b])
    with pytest.raises(ValidationError, match="listed twice"):
        tpl(ports=[a, b])


@pytest.mark.parametrize(
    ("entries", "expected"),
    [
        # same target: the override's mount replaces the template's
        (["other:/data"],
         [("volume", "other", "/data", False), ("bind", "./conf", "/etc/app", True)]),
        # target written with a trailing slash is the same target
        (["/srv/data:/data/:ro"],
         [("bind", "/srv/data", "/data", True), ("bind", "./conf", "/etc/app", True)]),
        # new target: appended
        ([{"type": "tmpfs", "target": "/tmp/cache"}],
         [("volume", "data", "/data", False), ("bind", "./conf", "/etc/app", True),
          ("tmpfs", None, "/tmp/cache", False)]),
    ],
)
def test_volumes_merge_by_target(entries: Any, expected: list[Any]) -> None:
    eff = effective(tpl(), [ov("volumes", entries)])
    assert [(v.type, v.source, v.target, v.read_only) for v in eff.volumes] == expected


@pytest.mark.parametrize(
    ("entries", "expected"),
    [
        ([{"target": "/etc/app/app.ini", "content": "a=2\n", "mode": "0600"}],
         [("/etc/app/app.ini", "a=2\n", "0600")]),
        ([{"target": "/etc/app/extra.ini", "content": "b=1\n"}],
         [("/etc/app/app.ini", "a=1\n", "0644"), ("/etc/app/extra.ini", "b=1\n", "0644")]),
        ([{"target": "/etc/app/x.sh", "content": "#!/bin/sh\n", "mode": "755"}],
         [("/etc/app/app.ini", "a=1\n", "0644"), ("/etc/app/x.sh", "#!/bin/sh\n", "0755")]),
    ],
)
def test_config_files_merge_by_target(entries: Any, expected: list[Any]) -> None:
    eff = effective(tpl(), [ov("config_files", entries)])
    assert [(c.target, c.content, c.mode) for c in eff.config_files] == expected


@pytest.mark.parametrize(
    ("entries", "expected"),
    [
        (["api.localhost"], ("app.localhost", "www.localhost", "api.localhost")),
        (["APP.localhost."], ("app.localhost", "www.localhost")),  # already in the set
        ([], ("app.localhost", "www.localhost")),
    ],
)
def test_domains_merge_as_a_set(entries: list[str], expected: tuple[str, ...]) -> None:
    assert effective(tpl(), [ov("domains", entries)]).domains == expected


@pytest.mark.parametrize("pair", [["api.localhost", "API.localhost"],
                                  ["api.localhost", "api.localhost."],
                                  ["Api.Localhost.", "api.localhost"],
                                  ["api.localhost", "api.localhost"]])
def test_one_domain_written_twice_is_refused_not_merged(pair: list[str]) -> None:
    """Duplicates in one override (or template) are refused, as for every other kind;
    names compare lower-cased without the trailing dot."""
    with pytest.raises(ValidationError, match="domain api.localhost is listed twice") as exc:
        ov("domains", pair)
    assert exc.value.message.startswith("domains override: ")
    with pytest.raises(ValidationError, match="domain api.localhost is listed twice"):
        tpl(domains=pair)


@pytest.mark.parametrize(
    ("patch", "expected", "prov"),
    [
        # a field the override sets wins; the others stay
        ({"interval": "30s"},
         {"test": ["CMD", "curl", "-f", "http://localhost"], "interval": "30s", "retries": 3},
         {"test": "template", "interval": "override", "retries": "template"}),
        # test is replaced whole, never merged element by element
        ({"test": ["CMD", "true"]},
         {"test": ["CMD", "true"], "interval": "10s", "retries": 3},
         {"test": "override", "interval": "template", "retries": "template"}),
        # the string form becomes CMD-SHELL
        ({"test": "pg_isready", "timeout": "2s"},
         {"test": ["CMD-SHELL", "pg_isready"], "interval": "10s", "timeout": "2s",
          "retries": 3},
         {"test": "override", "interval": "template", "timeout": "override",
          "retries": "template"}),
        ({"disable": True},
         {"test": ["CMD", "curl", "-f", "http://localhost"], "interval": "10s", "retries": 3,
          "disable": True},
         {"test": "template", "interval": "template", "retries": "template",
          "disable": "override"}),
    ],
)
def test_healthcheck_merges_field_by_field(
    patch: dict[str, Any], expected: dict[str, Any], prov: dict[str, str]
) -> None:
    eff = effective(tpl(), [ov("healthcheck", patch)])
    assert eff.healthcheck is not None
    assert eff.healthcheck.set_values() == expected
    assert eff.entry_provenance[OverrideKind.HEALTHCHECK] == prov


def test_healthcheck_patch_on_a_template_without_one() -> None:
    eff = effective(tpl(healthcheck=None), [ov("healthcheck", {"test": ["CMD", "true"]})])
    assert eff.healthcheck is not None and eff.healthcheck.test == ("CMD", "true")


# ---------------------------------------------------------------- replace mode


@pytest.mark.parametrize(
    ("kind", "entries", "read"),
    [
        ("ports", ["5433:5432"], lambda e: [p.short() for p in e.ports]),
        ("volumes", ["other:/other"], lambda e: [v.target for v in e.volumes]),
        ("env_vars", {"ONLY": "x"}, lambda e: [x.key for x in e.environment]),
        ("labels", {"only": "x"}, lambda e: [x.key for x in e.labels]),
        ("domains", ["only.localhost"], lambda e: list(e.domains)),
        ("config_files", [{"target": "/only", "content": ""}],
         lambda e: [c.target for c in e.config_files]),
        ("healthcheck", {"interval": "1s"},
         lambda e: e.healthcheck.set_values() if e.healthcheck else None),
    ],
)
def test_replace_mode_drops_the_templates_entries(kind: str, entries: Any, read: Any) -> None:
    replaced = effective(tpl(), [ov(kind, entries, mode="replace")])
    expected = {
        "ports": ["5433:5432/tcp"],
        "volumes": ["/other"],
        "env_vars": ["ONLY"],
        "labels": ["only"],
        "domains": ["only.localhost"],
        "config_files": ["/only"],
        "healthcheck": {"interval": "1s"},  # no test, no retries from the template
    }[kind]
    assert read(replaced) == expected
    k = OverrideKind(kind)
    assert replaced.provenance[k] == "replaced"
    assert set(replaced.entry_provenance[k].values()) == {"replaced"}
    # every other kind still comes from the template
    assert {v for kk, v in replaced.provenance.items() if kk is not k} == {"template"}


@pytest.mark.parametrize("kind", [k.value for k in OverrideKind])
def test_empty_replace_removes_every_entry(kind: str) -> None:
    entries: Any = {} if kind == "healthcheck" else []
    eff = effective(tpl(), [ov(kind, entries, mode="replace")])
    value = {
        "ports": eff.ports, "volumes": eff.volumes, "env_vars": eff.environment,
        "labels": eff.labels, "domains": eff.domains, "config_files": eff.config_files,
        "healthcheck": eff.healthcheck,
    }[kind]
    assert not value
    assert eff.override_count == 1


def test_several_kinds_at_once_and_override_count() -> None:
    overrides = [
        ov("env_vars", {"B": "9", "C": "3"}),
        ov("ports", [], mode="replace"),
        ov("healthcheck", {"interval": "1m", "retries": 5}),
        ov("labels", {}),  # an empty merge changes nothing and counts nothing
    ]
    eff = effective(tpl(), overrides)
    assert eff.override_count == 2 + 1 + 2 + 0 == override_count(overrides)
    assert eff.provenance[OverrideKind.ENV_VARS] == "override"
    assert eff.provenance[OverrideKind.PORTS] == "replaced"
    assert eff.provenance[OverrideKind.LABELS] == "template"
    assert eff.ports == ()
    assert eff.healthcheck is not None and eff.healthcheck.retries == 5


def test_overrides_may_be_given_by_kind() -> None:
    o = ov("domains", ["x.localhost"])
    assert effective(tpl(), {OverrideKind.DOMAINS: o}).domains[-1] == "x.localhost"


def test_two_overrides_of_one_kind_are_refused() -> None:
    with pytest.raises(ValidationError, match="two env_vars overrides"):
        effective(tpl(), [ov("env_vars", {"A": "1"}), ov("env_vars", {"B": "1"})])


def test_config_file_on_a_volume_target_is_refused() -> None:
    with pytest.raises(ValidationError, match="also a volume target"):
        effective(tpl(), [ov("config_files", [{"target": "/data", "content": "x"}])])


def test_template_change_reaches_instances_that_did_not_override_it() -> None:
    overrides = [ov("env_vars", {"B": "mine"})]
    before = effective(tpl(), overrides)
    after = effective(tpl(environment={"A": "new", "B": "2"}), overrides)
    assert before.env()["A"] == "1" and after.env()["A"] == "new"
    assert after.env()["B"] == "mine"


# ---------------------------------------------------------------- secrets


def test_secret_env_values_stay_secret_through_the_merge() -> None:
    o = ov("env_vars", [{"key": "TOKEN", "value": "s3cr3t", "secret": True}])
    eff = effective(tpl(), [o])
    assert eff.env()["TOKEN"] == "s3cr3t"  # the runtimes get the real value
    secret = {e.key: e.shown_value() for e in eff.environment if e.secret}
    assert secret == {"TOKEN": "***", "PASSWORD": "***"}


@pytest.mark.parametrize("mode", ["merge", "replace"])
def test_a_key_the_template_marks_secret_stays_secret(mode: str) -> None:
    eff = effective(tpl(), [ov("env_vars", {"PASSWORD": "plain-pw", "OTHER": "x"}, mode)])
    shown = {e.key: e.shown_value() for e in eff.environment}
    assert shown == (
        {"A": "1", "B": "2", "PASSWORD": "***", "OTHER": "x"}
        if mode == "merge"
        else {"PASSWORD": "***", "OTHER": "x"}
    )
    assert eff.env()["PASSWORD"] == "plain-pw"


# ---------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("kind", "entries", "message"),
    [
        ("ports", ["0:80"], "1 to 65535"),
        ("ports", ["8080:70000"], "1 to 65535"),
        ("ports", ["8080:80/sctp"], "tcp or udp"),
        ("ports", ["8000-8010:80"], "range"),
        ("ports", ["300.1.1.1:80:80"], "not an IP address"),
        ("ports", [{"host_port": 80}], "container_port"),
        ("ports", ["80", "80/tcp"], "listed twice"),
        ("volumes", ["data:relative/path"], "absolute path"),
        ("volumes", ["data:/a:rx"], "ro or rw"),
        ("volumes", [{"type": "nfs", "target": "/a"}], "volume type"),
        ("volumes", ["bad name!:/a"], "volume name"),
        ("volumes", ["a:/x", "b:/x/"], "listed twice"),
        ("env_vars", {"1ABC": "x"}, "not valid"),
        ("env_vars", {"A-B": "x"}, "not valid"),
        ("env_vars", {"A": ["x"]}, "string, number or boolean"),
        ("env_vars", [{"key": "A", "value": "1", "secret": "yes"}], "secret must be"),
        ("env_vars", ["A=1", "A=2"], "listed twice"),
        ("labels", {"snoozeql.stack": "x"}, "reserved"),
        ("labels", {"bad key": "x"}, "not valid"),
        ("domains", ["not a host"], "not a valid host name"),
        ("domains", ["-x.localhost"], "not a valid host name"),
        ("config_files", [{"target": "etc/x", "content": ""}], "absolute path"),
        ("config_files", [{"target": "/x", "content": "", "mode": 420}], "octal string"),
        ("config_files", [{"target": "/x", "content": "", "mode": "0999"}], "octal string"),
        ("config_files", [{"target": "/x", "content": "", "mode": "u+rw"}], "octal string"),
        ("config_files", [{"target": "/x"}], "needs content"),
        ("config_files", [{"target": "/x", "content": "", "owner": "me"}], "unknown field"),
        ("healthcheck", {"test": ["RUN", "x"]}, "CMD, CMD-SHELL or NONE"),
        ("healthcheck", {"test": ["CMD"]}, "no command"),
        ("healthcheck", {"interval": "10 seconds"}, "duration"),
        ("healthcheck", {"retries": -1}, "retries"),
        ("healthcheck", {"start_interval": "1s"}, "unknown field"),
    ],
)
def test_invalid_override_entries_are_refused(kind: str, entries: Any, message: str) -> None:
    with pytest.raises(ValidationError) as exc:
        ov(kind, entries)
    assert message in exc.value.message
    assert exc.value.message.startswith(f"{kind} override: ")


@pytest.mark.parametrize(
    ("kind", "data", "message"),
    [
        ("secrets", {}, "unknown override kind"),
        ("ports", {"mode": "append"}, "'merge' or 'replace'"),
        ("ports", {"entries": "80"}, "must be a list"),
        ("ports", {"entries": [], "extra": 1}, "unknown field"),
        ("ports", {"kind": "labels", "entries": []}, "does not match"),
    ],
)
def test_invalid_override_shape_is_refused(kind: str, data: Any, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        parse_override(kind, data)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"image": ""}, "image must be"),
        ({"image": "two words"}, "image must be"),
        ({"name": "My App"}, "try 'my-app'"),
        ({"engine": "Postgres!"}, "not an engine name"),
        ({"restart": "always"}, "unknown field(s) restart"),
        ({"configs": []}, "use config_files"),
        ({"command": 5}, "command must be"),
        ({"ports": "80"}, "ports must be a list"),
        ({"environment": {"1X": "a"}}, "template app: environment variable name"),
    ],
)
def test_invalid_templates_are_refused(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError) as exc:
        tpl(**changes)
    assert message in exc.value.message


def test_template_yaml_uses_safe_load_and_accepts_a_compose_service() -> None:
    text = """
services:
  cache:
    image: redis:7
    ports: ["6379:6379"]
    environment:
      - MODE=dev
"""
    t = parse_template_yaml(text)
    assert t.name == "cache" and t.ports[0].host_port == 6379
    assert t.environment[0].value == "dev"
    with pytest.raises(ValidationError, match="not valid YAML at line"):
        parse_template_yaml("image: [unclosed")
    with pytest.raises(ValidationError):  # python tags are not loaded by safe_load
        parse_template_yaml("name: x\nimage: !!python/object/apply:os.system ['true']")


# ---------------------------------------------------------------- host port clashes


def ports(*specs: str) -> list[PortMapping]:
    return [PortMapping.parse(s) for s in specs]


@pytest.mark.parametrize(
    ("a", "b", "clash"),
    [
        (["8080:80"], ["8080:81"], True),
        (["127.0.0.1:8080:80"], ["8080:80"], True),  # all interfaces includes 127.0.0.1
        (["0.0.0.0:8080:80"], ["127.0.0.2:8080:80"], True),
        (["127.0.0.1:8080:80"], ["127.0.0.2:8080:80"], False),
        (["8080:80/tcp"], ["8080:80/udp"], False),
        (["80"], ["80"], False),  # no host port: Docker picks one
        (["8080:80"], ["8081:80"], False),
    ],
)
def test_host_port_clashes_between_instances(a: list[str], b: list[str], clash: bool) -> None:
    found = find_port_clashes([("one", ports(*a)), ("two", ports(*b))])
    assert bool(found) is clash
    if clash:
        assert found[0].first[0] == "one" and found[0].second[0] == "two"


def test_clash_inside_one_instance_is_found_and_raises_409() -> None:
    eff = effective(tpl(), [ov("ports", ["127.0.0.1:8080:81"])])
    clashes = find_port_clashes([("web", eff.ports)])
    assert len(clashes) == 1 and clashes[0].host_port == 8080
    with pytest.raises(ConflictError) as exc:
        raise_on_clashes([("web", eff.ports)])
    assert exc.value.http_status == 409
    assert "host port 8080/tcp is published by web" in exc.value.message


# ---------------------------------------------------------------- built-in catalogue


def test_builtin_catalogue_has_the_promised_templates() -> None:
    catalogue = load_builtin_templates()
    for name in ("postgres", "mysql", "mariadb", "redis", "mongodb"):
        assert catalogue[name].engine == name
    for name in ("nginx", "adminer", "webapp", "mailpit", "minio"):
        assert catalogue[name].engine is None
    pg = catalogue["postgres"]
    assert {e.key: e.secret for e in pg.environment}["POSTGRES_PASSWORD"] is True
    assert effective(pg).unset_env() == ["POSTGRES_PASSWORD"]
    # the database templates can all run side by side in one stack
    assert not find_port_clashes(
        [(n, effective(t).ports) for n, t in catalogue.items()]
    )
