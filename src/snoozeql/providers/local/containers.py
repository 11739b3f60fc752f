"""The generic container runtime: stack instances whose template has no ``engine``.

A database template goes through the engine registry (native or Docker runtime); every
other image (nginx, a web app, ...) runs here, as one Docker container per instance,
written against docker-py with API version negotiation (``version="auto"``).

What each container gets, kept in line with the Compose export so the two agree:

* the name ``<prefix>-<stack>-<instance>`` and the export's identity labels
  (``snoozeql.managed``, ``snoozeql.stack``, ``snoozeql.instance``,
  ``snoozeql.template``, ...) plus the template's and overrides' own labels;
* its command, environment (secret values are decrypted by the service and passed in;
  they are never logged, and log lines shown to the user have them masked), named
  volumes scoped to the instance exactly as Compose would name them
  (``<prefix>-<stack>_<instance>_<name>``, so the exported file reuses the same data),
  its config files written under ``<data_dir>/stacks/<name>/configs/`` and bind-mounted
  read-only with their modes, the healthcheck in Docker's form, restart policy "no";
* **host networking only**: SnoozeQL never creates a network (a bridge network needs
  iptables, which the engine may not have). With host networking a port cannot be
  remapped, so a mapping whose host port differs from its container port is refused up
  front (:func:`unit_problem`); equal ports are checked free before every start.

Docker cannot tell "stopped on purpose" from "killed" (both are "exited"), so the state
the user asked for is kept in ``<data_dir>/stacks/<name>/state.json``; a container that
is not running while it was meant to is reported ``failed`` with its exit code and last
log lines.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from snoozeql.config import Settings
from snoozeql.domain.errors import ConflictError, NotFoundError, ProviderError
from snoozeql.domain.stacks.compose import identity_labels
from snoozeql.domain.stacks.entries import Healthcheck
from snoozeql.domain.stacks.merge import EffectiveService
from snoozeql.domain.types import InstanceStatus
from snoozeql.providers.local.docker import DockerEngine
from snoozeql.providers.local.ports import HOST, port_open, port_taken

RUNTIME = "container"
MANAGED_LABEL = "snoozeql.managed"
LOG_TAIL_LINES = 20
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|us|ns|h|m|s)")
_NS = {"h": 3600 * 10**9, "m": 60 * 10**9, "s": 10**9, "ms": 10**6, "us": 10**3, "ns": 1}


# ----------------------------------------------------------------- pure translation


@dataclass(frozen=True)
class ContainerSpec:
    """One instance to run: its container name, stack, instance and merged service."""

    name: str
    stack: str
    instance: str
    service: EffectiveService

    @property
    def project(self) -> str:
        """The Compose project the export names (``<prefix>-<stack>``)."""
        return self.name.removesuffix("-" + self.instance)

    def volume(self, source: str) -> str:
        """The Docker name of a named volume, as Compose would create it from the export."""
        return f"{self.project}_{self.instance}_{source}"

    @property
    def secret_values(self) -> list[str]:
        return [e.value for e in self.service.environment if e.secret and e.value]


def listen_ports(svc: EffectiveService) -> list[tuple[int, str]]:
    """The (port, protocol) pairs the service listens on directly under host networking."""
    seen: dict[tuple[int, str], None] = {}
    for p in svc.ports:
        seen[(p.container_port, p.protocol)] = None
    return list(seen)


def unit_problem(svc: EffectiveService) -> str | None:
    """Why this service cannot run here as it is, or None.

    Host networking cannot remap a port, and a relative bind source only means something
    next to a Compose file; both are refused with what to do instead.
    """
    for p in svc.ports:
        if p.host_port is not None and p.host_port != p.container_port:
            return (
                f"host networking cannot publish {p.host_port} as {p.container_port}; set the "
                f"ports override to {p.container_port}:{p.container_port} or run the exported "
                "Compose file (snoozeql stacks export)"
            )
    for v in svc.volumes:
        if v.type == "bind" and (v.source or "").startswith("."):
            return (
                f"bind mount source {v.source} is relative to a Compose file; use an absolute "
                "path in a volumes override or run the exported Compose file "
                "(snoozeql stacks export)"
            )
    return None


def duration_ns(text: str) -> int:
    """A Compose duration (``1m30s``, ``500ms``) in nanoseconds, as Docker wants it."""
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"not a duration: {text!r}")
    return int(sum(float(n) * _NS[u] for n, u in parts))


def docker_healthcheck(hc: Healthcheck | None) -> dict[str, Any] | None:
    """The healthcheck in docker-py's form: durations in nanoseconds; disable → NONE."""
    if hc is None:
        return None
    if hc.disable:
        return {"test": ["NONE"]}
    out: dict[str, Any] = {}
    if hc.test is not None:
        out["test"] = list(hc.test)
    for name in ("interval", "timeout", "start_period"):
        value = getattr(hc, name)
        if value is not None:
            out[name] = duration_ns(value)
    if hc.retries is not None:
        out["retries"] = hc.retries
    return out or None


def plan_summary(svc: EffectiveService) -> dict[str, Any]:
    """What the runtime uses, for ``plan`` to compare; no secret value in it.

    A secret shows as ``***``, so changing only a secret's value does not recreate the
    container (the stored summary must not hold or hint at the secret).
    """
    return {
        "command": list(svc.command) if isinstance(svc.command, tuple) else svc.command,
        "environment": {e.key: e.shown_value() for e in svc.environment},
        "labels": {label.key: label.value for label in svc.labels},
        "ports": [p.short() for p in svc.ports],
        "volumes": [asdict(v) for v in svc.volumes],
        "config_files": {
            c.target: {"mode": c.mode, "sha256": hashlib.sha256(c.content.encode()).hexdigest()}
            for c in svc.config_files
        },
        "healthcheck": svc.healthcheck.set_values() if svc.healthcheck else None,
        "domains": list(svc.domains),
    }


def container_labels(spec: ContainerSpec) -> dict[str, str]:
    labels = {label.key: label.value for label in spec.service.labels}
    labels.update(identity_labels(spec.stack, spec.instance, spec.service))
    return labels


def config_path(config_dir: Path, target: str) -> Path:
    return config_dir / target.lstrip("/")


def create_kwargs(
    spec: ContainerSpec, config_dir: Path, host_env: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Keyword arguments for ``client.containers.create``: the whole container spec.

    Pure, so what is sent to the engine can be checked without one. An env var without a
    value takes the value of SnoozeQL's own environment when it has one (as Compose does
    with the host's), else is left out.
    """
    svc = spec.service
    host_env = os.environ if host_env is None else host_env
    env: dict[str, str] = {}
    for e in svc.environment:
        if e.value is not None:
            env[e.key] = e.value
        elif e.key in host_env:
            env[e.key] = host_env[e.key]
    mounts: list[dict[str, Any]] = []
    for v in svc.volumes:
        mount: dict[str, Any] = {"Target": v.target, "Type": v.type, "ReadOnly": v.read_only}
        if v.type == "volume" and v.source:
            mount["Source"] = spec.volume(v.source)
        elif v.type == "bind":
            mount["Source"] = os.path.expanduser(v.source or "")
        mounts.append(mount)
    for c in svc.config_files:
        mounts.append(
            {
                "Target": c.target,
                "Type": "bind",
                "ReadOnly": True,
                "Source": str(config_path(config_dir, c.target)),
            }
        )
    kwargs: dict[str, Any] = {
        "image": svc.image,
        "name": spec.name,
        "environment": env,
        "labels": container_labels(spec),
        "network_mode": "host",
        "restart_policy": {"Name": "no"},
        "mounts": mounts,
    }
    if svc.command is not None:
        kwargs["command"] = svc.command if isinstance(svc.command, str) else list(svc.command)
    hc = docker_healthcheck(svc.healthcheck)
    if hc is not None:
        kwargs["healthcheck"] = hc
    return kwargs


# ------------------------------------------------------------------------- runtime


@dataclass(frozen=True)
class ContainerState:
    """A container's measured state."""

    name: str
    status: InstanceStatus
    detail: str
    container_id: str | None = None
    exit_code: int | None = None
    health: str | None = None
    log_tail: tuple[str, ...] = ()


class ContainerRuntime(DockerEngine):
    """Create, start, stop, remove and measure stack containers on a Docker engine."""

    unreachable_advice = (
        "install/start Docker: plain images (templates without an engine) run as Docker "
        "containers through the generic container runtime, or run the stack with its "
        "Compose export (snoozeql stacks export)"
    )

    def __init__(
        self,
        settings: Settings,
        *,
        base_url: str | None = None,
        ready_timeout: float | None = None,
        stop_timeout: float = 10.0,
    ) -> None:
        super().__init__(settings, base_url)
        self.ready_timeout = (
            ready_timeout
            if ready_timeout is not None
            else float(getattr(settings, "local_ready_timeout", 60.0))
        )
        self.stop_timeout = stop_timeout
        self.root = settings.data_dir / "stacks"

    def check(self) -> None:
        """Connect now: a ProviderError saying what to do when no engine answers."""
        self.client  # noqa: B018 - the property connects and pings

    # ------------------------------------------------------------------ public API

    def create(self, spec: ContainerSpec) -> ContainerState:
        """Make the volumes, config files and container; start it and wait until it is
        ready (see :meth:`_await_running`).

        A container of the same name left by an earlier apply of this very instance is
        replaced (its volumes kept); any other container of that name is a conflict.
        """
        import docker.errors

        client = self.client
        self._ensure_image(spec.service.image)
        try:
            old = self._call(lambda: client.containers.get(spec.name))
        except docker.errors.NotFound:
            old = None
        if old is not None:
            ours = (
                old.labels.get(MANAGED_LABEL),
                old.labels.get("snoozeql.stack"),
                old.labels.get("snoozeql.instance"),
            ) == ("true", spec.stack, spec.instance)
            if not ours:
                raise ConflictError(
                    f"a container named {spec.name} already exists and is not this instance's: "
                    f"remove it (docker rm -f {spec.name}) or rename this instance"
                )
            self._call(lambda: old.remove(force=True))
        self._refuse_busy_ports(listen_ports(spec.service))
        labels = container_labels(spec)
        for v in spec.service.volumes:
            if v.type == "volume" and v.source:
                vol = spec.volume(v.source)
                try:
                    self._call(lambda vol=vol: client.volumes.get(vol))
                except docker.errors.NotFound:
                    self._call(lambda vol=vol: client.volumes.create(name=vol, labels=labels))
        config_dir = self._dir(spec.name) / "configs"
        self._write_configs(spec, config_dir)
        kwargs = create_kwargs(spec, config_dir)
        container = self._call(lambda: client.containers.create(**kwargs))
        self._write_state(
            spec.name,
            "running",
            listen_ports(spec.service),
            [e.key for e in spec.service.environment if e.secret],
        )
        try:
            self._call(container.start)
            return self._await_running(spec.name)
        except BaseException:
            with contextlib.suppress(Exception):
                container.remove(force=True)
            self._state_file(spec.name).unlink(missing_ok=True)
            raise

    def start(self, name: str) -> ContainerState:
        container = self._container(name)
        if container.status == "running":
            return self.status(name)
        state = self._read_state(name)
        self._refuse_busy_ports([(int(p), str(proto)) for p, proto in state.get("ports", [])])
        self._write_state(name, "running", state.get("ports", []), state.get("secret_keys", []))
        self._call(container.start)
        return self._await_running(name)

    def stop(self, name: str) -> ContainerState:
        """Docker's graceful stop: the image's stop signal, SIGKILL after the timeout."""
        container = self._container(name)
        state = self._read_state(name)
        self._write_state(name, "stopped", state.get("ports", []), state.get("secret_keys", []))
        if container.status in ("running", "restarting", "paused"):
            self._call(lambda: container.stop(timeout=int(self.stop_timeout)))
        return self.status(name)

    def delete(self, name: str, keep_volumes: bool = True) -> list[str]:
        """Stop and remove the container and its config files; returns the named volumes
        kept (removed too when ``keep_volumes`` is false). A container of ours that was
        already removed by hand counts as removed, so the stack's record can be cleared."""
        import docker.errors

        try:
            container = self._container(name)
        except NotFoundError:
            if not self._state_file(name).exists():
                raise
            shutil.rmtree(self._dir(name), ignore_errors=True)  # removed outside SnoozeQL
            return []
        volumes = [
            m["Name"]
            for m in container.attrs.get("Mounts", [])
            if m.get("Type") == "volume" and m.get("Name")
        ]
        if container.status in ("running", "restarting", "paused"):
            self._call(lambda: container.stop(timeout=int(self.stop_timeout)))
        self._call(lambda: container.remove(force=True))
        shutil.rmtree(self._dir(name), ignore_errors=True)
        if keep_volumes:
            return volumes
        for vol in volumes:
            with contextlib.suppress(docker.errors.NotFound):
                self._call(lambda vol=vol: self.client.volumes.get(vol).remove(force=True))
        return []

    def status(self, name: str) -> ContainerState:
        """Measured now from the engine: running (and health), or exited with its code."""
        container = self._container(name)
        state = container.attrs.get("State", {})
        running = state.get("Status") == "running"
        health = (state.get("Health") or {}).get("Status")
        exit_code = state.get("ExitCode")
        if running:
            status = InstanceStatus.STARTING if health == "starting" else InstanceStatus.RUNNING
            detail = "container running" + (f", healthcheck {health}" if health else "")
            return ContainerState(name, status, detail, container.id, None, health)
        if self._read_state(name).get("desired") == "running":
            why = f"container {state.get('Status', 'gone')}"
            if state.get("OOMKilled"):
                why += ", killed for lack of memory"
            if exit_code is not None:
                why += f", exit code {exit_code}"
            return ContainerState(
                name,
                InstanceStatus.FAILED,
                f"the container stopped while it was meant to run ({why})",
                container.id,
                exit_code,
                health,
                tuple(self.logs(name, LOG_TAIL_LINES)),
            )
        return ContainerState(
            name, InstanceStatus.STOPPED, "stopped", container.id, exit_code, health
        )

    def logs(self, name: str, n: int = 50) -> list[str]:
        """The container's last log lines, with its secret env values masked."""
        container = self._container(name)
        raw = self._call(lambda: container.logs(stdout=True, stderr=True, tail=max(n, 0)))
        text = raw.decode("utf-8", "replace")
        secret_keys = set(self._read_state(name).get("secret_keys", []))
        for item in container.attrs.get("Config", {}).get("Env") or []:
            key, _, value = item.partition("=")
            if key in secret_keys and value:
                text = text.replace(value, "***")
        lines = text.splitlines()
        return lines[-n:] if n > 0 else []

    # ------------------------------------------------------------------ internals

    def _container(self, name: str) -> Any:
        import docker.errors

        try:
            container = self._call(lambda: self.client.containers.get(name))
        except docker.errors.NotFound:
            raise NotFoundError(f"no container named {name!r}") from None
        if container.labels.get(MANAGED_LABEL) != "true" or not container.labels.get(
            "snoozeql.stack"
        ):
            raise NotFoundError(f"container {name} exists but was not made by a SnoozeQL stack")
        return container


    def _refuse_busy_ports(self, ports: list[tuple[int, str]]) -> None:
        for port, protocol in ports:
            if port_taken(port, protocol):
                raise ConflictError(
                    f"port {port}/{protocol} is already in use on this host; with host "
                    "networking the service listens on it directly: stop what holds it, or "
                    "make the service listen on another port and publish that one"
                )

    def _await_running(self, name: str) -> ContainerState:
        """Wait until the container runs, its TCP ports answer and its healthcheck (if any)
        has left "starting"; a container that exits meanwhile is an error carrying its exit
        code and (masked) last log lines. After ``ready_timeout`` it is ``starting``."""
        ports = [p for p, proto in self._read_state(name).get("ports", []) if proto == "tcp"]
        deadline = time.monotonic() + self.ready_timeout
        while True:
            state = self.status(name)
            if state.status is InstanceStatus.FAILED:
                tail = "\n".join(state.log_tail)
                raise ProviderError(
                    f"container {name} did not stay up: {state.detail}\nlast log lines:\n{tail}"
                )
            ports_open = all(port_open(int(p), HOST, timeout=0.3) for p in ports)
            if ports_open and state.status is InstanceStatus.RUNNING:
                return state
            if time.monotonic() >= deadline:
                why = (
                    "its healthcheck is still starting"
                    if ports_open
                    else ("its ports do not answer yet")
                )
                return ContainerState(
                    name,
                    InstanceStatus.STARTING,
                    f"container running, {why}",
                    state.container_id,
                    None,
                    state.health,
                )
            time.sleep(0.2)

    def _dir(self, name: str) -> Path:
        return self.root / name

    def _write_configs(self, spec: ContainerSpec, config_dir: Path) -> None:
        shutil.rmtree(config_dir, ignore_errors=True)
        for c in spec.service.config_files:
            path = config_path(config_dir, c.target)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(path.name + ".tmp")
            tmp.write_text(c.content)
            os.chmod(tmp, c.mode_int)
            os.replace(tmp, path)

    def _state_file(self, name: str) -> Path:
        return self._dir(name) / "state.json"

    def _write_state(self, name: str, desired: str, ports: Any, secret_keys: Any) -> None:
        """The wanted state, the ports to check and which env keys are secret (no values)."""
        path = self._state_file(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        data = {
            "desired": desired,
            "ports": [list(p) for p in ports],
            "secret_keys": list(secret_keys),
            "at": datetime.now(UTC).isoformat(),
        }
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data) + "\n")
        os.replace(tmp, path)

    def _read_state(self, name: str) -> dict[str, Any]:
        try:
            data = json.loads(self._state_file(name).read_text())
        except (FileNotFoundError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}
