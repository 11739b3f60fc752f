"""What the local runtimes and the engine modules promise, declared once.

* :class:`LocalRuntime` - a runtime of local databases (:class:`~.native.NativeRuntime`,
  :class:`~.docker.DockerRuntime`): create, start, stop, measure one database by name.
  The services, the ``local``/``docker`` providers and the stacks' runtimes
  (:class:`~.runtimes.LocalRuntimes`, which implements the stacks' own
  :class:`~snoozeql.domain.stacks.runtime.StackRuntime` on top of these) type against it.
* :class:`LocalEngine` - everything about one database engine (one module per engine
  under ``engines/``, found through the registry in ``engines/__init__.py``): its native
  setup and command line, its Docker command line and environment, its readiness probe,
  its connection count and how its installed version is found.

The pure facts of an engine (default port, image, where the password goes) stay in the
domain catalogue, :mod:`snoozeql.domain.engines`, which validation needs; an engine
module reaches them as ``info``.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from snoozeql.domain.engines import (
    CATALOGUE,
    Engine,
    EngineInfo,
    LocalDatabaseSpec,
    Runtime,
    RuntimeState,
    version_matches,
)
from snoozeql.providers.local.process import RunAs, RunningSetup, SetupRunner, write_private

# --------------------------------------------------------------------------- runtimes


class SetupAhead(Protocol):
    """A create's setup started before the create was checked (the native runtime's
    :class:`~.native.CreateAhead`): the runtime's create uses it or discards it."""

    @property
    def password(self) -> str:
        """The password it was started with (generated when the user gave none)."""

    def discard(self) -> None:
        """Stop what it started and remove what it made; a no-op once it was used."""


class LocalRuntime(Protocol):
    """One runtime of local databases; every method takes the database's name.

    The password is passed in by the caller (the store keeps it encrypted) whenever the
    server must be probed, since ready means "answers with the password"; without one a
    status counts a live process with an open port as running.
    """

    @property
    def kind(self) -> Runtime:
        """``native`` or ``docker``."""

    def names(self) -> list[str]:
        """Names of the databases this runtime has, whatever their state."""

    def exists(self, name: str) -> bool: ...

    def create(
        self, spec: LocalDatabaseSpec, password: str, ahead: SetupAhead | None = None
    ) -> RuntimeState:
        """Make it, start it and wait until it answers; nothing is left when this fails.

        ``ahead``: what the runtime started before the create was checked
        (:meth:`~.native.NativeRuntime.begin_create`); used when it was made for this
        database, and discarded in every other case."""

    def start(self, name: str, password: str | None) -> RuntimeState: ...

    def stop(self, name: str) -> RuntimeState: ...

    def restart(self, name: str, password: str | None) -> RuntimeState: ...

    def delete(self, name: str, keep_data: bool = False) -> Path | str | None:
        """Remove it; with ``keep_data`` returns where its data was kept."""

    def status(self, name: str, password: str | None) -> RuntimeState:
        """Measured now: process or container, port, probe with the password."""

    def logs(self, name: str, n: int = 50) -> list[str]: ...

    def url(self, name: str, password: str) -> str:
        """A client connection URL; it holds the password, so it is never logged."""


# --------------------------------------------------------------------------- engines


@dataclass(frozen=True)
class InstanceLayout:
    """Where a native instance keeps its files, under ``<data_dir>/instances/<name>/``."""

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


@dataclass(frozen=True)
class NativeSetup:
    """What an engine's native setup is given: where, which server, which port and
    password, as whom, and how to run a setup command as that user."""

    layout: InstanceLayout
    bins: ServerBinaries
    port: int
    password: str = field(repr=False)
    run_as: RunAs
    durable: bool
    run: SetupRunner
    #: The engine's :meth:`LocalEngine.initialise_ahead` ran, to its end, in this
    #: directory before it was moved into place: :meth:`LocalEngine.initialise` does
    #: only the rest.
    ahead: bool = False

    def write_private(self, path: Path, text: str) -> None:
        """Write a file only the server's user can read (it may hold the password)."""
        write_private(path, text, self.run_as)


@dataclass(frozen=True)
class AheadSetup:
    """What an engine's setup ahead is given: a staging directory laid out like the
    instance's (renamed into place once the create is validated), the server, the
    password and the user; no port yet (the create has not chosen it)."""

    layout: InstanceLayout
    bins: ServerBinaries
    password: str = field(repr=False)
    run_as: RunAs
    run: SetupRunner

    def write_private(self, path: Path, text: str) -> None:
        write_private(path, text, self.run_as)


@dataclass(frozen=True)
class ProbeResult:
    """``ok`` when the engine answered with the password; ``detail`` says what happened.

    ``reachable`` is False when nothing accepted the connection (so "not started yet"),
    True when something answered but refused or failed (wrong password, still starting).
    """

    ok: bool
    reachable: bool
    detail: str


class LocalEngine(Protocol):
    """Everything about one database engine, natively and on Docker."""

    @property
    def info(self) -> EngineInfo:
        """The engine's facts in the domain catalogue (ports, image, password places)."""

    @property
    def stop_signal(self) -> signal.Signals:
        """The signal that stops the server gracefully (natively)."""

    @property
    def notifies_ready(self) -> bool:
        """True when the server says itself that it is ready (systemd's notify protocol),
        so the native runtime waits for that message instead of polling."""

    @property
    def sets_up_ahead(self) -> bool:
        """True when :meth:`initialise_ahead` has something to start before the create
        is checked (the native runtime then sets up a staging directory for it)."""

    @property
    def service_users(self) -> tuple[str, ...]:
        """Unprivileged users to run the server as when SnoozeQL runs as root."""

    @property
    def looked_for(self) -> str:
        """Where :meth:`installed` looks, for the message when nothing is found."""

    @property
    def client_modules(self) -> tuple[str, ...]:
        """The Python modules :meth:`probe` imports (the native runtime imports them
        while the data directory is made, so the first probe does not wait for them)."""

    def require_client(self) -> None:
        """Refuse (``MissingExtra``) when the Python client this engine needs is missing."""

    def installed(self) -> list[ServerBinaries]:
        """The engine's servers installed on this machine, with their versions."""

    def matches(self, requested: str, installed: str) -> bool:
        """Whether an installed version serves a requested one."""

    def initialise_ahead(self, setup: AheadSetup) -> RunningSetup | None:
        """Start the part of :meth:`initialise` that needs neither the port nor the
        instance's final place (PostgreSQL's initdb) and return it running, so that it
        overlaps the caller's own start-up; None when the engine has no such part."""

    def initialise(self, setup: NativeSetup) -> None:
        """Make the data directory and config files; the password goes in here. With
        ``setup.ahead``, :meth:`initialise_ahead` has already run to its end."""

    def argv(self, layout: InstanceLayout, bins: ServerBinaries, port: int) -> list[str]:
        """The native server's command line."""

    def after_first_start(self, port: int, password: str, timeout: float) -> None:
        """A setup step that needs the running server (MongoDB's first user)."""

    def docker_command(self, port: int, password: str) -> list[str]:
        """Arguments for the official image's entrypoint: port, loopback bind (host
        networking), and the password where the image takes it on the command line."""

    def docker_environment(self, password: str) -> dict[str, str]:
        """The environment that gives the official image its password (and user)."""

    def probe(self, host: str, port: int, user: str, password: str, timeout: float
              ) -> ProbeResult:
        """One login with the password and a trivial query; may raise OSError."""

    def connections(self, host: str, port: int, user: str, password: str, timeout: float
                    ) -> float:
        """Client connections the engine reports, not counting the one asking."""


class EngineDefaults:
    """What most engines share; an engine module's class derives from it."""

    engine: Engine
    stop_signal: signal.Signals = signal.SIGTERM
    notifies_ready: bool = False
    sets_up_ahead: bool = False
    client_modules: tuple[str, ...] = ()

    @property
    def info(self) -> EngineInfo:
        return CATALOGUE[self.engine]

    @property
    def service_users(self) -> tuple[str, ...]:
        return (self.engine.value, "nobody")

    def require_client(self) -> None:
        """The default engines' clients (psycopg, PyMySQL, plain sockets) always exist."""

    def matches(self, requested: str, installed: str) -> bool:
        return version_matches(requested, installed)

    def initialise_ahead(self, setup: AheadSetup) -> RunningSetup | None:
        """Default: nothing ahead; :meth:`initialise` does everything."""
        return None

    def after_first_start(self, port: int, password: str, timeout: float) -> None:
        """Default: nothing to do once the server runs."""

    def docker_environment(self, password: str) -> dict[str, str]:
        return {var: password for var in self.info.docker_password_env}


__all__ = [
    "AheadSetup",
    "EngineDefaults",
    "InstanceLayout",
    "LocalEngine",
    "LocalRuntime",
    "NativeSetup",
    "ProbeResult",
    "ServerBinaries",
    "SetupAhead",
]
