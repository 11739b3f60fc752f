"""PostgreSQL: initdb with the password from a private file, a config file included from
the data directory's own, fast shutdown, readiness by the server's own notify message,
``SELECT 1`` and ``pg_stat_activity`` through psycopg."""

from __future__ import annotations

import signal
from pathlib import Path

from snoozeql.domain.engines import Engine
from snoozeql.providers.local.base import (
    AheadSetup,
    EngineDefaults,
    InstanceLayout,
    NativeSetup,
    ProbeResult,
    ServerBinaries,
)
from snoozeql.providers.local.ports import HOST
from snoozeql.providers.local.process import RunningSetup, version_of

# initdb reads the superuser's password from this file (in the instance's config
# directory, readable by the server's user only); removed once initdb is done.
PWFILE = ".pwfile"


def server_settings(port: int, durable: bool) -> list[str]:
    """The lines of the instance's own ``postgresql.conf`` (included by the cluster's)."""
    settings = [
        f"listen_addresses = '{HOST}'",
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
    return settings


def initdb_argv(initdb: Path, data: Path, user: str, pwfile: Path) -> list[str]:
    """initdb's command line: scram-sha-256, UTF-8, no locale, and no fsync.

    A brand-new, empty cluster needs no fsync of its files: if the machine crashed in
    the seconds after, creating it again is the remedy. The server itself runs with
    fsync on when durable (:func:`server_settings`). Saves 1-3 s per create.
    """
    return [
        str(initdb), "-D", str(data), "-U", user, f"--pwfile={pwfile}",
        "--auth=scram-sha-256", "-E", "UTF8", "--no-locale", "--no-sync",
    ]


class Postgres(EngineDefaults):
    engine = Engine.POSTGRES
    # SIGINT is PostgreSQL's "fast" shutdown; SIGTERM would wait for every client.
    stop_signal = signal.SIGINT
    # Debian's build sends READY=1 to NOTIFY_SOCKET once it accepts connections.
    notifies_ready = True
    # initdb runs while `db create` starts up (initialise_ahead).
    sets_up_ahead = True
    client_modules = ("psycopg",)
    root = Path("/usr/lib/postgresql")
    looked_for = "looked in /usr/lib/postgresql/<version>/bin"

    def installed(self) -> list[ServerBinaries]:
        found: list[ServerBinaries] = []
        if not self.root.is_dir():
            return found
        for bindir in sorted(self.root.glob("*/bin")):
            server, initdb = bindir / "postgres", bindir / "initdb"
            if server.exists() and initdb.exists():
                version = version_of([str(server), "--version"], r"PostgreSQL\)\s+(\d+(?:\.\d+)*)")
                found.append(ServerBinaries(version, server, {"initdb": initdb}))
        return found

    def matches(self, requested: str, installed: str) -> bool:
        # Minor releases of one major version share their data format.
        return requested.split(".")[0] == installed.split(".")[0]

    def initialise_ahead(self, setup: AheadSetup) -> RunningSetup:
        """initdb needs neither the port nor the final place (a data directory can be
        moved; the instance's config file is included once it is in place): it runs
        while the create imports its modules and checks the request."""
        layout = setup.layout
        setup.write_private(layout.config / PWFILE, setup.password + "\n")
        return setup.run.start(initdb_argv(setup.bins.tools["initdb"], layout.data,
                                           self.info.default_user, layout.config / PWFILE))

    def initialise(self, setup: NativeSetup) -> None:
        layout = setup.layout
        pwfile = layout.config / PWFILE
        if setup.ahead:
            pwfile.unlink(missing_ok=True)
        else:
            setup.write_private(pwfile, setup.password + "\n")
            try:
                setup.run(initdb_argv(setup.bins.tools["initdb"], layout.data,
                                      self.info.default_user, pwfile))
            finally:
                pwfile.unlink(missing_ok=True)
        conf = layout.config / "postgresql.conf"
        setup.write_private(conf, "\n".join(server_settings(setup.port, setup.durable)) + "\n")
        with open(layout.data / "postgresql.conf", "a", encoding="utf-8") as f:
            f.write(f"\n# Added by SnoozeQL.\ninclude '{conf}'\n")

    def argv(self, layout: InstanceLayout, bins: ServerBinaries, port: int) -> list[str]:
        return [str(bins.server), "-D", str(layout.data)]

    def docker_command(self, port: int, password: str) -> list[str]:
        return ["-c", f"listen_addresses={HOST}", "-p", str(port)]

    def probe(self, host: str, port: int, user: str, password: str, timeout: float
              ) -> ProbeResult:
        import psycopg

        try:
            with psycopg.connect(
                host=host, port=port, user=user, password=password, dbname="postgres",
                connect_timeout=max(1, int(timeout)), autocommit=True,
            ) as conn:
                row = conn.execute("SELECT 1").fetchone()
        except psycopg.OperationalError as exc:
            text = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
            refused = "Connection refused" in str(exc)
            return ProbeResult(False, not refused, text)
        except psycopg.Error as exc:
            return ProbeResult(False, True, f"{type(exc).__name__}: {exc}")
        if row != (1,):
            return ProbeResult(False, True, f"SELECT 1 returned {row!r}")
        return ProbeResult(True, True, "SELECT 1 answered")

    def connections(self, host: str, port: int, user: str, password: str, timeout: float
                    ) -> float:
        """The ``client backend`` rows of ``pg_stat_activity`` (background workers are
        not users), minus the asking backend."""
        import psycopg

        with psycopg.connect(
            host=host, port=port, user=user, password=password, dbname="postgres",
            connect_timeout=max(1, int(timeout)), autocommit=True,
        ) as conn:
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()"
            ).fetchone()
        return float(row[0] if row else 0)


ENGINE = Postgres()
