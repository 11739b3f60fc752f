"""Settings, read from the environment (prefix ``SNOOZEQL_``) and an optional ``.env``.

Defaults make a laptop install work with nothing configured: the store is an embedded
SQLite file in the user's data directory, the API listens on 127.0.0.1:8080.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from snoozeql.early_settings import ENV_FILE, ENV_PREFIX, default_data_dir


class Settings(BaseSettings):
    # early_settings.py reads data_dir and log_json without pydantic-settings, by the
    # same prefix and file.
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_file=ENV_FILE, extra="ignore")

    data_dir: Path = Field(default_factory=default_data_dir)
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL; default is sqlite:///<data_dir>/snoozeql.db. "
        "postgresql:// URLs use psycopg 3.",
    )
    host: str = "127.0.0.1"
    port: int = 8080
    log_level: str = "INFO"
    log_json: bool = Field(
        default=False, description="one JSON object per log line; task runs and actions "
        "carry task_id, action_id, instance_id and account_id"
    )
    metrics_allow: list[str] = Field(
        default_factory=list, description="networks (JSON list, e.g. [\"10.0.0.0/8\"]) "
        "whose peers may read /metrics besides loopback"
    )
    max_body_bytes: int = Field(
        default=1 << 20, ge=1024, description="largest API request body (413 above it)"
    )
    max_file_bytes: int = Field(
        default=1 << 20, ge=1024, description="largest file the CLI reads (schedules, ...)"
    )
    demo: bool = Field(
        default=False, description="set by `snoozeql demo`: the store is a simulated demo fleet"
    )

    # Jobs inside `serve`.
    jobs_enabled: bool = True
    sync_interval_seconds: int = Field(default=300, ge=10)
    job_poll_seconds: float = Field(default=5.0, gt=0)
    lease_seconds: int = Field(
        default=60, ge=2, description="longest lease on a running job (at most half its "
        "interval; an action's lease is half the reconciler's); renewed by a heartbeat "
        "while the work runs, so a dead replica's work is taken over after it",
    )

    # The job queue (PostgreSQL: procrastinate; `snoozeql worker`, `serve` without
    # --no-jobs). The SQLite default runs the same tasks in process instead.
    worker_concurrency: int = Field(
        default=4, ge=1, le=64, description="tasks a worker runs at once (threads)"
    )
    worker_heartbeat_seconds: float = Field(
        default=5.0, gt=0, description="how often a worker says it is alive"
    )
    worker_stalled_seconds: float = Field(
        default=15.0, gt=0, description="a worker silent this long is dead: its running "
        "tasks are queued again for another worker (checked every few seconds)"
    )
    reconcile_shards: int = Field(
        default=4, ge=1, le=256, description="tasks one reconcile is split into on the "
        "queue (governed instances by id)"
    )
    metrics_batch_queries: int = Field(
        default=500, ge=4, description="metric queries per collection task on the queue "
        "(instances of one account and region; 4 queries per instance)"
    )
    task_max_attempts: int = Field(
        default=5, ge=1, description="attempts of a queued task whose provider stays "
        "throttled (exponential backoff between them)"
    )

    # Cloud calls.
    aws_connect_timeout: float = 5.0
    aws_read_timeout: float = 30.0
    aws_max_attempts: int = Field(default=6, ge=1)
    aws_price_list: bool = Field(
        default=True, description="Ask the AWS Price List API for prices not in the table."
    )
    aws_price_list_endpoint_url: str | None = Field(
        default=None,
        description="Price List API endpoint; default the account's endpoint_url or AWS's",
    )
    discovery_workers: int = Field(default=8, ge=1)

    # GCP (Cloud SQL Admin API).
    gcp_operation_poll_seconds: float = Field(default=2.0, gt=0)
    gcp_operation_timeout_seconds: float = Field(default=900.0, gt=0)
    gcp_num_retries: int = Field(default=5, ge=0)
    gcp_http_timeout_seconds: float = Field(default=30.0, gt=0)

    # Local databases and stacks.
    docker_host: str | None = Field(
        default=None, description="Docker engine URL; default DOCKER_HOST or the local socket."
    )
    local_ready_timeout: float = Field(default=60.0, gt=0)
    stack_prefix: str = Field(
        default="snoozeql", description="container names are <prefix>-<stack>-<instance>"
    )

    # Pricing: a JSON or TOML file that extends/overrides the built-in price table.
    price_table: Path | None = None

    # Secrets at rest (local database passwords): Fernet key, or a key file in data_dir.
    secret_key: str | None = None

    # Schedules: the reconciler job, warnings before a stop, overrides.
    reconcile_interval_seconds: int = Field(default=60, ge=5)
    action_concurrency: int = Field(
        default=16, ge=1, le=64, description="provider calls the reconciler has in flight "
        "at once per account and region (throttling is retried with backoff)"
    )
    reconcile_dry_run: bool = Field(
        default=False, description="record what every schedule would do, act on nothing"
    )
    stop_warning_minutes: int = Field(default=10, ge=0, description="0 disables warnings")
    webhook_urls: list[str] = Field(
        default_factory=list, description="generic JSON webhooks for stop warnings"
    )
    slack_webhook_urls: list[str] = Field(
        default_factory=list, description="Slack-compatible webhooks ({'text': ...})"
    )
    webhook_timeout_seconds: float = Field(default=5.0, gt=0)

    # Endpoints the server may call besides the clouds' own, and files it may read for
    # accounts (docs/providers.md): host or host:port patterns; empty = none.
    allowed_endpoints: list[str] = Field(
        default_factory=list,
        description="custom endpoints (endpoint_url, api_endpoint, webhooks) allowed",
    )
    credentials_dir: Path | None = Field(
        default=None, description="GCP key files only from here; default <data_dir>/credentials"
    )
    # Stack bind mounts may use these host folders besides the stack's own data folder.
    allowed_host_paths: list[Path] = Field(default_factory=list)
    default_timezone: str = Field(
        default="UTC", description="zone for override times like '22:00' without a schedule"
    )

    # Metrics collection and activity analysis (docs/analysis.md).
    metrics_enabled: bool = True
    metrics_interval_seconds: int = Field(default=900, ge=60)
    metrics_retention_days: int = Field(default=14, ge=1)
    metrics_workers: int = Field(default=4, ge=1)
    analysis_lookback_days: int = Field(default=14, ge=7, le=366)
    analysis_min_hours: int = Field(default=24, ge=1)
    analysis_min_weeks: int = Field(default=2, ge=1)
    analysis_required_idle_share: float = Field(default=1.0, gt=0, le=1)
    analysis_idle_connections: float = Field(default=0.0, ge=0)
    analysis_connections_statistic: str = "max"
    analysis_idle_cpu_percent: float = Field(default=10.0, gt=0)
    analysis_idle_read_iops: float = Field(default=20.0, gt=0)
    analysis_idle_write_iops: float = Field(default=20.0, gt=0)
    analysis_min_window_hours: float = Field(default=2.0, gt=0)
    analysis_margin_minutes: int = Field(default=30, ge=0, lt=60)
    analysis_background_connections: int = Field(default=2, ge=0, le=100)
    analysis_change_hold_days: int = Field(default=10, ge=1)
    analysis_timezone: str = Field(
        default="UTC", description="zone of recommended windows unless the instance has a "
        "'timezone' (or 'snoozeql:timezone') tag"
    )

    @field_validator("data_dir", mode="after")
    @classmethod
    def _expand(cls, v: Path) -> Path:
        return v.expanduser()

    @field_validator("allowed_endpoints", mode="after")
    @classmethod
    def _endpoints(cls, v: list[str]) -> list[str]:
        from snoozeql.domain.endpoints import validate_patterns
        from snoozeql.domain.errors import ValidationError

        try:
            return validate_patterns(v)
        except ValidationError as exc:
            raise ValueError(exc.message) from None

    @field_validator("metrics_allow", mode="after")
    @classmethod
    def _networks(cls, v: list[str]) -> list[str]:
        for text in v:
            try:
                ipaddress.ip_network(text.strip(), strict=False)
            except ValueError:
                raise ValueError(
                    f"SNOOZEQL_METRICS_ALLOW: {text!r} is not a network such as 10.0.0.0/8 "
                    "or an address"
                ) from None
        return [t.strip() for t in v]

    @property
    def metrics_networks(self) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        """``metrics_allow`` parsed (host bits allowed: 10.1.2.3/8 means 10.0.0.0/8)."""
        return [ipaddress.ip_network(t, strict=False) for t in self.metrics_allow]

    @property
    def effective_credentials_dir(self) -> Path:
        """Where GCP key files must live: ``credentials_dir`` or ``<data_dir>/credentials``."""
        return (self.credentials_dir or self.data_dir / "credentials").expanduser().resolve()

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
