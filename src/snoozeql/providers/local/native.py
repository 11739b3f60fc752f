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

What differs between engines (setup, command line, stop signal, whether the server
says itself that it is ready, a step after the first start) is asked of the engine's
module (``engines/``); nothing here names an engine.

When SnoozeQL runs as root, servers run as an existing unprivileged system user (the
engine's ``service_users``: ``postgres``, ``mysql``, ``redis``, ``mongodb``, else
``nobody``): initdb refuses root and no database server should need it.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib
import json
import logging
import os
import pwd
import secrets
import shutil
import signal
import stat
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn, Protocol

from snoozeql.domain.engines import (
    EngineInfo,
    LocalDatabaseSpec,
    Runtime,
    RuntimeState,
    connection_url,
)
from snoozeql.domain.errors import (
    ActionRefused,
    ConflictError,
    NotFoundError,
    ProviderError,
    ValidationError,
)
from snoozeql.domain.types import InstanceStatus
from snoozeql.providers.local import engines, probes
from snoozeql.providers.local.base import (
    AheadSetup,
    InstanceLayout,
    LocalEngine,
    NativeSetup,
    ProbeResult,
    ServerBinaries,
    SetupAhead,
)
from snoozeql.providers.local.ports import HOST, port_in_use, port_open
from snoozeql.providers.local.process import (
    LOG_TAIL_LINES,
    ReadySignal,
    RunAs,
    RunningSetup,
    SetupRunner,
    alive,
    proc_start_time,
    redact,
    spawn,
    tail,
)

log = logging.getLogger(__name__)

# A create's setup started ahead lives in <instances>/.creating-<name>-<pid>-<random>
# until it is moved into place (never a valid instance name: those are DNS labels).
STAGING_PREFIX = ".creating-"

_SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


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


def _import_quietly(modules: tuple[str, ...]) -> None:
    for module in modules:
        with contextlib.suppress(ImportError):  # the probe says what is missing
            importlib.import_module(module)


def installed_versions(engine: str) -> list[str]:
    """Versions of ``engine`` whose server binaries are installed on this machine."""
    return [b.version for b in engines.get(engine).installed()]


class DataDirSettings(Protocol):
    """All the native runtime reads of the settings (:class:`snoozeql.config.Settings`
    is one): where the data directory is. Not importing the settings lets
    ``db create`` start initdb before pydantic-settings is loaded."""

    @property
    def data_dir(self) -> Path: ...


@dataclass(frozen=True)
class DataDir:
    """A data directory known before the settings are read
    (:mod:`snoozeql.early_settings`)."""

    data_dir: Path


def _remove(staging: Path, made: Path | None) -> None:
    """Remove a staging directory (again, if a process it ran still wrote into it), and
    the instances directory when the setup ahead made it and nothing else is there."""
    for _ in range(3):
        shutil.rmtree(staging, ignore_errors=True)
        if not staging.exists():
            break
        time.sleep(0.05)
    if made is not None:
        with contextlib.suppress(OSError):
            made.rmdir()


class CreateAhead:
    """A native create's setup started before the create was checked
    (:meth:`NativeRuntime.begin_create`): its running command (initdb) and its staging
    directory, ``<instances>/.creating-<name>-<pid>-<random>``, on the same file system
    as the instance's place so that it moves there by a rename.

    :meth:`NativeRuntime.create` moves it into place when it was made for that very
    database (:meth:`fits`); :meth:`discard` kills the command and removes the staging
    directory (a no-op once it was moved), so a refused create leaves nothing.
    """

    def __init__(
        self, name: str, engine: LocalEngine, bins: ServerBinaries, run_as: RunAs,
        password: str, staging: InstanceLayout, made_dir: Path | None,
    ) -> None:
        self.name = name
        self.engine = engine
        self.bins = bins
        self.run_as = run_as
        self._password = password
        self.staging = staging
        self.running: RunningSetup | None = None
        self._made_dir = made_dir

    @property
    def password(self) -> str:
        """The password initdb was given (a generated one, when the user gave none)."""
        return self._password

    def __repr__(self) -> str:
        return f"CreateAhead({self.name!r}, {self.staging.root})"

    def fits(self, layout: InstanceLayout, spec: LocalDatabaseSpec, password: str,
             bins: ServerBinaries, run_as: RunAs) -> bool:
        """Made for this database: its name, place (a sibling), engine, server, user and
        password."""
        return (spec.name == self.name and spec.engine is self.engine.info.engine
                and layout.root.parent == self.staging.root.parent
                and bins.server == self.bins.server and run_as == self.run_as
                and password == self._password and self.staging.root.is_dir())

    def finish(self, layout: InstanceLayout) -> None:
        """Wait for the command (ProviderError if it failed), then move the staging
        directory to the instance's place (which the caller holds locked and found free)."""
        if self.running is not None:
            self.running.wait()
        os.rename(self.staging.root, layout.root)

    def discard(self) -> None:
        """Kill the command if it still runs and remove what it made. Idempotent."""
        if self.running is not None:
            self.running.kill()
        _remove(self.staging.root, self._made_dir)
        self._made_dir = None


class NativeRuntime:
    """Create and run local databases as server processes; every status is measured.

    Methods take the instance name; the password is passed in by the caller (the store
    keeps it encrypted) whenever the server must be probed, since ready means "answers
    with the password".
    """

    kind = Runtime.NATIVE

    def __init__(
        self,
        settings: DataDirSettings,
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

    def begin_create(
        self, name: str, engine: str, version: str | None, password: str
    ) -> CreateAhead | None:
        """Start the engine's setup that needs no port (PostgreSQL's initdb) before the
        create is checked, in a staging directory beside the instances, so that it runs
        while the caller imports its modules and opens the store.

        The caller hands the result to :meth:`create`, which moves it into place, or
        discards it (:meth:`CreateAhead.discard`) when the create is refused or fails.
        None when the engine has nothing to do ahead, or anything stands in the way:
        the create then does everything itself and says what is wrong. Never raises.
        """
        try:
            found = engines.get(engine)
            if not found.sets_up_ahead or not self.settings.data_dir.is_dir():
                return None  # a first run makes the store first: nothing to overlap
            if self._layout(name).root.exists():
                return None
            bins = self._binaries(found, version)
            run_as = self._run_as(found)
        except Exception:  # noqa: BLE001 - the create reports it
            return None
        made = not self.instances_dir.exists()
        staging = InstanceLayout(
            self.instances_dir / f"{STAGING_PREFIX}{name}-{os.getpid()}-{secrets.token_hex(4)}")
        ahead = CreateAhead(name, found, bins, run_as, password, staging,
                            self.instances_dir if made else None)
        try:
            self._check_reachable(staging.root, run_as)
            self._sweep_staging()
            self._make_dirs(staging, run_as)
            runner = SetupRunner(run_as, self._env(staging), staging.root, password)
            ahead.running = found.initialise_ahead(
                AheadSetup(staging, bins, password, run_as, runner))
        except Exception:  # noqa: BLE001 - the create does it again and reports it
            log.debug("could not set up %s ahead", name, exc_info=True)
            ahead.discard()
            return None
        except BaseException:
            ahead.discard()
            raise
        return ahead

    def create(
        self, spec: LocalDatabaseSpec, password: str, ahead: SetupAhead | None = None
    ) -> RuntimeState:
        """Initialise the data directory, start the server and wait until it answers.

        Anything half-made is removed when a step fails. ``ahead`` (from
        :meth:`begin_create`) is used when it was made for this very database, and
        discarded whatever happens otherwise.
        """
        try:
            return self._create(spec, password,
                                ahead if isinstance(ahead, CreateAhead) else None)
        finally:
            if ahead is not None:
                ahead.discard()  # nothing left once it was moved into place

    def _create(
        self, spec: LocalDatabaseSpec, password: str, ahead: CreateAhead | None
    ) -> RuntimeState:
        if spec.runtime is not Runtime.NATIVE:
            raise ValidationError("this spec is for the docker runtime, not native")
        if not password:
            raise ValidationError("a password is required")
        engine = engines.get(spec.engine)
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
            bins = self._binaries(engine, spec.version)
            run_as = self._run_as(engine)
            self._check_reachable(layout.root, run_as)
            if ahead is not None and not ahead.fits(layout, spec, password, bins, run_as):
                ahead.discard()
                ahead = None
            try:
                log.info("initialising the data directory of %s", spec.name)
                # The probe's client library is imported while this thread waits for
                # initdb and the like, not after the server says it is ready.
                warm = threading.Thread(target=_import_quietly, args=(engine.client_modules,),
                                        name="import-client", daemon=True)
                warm.start()
                try:
                    if ahead is not None:
                        ahead.finish(layout)
                    else:
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
                    runner = SetupRunner(run_as, self._env(layout), layout.root, password)
                    engine.initialise(NativeSetup(layout, bins, spec.port, password, run_as,
                                                  self.durable, runner, ahead=ahead is not None))
                finally:
                    warm.join()
                log.info("starting %s %s on port %d", spec.engine.value, bins.version, spec.port)
                ready = ReadySignal() if engine.notifies_ready else None
                try:
                    self._spawn(layout, engine, bins, spec.port, run_as,
                                ready.env() if ready else None)
                    engine.after_first_start(spec.port, password, self.ready_timeout)
                    log.info("waiting until %s answers", spec.name)
                    answered = self._await_ready(spec.name, password, ready)
                finally:
                    if ready:
                        ready.close()
            except BaseException:
                self._kill(layout, engine, timeout=2.0)
                shutil.rmtree(layout.root, ignore_errors=True)
                raise
            return self.status(spec.name, password, probed=answered)

    def start(self, name: str, password: str | None) -> RuntimeState:
        """Start a stopped (or failed) instance and wait until it answers."""
        with self._lock(name):
            meta = self._meta(name)
            layout = self._layout(name)
            if self._running_pid(layout) is not None:
                return self.status(name, password)
            engine = engines.get(meta["engine"])
            # A crashed server's socket can outlive its process for a moment.
            grace = 5.0 if layout.pid_file.exists() else 0.0
            layout.pid_file.unlink(missing_ok=True)
            self._refuse_busy_port(int(meta["port"]), grace)
            bins = self._binaries(engine, None, server=Path(meta["server"]))
            run_as = self._run_as(engine, preferred=meta.get("user"))
            self._spawn(layout, engine, bins, int(meta["port"]), run_as)
            try:
                answered = self._await_ready(name, password)
            except BaseException:
                self._kill(layout, engine, timeout=self.stop_timeout)
                raise
            return self.status(name, password, probed=answered)

    def stop(self, name: str) -> RuntimeState:
        """Graceful stop, forced after ``stop_timeout`` seconds (10 s by default)."""
        with self._lock(name):
            meta = self._meta(name)
            layout = self._layout(name)
            forced = self._kill(layout, engines.get(meta["engine"]), self.stop_timeout)
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
            self._kill(layout, engines.get(meta["engine"]), self.stop_timeout)
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

    def status(
        self, name: str, password: str | None, *, probed: ProbeResult | None = None
    ) -> RuntimeState:
        """Measured now: process alive, port open, probe answers with the password.

        Without a password the probe is skipped and a live process with an open port
        counts as running (``probe_ok`` is None then). ``probed``: the answer a probe
        with the password gave a moment ago (a create's or start's wait until ready),
        taken instead of asking the server again.
        """
        meta = self._meta(name)
        layout = self._layout(name)
        engine = engines.get(meta["engine"]).info.engine
        port = int(meta["port"])
        pid = self._running_pid(layout)
        is_open = port_open(port, HOST, timeout=0.3)
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
                lines = tuple(tail(layout.log_file, LOG_TAIL_LINES))
                detail = "the server process exited while it was meant to run"
                if is_open:
                    detail += f"; port {port} is now held by another process"
                return replace(base, status=InstanceStatus.FAILED, detail=detail, log_tail=lines)
            return replace(base, status=InstanceStatus.STOPPED, detail="stopped")
        if password is None:
            if is_open:
                return replace(
                    base, status=InstanceStatus.RUNNING, detail="process alive, port open"
                )
            return replace(
                base, status=InstanceStatus.STARTING, detail="process alive, port not open yet"
            )
        result = probed if probed is not None else probes.probe(engine, port, password,
                                                                 host=HOST)
        if result.ok:
            return replace(base, status=InstanceStatus.RUNNING, probe_ok=True, detail=result.detail)
        return replace(
            base,
            status=InstanceStatus.STARTING,
            probe_ok=False,
            detail=f"process alive but not answering: {result.detail}",
            log_tail=tuple(tail(layout.log_file, LOG_TAIL_LINES)),
        )

    def logs(self, name: str, n: int = 50) -> list[str]:
        self._meta(name)
        return tail(self._layout(name).log_file, n)

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
        self, engine: LocalEngine, version: str | None, server: Path | None = None
    ) -> ServerBinaries:
        info = engine.info
        found = engine.installed()
        if not found:
            raise _missing(info, engine.looked_for)
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
            if engine.matches(version, b.version):
                return b
        raise ValidationError(
            f"{info.display_name} {version} is not installed here; installed: "
            f"{', '.join(b.version for b in found)} (natively the installed version is "
            "used; use --runtime docker for another version)"
        )

    def _run_as(self, engine: LocalEngine, preferred: object = None) -> RunAs:
        if os.geteuid() != 0:
            entry = pwd.getpwuid(os.geteuid())
            return RunAs(entry.pw_name, entry.pw_uid, entry.pw_gid, switch=False)
        candidates = ((str(preferred),) if preferred else ()) + engine.service_users
        for user in candidates:
            try:
                entry = pwd.getpwnam(user)
            except KeyError:
                continue
            if entry.pw_uid != 0:
                return RunAs(entry.pw_name, entry.pw_uid, entry.pw_gid, switch=True)
        raise ActionRefused(
            "running as root, and none of the unprivileged users "
            f"{', '.join(engine.service_users)} exists to run the server as"
        )

    def _check_reachable(self, path: Path, run_as: RunAs) -> None:
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

    def _sweep_staging(self) -> None:
        """Remove the staging directories of creates whose process is gone (killed
        before it could clean up)."""
        if not self.instances_dir.is_dir():
            return
        for entry in self.instances_dir.iterdir():
            if not entry.name.startswith(STAGING_PREFIX):
                continue
            try:
                pid = int(entry.name.rsplit("-", 2)[-2])
            except (ValueError, IndexError):
                continue
            if pid != os.getpid() and proc_start_time(pid) is None:
                shutil.rmtree(entry, ignore_errors=True)

    def _make_dirs(self, layout: InstanceLayout, run_as: RunAs) -> None:
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
        engine: LocalEngine,
        bins: ServerBinaries,
        port: int,
        run_as: RunAs,
        extra_env: dict[str, str] | None = None,
    ) -> int:
        argv = engine.argv(layout, bins, port)
        env = {**self._env(layout), **(extra_env or {})}
        pid, start = spawn(argv, layout.log_file, layout.run, env, run_as)
        tmp = layout.pid_file.with_suffix(".tmp")
        tmp.write_text(json.dumps({"pid": pid, "start": start}) + "\n")
        os.replace(tmp, layout.pid_file)
        return pid

    def _running_pid(self, layout: InstanceLayout) -> int | None:
        try:
            data = json.loads(layout.pid_file.read_text())
            pid, start = int(data["pid"]), int(data["start"])
        except (FileNotFoundError, ValueError, KeyError, TypeError):
            return None
        return pid if alive(pid, start) else None

    def _kill(self, layout: InstanceLayout, engine: LocalEngine, timeout: float) -> bool:
        """Stop the server: its own graceful signal, then SIGKILL to its whole session.

        Returns True when it had to be forced. Removes the pid file: a stop is deliberate.
        """
        pid = self._running_pid(layout)
        forced = False
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, engine.stop_signal)
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
        self, name: str, password: str | None, ready: ReadySignal | None = None
    ) -> ProbeResult | None:
        """Until the server answers with the password (its answer) or, without one,
        opens its port (None); ProviderError with its last log lines otherwise."""
        meta = self._meta(name)
        layout = self._layout(name)
        engine = engines.get(meta["engine"])
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
                if port_open(port, HOST):
                    return None
                time.sleep(0.2)
            self._not_ready(layout, engine, "the port did not open", None)
        result = probes.wait_ready(
            engine.info.engine,
            port,
            password,
            timeout=self.ready_timeout,
            still_alive=lambda: self._running_pid(layout) is not None,
            interval=interval,
        )
        if not result.ok:
            self._not_ready(layout, engine, result.detail, password)
        return result

    def _not_ready(
        self, layout: InstanceLayout, engine: LocalEngine, detail: str, password: str | None
    ) -> NoReturn:
        lines = "\n".join(tail(layout.log_file, LOG_TAIL_LINES))
        raise ProviderError(
            redact(
                f"{engine.info.display_name} did not become ready: {detail}\n"
                f"last log lines:\n{lines}",
                password,
            )
        )


__all__ = ["CreateAhead", "DataDir", "DataDirSettings", "NativeRuntime", "installed_versions"]
