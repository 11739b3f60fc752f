"""Encryption at rest for the passwords of local databases.

Passwords must never be stored in plain text, yet SnoozeQL must hand them back to the
readiness probe and to ``snoozeql db url``: so they are encrypted with Fernet
(AES-128-CBC + HMAC-SHA256, from ``cryptography``). The key is ``SNOOZEQL_SECRET_KEY``
when set (it takes precedence), else a key file in the data directory, created once with
0600 permissions. The file is made atomically and the first writer wins, so two
processes starting at the same moment cannot end up with different keys.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from snoozeql.config import Settings
from snoozeql.domain.errors import SnoozeError, ValidationError

log = logging.getLogger(__name__)

KEY_FILE_NAME = "secret.key"


class SecretKeyMismatch(SnoozeError):
    """A stored secret cannot be decrypted with the key in use (the key changed)."""

    http_status = 500
    exit_code = 1


class SecretBox:
    """Encrypts and decrypts short secrets with the installation's key."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._fernet = Fernet(self._load_key())

    @property
    def key_file(self) -> Path:
        return self._settings.data_dir / KEY_FILE_NAME

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode("utf-8")).decode("ascii")

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode("ascii")).decode("utf-8")
        except (InvalidToken, UnicodeError, ValueError):
            raise SecretKeyMismatch(
                "a stored secret cannot be decrypted: the secret key "
                "(SNOOZEQL_SECRET_KEY or the key file in the data directory) is not the one "
                "it was encrypted with"
            ) from None

    def _load_key(self) -> bytes:
        if self._settings.secret_key:
            key = self._settings.secret_key.strip().encode("ascii", "replace")
            _check_key(key, "SNOOZEQL_SECRET_KEY")
            return key
        path = self.key_file
        if not path.exists():
            _create_key_file(path)
        key = path.read_bytes().strip()
        _check_key(key, str(path))
        if path.stat().st_mode & 0o077:
            # A key readable by others protects nothing: tighten it rather than use it so.
            os.chmod(path, 0o600)
            log.warning("tightened the permissions of the secret key file to 0600")
        return key


def _check_key(key: bytes, where: str) -> None:
    try:
        Fernet(key)
    except (ValueError, TypeError):
        raise ValidationError(
            f"the secret key from {where} is not a Fernet key (32 url-safe base64-encoded "
            'bytes); make one with: python -c "from cryptography.fernet import Fernet; '
            'print(Fernet.generate_key().decode())"'
        ) from None


def _create_key_file(path: Path) -> None:
    """Write a new key to a 0600 temporary file, then link it into place.

    ``os.link`` fails if the name exists, so when two processes race, exactly one key
    wins and the loser reads it.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(Fernet.generate_key() + b"\n")
            f.flush()
            os.fsync(f.fileno())
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
