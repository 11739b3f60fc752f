"""Protected instances: ``snoozeql-protect=true`` keeps SnoozeQL's hands off.

The one rule every path that acts on an instance asks (lifecycle, bulk, the reconciler,
applying a recommendation): a protected instance is refused with the reason
"protected", unless a person named that one instance explicitly and forced it
(``--force``; in the API ``"force": true`` with the admin role).
"""

from __future__ import annotations

from snoozeql.domain.types import Instance

__all__ = ["PROTECTED", "PROTECT_TAG", "is_protected", "protected_refusal"]

PROTECT_TAG = "snoozeql-protect"
#: The reason a protected instance is refused with (the start of the message).
PROTECTED = "protected"


def is_protected(instance: Instance) -> bool:
    """``snoozeql-protect=true`` (tag key and value in any letter case; also yes, 1)."""
    value = next((v for k, v in instance.tags.items() if k.lower() == PROTECT_TAG), None)
    return value is not None and value.strip().lower() in ("true", "yes", "1")


def protected_refusal(instance: Instance, action: str, *, force: bool = False) -> str | None:
    """Why ``action`` on ``instance`` is refused because it is protected; None if not
    protected or forced. The message starts with :data:`PROTECTED`."""
    if force or not is_protected(instance):
        return None
    return (f"{PROTECTED}: {instance.name} is tagged {PROTECT_TAG}=true; to {action} it "
            "anyway, name it alone with --force (API: \"force\": true, admin role)")
