"""Server processes: who they run as, starting them detached, telling whether one is
still ours, running setup commands, and the server's own "ready" message.

A process is identified by its pid *and* its kernel start time, so a reused pid is not
mistaken for our server. Nothing here knows an engine.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from snoozeql.domain.errors import ProviderError

LOG_TAIL_LINES = 20


@dataclass(frozen=True)
class RunAs:
    """The account a server runs as; ``switch`` when we must drop root to reach it."""

    name: str
    uid: int
    gid: int
    switch: bool

    def popen_kwargs(self) -> dict[str, Any]:
        if not self.switch:
            return {}
        return {"user": self.uid, "group": self.gid, "extra_groups": []}


def proc_start_time(pid: int) -> tuple[str, int] | None:
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


def alive(pid: int, start: int) -> bool:
    """True while the process ``pid`` that started at ``start`` runs (not a zombie)."""
    info = proc_start_time(pid)
    if info is None or info[1] != start:
        return False
    if info[0] in ("Z", "X"):
        _reap(pid)
        return False
    return True


def spawn(
    argv: list[str], log_file: Path, cwd: Path, env: dict[str, str], run_as: RunAs
) -> tuple[int, int]:
    """Start a server detached in its own session, its output appended to ``log_file``;
    returns its pid and start time."""
    stamp = datetime.now(UTC).isoformat(timespec="seconds")
    with open(log_file, "ab") as log:
        log.write(f"--- snoozeql: starting {Path(argv[0]).name} at {stamp} ---\n".encode())
        log.flush()
        if run_as.switch:
            os.chown(log_file, run_as.uid, run_as.gid)
        try:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=cwd,
                env=env,
                start_new_session=True,
                close_fds=True,
                **run_as.popen_kwargs(),
            )
        except OSError as exc:
            raise ProviderError(f"cannot start {Path(argv[0]).name}: {exc}") from None
    info = proc_start_time(proc.pid)
    return proc.pid, info[1] if info else 0


def tail(path: Path, n: int) -> list[str]:
    """The last ``n`` lines of a log file (read from its last 256 KiB)."""
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


def redact(text: str, password: str | None) -> str:
    return text.replace(password, "***") if password else text


def version_of(argv: list[str], pattern: str) -> str:
    """The version a program prints (``--version``), by the regex group of ``pattern``."""
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=20, check=False)
    except OSError as exc:
        raise ProviderError(f"cannot run {argv[0]}: {exc}") from None
    match = re.search(pattern, out.stdout + out.stderr)
    if not match:
        raise ProviderError(f"cannot read the version of {argv[0]}")
    return match.group(1)


def write_private(path: Path, text: str, owner: RunAs) -> None:
    """Write a file only its owner can read (config files may hold the password)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.chmod(path, 0o600)
    if owner.switch:
        os.chown(path, owner.uid, owner.gid)


class SetupRunner:
    """Runs a setup command as the server's user; failures carry redacted output."""

    def __init__(self, run_as: RunAs, env: dict[str, str], cwd: Path, password: str) -> None:
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
            raise self._failed(argv, out.returncode, out.stdout + out.stderr)

    def start(self, argv: list[str]) -> RunningSetup:
        """Start a setup command and return at once: the caller does something else
        meanwhile, then waits for it (:meth:`RunningSetup.wait`) or kills it."""
        try:
            proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT, text=True, env=self.env, cwd=self.cwd,
                # Its own process group: a kill reaches the processes it starts too
                # (initdb's bootstrap backend), and a Ctrl-C is the caller's to handle.
                start_new_session=True, **self.run_as.popen_kwargs(),
            )
        except OSError as exc:
            raise ProviderError(f"cannot run {Path(argv[0]).name}: {exc}") from None
        return RunningSetup(self, argv, proc)

    def _failed(self, argv: list[str], code: int, output: str) -> ProviderError:
        lines = output.strip().splitlines()[-LOG_TAIL_LINES:]
        text = redact("\n".join(lines), self.password)
        return ProviderError(f"{Path(argv[0]).name} failed (exit {code}):\n{text}")


class RunningSetup:
    """A setup command started by :meth:`SetupRunner.start`, running while its caller
    does other work; its failure carries redacted output, as a waited-for one's."""

    def __init__(self, runner: SetupRunner, argv: list[str],
                 proc: subprocess.Popen[str]) -> None:
        self.runner = runner
        self.argv = argv
        self.proc = proc

    def wait(self, timeout: float = 180) -> None:
        """Wait until it exits; ProviderError when it failed or ran out of time."""
        try:
            output, _ = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise ProviderError(
                f"{Path(self.argv[0]).name} did not finish in {timeout:g}s") from None
        if self.proc.returncode != 0:
            raise self.runner._failed(self.argv, self.proc.returncode, output or "")

    def kill(self) -> None:
        """Kill it if it still runs, and collect it (no zombie is left)."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired, OSError, ValueError):
            self.proc.communicate(timeout=10)


class ReadySignal:
    """The server's own "ready" message, by systemd's notify protocol.

    A server built with systemd support (Debian's PostgreSQL) sends ``READY=1`` to the
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

    def wait(self, timeout: float, alive: Callable[[], bool]) -> bool:
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


__all__ = [
    "LOG_TAIL_LINES",
    "ReadySignal",
    "RunAs",
    "RunningSetup",
    "SetupRunner",
    "alive",
    "proc_start_time",
    "redact",
    "spawn",
    "tail",
    "version_of",
    "write_private",
]
