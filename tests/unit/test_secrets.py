"""Encryption at rest of local database passwords."""

from __future__ import annotations

import stat
import threading
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from snoozeql.config import Settings
from snoozeql.domain.errors import ValidationError
from snoozeql.services.passwords import generate_password
from snoozeql.services.secrets import (
    KEY_FILE_NAME,
    SecretBox,
    SecretKeyMismatch,
)


def _settings(path: Path, key: str | None = None) -> Settings:
    return Settings(data_dir=path, secret_key=key)


def test_key_file_is_created_0600_and_ciphertext_hides_the_password(tmp_path: Path) -> None:
    box = SecretBox(_settings(tmp_path / "data"))
    token = box.encrypt("hunter2-password")
    key_file = tmp_path / "data" / KEY_FILE_NAME
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert token != "hunter2-password" and "hunter2" not in token
    assert box.decrypt(token) == "hunter2-password"
    # Another process (a new box) reads the same key and decrypts.
    assert SecretBox(_settings(tmp_path / "data")).decrypt(token) == "hunter2-password"
    assert [p.name for p in (tmp_path / "data").iterdir()] == [KEY_FILE_NAME]


def test_env_key_takes_precedence_and_no_key_file_is_written(tmp_path: Path) -> None:
    key = Fernet.generate_key().decode()
    box = SecretBox(_settings(tmp_path, key))
    token = box.encrypt("pw")
    assert not (tmp_path / KEY_FILE_NAME).exists()
    assert Fernet(key.encode()).decrypt(token.encode()) == b"pw"
    # A file key is a different key: it cannot read what the env key wrote.
    with pytest.raises(SecretKeyMismatch, match="cannot be decrypted"):
        SecretBox(_settings(tmp_path)).decrypt(token)


def test_a_malformed_env_key_is_refused_without_echoing_it(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="not a Fernet key") as info:
        SecretBox(_settings(tmp_path, "not-a-real-key-123"))
    assert "not-a-real-key-123" not in info.value.message


def test_a_key_file_readable_by_others_is_tightened(tmp_path: Path) -> None:
    SecretBox(_settings(tmp_path))
    key_file = tmp_path / KEY_FILE_NAME
    key_file.chmod(0o644)
    SecretBox(_settings(tmp_path))
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600


def test_concurrent_first_use_ends_with_one_key(tmp_path: Path) -> None:
    boxes: list[SecretBox] = []
    lock = threading.Lock()

    def make() -> None:
        box = SecretBox(_settings(tmp_path))
        with lock:
            boxes.append(box)

    threads = [threading.Thread(target=make) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    tokens = [b.encrypt(f"pw{i}") for i, b in enumerate(boxes)]
    reader = SecretBox(_settings(tmp_path))
    assert [reader.decrypt(t) for t in tokens] == [f"pw{i}" for i in range(8)]
    assert [p.name for p in tmp_path.iterdir()] == [KEY_FILE_NAME]


def test_generated_passwords_are_long_and_distinct() -> None:
    passwords = {generate_password() for _ in range(20)}
    assert len(passwords) == 20
    assert all(len(p) == 24 and p.isalnum() for p in passwords)
    with pytest.raises(ValidationError):
        generate_password(8)
