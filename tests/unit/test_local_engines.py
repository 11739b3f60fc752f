"""The engine registry and each engine module's pure parts: native command lines and
config files, the Docker command line and environment (no server is started)."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from snoozeql.domain.engines import CATALOGUE, Engine, version_matches
from snoozeql.domain.errors import ValidationError
from snoozeql.providers.local import engines
from snoozeql.providers.local.base import InstanceLayout, ServerBinaries
from snoozeql.providers.local.engines import mysql, postgres, redis

LAYOUT = InstanceLayout(Path("/srv/snoozeql/instances/db1"))


def _bins(server: str, **tools: str) -> ServerBinaries:
    return ServerBinaries("1.2.3", Path(server), {k: Path(v) for k, v in tools.items()})


def test_every_catalogue_engine_has_a_module_that_knows_its_facts() -> None:
    assert set(engines.ENGINES) == set(Engine)
    for name, module in engines.ENGINES.items():
        assert module.info is CATALOGUE[name]


@pytest.mark.parametrize(
    ("word", "engine"),
    [("postgres", Engine.POSTGRES), ("pg", Engine.POSTGRES), ("PostgreSQL", Engine.POSTGRES),
     ("mysql", Engine.MYSQL), ("mariadb", Engine.MARIADB), ("redis", Engine.REDIS),
     ("mongo", Engine.MONGODB), (Engine.MONGODB, Engine.MONGODB)],
)
def test_the_registry_finds_an_engine_by_name_or_alias(word: str, engine: Engine) -> None:
    assert engines.get(word).info.engine is engine


def test_an_unknown_engine_is_refused_naming_the_known_ones() -> None:
    with pytest.raises(ValidationError, match="unknown engine 'oracle'") as info:
        engines.get("oracle")
    assert all(e.value in info.value.message for e in Engine)


@pytest.mark.parametrize(
    ("engine", "expected"),
    [
        (Engine.POSTGRES, {"POSTGRES_PASSWORD": "pw"}),
        (Engine.MYSQL, {"MYSQL_ROOT_PASSWORD": "pw"}),
        (Engine.MARIADB, {"MARIADB_ROOT_PASSWORD": "pw"}),
        (
            Engine.MONGODB,
            {"MONGO_INITDB_ROOT_USERNAME": "root", "MONGO_INITDB_ROOT_PASSWORD": "pw"},
        ),
        (Engine.REDIS, {}),
    ],
)
def test_docker_password_goes_where_the_official_image_reads_it(
    engine: Engine, expected: dict[str, str]
) -> None:
    assert engines.get(engine).docker_environment("pw") == expected


@pytest.mark.parametrize(
    ("engine", "expected"),
    [
        (Engine.POSTGRES, ["-c", "listen_addresses=127.0.0.1", "-p", "15432"]),
        (Engine.MYSQL, ["--port=15432", "--bind-address=127.0.0.1"]),
        (Engine.MARIADB, ["--port=15432", "--bind-address=127.0.0.1"]),
        (Engine.REDIS, ["--port", "15432", "--bind", "127.0.0.1", "--requirepass", "pw"]),
        (Engine.MONGODB, ["--port", "15432", "--bind_ip", "127.0.0.1"]),
    ],
)
def test_docker_command_binds_loopback_on_the_port_and_only_redis_gets_the_password(
    engine: Engine, expected: list[str]
) -> None:
    assert engines.get(engine).docker_command(15432, "pw") == expected


def test_native_command_lines() -> None:
    root = "/srv/snoozeql/instances/db1"
    pg = engines.get("postgres").argv(
        LAYOUT, _bins("/usr/lib/postgresql/16/bin/postgres"), 15432)
    assert pg == ["/usr/lib/postgresql/16/bin/postgres", "-D", f"{root}/data"]
    maria = engines.get("mariadb").argv(LAYOUT, _bins("/usr/sbin/mariadbd"), 13306)
    assert maria == ["/usr/sbin/mariadbd", f"--defaults-file={root}/config/my.cnf"]
    assert engines.get("redis").argv(LAYOUT, _bins("/usr/bin/redis-server"), 16379) == [
        "/usr/bin/redis-server", f"{root}/config/redis.conf"]
    mongo = engines.get("mongodb").argv(LAYOUT, _bins("/usr/bin/mongod"), 27018)
    assert mongo == ["/usr/bin/mongod", "--dbpath", f"{root}/data", "--port", "27018",
                     "--bind_ip", "127.0.0.1", "--auth", "--nounixsocket"]


def test_postgres_initdb_and_settings() -> None:
    argv = postgres.initdb_argv(Path("/pg/initdb"), Path("/d"), "postgres", Path("/c/.pwfile"))
    assert argv[:5] == ["/pg/initdb", "-D", "/d", "-U", "postgres"]
    assert {"--pwfile=/c/.pwfile", "--auth=scram-sha-256", "--no-sync"} <= set(argv)
    durable = postgres.server_settings(15432, durable=True)
    assert "port = 15432" in durable and "listen_addresses = '127.0.0.1'" in durable
    assert "unix_socket_directories = ''" in durable
    assert not any(s.startswith("fsync") for s in durable)
    assert "fsync = off" in postgres.server_settings(15432, durable=False)


def test_mariadb_config_has_no_password_and_the_sql_quotes_it() -> None:
    cnf = mysql.my_cnf(LAYOUT, 13306, durable=False)
    assert "port = 13306" in cnf and "bind-address = 127.0.0.1" in cnf
    assert "innodb_doublewrite = 0" in cnf
    assert "innodb_doublewrite" not in mysql.my_cnf(LAYOUT, 13306, durable=True)
    sql = mysql.password_sql("it's\\x")
    assert "IDENTIFIED BY 'it\\'s\\\\x'" in sql
    assert "'root'@'127.0.0.1'" in sql


def test_a_long_data_dir_gets_a_short_mysql_socket() -> None:
    assert mysql.socket_path(LAYOUT) == LAYOUT.run / "mysqld.sock"
    deep = InstanceLayout(Path("/" + "d" * 120) / "db1")
    short = mysql.socket_path(deep)
    assert len(str(short)) < 100 and short.name.startswith("snoozeql-mysqld-")
    assert short == mysql.socket_path(deep)  # the same instance keeps the same socket


def test_redis_config_holds_the_password_quoted() -> None:
    conf = redis.redis_conf(LAYOUT, 16379, 'p"w', durable=False)
    assert 'requirepass "p\\"w"' in conf.splitlines()
    assert "port 16379" in conf and "bind 127.0.0.1" in conf and 'save ""' in conf
    assert "save 3600 1 300 100 60 10000" in redis.redis_conf(LAYOUT, 1, "pw", durable=True)


def test_resp_commands_are_length_prefixed() -> None:
    assert redis.resp_command("AUTH", "pä") == b"*2\r\n$4\r\nAUTH\r\n$3\r\np\xc3\xa4\r\n"


def test_native_process_facts_differ_per_engine_module() -> None:
    pg = engines.get("postgres")
    assert pg.stop_signal is signal.SIGINT and pg.notifies_ready
    for name in ("mysql", "mariadb", "redis", "mongodb"):
        assert engines.get(name).stop_signal is signal.SIGTERM
        assert not engines.get(name).notifies_ready
    assert engines.get("mariadb").service_users == ("mysql", "nobody")
    assert engines.get("postgres").service_users == ("postgres", "nobody")
    assert engines.get("mongodb").service_users == ("mongodb", "nobody")


def test_installed_versions_match_per_engine() -> None:
    # PostgreSQL minor releases share a data format: 16 serves 16.4 and 16.4 serves 16.9.
    assert engines.get("postgres").matches("16.4", "16.9")
    assert not engines.get("postgres").matches("15", "16.1")
    assert engines.get("redis").matches("7.2", "7.2.4") == version_matches("7.2", "7.2.4")
    assert not engines.get("mariadb").matches("10.11", "11.4.2")


def test_only_the_local_and_docker_providers_have_a_runtime(tmp_path: Path) -> None:
    from snoozeql.config import Settings
    from snoozeql.providers.local.native import NativeRuntime
    from snoozeql.providers.local.provider import LocalProvider, runtime_of

    settings = Settings(data_dir=tmp_path)
    runtime = NativeRuntime(settings)
    assert runtime_of(LocalProvider(settings, runtime=runtime)) is runtime
    with pytest.raises(ValidationError, match="runs no local databases"):
        runtime_of(object())
