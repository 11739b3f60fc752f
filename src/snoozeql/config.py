"""Settings, read from the environment (prefix ``SNOOZEQL_``) and an optional ``.env``.

Defaults make a laptop install work with nothing configured: the store is an embedded
SQLite file in the user's data directory, the API listens on 127.0.0.1:8080.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import platformdirs
from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir("snoozeql", appauthor=False))


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SNOOZEQL_", env_file=".env", extra="ignore")

    data_dir: Path = Field(default_factory=default_data_dir)
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL; default is sqlite:///<data_dir>/snoozeql.db. "
        "postgresql:// URLs use psycopg 3.",
    )
    host: str = "127.0.0.1"
    port: int = 8080
    log_level: str = "INFO"
    log_json: bool = False

    # Jobs inside `serve`.
    jobs_enabled: bool = True
    sync_interval_seconds: int = Field(default=300, ge=10)
    job_poll_seconds: float = Field(default=5.0, gt=0)

    # Cloud calls.
    aws_connect_timeout: float = 5.0
    aws_read_timeout: float = 30.0
    aws_max_attempts: int = Field(default=6, ge=1)
    aws_price_list: bool = Field(
        default=True, description="Ask the AWS Price List API for prices not in the table."
    )
    discovery_workers: int = Field(default=8, ge=1)

    # Pricing: a JSON or TOML file that extends/overrides the built-in price table.
    price_table: Path | None = None

    # Secrets at rest (local database passwords): Fernet key, or a key file in data_dir.
    secret_key: str | None = None

    @field_validator("data_dir", mode="after")
    @classmethod
    def _expand(cls, v: Path) -> Path:
        return v.expanduser()

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            url = self.database_url
            if url.startswith("postgresql://") or url.startswith("postgres://"):
                url = "postgresql+psycopg://" + url.split("://", 1)[1]
            return url
        return f"sqlite:///{self.data_dir / 'snoozeql.db'}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
