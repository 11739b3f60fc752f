"""The local runtimes a stack's apply and down go through (the engine registry's
native or Docker runtime, and the generic container runtime for plain images).

:class:`LocalRuntimes` implements the stacks' protocol,
:class:`~snoozeql.domain.stacks.runtime.StackRuntime` (one object, keyed by runtime
name), on top of the database runtimes (:class:`~snoozeql.providers.local.base.LocalRuntime`)
and the :class:`~snoozeql.providers.local.containers.ContainerRuntime`.

``check_native_dir`` is called before the native runtime is used: the service passes a
check that the local-database directory belongs to this store.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from snoozeql.config import Settings
from snoozeql.domain.engines import LocalDatabaseSpec, Runtime, parse_engine
from snoozeql.domain.errors import ActionRefused, NotFoundError, SnoozeError
from snoozeql.domain.stacks.runtime import DesiredUnit, LiveState
from snoozeql.providers.local.base import LocalRuntime

if TYPE_CHECKING:
    from snoozeql.providers.local.containers import ContainerRuntime


class LocalRuntimes:
    """Database instances through the engine registry: natively when the engine's
    server binaries are installed, else as a Docker container of the official image.

    Plain images (templates without an ``engine``) run through the generic container
    runtime (:mod:`snoozeql.providers.local.containers`, runtime ``"container"``): one
    Docker container per instance, host networking only. ``choose(None)`` checks that a
    Docker engine answers, so ``plan`` refuses such units up front when none does.
    """

    def __init__(self, settings: Settings, check_native_dir: Callable[[], None]) -> None:
        try:
            from snoozeql.providers.local import docker, native
        except ImportError as exc:  # pragma: no cover - depends on the build
            raise ActionRefused(
                f"apply needs the local runtimes, which cannot be loaded here ({exc.name}); "
                "export the stack and run it with Compose instead (snoozeql stacks export)"
            ) from None
        self._installed_versions = native.installed_versions
        self._native: LocalRuntime = native.NativeRuntime(settings)
        self._docker_cls = docker.DockerRuntime
        self._docker: LocalRuntime | None = None
        self._containers: ContainerRuntime | None = None
        self._settings = settings
        self._check_native_dir = check_native_dir

    def _generic(self) -> ContainerRuntime:
        if self._containers is None:
            from snoozeql.providers.local.containers import ContainerRuntime

            self._containers = ContainerRuntime(self._settings)
        return self._containers

    def _rt(self, runtime: str) -> LocalRuntime:
        if runtime == Runtime.NATIVE.value:
            self._check_native_dir()  # never another store's database files
            return self._native
        if self._docker is None:
            self._docker = self._docker_cls(self._settings)
        return self._docker

    def choose(self, engine: str | None) -> str | None:
        if engine is None:
            from snoozeql.providers.local.containers import RUNTIME

            self._generic().check()  # ProviderError (a clear reason) when Docker is absent
            return RUNTIME
        installed = self._installed_versions(parse_engine(engine))
        return Runtime.NATIVE.value if installed else Runtime.DOCKER.value

    def up(self, unit: DesiredUnit, password: str) -> str:
        from snoozeql.providers.local import containers

        if unit.runtime == containers.RUNTIME:
            cspec = containers.ContainerSpec(unit.runtime_name, unit.stack, unit.instance,
                                             unit.service)
            return str(self._generic().create(cspec).status.value)
        assert unit.engine and unit.runtime and unit.port
        docker = unit.runtime == Runtime.DOCKER.value
        spec = LocalDatabaseSpec.build(
            name=unit.runtime_name, engine=unit.engine, port=unit.port, runtime=unit.runtime,
            image=unit.image if docker else None, tag=unit.tag if docker else None,
        )
        state = self._rt(unit.runtime).create(spec, password)
        return str(state.status.value)

    def start(self, runtime: str, name: str, password: str) -> str:
        if runtime == "container":
            return str(self._generic().start(name).status.value)
        return str(self._rt(runtime).start(name, password).status.value)

    def stop(self, runtime: str, name: str) -> str:
        if runtime == "container":
            return str(self._generic().stop(name).status.value)
        return str(self._rt(runtime).stop(name).status.value)

    def status(self, runtime: str, name: str) -> LiveState:
        try:
            if runtime == "container":
                cstate = self._generic().status(name)
                return LiveState(str(cstate.status.value), cstate.detail)
            state = self._rt(runtime).status(name, None)
        except NotFoundError:
            return LiveState("missing", f"{name} no longer exists in the {runtime} runtime "
                                        "(removed outside SnoozeQL)")
        except SnoozeError as exc:
            return LiveState("unknown", exc.message)
        return LiveState(str(state.status.value), state.detail or str(state.status.value))

    def remove(self, runtime: str, name: str) -> str:
        if runtime == "container":
            volumes = self._generic().delete(name, keep_volumes=True)
            return "removed" + (f"; volumes kept: {', '.join(volumes)}" if volumes else "")
        kept = self._rt(runtime).delete(name, keep_data=True)
        return f"removed; data kept in {kept}" if kept else "removed"
