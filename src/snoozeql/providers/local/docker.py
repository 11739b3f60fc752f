"""Docker: the engine connection (:class:`DockerEngine`), shared with the generic
container runtime of stacks (``containers.py``), and the Docker runtime of local
databases (:class:`DockerRuntime`), containers of the engines' official images.

Written against docker-py with API version negotiation (``version="auto"``), so it works
with old and new engines alike. Every database container SnoozeQL makes:

* is named ``snoozeql-<name>`` and carries ``snoozeql.*`` labels (engine, version, port),
  so the list of instances and their status are recomputed from the engine itself;
* keeps its data in a named volume ``snoozeql-<name>-data``;
* uses host networking and makes the server listen on 127.0.0.1 and the chosen port:
  SnoozeQL never creates a network (a bridge network would need iptables, and the test
  engine runs with ``--bridge=none --iptables=false``);
* gets its command line and environment (where the password goes) from the engine's
  module (``engines/``).

Docker cannot tell "stopped by the user" from "killed" (both are just "exited"), so the
state the user asked for is kept in ``<data_dir>/docker/<name>.json``; a container that
is not running while it was meant to is reported ``failed`` with its last log lines.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from snoozeql.config import Settings
from snoozeql.domain.engines import (
    CATALOGUE,
    Engine,
    LocalDatabaseSpec,
    Runtime,
    RuntimeState,
    connection_url,
)
from snoozeql.domain.errors import ConflictError, NotFoundError, ProviderError, ValidationError
from snoozeql.domain.types import InstanceStatus
from snoozeql.providers.local import engines, probes
from snoozeql.providers.local.base import SetupAhead
from snoozeql.providers.local.ports import HOST, port_in_use, port_open

DEFAULT_DOCKER_URL = "unix:///var/run/docker.sock"
MANAGED_LABEL = "snoozeql.managed"
LOG_TAIL_LINES = 20


# --------------------------------------------------------------------------- engine


class DockerEngine:
    """A lazily connected docker-py client, with engine errors made readable."""

    #: What to tell the user when no engine answers (after "not reachable at URL; ").
    unreachable_advice = "install/start Docker"

    def __init__(self, settings: Settings, base_url: str | None = None) -> None:
        self.settings = settings
        self.base_url = (
            base_url or getattr(settings, "docker_host", None) or os.environ.get("DOCKER_HOST")
        )
        self._client: Any = None

    @property
    def engine_url(self) -> str:
        return self.base_url or DEFAULT_DOCKER_URL

    def _unreachable(self) -> ProviderError:
        return ProviderError(
            f"Docker engine not reachable at {self.engine_url}; {self.unreachable_advice}"
        )

    @property
    def client(self) -> Any:
        """A connected docker-py client; ProviderError when no engine answers."""
        if self._client is None:
            import docker
            import docker.errors
            import requests

            try:
                if self.base_url:
                    client = docker.DockerClient(base_url=self.base_url, version="auto", timeout=30)
                else:
                    client = docker.from_env(version="auto", timeout=30)
                client.ping()
            except (docker.errors.DockerException, requests.RequestException, OSError):
                raise self._unreachable() from None
            self._client = client
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def _call(self, fn: Callable[..., Any]) -> Any:
        """Run a docker-py call; engine errors become ProviderError (NotFound passes)."""
        import docker.errors
        import requests

        try:
            return fn()
        except docker.errors.NotFound:
            raise
        except docker.errors.APIError as exc:
            raise ProviderError(f"Docker engine refused: {exc.explanation or exc}") from None
        except (docker.errors.DockerException, requests.RequestException):
            raise self._unreachable() from None

    def _ensure_image(self, ref: str) -> None:
        """Pull ``ref`` unless the engine has it (no tag means ``latest``)."""
        import docker.errors

        try:
            self._call(lambda: self.client.images.get(ref))
            return
        except docker.errors.NotFound:
            pass
        image, sep, tag = ref.rpartition(":")
        if not sep or "/" in tag:  # no tag, or the colon was a registry's port
            image, tag = ref, "latest"
        try:
            self.client.images.pull(image, tag=tag)
        except docker.errors.DockerException as exc:
            raise ProviderError(
                f"image {ref} is not on this machine and could not be pulled: "
                f"{getattr(exc, 'explanation', None) or exc}"
            ) from None


# --------------------------------------------------------------------------- databases


def container_name(name: str) -> str:
    return f"snoozeql-{name}"


def volume_name(name: str) -> str:
    return f"snoozeql-{name}-data"


def container_labels(spec: LocalDatabaseSpec) -> dict[str, str]:
    return {
        MANAGED_LABEL: "true",
        "snoozeql.name": spec.name,
        "snoozeql.engine": spec.engine.value,
        "snoozeql.version": spec.version or spec.tag or "",
        "snoozeql.port": str(spec.port),
        "snoozeql.image": f"{spec.image}:{spec.tag}",
        "snoozeql.runtime": Runtime.DOCKER.value,
    }


def container_create_kwargs(spec: LocalDatabaseSpec, password: str) -> dict[str, Any]:
    """Keyword arguments for ``client.containers.create``: the whole container spec.

    Pure, so what is sent to the engine can be checked without one. The password goes
    where the official image expects it (environment, or Redis' ``--requirepass``).
    """
    if spec.runtime is not Runtime.DOCKER or not spec.image or not spec.tag:
        raise ValidationError("a docker spec with an image and a tag is required")
    engine = engines.get(spec.engine)
    return {
        "image": f"{spec.image}:{spec.tag}",
        "name": container_name(spec.name),
        "command": engine.docker_command(spec.port, password),
        "environment": engine.docker_environment(password),
        "labels": container_labels(spec),
        "network_mode": "host",
        "volumes": {
            volume_name(spec.name): {"bind": engine.info.container_data_path, "mode": "rw"}
        },
        "restart_policy": {"Name": "no"},
    }


class DockerRuntime(DockerEngine):
    """Same operations as :class:`~snoozeql.providers.local.native.NativeRuntime`, on
    Docker (both are :class:`~snoozeql.providers.local.base.LocalRuntime`)."""

    kind = Runtime.DOCKER
    unreachable_advice = "install/start Docker or use --runtime native"

    def __init__(
        self,
        settings: Settings,
        *,
        base_url: str | None = None,
        ready_timeout: float = 120.0,
        stop_timeout: float = 10.0,
    ) -> None:
        super().__init__(settings, base_url)
        self.ready_timeout = ready_timeout
        self.stop_timeout = stop_timeout
        self.state_dir = settings.data_dir / "docker"

    # ------------------------------------------------------------------ public API

    def names(self) -> list[str]:
        containers = self._call(
            lambda: self.client.containers.list(all=True, filters={"label": MANAGED_LABEL})
        )
        return sorted(
            c.labels["snoozeql.name"] for c in containers if c.labels.get("snoozeql.name")
        )

    def exists(self, name: str) -> bool:
        try:
            self._container(name)
        except NotFoundError:
            return False
        return True

    def create(
        self, spec: LocalDatabaseSpec, password: str, ahead: SetupAhead | None = None
    ) -> RuntimeState:
        """Make the volume and container, start it and wait until it answers. Nothing
        is set up ahead for a container: ``ahead`` is discarded."""
        import docker.errors

        if ahead is not None:
            ahead.discard()
        if not password:
            raise ValidationError("a password is required")
        kwargs = container_create_kwargs(spec, password)
        client = self.client
        if self.exists(spec.name):
            raise ConflictError(f"a docker database named {spec.name!r} already exists")
        for other in self._call(
            lambda: client.containers.list(all=True, filters={"label": MANAGED_LABEL})
        ):
            if other.labels.get("snoozeql.port") == str(spec.port):
                raise ConflictError(
                    f"port {spec.port} belongs to docker database "
                    f"{other.labels.get('snoozeql.name')!r}: choose another port"
                )
        self._refuse_busy_port(spec.port)
        self._ensure_image(f"{spec.image}:{spec.tag}")
        vol = volume_name(spec.name)
        try:
            client.volumes.get(vol)
        except docker.errors.NotFound:
            pass
        else:
            raise ConflictError(
                f"volume {vol} already exists (kept data of a deleted instance?): remove it "
                f"with 'docker volume rm {vol}' or choose another name"
            )
        made_volume = False
        try:
            self._call(lambda: client.volumes.create(name=vol, labels=kwargs["labels"]))
            made_volume = True
            container = self._call(lambda: client.containers.create(**kwargs))
            self._set_desired(spec.name, "running")
            self._call(container.start)
            self._await_ready(spec.name, spec.engine, spec.port, password)
        except BaseException:
            with contextlib.suppress(Exception):
                client.containers.get(container_name(spec.name)).remove(force=True)
            if made_volume:
                with contextlib.suppress(Exception):
                    client.volumes.get(vol).remove(force=True)
            self._state_file(spec.name).unlink(missing_ok=True)
            raise
        return self.status(spec.name, password)

    def start(self, name: str, password: str | None) -> RuntimeState:
        container = self._container(name)
        if container.status == "running":
            return self.status(name, password)
        port = int(container.labels["snoozeql.port"])
        self._refuse_busy_port(port)
        self._set_desired(name, "running")
        self._call(container.start)
        self._await_ready(name, Engine(container.labels["snoozeql.engine"]), port, password)
        return self.status(name, password)

    def stop(self, name: str) -> RuntimeState:
        """Docker's own graceful stop: the image's stop signal, SIGKILL after the timeout."""
        container = self._container(name)
        self._set_desired(name, "stopped")
        if container.status in ("running", "restarting", "paused"):
            self._call(lambda: container.stop(timeout=int(self.stop_timeout)))
        return self.status(name, None)

    def restart(self, name: str, password: str | None) -> RuntimeState:
        self.stop(name)
        return self.start(name, password)

    def delete(self, name: str, keep_data: bool = False) -> str | None:
        """Remove the container; the volume too unless ``keep_data`` (its name returned)."""
        import docker.errors

        container = self._container(name)
        self._call(lambda: container.stop(timeout=int(self.stop_timeout)))
        self._call(lambda: container.remove(force=True))
        self._state_file(name).unlink(missing_ok=True)
        vol = volume_name(name)
        if keep_data:
            return vol
        with contextlib.suppress(docker.errors.NotFound):
            self._call(lambda: self.client.volumes.get(vol).remove(force=True))
        return None

    def status(self, name: str, password: str | None) -> RuntimeState:
        """Measured now: container running, port open, probe answers with the password."""
        container = self._container(name)
        labels = container.labels
        engine = Engine(labels["snoozeql.engine"])
        port = int(labels["snoozeql.port"])
        state = container.attrs.get("State", {})
        running = state.get("Status") == "running"
        is_open = port_open(port, HOST, timeout=0.3)
        base = RuntimeState(
            name=name,
            engine=engine,
            version=labels.get("snoozeql.version") or None,
            runtime=Runtime.DOCKER,
            port=port,
            status=InstanceStatus.UNKNOWN,
            container_id=container.id,
            pid=state.get("Pid") or None,
            process_alive=running,
            port_open=is_open,
            location=volume_name(name),
        )
        if not running:
            if self._desired(name) == "running":
                why = f"container {state.get('Status', 'gone')}"
                if state.get("OOMKilled"):
                    why += ", killed for lack of memory"
                if state.get("ExitCode") is not None:
                    why += f", exit code {state.get('ExitCode')}"
                return replace(
                    base,
                    status=InstanceStatus.FAILED,
                    detail=f"the container stopped while it was meant to run ({why})",
                    log_tail=tuple(self.logs(name, LOG_TAIL_LINES)),
                )
            return replace(base, status=InstanceStatus.STOPPED, detail="stopped")
        if password is None:
            status = InstanceStatus.RUNNING if is_open else InstanceStatus.STARTING
            detail = "container running, port open" if is_open else "container running"
            return replace(base, status=status, detail=detail)
        result = probes.probe(engine, port, password, host=HOST)
        if result.ok:
            return replace(base, status=InstanceStatus.RUNNING, probe_ok=True, detail=result.detail)
        return replace(
            base,
            status=InstanceStatus.STARTING,
            probe_ok=False,
            detail=f"container running but not answering: {result.detail}",
        )

    def logs(self, name: str, n: int = 50) -> list[str]:
        container = self._container(name)
        raw = self._call(lambda: container.logs(stdout=True, stderr=True, tail=max(n, 0)))
        lines = raw.decode("utf-8", "replace").splitlines()
        return lines[-n:] if n > 0 else []

    def url(self, name: str, password: str) -> str:
        labels = self._container(name).labels
        return connection_url(labels["snoozeql.engine"], int(labels["snoozeql.port"]), password)

    # ------------------------------------------------------------------ internals

    def _container(self, name: str) -> Any:
        import docker.errors

        try:
            container = self._call(lambda: self.client.containers.get(container_name(name)))
        except docker.errors.NotFound:
            raise NotFoundError(f"no docker database named {name!r}") from None
        if container.labels.get(MANAGED_LABEL) != "true":
            raise NotFoundError(
                f"container {container_name(name)} exists but was not made by SnoozeQL"
            )
        return container

    def _refuse_busy_port(self, port: int) -> None:
        if port_in_use(port):
            raise ConflictError(
                f"port {port} on {HOST} is already in use by another process: choose "
                "another port or stop what holds it"
            )

    def _state_file(self, name: str) -> Path:
        return self.state_dir / f"{name}.json"

    def _set_desired(self, name: str, desired: str) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        path = self._state_file(name)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"desired": desired, "at": datetime.now(UTC).isoformat()}) + "\n")
        os.replace(tmp, path)

    def _desired(self, name: str) -> str | None:
        try:
            return str(json.loads(self._state_file(name).read_text())["desired"])
        except (FileNotFoundError, ValueError, KeyError):
            return None

    def _await_ready(self, name: str, engine: Engine, port: int, password: str | None) -> None:
        import docker.errors

        def alive() -> bool:
            try:
                container = self.client.containers.get(container_name(name))
            except docker.errors.NotFound:
                return False
            return container.status in ("running", "created", "restarting")

        if password is None:
            return
        result = probes.wait_ready(
            engine, port, password, timeout=self.ready_timeout, still_alive=alive
        )
        if not result.ok:
            tail = "\n".join(self.logs(name, LOG_TAIL_LINES)).replace(password, "***")
            raise ProviderError(
                f"{CATALOGUE[engine].display_name} container did not become ready: "
                f"{result.detail}\nlast log lines:\n{tail}"
            )
