"""The engine catalogue for local databases, and validation of what a user asks for.

Every fact that differs between PostgreSQL, MySQL, MariaDB, Redis and MongoDB and that
validation or the stacks need (default port, where the data lives in a container, which
variables of the official image take the password, which image and which Debian
package, the connection URL's form) is written down here once. Pure: no I/O. What an
engine *does* (native setup, command lines, readiness probe, connection count) is its
module's, ``providers/local/engines/<engine>.py``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum
from urllib.parse import quote

from snoozeql.domain.errors import ValidationError
from snoozeql.domain.types import ActionOutcome, InstanceStatus, ProviderKind


class Engine(StrEnum):
    POSTGRES = "postgres"
    MYSQL = "mysql"
    MARIADB = "mariadb"
    REDIS = "redis"
    MONGODB = "mongodb"


class Runtime(StrEnum):
    """How a local database runs: a server process on this machine, or a container."""

    NATIVE = "native"
    DOCKER = "docker"

    @property
    def provider(self) -> ProviderKind:
        """The inventory provider of a database run this way."""
        return ProviderKind.DOCKER if self is Runtime.DOCKER else ProviderKind.LOCAL

    @classmethod
    def of(cls, provider: ProviderKind) -> Runtime:
        """How a local database of ``provider`` (local or docker) runs."""
        return cls.DOCKER if provider is ProviderKind.DOCKER else cls.NATIVE


class NativePasswordPlacement(StrEnum):
    """Where the password goes when the engine runs from the machine's binaries."""

    INITDB_PWFILE = "initdb --pwfile"
    INIT_SQL = "init SQL step"
    CONFIG_REQUIREPASS = "requirepass line in the config file"
    CREATE_USER_COMMAND = "createUser command on first start"


@dataclass(frozen=True)
class EngineInfo:
    """Everything the runtimes need to know about one engine.

    ``docker_password_env`` lists the environment variables of the official image that
    receive the password. ``template_password_env`` names the variable a stack template
    uses for the password of an image that reads none (Redis: ``REDIS_PASSWORD``, handed
    to ``--requirepass`` by the template's command). ``url_path`` follows the port in a
    connection URL's ``/`` (a database, or MongoDB's ``?authSource=admin``).
    """

    engine: Engine
    display_name: str
    default_port: int
    default_user: str
    container_data_path: str
    default_image: str
    default_tag: str
    supported_versions: tuple[str, ...]
    native_password: NativePasswordPlacement
    debian_package: str | None
    url_scheme: str
    url_path: str
    docker_password_env: tuple[str, ...] = ()
    aliases: tuple[str, ...] = field(default=())
    template_password_env: tuple[str, ...] = ()


CATALOGUE: dict[Engine, EngineInfo] = {
    Engine.POSTGRES: EngineInfo(
        engine=Engine.POSTGRES,
        display_name="PostgreSQL",
        default_port=5432,
        default_user="postgres",
        container_data_path="/var/lib/postgresql/data",
        default_image="postgres",
        default_tag="16",
        supported_versions=("12", "13", "14", "15", "16", "17"),
        native_password=NativePasswordPlacement.INITDB_PWFILE,
        debian_package="postgresql",
        url_scheme="postgresql",
        url_path="postgres",
        docker_password_env=("POSTGRES_PASSWORD",),
        aliases=("postgresql", "pg"),
    ),
    Engine.MYSQL: EngineInfo(
        engine=Engine.MYSQL,
        display_name="MySQL",
        default_port=3306,
        default_user="root",
        container_data_path="/var/lib/mysql",
        default_image="mysql",
        default_tag="8.4",
        # Natively, Debian ships MariaDB as mysqld: the installed version counts there.
        supported_versions=("5.7", "8.0", "8.4", "9"),
        native_password=NativePasswordPlacement.INIT_SQL,
        debian_package="mariadb-server",
        url_scheme="mysql",
        url_path="",
        docker_password_env=("MYSQL_ROOT_PASSWORD",),
    ),
    Engine.MARIADB: EngineInfo(
        engine=Engine.MARIADB,
        display_name="MariaDB",
        default_port=3306,
        default_user="root",
        container_data_path="/var/lib/mysql",
        default_image="mariadb",
        default_tag="11.4",
        supported_versions=("10.5", "10.6", "10.11", "11.4", "11.8"),
        native_password=NativePasswordPlacement.INIT_SQL,
        debian_package="mariadb-server",
        url_scheme="mysql",
        url_path="",
        docker_password_env=("MARIADB_ROOT_PASSWORD",),
    ),
    Engine.REDIS: EngineInfo(
        engine=Engine.REDIS,
        display_name="Redis",
        default_port=6379,
        default_user="default",
        container_data_path="/data",
        default_image="redis",
        default_tag="7.2",
        supported_versions=("6.2", "7.0", "7.2", "7.4"),
        native_password=NativePasswordPlacement.CONFIG_REQUIREPASS,
        debian_package="redis-server",
        url_scheme="redis",
        url_path="0",
        template_password_env=("REDIS_PASSWORD",),
    ),
    Engine.MONGODB: EngineInfo(
        engine=Engine.MONGODB,
        display_name="MongoDB",
        default_port=27017,
        default_user="root",
        container_data_path="/data/db",
        default_image="mongo",
        default_tag="7.0",
        supported_versions=("5.0", "6.0", "7.0", "8.0"),
        native_password=NativePasswordPlacement.CREATE_USER_COMMAND,
        debian_package=None,
        url_scheme="mongodb",
        url_path="?authSource=admin",
        docker_password_env=("MONGO_INITDB_ROOT_PASSWORD",),
        aliases=("mongo",),
    ),
}

_DNS_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_VERSION = re.compile(r"^\d+(\.\d+){0,2}$")
_IMAGE = re.compile(r"^[a-z0-9]+([._/:-][a-z0-9]+)*$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
MIN_PORT = 1024
MAX_PORT = 65535


def engine_names() -> list[str]:
    return [e.value for e in Engine]


def validate_name(name: str) -> str:
    """A name ends up in a container name and a directory name: it must be a DNS label."""
    if not isinstance(name, str) or not name:
        raise ValidationError("name is required")
    if len(name) > 63:
        raise ValidationError(f"name {name!r} is too long: at most 63 characters")
    if not _DNS_LABEL.match(name):
        raise ValidationError(
            f"name {name!r} is not a DNS label: use lower-case letters, digits and '-', "
            "starting and ending with a letter or digit"
        )
    return name


def parse_engine(engine: str | Engine) -> Engine:
    """The engine for a user's word, accepting common aliases (``postgresql``, ``mongo``)."""
    word = str(engine).strip().lower()
    for info in CATALOGUE.values():
        if word == info.engine.value or word in info.aliases:
            return info.engine
    raise ValidationError(
        f"unknown engine {str(engine)!r}: choose one of {', '.join(engine_names())}"
    )


def engine_info(engine: str | Engine) -> EngineInfo:
    return CATALOGUE[parse_engine(engine)]


def parse_runtime(runtime: str | Runtime) -> Runtime:
    word = str(runtime).strip().lower()
    try:
        return Runtime(word)
    except ValueError:
        raise ValidationError(
            f"unknown runtime {str(runtime)!r}: choose 'native' or 'docker'"
        ) from None


def validate_port(port: int) -> int:
    if isinstance(port, bool) or not isinstance(port, int):
        raise ValidationError(f"port must be a whole number, not {port!r}")
    if not MIN_PORT <= port <= MAX_PORT:
        raise ValidationError(
            f"port {port} is out of range: choose a port from {MIN_PORT} to {MAX_PORT}"
        )
    return port


def version_matches(requested: str, available: str) -> bool:
    """True when ``available`` is ``requested`` or a more precise release of it.

    ``15`` matches ``15`` and ``15.4``; ``10.11`` matches ``10.11.19``; ``1`` does not
    match ``15``.
    """
    return available == requested or available.startswith(requested + ".")


def validate_version(engine: str | Engine, version: str, runtime: Runtime) -> str:
    """Check a version's form; for Docker's default image also that we support it.

    Natively the version is whatever the machine has installed, which the native
    runtime checks; here only the form is checked.
    """
    info = engine_info(engine)
    version = str(version).strip()
    if not _VERSION.match(version):
        raise ValidationError(
            f"version {version!r} is not a version number like {info.supported_versions[-1]!r}"
        )
    if runtime is Runtime.DOCKER and not any(
        version_matches(v, version) or version_matches(version, v) for v in info.supported_versions
    ):
        raise ValidationError(
            f"{info.display_name} version {version} is not supported: choose one of "
            f"{', '.join(info.supported_versions)}"
        )
    return version


@dataclass(frozen=True)
class LocalDatabaseSpec:
    """What a user asked for, validated. Build it with :meth:`build`.

    ``version`` is ``None`` natively when the user did not ask for one (the installed
    version is used). For Docker, ``image`` and ``tag`` are always filled in.
    """

    name: str
    engine: Engine
    version: str | None
    port: int
    runtime: Runtime = Runtime.NATIVE
    image: str | None = None
    tag: str | None = None

    @property
    def info(self) -> EngineInfo:
        return CATALOGUE[self.engine]

    @classmethod
    def build(
        cls,
        *,
        name: str,
        engine: str | Engine,
        port: int,
        version: str | None = None,
        runtime: str | Runtime = Runtime.NATIVE,
        image: str | None = None,
        tag: str | None = None,
    ) -> LocalDatabaseSpec:
        """Validate every field and fill in the catalogue's defaults."""
        validate_name(name)
        eng = parse_engine(engine)
        rt = parse_runtime(runtime)
        validate_port(port)
        info = CATALOGUE[eng]
        if rt is Runtime.NATIVE:
            if image or tag:
                raise ValidationError(
                    "image and tag apply to the docker runtime only; natively the "
                    "installed server binaries are used"
                )
            if version is not None:
                version = validate_version(eng, version, rt)
            return cls(name=name, engine=eng, version=version, port=port, runtime=rt)
        if image is not None and not _IMAGE.match(image):
            raise ValidationError(f"image {image!r} is not a valid image name")
        if tag is not None and not _TAG.match(tag):
            raise ValidationError(f"tag {tag!r} is not a valid image tag")
        if image is None or image == info.default_image:
            image = info.default_image
            if version is not None:
                version = validate_version(eng, version, rt)
            if tag is None:
                tag = version or info.default_tag
            elif version is None and _VERSION.match(tag):
                version = tag
        elif tag is None:
            tag = version or "latest"
        return cls(
            name=name, engine=eng, version=version, port=port, runtime=rt, image=image, tag=tag
        )


@dataclass(frozen=True)
class RuntimeState:
    """A measured snapshot of one local database, as both runtimes report it.

    ``detail`` says why the status is what it is (never holds a secret);
    ``log_tail`` holds the last log lines when something went wrong.
    """

    name: str
    engine: Engine
    version: str | None
    runtime: Runtime
    port: int
    status: InstanceStatus
    host: str = "127.0.0.1"
    detail: str | None = None
    pid: int | None = None
    container_id: str | None = None
    process_alive: bool = False
    port_open: bool = False
    probe_ok: bool | None = None
    log_tail: tuple[str, ...] = ()
    location: str | None = None

    def outcome(self) -> ActionOutcome:
        """The provider-level outcome for the action log."""
        return ActionOutcome(status=self.status, raw_status=self.detail, message=self.detail)


def connection_url(engine: str | Engine, port: int, password: str, host: str = "127.0.0.1") -> str:
    """A client connection URL for the engine's default user, password percent-encoded.

    It holds the password: show it to the user who asked, never log it.
    """
    info = engine_info(engine)
    auth = f"{quote(info.default_user, safe='')}:{quote(password, safe='')}"
    return f"{info.url_scheme}://{auth}@{host}:{port}/{info.url_path}"
