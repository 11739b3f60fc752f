"""Names of stacks and service instances, and the container names derived from them.

A stack name and an instance name both end up in a container name,
``<prefix>-<stack>-<instance>``, and in the Compose file's service and volume keys. So
both are DNS labels, and together they must leave the container name a DNS label too
(at most 63 characters). Checking that here, when a name is chosen, means a stack can
never be created that later fails to export or apply.

Every refusal says what would be accepted instead: a suggested name for a malformed or
reserved one, the limit and the current length for one that is too long.
"""

from __future__ import annotations

import re
from typing import Literal

from snoozeql.domain.errors import ValidationError

__all__ = [
    "DEFAULT_PREFIX",
    "MAX_NAME_LENGTH",
    "RESERVED_NAMES",
    "container_name",
    "is_dns_label",
    "suggest_name",
    "validate_instance_name",
    "validate_prefix",
    "validate_stack_name",
]

DEFAULT_PREFIX = "snoozeql"
MAX_NAME_LENGTH = 63
RESERVED_NAMES = frozenset({"default", "system", "none", "all"})

NameKind = Literal["stack", "instance", "template", "prefix"]

_DNS_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


def is_dns_label(value: str) -> bool:
    """True for 1-63 lower-case letters, digits and hyphens, not starting/ending with '-'."""
    return bool(_DNS_LABEL.match(value))


def suggest_name(value: str, kind: NameKind = "instance", max_length: int = 63) -> str:
    """A valid, unreserved name close to ``value`` ("My_DB" -> "my-db")."""
    s = re.sub(r"[^a-z0-9-]+", "-", (value or "").strip().lower())
    s = re.sub(r"-{2,}", "-", s).strip("-")
    if not s:
        s = "stack1" if kind == "stack" else "service1"
    if s in RESERVED_NAMES:
        s = f"my-{s}"
    s = s[: max(1, max_length)].rstrip("-")
    return s or "s"


def _check_label(value: object, kind: NameKind) -> str:
    if not isinstance(value, str):
        raise ValidationError(f"the {kind} name must be a string")
    if not is_dns_label(value):
        raise ValidationError(
            f"{value!r} is not a valid {kind} name: use 1-63 lower-case letters, digits and "
            f"hyphens, starting and ending with a letter or digit; "
            f"try {suggest_name(value, kind)!r}"
        )
    if value in RESERVED_NAMES:
        reserved = ", ".join(sorted(RESERVED_NAMES))
        raise ValidationError(
            f"{value!r} is a reserved name and cannot be used as a {kind} name "
            f"(reserved: {reserved}); try {suggest_name(value, kind)!r}"
        )
    return value


def validate_prefix(prefix: str) -> str:
    """The container-name prefix (a setting) must itself be a DNS label."""
    if not isinstance(prefix, str) or not is_dns_label(prefix):
        raise ValidationError(
            f"the container name prefix {prefix!r} is not a DNS label; "
            f"try {suggest_name(str(prefix), 'prefix')!r}"
        )
    if len(prefix) > MAX_NAME_LENGTH - 4:
        raise ValidationError(
            f"the container name prefix {prefix!r} is {len(prefix)} characters; it may be at "
            f"most {MAX_NAME_LENGTH - 4} so that '<prefix>-<stack>-<instance>' fits in "
            f"{MAX_NAME_LENGTH}"
        )
    return prefix


def validate_stack_name(name: str, prefix: str = DEFAULT_PREFIX) -> str:
    """Check a stack name, including that it leaves room for an instance name.

    The shortest possible container name for this stack is ``<prefix>-<stack>-x``; if
    even that is over 63 characters, no instance could ever be added, so it is refused
    now rather than at the first instance.
    """
    _check_label(name, "stack")
    validate_prefix(prefix)
    shortest = len(prefix) + 1 + len(name) + 2
    if shortest > MAX_NAME_LENGTH:
        room = MAX_NAME_LENGTH - len(prefix) - 3
        raise ValidationError(
            f"stack name {name!r} is too long: container names are "
            f"'{prefix}-<stack>-<instance>' and may be at most {MAX_NAME_LENGTH} characters; "
            f"with this stack name the shortest is {shortest}. Use a stack name of at most "
            f"{room} characters (it is {len(name)}); try {suggest_name(name, 'stack', room)!r}"
        )
    return name


def validate_instance_name(name: str, stack: str, prefix: str = DEFAULT_PREFIX) -> str:
    """Check an instance name and that ``<prefix>-<stack>-<name>`` fits in 63 characters."""
    _check_label(name, "instance")
    full = f"{prefix}-{stack}-{name}"
    if len(full) > MAX_NAME_LENGTH:
        room = MAX_NAME_LENGTH - len(prefix) - len(stack) - 2
        raise ValidationError(
            f"instance name {name!r} is too long for stack {stack!r}: the container name "
            f"{full!r} would be {len(full)} characters and the limit is {MAX_NAME_LENGTH}. "
            f"Use an instance name of at most {room} characters (it is {len(name)}); "
            f"try {suggest_name(name, 'instance', room)!r}"
        )
    return name


def container_name(prefix: str, stack: str, instance: str) -> str:
    """``<prefix>-<stack>-<instance>``, validated as a whole."""
    validate_prefix(prefix)
    validate_stack_name(stack, prefix)
    validate_instance_name(instance, stack, prefix)
    return f"{prefix}-{stack}-{instance}"
