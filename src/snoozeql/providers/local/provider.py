"""The ``local`` and ``docker`` providers: local databases behind the one Provider interface.

Lifecycle (``snoozeql instances start``, the API's ``/start``, later the schedule
enforcer) reaches every database through :class:`~snoozeql.providers.base.Provider`.
These two adapters put the native and Docker runtimes behind that interface, so a local
database is started, stopped and restarted exactly like an RDS instance, with the same
action log.

Ready means "answers with the password", so starting needs the password. Providers do
not read the store: the service layer hands each provider a ``password_lookup``
callable (instance -> plaintext or None) that decrypts it from the secrets table. Without
a lookup a start still works, but readiness is then only "the port is open".
"""

from __future__ import annotations

from collections.abc import Callable

from snoozeql.config import Settings
from snoozeql.domain.engines import RuntimeState
from snoozeql.domain.errors import ActionRefused, ValidationError
from snoozeql.domain.types import (
    Account,
    ActionOutcome,
    DiscoveredInstance,
    Instance,
    ProviderKind,
    already_message,
)
from snoozeql.providers.local.base import LocalRuntime

PasswordLookup = Callable[[Instance], str | None]

# Docker containers take longer than native servers to become ready (the official
# images initialise their data directory on first start), so they get twice the time.
DOCKER_READY_FACTOR = 2.0


class RuntimeProvider:
    """Start/stop/restart through a runtime (native or Docker), keyed on the name.

    The runtime is built on first use, so merely registering the provider (or a user
    who never touches Docker) costs nothing.
    """

    kind: str

    def __init__(
        self,
        settings: Settings,
        *,
        runtime: LocalRuntime | None = None,
        password_lookup: PasswordLookup | None = None,
    ) -> None:
        self.settings = settings
        self._runtime = runtime
        self.password_lookup = password_lookup
        # Set by the service layer: refuses when the data directory's local databases
        # belong to another store (services/datadir.py). Providers never read the store.
        self.owner_check: Callable[[], None] | None = None

    @property
    def runtime(self) -> LocalRuntime:
        """The NativeRuntime or DockerRuntime doing the work."""
        if self.owner_check is not None:
            self.owner_check()
        if self._runtime is None:
            self._runtime = self._build_runtime()
        return self._runtime

    def _build_runtime(self) -> LocalRuntime:
        raise NotImplementedError

    def discover(self, account: Account) -> list[DiscoveredInstance]:
        raise ActionRefused(
            "local databases are not discovered through an account: create them with "
            "'snoozeql db create' (or POST /api/v1/instances)"
        )

    def start(self, account: Account | None, instance: Instance) -> ActionOutcome:
        password = self._password(instance)
        done = self._already("start", instance, password)
        return done or _outcome(self.runtime.start(instance.provider_id, password))

    def stop(self, account: Account | None, instance: Instance) -> ActionOutcome:
        done = self._already("stop", instance, None)
        return done or _outcome(self.runtime.stop(instance.provider_id))

    def _already(self, action: str, instance: Instance, password: str | None
                 ) -> ActionOutcome | None:
        """The outcome when the server already is (or is getting) where ``action`` would
        take it, measured now; None when there is something to do."""
        state = self.runtime.status(instance.provider_id, password)
        message = already_message(action, state.status)
        if message is None:
            return None
        return ActionOutcome(state.status, short_status(state.detail), message, already=True)

    def restart(self, account: Account | None, instance: Instance) -> ActionOutcome:
        return _outcome(self.runtime.restart(instance.provider_id, self._password(instance)))

    def status(self, account: Account | None, instance: Instance) -> ActionOutcome:
        return _outcome(self.runtime.status(instance.provider_id, self._password(instance)))

    def _password(self, instance: Instance) -> str | None:
        return self.password_lookup(instance) if self.password_lookup else None


RAW_STATUS_LENGTH = 64  # the inventory's raw_status column


def short_status(detail: str | None) -> str | None:
    """A runtime's detail cut to fit ``raw_status``; the full text stays in the message."""
    if not detail:
        return None
    if len(detail) <= RAW_STATUS_LENGTH:
        return detail
    return detail[: RAW_STATUS_LENGTH - 3] + "..."


def _outcome(state: RuntimeState) -> ActionOutcome:
    return ActionOutcome(
        status=state.status, raw_status=short_status(state.detail), message=state.detail
    )


class LocalProvider(RuntimeProvider):
    """Databases run as server processes from the machine's own binaries."""

    kind = ProviderKind.LOCAL.value

    def _build_runtime(self) -> LocalRuntime:
        from snoozeql.providers.local.native import NativeRuntime

        return NativeRuntime(self.settings, ready_timeout=self.settings.local_ready_timeout)


class DockerProvider(RuntimeProvider):
    """Databases run as containers of the engines' official images."""

    kind = ProviderKind.DOCKER.value

    def _build_runtime(self) -> LocalRuntime:
        from snoozeql.providers.local.docker import DockerRuntime

        return DockerRuntime(
            self.settings,
            ready_timeout=self.settings.local_ready_timeout * DOCKER_READY_FACTOR,
        )


def runtime_of(provider: object) -> LocalRuntime:
    """The runtime behind the ``local`` or ``docker`` provider; any other provider has
    none (a ValidationError)."""
    if not isinstance(provider, RuntimeProvider):
        raise ValidationError(
            f"provider {getattr(provider, 'kind', provider)!r} runs no local databases"
        )
    return provider.runtime


__all__ = [
    "DockerProvider",
    "LocalProvider",
    "PasswordLookup",
    "RuntimeProvider",
    "runtime_of",
    "short_status",
]
