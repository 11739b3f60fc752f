"""The engine catalogue and the validation of what a user asks for (pure)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from snoozeql.domain.engines import (
    CATALOGUE,
    Engine,
    LocalDatabaseSpec,
    NativePasswordPlacement,
    Runtime,
    connection_url,
    parse_engine,
    validate_name,
    validate_port,
    version_matches,
)
from snoozeql.domain.errors import ValidationError


def test_catalogue_covers_every_engine_with_its_facts() -> None:
    assert set(CATALOGUE) == set(Engine)
    pg, my, maria, redis, mongo = (CATALOGUE[e] for e in Engine)
    assert (pg.default_port, my.default_port, redis.default_port, mongo.default_port) == (
        5432,
        3306,
        6379,
        27017,
    )
    assert pg.container_data_path == "/var/lib/postgresql/data"
    assert maria.container_data_path == "/var/lib/mysql"
    assert redis.container_data_path == "/data"
    assert mongo.container_data_path == "/data/db"
    assert (pg.debian_package, maria.debian_package, redis.debian_package) == (
        "postgresql",
        "mariadb-server",
        "redis-server",
    )
    assert mongo.debian_package is None
    assert pg.native_password is NativePasswordPlacement.INITDB_PWFILE
    assert maria.native_password is NativePasswordPlacement.INIT_SQL
    assert redis.native_password is NativePasswordPlacement.CONFIG_REQUIREPASS
    for info in CATALOGUE.values():
        assert info.default_tag in info.supported_versions


@pytest.mark.parametrize("name", ["pg1", "a", "my-db-2", "x" * 63])
def test_valid_names(name: str) -> None:
    assert validate_name(name) == name


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("", "required"),
        ("PG1", "DNS label"),
        ("-pg", "DNS label"),
        ("pg-", "DNS label"),
        ("pg_1", "DNS label"),
        ("pg.1", "DNS label"),
        ("x" * 64, "too long"),
    ],
)
def test_invalid_names_are_refused_with_reason(name: str, words: str) -> None:
    with pytest.raises(ValidationError, match=words):
        validate_name(name)


@given(st.from_regex(r"\A[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?\Z"))
def test_every_dns_label_is_accepted(name: str) -> None:
    assert validate_name(name) == name


@given(
    st.text(min_size=1, max_size=20).filter(lambda s: any(c.isupper() or c in "_ ./" for c in s))
)
def test_names_with_forbidden_characters_are_refused(name: str) -> None:
    with pytest.raises(ValidationError):
        validate_name(name)


def test_engine_words_and_aliases() -> None:
    assert parse_engine("PostgreSQL") is Engine.POSTGRES
    assert parse_engine("mongo") is Engine.MONGODB
    with pytest.raises(ValidationError, match="choose one of postgres, mysql, mariadb"):
        parse_engine("oracle")


@pytest.mark.parametrize("port", [0, 80, 1023, 65536, -1])
def test_ports_outside_1024_65535_are_refused(port: int) -> None:
    with pytest.raises(ValidationError, match="from 1024 to 65535"):
        validate_port(port)


def test_port_bounds_and_type() -> None:
    assert validate_port(1024) == 1024 and validate_port(65535) == 65535
    with pytest.raises(ValidationError, match="whole number"):
        validate_port("5432")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="whole number"):
        validate_port(True)


def test_version_matching_is_by_release_prefix() -> None:
    assert version_matches("15", "15.20")
    assert version_matches("10.11", "10.11.19")
    assert not version_matches("1", "15.2")
    assert not version_matches("10.1", "10.11.19")


def test_native_spec_keeps_the_version_open_and_refuses_images() -> None:
    spec = LocalDatabaseSpec.build(name="pg1", engine="postgres", port=55432)
    assert (spec.runtime, spec.version, spec.image, spec.tag) == (
        Runtime.NATIVE,
        None,
        None,
        None,
    )
    with pytest.raises(ValidationError, match="docker runtime only"):
        LocalDatabaseSpec.build(name="pg1", engine="postgres", port=55432, image="postgres")
    with pytest.raises(ValidationError, match="version number"):
        LocalDatabaseSpec.build(name="pg1", engine="postgres", port=55432, version="latest")


def test_docker_spec_fills_image_and_tag_from_the_catalogue() -> None:
    spec = LocalDatabaseSpec.build(name="r1", engine="redis", port=16379, runtime="docker")
    assert (spec.image, spec.tag) == ("redis", "7.2")
    spec = LocalDatabaseSpec.build(
        name="p1", engine="postgres", port=15432, runtime="docker", version="15"
    )
    assert (spec.image, spec.tag, spec.version) == ("postgres", "15", "15")
    spec = LocalDatabaseSpec.build(
        name="p2", engine="postgres", port=15432, runtime="docker", image="ghcr.io/x/pg", tag="v1"
    )
    assert (spec.image, spec.tag) == ("ghcr.io/x/pg", "v1")


def test_docker_spec_refuses_unsupported_versions_listing_supported_ones() -> None:
    with pytest.raises(ValidationError, match="choose one of 12, 13, 14, 15, 16, 17"):
        LocalDatabaseSpec.build(
            name="p1", engine="postgres", port=15432, runtime="docker", version="9"
        )
    with pytest.raises(ValidationError, match="'native' or 'docker'"):
        LocalDatabaseSpec.build(name="p1", engine="postgres", port=15432, runtime="vm")
    with pytest.raises(ValidationError, match="not a valid image tag"):
        LocalDatabaseSpec.build(
            name="p1", engine="postgres", port=15432, runtime="docker", tag="bad tag"
        )


def test_connection_urls_percent_encode_the_password() -> None:
    assert (
        connection_url("postgres", 5433, "p@ss/w:rd")
        == "postgresql://postgres:p%40ss%2Fw%3Ard@127.0.0.1:5433/postgres"
    )
    assert connection_url("redis", 6380, "pw") == "redis://default:pw@127.0.0.1:6380/0"
    assert connection_url("mariadb", 3307, "pw") == "mysql://root:pw@127.0.0.1:3307/"
    assert (
        connection_url("mongodb", 27018, "pw")
        == "mongodb://root:pw@127.0.0.1:27018/?authSource=admin"
    )
