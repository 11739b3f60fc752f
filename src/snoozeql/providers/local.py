"""The native runtime: local databases as server processes from the machine's binaries.

Each instance lives in ``<data_dir>/instances/<name>/``::

    instance.json   what was created (engine, version, port, binaries, user); no secret
    server.pid      pid and kernel start time of the running server; present while it
                    is meant to run, removed by a clean stop
    data/ logs/ config/ run/   owned by the user the server runs as

The instance directory itself stays owned by SnoozeQL, so the server's user cannot
tamper with the pid file that SnoozeQL later signals. Servers run detached in their own
session, bound to 127.0.0.1, and outlive the CLI that started them. Status is always
measured: is the recorded process alive (same pid *and* start time, so a reused pid is
not mistaken for our server), is the port open, does the engine answer its protocol with
the password. A server that died while it was meant to run is reported ``failed`` with
the last lines of its log.

When SnoozeQL runs as root, servers run as an existing unprivileged system user
(``postgres``, ``mysql``, ``redis``, ``mongodb``, else ``nobody``): initdb refuses root
and no database server should need it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import pwd
import re
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

from snoozeql.config import Settings
from snoozeql.domain.engines import (
    CATALOGUE,
    Engine,
    EngineInfo,
    LocalDatabaseSpec,
    Runtime,
    RuntimeState,
    connection_url,
    version_matches,
)
from snoozeql.domain.errors import (
    ActionRefused,
    ConflictError,
    NotFoundError,
    ProviderError,
    ValidationError,
)
from snoozeql.domain.types import InstanceStatus
from snoozeql.providers import probes
from snoozeql.providers.optional import require_pymongo

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
LOG_TAIL_LINES = 20
_SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


# --------------------------------------------------------------------------- ports


def port_in_use(port: int, host: str = HOST) -> bool:
    """True when a server already holds host:port (or 0.0.0.0:port)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return probes.port_open(port, host, timeout=0.2)


def free_port(exclude: set[int] | frozenset[int] = frozenset()) -> int:
    """A loopback port nobody listens on now, outside ``exclude`` (ports of instances)."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((HOST, 0))
            port = int(sock.getsockname()[1])
        if port >= 1024 and port not in exclude:
            return port
    raise ProviderError("no free loopback port found")


# --------------------------------------------------------------------------- processes


@dataclass(frozen=True)
class _RunAs:
    """The account a server runs as; ``switch`` when we must drop root to reach it."""

    name: str
    uid: int
    gid: int
    switch: bool

    def popen_kwargs(self) -> dict[str, Any]:
        if not self.switch:
            return {}
        return {"user": self.uid, "group": self.gid, "extra_groups": []}


def _proc_start_time(pid: int) -> tuple[str, int] | None:
    """(state, start time in clock ticks) of a process, or None if there is none."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    rest = raw[raw.rfind(")") + 2 :].split()
    return rest[0], int(rest[19])


def _reap(pid: int) -> None:
    """Collect our own exited child, so it does not linger as a zombie."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def _alive(pid: int, start: int) -> bool:
    info = _proc_start_time(pid)
    if info is None or info[1] != start:
        return False
    if info[0] in ("Z", "X"):
        _reap(pid)
        return False
    return True


# --------------------------------------------------------------------------- layout


@dataclass(frozen=True)
class InstanceLayout:
    root: Path

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def config(self) -> Path:
        return self.root / "config"

    @property
    def run(self) -> Path:
        return self.root / "run"

    @property
    def log_file(self) -> Path:
        return self.logs / "server.log"

    @property
    def pid_file(self) -> Path:
        return self.root / "server.pid"

    @property
    def meta_file(self) -> Path:
        return self.root / "instance.json"


@dataclass(frozen=True)
class ServerBinaries:
    """The installed server of one engine: its version and the programs we run."""

    version: str
    server: Path
    tools: dict[str, Path]


def _tail(path: Path, n: int) -> list[str]:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 256 * 1024))
            data = f.read()
    except FileNotFoundError:
        return []
    lines = data.decode("utf-8", "replace").splitlines()
    return lines[-n:] if n > 0 else []


def _redact(text: str, password: str | None) -> str:
    return text.replace(password, "***") if password else text


def _version_of(argv: list[str], pattern: str) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=20, check=False)
    except OSError as exc:
        raise ProviderError(f"cannot run {argv[0]}: {exc}") from None
    match = re.search(pattern, out.stdout + out.stderr)
    if not match:
        raise ProviderError(f"cannot read the version of {argv[0]}")
    return match.group(1)


def _write_private(path: Path, text: str, owner: _RunAs) -> None:
    """Write a file only its owner can read (config files may hold the password)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.chmod(path, 0o600)
    if owner.switch:
        os.chown(path, owner.uid, owner.gid)


def _missing(info: EngineInfo, where: str) -> ActionRefused:
    if info.debian_package:
        hint = (
            f"install the Debian package '{info.debian_package}' "
            f"(apt-get install {info.debian_package}) or use --runtime docker"
        )
    else:
        hint = (
            f"{info.display_name} has no Debian package: install its server from the "
            "vendor's packages, or use --runtime docker"
        )
    return ActionRefused(f"{info.display_name} server binaries not found ({where}): {hint}")


# --------------------------------------------------------------------------- engines


class _Driver:
    """Per-engine steps of the native runtime: find, initialise, command line, stop."""

    engine: Engine
    stop_signal: signal.Signals = signal.SIGTERM

    @property
    def info(self) -> EngineInfo:
        return CATALOGUE[self.engine]

    def installed(self) -> list[ServerBinaries]:
        raise NotImplementedError

    def initialise(
        self,
        layout: InstanceLayout,
        bins: ServerBinaries,
        port: int,
        password: str,
        run_as: _RunAs,
        durable: bool,
        runner: _Runner,
    ) -> None:
        raise NotImplementedError

    def argv(self, layout: InstanceLayout, bins: ServerBinaries, port: int) -> list[str]:
        raise NotImplementedError

    def after_first_start(self, port: int, password: str, timeout: float) -> None:
        """A step that needs the running server (MongoDB's first user). Default: none."""

    def matches(self, requested: str, installed: str) -> bool:
        return version_matches(requested, installed)


class _Runner:
    """Runs a setup command as the server's user; failures carry redacted output."""

    def __init__(self, run_as: _RunAs, env: dict[str, str], cwd: Path, password: str) -> None:
        self.run_as = run_as
        self.env = env
        self.cwd = cwd
        self.password = password

    def __call__(self, argv: list[str], stdin: str | None = None, timeout: float = 180) -> None:
        try:
            out = subprocess.run(
                argv,
                input=stdin,
                capture_output=True,
                text=True,
                timeout=timeout,
                env=self.env,
                cwd=self.cwd,
                check=False,
                **self.run_as.popen_kwargs(),
            )
        except subprocess.TimeoutExpired:
            raise ProviderError(f"{Path(argv[0]).name} did not finish in {timeout:g}s") from None
        except OSError as exc:
            raise ProviderError(f"cannot run {Path(argv[0]).name}: {exc}") from None
        if out.returncode != 0:
            lines = (out.stdout + out.stderr).strip().splitlines()[-LOG_TAIL_LINES:]
            text = _redact("\n".join(lines), self.password)
            raise ProviderError(f"{Path(argv[0]).name} failed (exit {out.returncode}):\n{text}")


class _Postgres(_Driver):
    engine = Engine.POSTGRES
    # SIGINT is PostgreSQL's "fast" shutdown; SIGTERM would wait for every client.
    stop_signal = signal.SIGINT
    root = Path("/usr/lib/postgresql")

    def installed(self) -> list[ServerBinaries]:
        found: list[ServerBinaries] = []
        if not self.root.is_dir():
            return found
        for bindir in sorted(self.root.glob("*/bin")):
            server, initdb = bindir / "postgres", bindir / "initdb"
            if server.exists() and initdb.exists():
                version = _version_of([str(server), "--version"], r"PostgreSQL\)\s+(\d+(?:\.\d+)*)")
                found.append(ServerBinaries(version, server, {"initdb": initdb}))
        return found

    def matches(self, requested: str, installed: str) -> bool:
        # Minor releases of one major version share their data format.
        return requested.split(".")[0] == installed.split(".")[0]

    def initialise(
        self,
        layout: InstanceLayout,
        bins: ServerBinaries,
        port: int,
        password: str,
        run_as: _RunAs,
        durable: bool,
        runner: _Runner,
    ) -> None:
        pwfile = layout.config / ".pwfile"
        _write_private(pwfile, password + "\n", run_as)
        argv = [
            str(bins.tools["initdb"]),
            "-D",
            str(layout.data),
            "-U",
            self.info.default_user,
            f"--pwfile={pwfile}",
            "--auth=scram-sha-256",
            "-E",
            "UTF8",
            "--no-locale",
        ]
        # A brand-new, empty cluster needs no fsync of its files: if the machine
        # crashed in the seconds after, creating it again is the remedy. The server
        # itself runs with fsync on when durable (below). Saves 1-3 s per create.
        argv.append("--no-sync")
        try:
            runner(argv)
        finally:
            pwfile.unlink(missing_ok=True)
        conf = layout.config / "postgresql.conf"
        settings = [
            "listen_addresses = '127.0.0.1'",
            f"port = {port}",
            # No Unix socket: its path limit (107 bytes) is easily passed in a data dir.
            "unix_socket_directories = ''",
            "max_connections = 50",
            "shared_buffers = '32MB'",
            "logging_collector = off",
            "log_destination = 'stderr'",
            "log_line_prefix = '%m [%p] '",
        ]
        if not durable:
            settings += ["fsync = off", "synchronous_commit = off", "full_page_writes = off"]
        _write_private(conf, "\n".join(settings) + "\n", run_as)
        main_conf = layout.data / "postgresql.conf"
        with open(main_conf, "a", encoding="utf-8") as f:
            f.write(f"\n# Added by SnoozeQL.\ninclude '{conf}'\n")

    def argv(self, layout: InstanceLayout, bins: ServerBinaries, port: int) -> list[str]:
        return [str(bins.server), "-D", str(layout.data)]


def _sql_string(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


class _MariaDB(_Driver):
    """MariaDB, also used for engine ``mysql`` natively: Debian's mysqld is MariaDB."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def installed(self) -> list[ServerBinaries]:
        server = next(
            (
                Path(p)
                for p in (
                    "/usr/sbin/mariadbd",
                    "/usr/sbin/mysqld",
                    shutil.which("mariadbd") or "",
                    shutil.which("mysqld") or "",
                )
                if p and Path(p).exists()
            ),
            None,
        )
        install = shutil.which("mariadb-install-db") or shutil.which("mysql_install_db")
        if server is None or install is None:
            return []
        version = _version_of([str(server), "--version"], r"Ver\s+(\d+\.\d+\.\d+)")
        return [ServerBinaries(version, server, {"install_db": Path(install)})]

    def _cnf(self, layout: InstanceLayout) -> Path:
        return layout.config / "my.cnf"

    @staticmethod
    def _socket_path(layout: InstanceLayout) -> Path:
        path = layout.run / "mysqld.sock"
        if len(str(path)) < 100:
            return path
        # Unix socket paths are limited to 107 bytes; a long data dir needs a short one.
        digest = hashlib.sha256(str(layout.root).encode()).hexdigest()[:12]
        return Path(tempfile.gettempdir()) / f"snoozeql-mysqld-{digest}.sock"

    def initialise(
        self,
        layout: InstanceLayout,
        bins: ServerBinaries,
        port: int,
        password: str,
        run_as: _RunAs,
        durable: bool,
        runner: _Runner,
    ) -> None:
        lines = [
            "[mysqld]",
            f"datadir = {layout.data}",
            f"port = {port}",
            "bind-address = 127.0.0.1",
            f"socket = {self._socket_path(layout)}",
            f"pid-file = {layout.run / 'mysqld.pid'}",
            "skip-name-resolve",
            "performance_schema = OFF",
            "max_connections = 50",
            "innodb_buffer_pool_size = 16M",
            "innodb_log_file_size = 8M",
            "character-set-server = utf8mb4",
            "collation-server = utf8mb4_general_ci",
        ]
        if not durable:
            lines += ["innodb_flush_log_at_trx_commit = 2", "innodb_doublewrite = 0"]
        _write_private(self._cnf(layout), "\n".join(lines) + "\n", run_as)
        runner(
            [
                str(bins.tools["install_db"]),
                f"--defaults-file={self._cnf(layout)}",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
                "--skip-name-resolve",
            ]
        )
        # The password goes in through the server's bootstrap mode on stdin: it never
        # touches the disk or a command line. FLUSH PRIVILEGES loads the grant tables
        # that bootstrap mode starts without.
        pw = _sql_string(password)
        sql = "\n".join(
            [
                "FLUSH PRIVILEGES;",
                # Anonymous users and install-db's password-less root@<host> go.
                "DELETE FROM mysql.global_priv WHERE User = '' "
                "OR (User = 'root' AND Host <> 'localhost');",
                "FLUSH PRIVILEGES;",
                f"ALTER USER 'root'@'localhost' IDENTIFIED BY {pw};",
                f"CREATE USER 'root'@'127.0.0.1' IDENTIFIED BY {pw};",
                "GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;",
                "FLUSH PRIVILEGES;",
                "",
            ]
        )
        runner([str(bins.server), f"--defaults-file={self._cnf(layout)}", "--bootstrap"], sql)

    def argv(self, layout: InstanceLayout, bins: ServerBinaries, port: int) -> list[str]:
        return [str(bins.server), f"--defaults-file={self._cnf(layout)}"]


def _redis_quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


class _Redis(_Driver):
    engine = Engine.REDIS

    def installed(self) -> list[ServerBinaries]:
        path = shutil.which("redis-server") or (
            "/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists() else None
        )
        if path is None:
            return []
        version = _version_of([path, "--version"], r"v=(\d+\.\d+\.\d+)")
        return [ServerBinaries(version, Path(path), {})]

    def initialise(
        self,
        layout: InstanceLayout,
        bins: ServerBinaries,
        port: int,
        password: str,
        run_as: _RunAs,
        durable: bool,
        runner: _Runner,
    ) -> None:
        lines = [
            "bind 127.0.0.1",
            f"port {port}",
            "protected-mode yes",
            "daemonize no",
            'logfile ""',
            f"dir {_redis_quote(str(layout.data))}",
            "dbfilename dump.rdb",
            "appendonly no",
            "save 3600 1 300 100 60 10000" if durable else 'save ""',
            # The config file is 0600 and owned by the server's user.
            f"requirepass {_redis_quote(password)}",
        ]
        _write_private(layout.config / "redis.conf", "\n".join(lines) + "\n", run_as)

    def argv(self, layout: InstanceLayout, bins: ServerBinaries, port: int) -> list[str]:
        return [str(bins.server), str(layout.config / "redis.conf")]


class _MongoDB(_Driver):
    """mongod where installed (no Debian package). Needs pymongo for the first user."""

    engine = Engine.MONGODB

    def installed(self) -> list[ServerBinaries]:
        path = shutil.which("mongod")
        if path is None:
            return []
        version = _version_of([path, "--version"], r"db version v(\d+\.\d+\.\d+)")
        return [ServerBinaries(version, Path(path), {})]

    def initialise(
        self,
        layout: InstanceLayout,
        bins: ServerBinaries,
        port: int,
        password: str,
        run_as: _RunAs,
        durable: bool,
        runner: _Runner,
    ) -> None:
        require_pymongo("a native MongoDB (to set its password)")

    def argv(self, layout: InstanceLayout, bins: ServerBinaries, port: int) -> list[str]:
        return [
            str(bins.server),
            "--dbpath",
            str(layout.data),
            "--port",
            str(port),
            "--bind_ip",
            HOST,
            "--auth",
            "--nounixsocket",
        ]

    def after_first_start(self, port: int, password: str, timeout: float) -> None:
        require_pymongo("a native MongoDB (to set its password)")
        import pymongo
        import pymongo.errors

        # The "localhost exception" lets the first connection from 127.0.0.1 create the
        # first user of a server started with --auth and no users yet.
        deadline = time.monotonic() + timeout
        while True:
            client: pymongo.MongoClient = pymongo.MongoClient(
                host=HOST, port=port, directConnection=True, serverSelectionTimeoutMS=2000
            )
            try:
                client.admin.command(
                    "createUser",
                    self.info.default_user,
                    pwd=password,
                    roles=[{"role": "root", "db": "admin"}],
                )
                return
            except pymongo.errors.PyMongoError as exc:
                if time.monotonic() >= deadline:
                    raise ProviderError(
                        f"could not create the MongoDB user: {type(exc).__name__}"
                    ) from None
                time.sleep(0.5)
            finally:
                client.close()


_DRIVERS: dict[Engine, _Driver] = {
    Engine.POSTGRES: _Postgres(),
    Engine.MYSQL: _MariaDB(Engine.MYSQL),
    Engine.MARIADB: _MariaDB(Engine.MARIADB),
    Engine.REDIS: _Redis(),
    Engine.MONGODB: _MongoDB(),
}

_SERVICE_USERS: dict[Engine, tuple[str, ...]] = {
    Engine.POSTGRES: ("postgres", "nobody"),
    Engine.MYSQL: ("mysql", "nobody"),
    Engine.MARIADB: ("mysql", "nobody"),
    Engine.REDIS: ("redis", "nobody"),
    Engine.MONGODB: ("mongodb", "nobody"),
}


def installed_versions(engine: Engine) -> list[str]:
    """Versions of ``engine`` whose server binaries are installed on this machine."""
    return [b.version for b in _DRIVERS[engine].installed()]


# --------------------------------------------------------------------------- runtime


class _ReadySignal:
    """The server's own "ready" message, by systemd's notify protocol.

    PostgreSQL (built with systemd support, as Debian's is) sends ``READY=1`` to the
    datagram socket named by ``NOTIFY_SOCKET`` once it accepts connections, so nobody
    has to poll its port. Where no message comes (a build without it), the wait ends
    when the server dies or at the deadline and the usual probe takes over.
    """

    def __init__(self) -> None:
        # A short path under /tmp: socket paths are limited to 107 bytes.
        self.dir = Path(tempfile.mkdtemp(prefix="snoozeql-ready-"))
        self.path = self.dir / "notify"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(self.path))
        # The server may run as another user (postgres when SnoozeQL runs as root).
        os.chmod(self.dir, 0o755)
        os.chmod(self.path, 0o777)

    def env(self) -> dict[str, str]:
        return {"NOTIFY_SOCKET": str(self.path)}

    def wait(self, timeout: float, alive: Any) -> bool:
        """True once the server said READY=1; False if it died or time ran out."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            self.sock.settimeout(min(0.2, left))
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                if not alive():
                    return False
                continue
            if b"READY=1" in data.split(b"\n"):
                return True
        return False

    def close(self) -> None:
        self.sock.close()
        shutil.rmtree(self.dir, ignore_errors=True)


class NativeRuntime:
    """Create and run local databases as server processes; every status is measured.

    Methods take the instance name; the password is passed in by the caller (the store
    keeps it encrypted) whenever the server must be probed, since ready means "answers
    with the password".
    """

    kind = Runtime.NATIVE

    def __init__(
        self,
        settings: Settings,
        *,
        ready_timeout: float = 60.0,
        stop_timeout: float = 10.0,
        durable: bool = True,
    ) -> None:
        self.settings = settings
        self.ready_timeout = ready_timeout
        self.stop_timeout = stop_timeout
        self.durable = durable
        self.instances_dir = settings.data_dir / "instances"
        self.kept_dir = settings.data_dir / "kept"

    # ------------------------------------------------------------------ public API

    def names(self) -> list[str]:
        """Names of the instances on disk (whatever their state)."""
        if not self.instances_dir.is_dir():
            return []
        return sorted(
            p.name for p in self.instances_dir.iterdir() if (p / "instance.json").is_file()
        )

    def exists(self, name: str) -> bool:
        return self._layout(name).meta_file.is_file()

    def ports_in_use_by_instances(self) -> dict[str, int]:
        """Port of every native instance, running or not: a port stays theirs."""
        out: dict[str, int] = {}
        for name in self.names():
            with contextlib.suppress(NotFoundError, ValueError, KeyError):
                out[name] = int(self._meta(name)["port"])
        return out

    def create(self, spec: LocalDatabaseSpec, password: str) -> RuntimeState:
        """Initialise the data directory, start the server and wait until it answers.

        Anything half-made is removed when a step fails.
        """
        if spec.runtime is not Runtime.NATIVE:
            raise ValidationError("this spec is for the docker runtime, not native")
        if not password:
            raise ValidationError("a password is required")
        driver = _DRIVERS[spec.engine]
        layout = self._layout(spec.name)
        self.instances_dir.mkdir(parents=True, exist_ok=True)
        with self._lock(spec.name):
            if layout.root.exists():
                raise ConflictError(f"a local database named {spec.name!r} already exists")
            for other, port in self.ports_in_use_by_instances().items():
                if port == spec.port:
                    raise ConflictError(
                        f"port {spec.port} belongs to local database {other!r}: choose another port"
                    )
            self._refuse_busy_port(spec.port)
            bins = self._binaries(spec.engine, spec.version)
            run_as = self._run_as(spec.engine)
            self._check_reachable(layout.root, run_as)
            try:
                self._make_dirs(layout, run_as)
                meta: dict[str, Any] = {
                    "name": spec.name,
                    "engine": spec.engine.value,
                    "version": bins.version,
                    "port": spec.port,
                    "runtime": Runtime.NATIVE.value,
                    "server": str(bins.server),
                    "user": run_as.name,
                    "created_at": datetime.now(UTC).isoformat(),
                }
                self._write_meta(layout, meta)
                runner = _Runner(run_as, self._env(layout), layout.root, password)
                log.info("initialising the data directory of %s", spec.name)
                driver.initialise(layout, bins, spec.port, password, run_as, self.durable, runner)
                log.info("starting %s %s on port %d", spec.engine.value, bins.version, spec.port)
                ready = _ReadySignal() if spec.engine is Engine.POSTGRES else None
                try:
                    self._spawn(layout, driver, bins, spec.port, run_as,
                                ready.env() if ready else None)
                    if spec.engine is Engine.MONGODB:
                        driver.after_first_start(spec.port, password, self.ready_timeout)
                    log.info("waiting until %s answers", spec.name)
                    self._await_ready(spec.name, password, ready)
                finally:
                    if ready:
                        ready.close()
            except BaseException:
                self._kill(layout, driver, timeout=2.0)
                shutil.rmtree(layout.root, ignore_errors=True)
                raise
            return self.status(spec.name, password)

    def start(self, name: str, password: str | None) -> RuntimeState:
        """Start a stopped (or failed) instance and wait until it answers."""
        with self._lock(name):
            meta = self._meta(name)
            layout = self._layout(name)
            if self._running_pid(layout) is not None:
                return self.status(name, password)
            engine = Engine(meta["engine"])
            driver = _DRIVERS[engine]
            # A crashed server's socket can outlive its process for a moment.
            grace = 5.0 if layout.pid_file.exists() else 0.0
            layout.pid_file.unlink(missing_ok=True)
            self._refuse_busy_port(int(meta["port"]), grace)
            bins = self._binaries(engine, None, server=Path(meta["server"]))
            run_as = self._run_as(engine, preferred=meta.get("user"))
            self._spawn(layout, driver, bins, int(meta["port"]), run_as)
            try:
                self._await_ready(name, password)
            except BaseException:
                self._kill(layout, driver, timeout=self.stop_timeout)
                raise
            return self.status(name, password)

    def stop(self, name: str) -> RuntimeState:
        """Graceful stop, forced after ``stop_timeout`` seconds (10 s by default)."""
        with self._lock(name):
            meta = self._meta(name)
            layout = self._layout(name)
            forced = self._kill(layout, _DRIVERS[Engine(meta["engine"])], self.stop_timeout)
            state = self.status(name, None)
            if forced:
                detail = f"stopped (forced after {self.stop_timeout:g}s)"
                return replace(state, detail=detail)
            return state

    def restart(self, name: str, password: str | None) -> RuntimeState:
        self.stop(name)
        return self.start(name, password)

    def delete(self, name: str, keep_data: bool = False) -> Path | None:
        """Stop the server and remove the instance; with ``keep_data`` its directory is
        moved to ``<data_dir>/kept/<name>-<UTC time>`` (returned) so the name is free."""
        with self._lock(name):
            meta = self._meta(name)
            layout = self._layout(name)
            self._kill(layout, _DRIVERS[Engine(meta["engine"])], self.stop_timeout)
            if keep_data:
                self.kept_dir.mkdir(parents=True, exist_ok=True)
                stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
                target = self.kept_dir / f"{name}-{stamp}"
                layout.root.rename(target)
                return target
            shutil.rmtree(layout.root)
            if layout.root.exists():
                raise ProviderError(f"could not remove {layout.root}")
            return None

    def status(self, name: str, password: str | None) -> RuntimeState:
        """Measured now: process alive, port open, probe answers with the password.

        Without a password the probe is skipped and a live process with an open port
        counts as running (``probe_ok`` is None then).
        """
        meta = self._meta(name)
        layout = self._layout(name)
        engine = Engine(meta["engine"])
        port = int(meta["port"])
        pid = self._running_pid(layout)
        is_open = probes.port_open(port, HOST, timeout=0.3)
        base = RuntimeState(
            name=name,
            engine=engine,
            version=meta.get("version"),
            runtime=Runtime.NATIVE,
            port=port,
            status=InstanceStatus.UNKNOWN,
            pid=pid,
            process_alive=pid is not None,
            port_open=is_open,
            location=str(layout.root),
        )
        if pid is None:
            if layout.pid_file.exists():
                tail = tuple(_tail(layout.log_file, LOG_TAIL_LINES))
                detail = "the server process exited while it was meant to run"
                if is_open:
                    detail += f"; port {port} is now held by another process"
                return replace(base, status=InstanceStatus.FAILED, detail=detail, log_tail=tail)
            return replace(base, status=InstanceStatus.STOPPED, detail="stopped")
        if password is None:
            if is_open:
                return replace(
                    base, status=InstanceStatus.RUNNING, detail="process alive, port open"
                )
            return replace(
                base, status=InstanceStatus.STARTING, detail="process alive, port not open yet"
            )
        result = probes.probe(engine, port, password, host=HOST)
        if result.ok:
            return replace(base, status=InstanceStatus.RUNNING, probe_ok=True, detail=result.detail)
        return replace(
            base,
            status=InstanceStatus.STARTING,
            probe_ok=False,
            detail=f"process alive but not answering: {result.detail}",
            log_tail=tuple(_tail(layout.log_file, LOG_TAIL_LINES)),
        )

    def logs(self, name: str, n: int = 50) -> list[str]:
        self._meta(name)
        return _tail(self._layout(name).log_file, n)

    def url(self, name: str, password: str) -> str:
        meta = self._meta(name)
        return connection_url(meta["engine"], int(meta["port"]), password, HOST)

    # ------------------------------------------------------------------ internals

    def _layout(self, name: str) -> InstanceLayout:
        if "/" in name or name in ("", ".", ".."):
            raise ValidationError(f"invalid instance name {name!r}")
        return InstanceLayout(self.instances_dir / name)

    def _meta(self, name: str) -> dict[str, Any]:
        path = self._layout(name).meta_file
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise NotFoundError(f"no local database named {name!r}") from None
        if not isinstance(data, dict):
            raise ProviderError(f"{path} is damaged")
        return data

    def _write_meta(self, layout: InstanceLayout, meta: dict[str, Any]) -> None:
        tmp = layout.meta_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, layout.meta_file)

    @contextlib.contextmanager
    def _lock(self, name: str) -> Iterator[None]:
        """One lifecycle action per instance at a time, across processes."""
        self._layout(name)
        locks = self.instances_dir / ".locks"
        locks.mkdir(parents=True, exist_ok=True)
        with open(locks / f"{name}.lock", "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def _binaries(
        self, engine: Engine, version: str | None, server: Path | None = None
    ) -> ServerBinaries:
        driver = _DRIVERS[engine]
        info = CATALOGUE[engine]
        found = driver.installed()
        if not found:
            where = {
                Engine.POSTGRES: "looked in /usr/lib/postgresql/<version>/bin",
                Engine.MYSQL: "looked for mariadbd or mysqld and mariadb-install-db",
                Engine.MARIADB: "looked for mariadbd or mysqld and mariadb-install-db",
                Engine.REDIS: "looked for redis-server",
                Engine.MONGODB: "looked for mongod",
            }[engine]
            raise _missing(info, where)
        if server is not None:
            for b in found:
                if b.server == server:
                    return b
            raise ActionRefused(
                f"the {info.display_name} server this instance was created with ({server}) "
                f"is no longer installed; installed: {', '.join(b.version for b in found)}"
            )
        if version is None:
            return max(found, key=lambda b: [int(x) for x in b.version.split(".")])
        for b in found:
            if driver.matches(version, b.version):
                return b
        raise ValidationError(
            f"{info.display_name} {version} is not installed here; installed: "
            f"{', '.join(b.version for b in found)} (natively the installed version is "
            "used; use --runtime docker for another version)"
        )

    def _run_as(self, engine: Engine, preferred: object = None) -> _RunAs:
        if os.geteuid() != 0:
            entry = pwd.getpwuid(os.geteuid())
            return _RunAs(entry.pw_name, entry.pw_uid, entry.pw_gid, switch=False)
        candidates = ((str(preferred),) if preferred else ()) + _SERVICE_USERS[engine]
        for user in candidates:
            try:
                entry = pwd.getpwnam(user)
            except KeyError:
                continue
            if entry.pw_uid != 0:
                return _RunAs(entry.pw_name, entry.pw_uid, entry.pw_gid, switch=True)
        raise ActionRefused(
            "running as root, and none of the unprivileged users "
            f"{', '.join(_SERVICE_USERS[engine])} exists to run the server as"
        )

    def _check_reachable(self, path: Path, run_as: _RunAs) -> None:
        """The server's user must be able to walk down to its instance directory."""
        if not run_as.switch:
            return
        groups = set(os.getgrouplist(run_as.name, run_as.gid))
        for parent in reversed(path.parents):
            if not parent.exists():
                break
            st = parent.stat()
            if st.st_uid == run_as.uid:
                ok = bool(st.st_mode & stat.S_IXUSR)
            elif st.st_gid in groups:
                ok = bool(st.st_mode & stat.S_IXGRP)
            else:
                ok = bool(st.st_mode & stat.S_IXOTH)
            if not ok:
                raise ActionRefused(
                    f"the server must run as the unprivileged user {run_as.name!r}, who "
                    f"cannot enter {parent}; set SNOOZEQL_DATA_DIR to a directory it can "
                    f"reach (for example /var/lib/snoozeql), or allow it: chmod o+x {parent}"
                )

    def _make_dirs(self, layout: InstanceLayout, run_as: _RunAs) -> None:
        self.instances_dir.mkdir(parents=True, exist_ok=True)
        if run_as.switch:
            os.chmod(self.instances_dir, self.instances_dir.stat().st_mode | 0o111)
        layout.root.mkdir(mode=0o711)
        os.chmod(layout.root, 0o711)
        for sub in (layout.data, layout.logs, layout.config, layout.run):
            sub.mkdir(mode=0o700)
            if run_as.switch:
                os.chown(sub, run_as.uid, run_as.gid)

    def _env(self, layout: InstanceLayout) -> dict[str, str]:
        # A clean environment: an inherited PGPORT or MYSQL_TCP_PORT must not leak in.
        return {"PATH": _SYSTEM_PATH, "LANG": "C.UTF-8", "HOME": str(layout.run), "TZ": "UTC"}

    def _refuse_busy_port(self, port: int, grace: float = 0.0) -> None:
        """Refuse a port someone holds; ``grace`` lets a server that just died let go."""
        deadline = time.monotonic() + grace
        while port_in_use(port) and time.monotonic() < deadline:
            time.sleep(0.1)
        if port_in_use(port):
            raise ConflictError(
                f"port {port} on {HOST} is already in use by another process: choose "
                "another port or stop what holds it"
            )

    def _spawn(
        self,
        layout: InstanceLayout,
        driver: _Driver,
        bins: ServerBinaries,
        port: int,
        run_as: _RunAs,
        extra_env: dict[str, str] | None = None,
    ) -> int:
        argv = driver.argv(layout, bins, port)
        stamp = datetime.now(UTC).isoformat(timespec="seconds")
        with open(layout.log_file, "ab") as log:
            log.write(f"--- snoozeql: starting {Path(argv[0]).name} at {stamp} ---\n".encode())
            log.flush()
            if run_as.switch:
                os.chown(layout.log_file, run_as.uid, run_as.gid)
            try:
                proc = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=layout.run,
                    env={**self._env(layout), **(extra_env or {})},
                    start_new_session=True,
                    close_fds=True,
                    **run_as.popen_kwargs(),
                )
            except OSError as exc:
                raise ProviderError(f"cannot start {Path(argv[0]).name}: {exc}") from None
        info = _proc_start_time(proc.pid)
        start = info[1] if info else 0
        tmp = layout.pid_file.with_suffix(".tmp")
        tmp.write_text(json.dumps({"pid": proc.pid, "start": start}) + "\n")
        os.replace(tmp, layout.pid_file)
        return proc.pid

    def _running_pid(self, layout: InstanceLayout) -> int | None:
        try:
            data = json.loads(layout.pid_file.read_text())
            pid, start = int(data["pid"]), int(data["start"])
        except (FileNotFoundError, ValueError, KeyError, TypeError):
            return None
        return pid if _alive(pid, start) else None

    def _kill(self, layout: InstanceLayout, driver: _Driver, timeout: float) -> bool:
        """Stop the server: its own graceful signal, then SIGKILL to its whole session.

        Returns True when it had to be forced. Removes the pid file: a stop is deliberate.
        """
        pid = self._running_pid(layout)
        forced = False
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, driver.stop_signal)
            if not self._wait_gone(layout, timeout):
                forced = True
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pid, signal.SIGKILL)
                self._wait_gone(layout, 10.0)
        layout.pid_file.unlink(missing_ok=True)
        return forced

    def _wait_gone(self, layout: InstanceLayout, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while self._running_pid(layout) is not None:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.1)
        return True

    def _await_ready(
        self, name: str, password: str | None, ready: _ReadySignal | None = None
    ) -> None:
        meta = self._meta(name)
        layout = self._layout(name)
        engine = Engine(meta["engine"])
        port = int(meta["port"])
        interval = 0.25
        if ready is not None and ready.wait(
            self.ready_timeout, lambda: self._running_pid(layout) is not None
        ):
            interval = 0.05  # it said it accepts connections: the first probe answers
        if password is None:
            deadline = time.monotonic() + self.ready_timeout
            while time.monotonic() < deadline:
                if self._running_pid(layout) is None:
                    break
                if probes.port_open(port, HOST):
                    return
                time.sleep(0.2)
            self._not_ready(layout, engine, "the port did not open", None)
        result = probes.wait_ready(
            engine,
            port,
            password,
            timeout=self.ready_timeout,
            still_alive=lambda: self._running_pid(layout) is not None,
            interval=interval,
        )
        if not result.ok:
            self._not_ready(layout, engine, result.detail, password)

    def _not_ready(
        self, layout: InstanceLayout, engine: Engine, detail: str, password: str | None
    ) -> NoReturn:
        tail = "\n".join(_tail(layout.log_file, LOG_TAIL_LINES))
        raise ProviderError(
            _redact(
                f"{CATALOGUE[engine].display_name} did not become ready: {detail}\n"
                f"last log lines:\n{tail}",
                password,
            )
        )


__all__ = [
    "InstanceLayout",
    "NativeRuntime",
    "ServerBinaries",
    "free_port",
    "installed_versions",
    "port_in_use",
]
