"""The one interface every provider implements.

A provider translates an outside system (AWS, GCP, native processes, Docker) into
domain types. Nothing above this layer sees a boto3 dict or a container object.
Providers raise only :mod:`snoozeql.domain.errors` types:

* :class:`~snoozeql.domain.errors.ProviderError` when the outside system fails or
  cannot be reached (bad credentials, connection refused, retries exhausted);
* :class:`~snoozeql.domain.errors.ActionRefused` when the system (or a rule the
  provider knows, such as "stop the Aurora cluster, not its member") will not do it.
"""

from __future__ import annotations

from typing import Any, Protocol

from snoozeql.domain.endpoints import check_endpoint
from snoozeql.domain.errors import ProviderError, ValidationError
from snoozeql.domain.types import Account, ActionOutcome, DiscoveredInstance, Instance


def allowed_endpoint(url: str | None, settings: Any, what: str) -> str | None:
    """``url`` when the operator allowed it (``allowed_endpoints``), else ProviderError.

    Checked before any request is made, so a stored account whose endpoint is no longer
    allowed never receives a signed request.
    """
    if not url:
        return None
    try:
        return check_endpoint(url, getattr(settings, "allowed_endpoints", None) or [], what)
    except ValidationError as exc:
        raise ProviderError(exc.message) from None


class Provider(Protocol):
    """Discovery and lifecycle for one kind of outside system."""

    kind: str

    def discover(self, account: Account) -> list[DiscoveredInstance]:
        """Every database the account holds, complete, or raise ProviderError.

        Must not return a partial list: a sync that cannot see everything fails, so
        that no stored instance is wrongly marked missing.
        """
        ...

    def start(self, account: Account | None, instance: Instance) -> ActionOutcome: ...

    def stop(self, account: Account | None, instance: Instance) -> ActionOutcome: ...

    def restart(self, account: Account | None, instance: Instance) -> ActionOutcome: ...

    def status(self, account: Account | None, instance: Instance) -> ActionOutcome:
        """The instance's state now, read from the outside system (no change made)."""
        ...
