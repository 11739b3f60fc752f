"""MySQL and MariaDB: natively always MariaDB (Debian's mysqld is MariaDB), set up with
mariadb-install-db and the password through the server's bootstrap mode on stdin; on
Docker the official ``mysql`` or ``mariadb`` image; ``SELECT 1`` and
``Threads_connected`` through PyMySQL."""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from pathlib import Path

from snoozeql.domain.engines import Engine
from snoozeql.providers.local.base import (
    EngineDefaults,
    InstanceLayout,
    NativeSetup,
    ProbeResult,
    ServerBinaries,
)
from snoozeql.providers.local.ports import HOST
from snoozeql.providers.local.process import version_of


def socket_path(layout: InstanceLayout) -> Path:
    """The server's Unix socket: in the instance's run directory when the path is short
    enough (107 bytes at most), else a short one under the temp directory."""
    path = layout.run / "mysqld.sock"
    if len(str(path)) < 100:
        return path
    digest = hashlib.sha256(str(layout.root).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"snoozeql-mysqld-{digest}.sock"


def my_cnf(layout: InstanceLayout, port: int, durable: bool) -> str:
    """The instance's ``my.cnf`` (no password in it)."""
    lines = [
        "[mysqld]",
        f"datadir = {layout.data}",
        f"port = {port}",
        f"bind-address = {HOST}",
        f"socket = {socket_path(layout)}",
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
    return "\n".join(lines) + "\n"


def _sql_string(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def password_sql(password: str) -> str:
    """The bootstrap SQL that sets root's password and removes every other login.

    FLUSH PRIVILEGES loads the grant tables that bootstrap mode starts without."""
    pw = _sql_string(password)
    return "\n".join(
        [
            "FLUSH PRIVILEGES;",
            # Anonymous users and install-db's password-less root@<host> go.
            "DELETE FROM mysql.global_priv WHERE User = '' "
            "OR (User = 'root' AND Host <> 'localhost');",
            "FLUSH PRIVILEGES;",
            f"ALTER USER 'root'@'localhost' IDENTIFIED BY {pw};",
            f"CREATE USER 'root'@'{HOST}' IDENTIFIED BY {pw};",
            f"GRANT ALL PRIVILEGES ON *.* TO 'root'@'{HOST}' WITH GRANT OPTION;",
            "FLUSH PRIVILEGES;",
            "",
        ]
    )


def _mysql_text(exc: Exception) -> str:
    if len(exc.args) >= 2:
        return f"({exc.args[0]}) {exc.args[1]}"
    return str(exc) or type(exc).__name__


class MariaDB(EngineDefaults):
    """One class for engines ``mysql`` and ``mariadb``: they differ on Docker only."""

    service_users = ("mysql", "nobody")
    client_modules = ("pymysql",)
    looked_for = "looked for mariadbd or mysqld and mariadb-install-db"

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
        version = version_of([str(server), "--version"], r"Ver\s+(\d+\.\d+\.\d+)")
        return [ServerBinaries(version, server, {"install_db": Path(install)})]

    def initialise(self, setup: NativeSetup) -> None:
        cnf = setup.layout.config / "my.cnf"
        setup.write_private(cnf, my_cnf(setup.layout, setup.port, setup.durable))
        setup.run(
            [
                str(setup.bins.tools["install_db"]),
                f"--defaults-file={cnf}",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
                "--skip-name-resolve",
            ]
        )
        # The password goes in on stdin: it never touches the disk or a command line.
        setup.run([str(setup.bins.server), f"--defaults-file={cnf}", "--bootstrap"],
                  password_sql(setup.password))

    def argv(self, layout: InstanceLayout, bins: ServerBinaries, port: int) -> list[str]:
        return [str(bins.server), f"--defaults-file={layout.config / 'my.cnf'}"]

    def docker_command(self, port: int, password: str) -> list[str]:
        return [f"--port={port}", f"--bind-address={HOST}"]

    def probe(self, host: str, port: int, user: str, password: str, timeout: float
              ) -> ProbeResult:
        import pymysql

        try:
            conn = pymysql.connect(
                host=host, port=port, user=user, password=password,
                connect_timeout=timeout, read_timeout=timeout, write_timeout=timeout,
            )
        except pymysql.err.OperationalError as exc:
            code = exc.args[0] if exc.args else None
            # 2003: cannot connect at all; anything else came from a server.
            return ProbeResult(False, code != 2003, _mysql_text(exc))
        except pymysql.err.MySQLError as exc:
            return ProbeResult(False, True, _mysql_text(exc))
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT 1")
                row = cur.fetchone()
        except pymysql.err.MySQLError as exc:
            return ProbeResult(False, True, _mysql_text(exc))
        finally:
            conn.close()
        if row != (1,):
            return ProbeResult(False, True, f"SELECT 1 returned {row!r}")
        return ProbeResult(True, True, "SELECT 1 answered")

    def connections(self, host: str, port: int, user: str, password: str, timeout: float
                    ) -> float:
        """``Threads_connected``, minus the asking connection."""
        import pymysql

        conn = pymysql.connect(
            host=host, port=port, user=user, password=password,
            connect_timeout=timeout, read_timeout=timeout,
        )
        try:
            with conn.cursor() as cur:
                cur.execute("SHOW GLOBAL STATUS LIKE 'Threads_connected'")
                row = cur.fetchone()
        finally:
            conn.close()
        return max(0.0, float(row[1]) - 1) if row else 0.0


MYSQL = MariaDB(Engine.MYSQL)
MARIADB = MariaDB(Engine.MARIADB)
