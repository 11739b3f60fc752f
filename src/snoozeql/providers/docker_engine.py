"""The connection to a Docker engine (docker-py), shared by the two runtimes on Docker.

:class:`~snoozeql.providers.docker.DockerRuntime` (local databases) and
:class:`~snoozeql.providers.containers.ContainerRuntime` (stack containers) both
connect lazily, turn engine failures into a :class:`ProviderError` that says what to
do, and pull a missing image; only that advice differs between them.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from snoozeql.config import Settings
from snoozeql.domain.errors import ProviderError

DEFAULT_DOCKER_URL = "unix:///var/run/docker.sock"


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
