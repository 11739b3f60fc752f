"""Passwords of local databases: generated ones, and what a given one may contain.

Standard library only, so that ``db create`` can have its password before it imports
the store and the encryption (:mod:`snoozeql.services.local_ahead`).
"""

from __future__ import annotations

import secrets
import string

from snoozeql.domain.errors import ValidationError

MAX_PASSWORD_LENGTH = 128


def generate_password(length: int = 24) -> str:
    """A random password that needs no quoting in URLs, shells or SQL literals."""
    if length < 12:
        raise ValidationError("a generated password has at least 12 characters")
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(length))


def validate_password(password: str) -> str:
    """A password the engines and their config files take as is. Never echoed back."""
    if not isinstance(password, str) or not password:
        raise ValidationError("the password must not be empty")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise ValidationError(f"the password is too long: at most {MAX_PASSWORD_LENGTH} characters")
    if any(ord(c) < 32 or ord(c) == 127 for c in password):
        raise ValidationError("the password must not contain control characters or newlines")
    return password


__all__ = ["MAX_PASSWORD_LENGTH", "generate_password", "validate_password"]
