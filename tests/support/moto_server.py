"""moto's server mode as a real AWS peer over HTTP, for every AWS test.

Fixtures (any test can ask for them by name; this module is loaded as a plugin):

``moto_server`` (session)
    A :class:`MotoServer`: moto running in its own process on a free 127.0.0.1 port.
    ``.url`` is the endpoint to give boto3 / an account's ``endpoint_url``; ``.reset()``
    empties every backend (``POST /moto-api/reset``).

``moto_server_auth`` (session)
    A second :class:`MotoServer` with IAM authentication enforced
    (``INITIAL_NO_AUTH_ACTION_COUNT=0``): any request signed with keys moto's IAM does
    not know fails with ``InvalidClientTokenId``, as real AWS does for bad keys.

``aws_env`` (function)
    Resets ``moto_server`` and isolates the process's AWS configuration: fake keys in
    ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, ``AWS_CONFIG_FILE`` and
    ``AWS_SHARED_CREDENTIALS_FILE`` in a temporary folder (the real user's files are
    never read), no instance metadata lookups. Yields an :class:`AwsTestEnv` with
    ``endpoint_url``, ``settings`` (small timeouts), ``client(service, region)``,
    ``account(regions, **config)`` to build an :class:`Account` pointing at moto,
    ``write_profile(name, ...)`` to add a named profile, and builders that create
    databases in moto (``create_instances``, ``create_aurora_cluster``).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from snoozeql.config import Settings
from snoozeql.domain.types import Account, AccountStatus, ProviderKind

FAKE_ACCESS_KEY = "testing"
FAKE_SECRET_KEY = "testing-secret"
MOTO_ACCOUNT_ID = "123456789012"


def free_port() -> int:
    """A port nothing listens on right now (bound and released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class MotoServer:
    """moto's server in a child process; stopped when the session ends."""

    def __init__(self, log_path: Path, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        child_env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        child_env.update(env or {})
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=child_env,
        )
        self._wait_ready(log_path)

    def _wait_ready(self, log_path: Path) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"moto server exited: {log_path.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/moto-api/", timeout=2):
                    return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("moto server did not start within 60 s")

    @property
    def pid(self) -> int:
        """The server process's id (a benchmark reads its CPU time)."""
        return self._proc.pid

    def reset(self) -> None:
        req = urllib.request.Request(f"{self.url}/moto-api/reset", method="POST", data=b"")
        with urllib.request.urlopen(req, timeout=30) as resp:
            resp.read()

    def stop(self) -> None:
        self._proc.terminate()
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(timeout=10)
        self._log.close()


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    server = MotoServer(tmp_path_factory.mktemp("moto") / "moto.log")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def moto_server_auth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    server = MotoServer(
        tmp_path_factory.mktemp("moto-auth") / "moto.log",
        env={"INITIAL_NO_AUTH_ACTION_COUNT": "0"},
    )
    try:
        yield server
    finally:
        server.stop()


@dataclass
class AwsTestEnv:
    """What ``aws_env`` yields: moto's endpoint plus helpers to fill and point at it."""

    endpoint_url: str
    settings: Settings
    config_dir: Path

    def client(self, service: str, region: str = "us-east-1", **kwargs: Any) -> Any:
        """A boto3 client for moto, with the fake keys from the environment."""
        return boto3.session.Session(region_name=region).client(
            service,
            endpoint_url=kwargs.pop("endpoint_url", self.endpoint_url),
            config=Config(retries={"mode": "standard", "max_attempts": 2}),
            **kwargs,
        )

    def account(
        self, regions: list[str] | None = None, name: str = "dev-account", **config: Any
    ) -> Account:
        """An AWS account whose config points at moto (``endpoint_url`` overridable)."""
        cfg: dict[str, Any] = {
            "regions": regions or ["us-east-1"],
            "profile": None,
            "role_arn": None,
            "external_id": None,
            "endpoint_url": self.endpoint_url,
        }
        cfg.update(config)
        return Account(
            id=uuid.uuid4(),
            name=name,
            provider=ProviderKind.AWS,
            config=cfg,
            status=AccountStatus.UNKNOWN,
        )

    def write_profile(self, name: str, access_key: str, secret_key: str) -> None:
        """Add a named profile to the temporary shared credentials and config files."""
        with open(self.config_dir / "credentials", "a") as f:
            f.write(
                f"[{name}]\naws_access_key_id = {access_key}\n"
                f"aws_secret_access_key = {secret_key}\n"
            )
        with open(self.config_dir / "config", "a") as f:
            f.write(f"[profile {name}]\nregion = us-east-1\n")

    def create_instances(
        self,
        region: str,
        count: int,
        prefix: str = "db",
        engine: str = "postgres",
        instance_class: str = "db.t3.micro",
        tags: dict[str, str] | None = None,
    ) -> list[str]:
        """Create ``count`` standalone DB instances; returns their identifiers."""
        rds = self.client("rds", region)
        names = [f"{prefix}-{i:04d}" for i in range(count)]
        for name in names:
            rds.create_db_instance(
                DBInstanceIdentifier=name,
                Engine=engine,
                DBInstanceClass=instance_class,
                MasterUsername="snooze",
                MasterUserPassword="not-a-real-pass",
                AllocatedStorage=20,
                Tags=[{"Key": k, "Value": v} for k, v in (tags or {}).items()],
            )
        return names

    def create_aurora_cluster(
        self,
        region: str,
        name: str,
        members: int = 2,
        engine: str = "aurora-postgresql",
        instance_class: str = "db.r6g.large",
        tags: dict[str, str] | None = None,
    ) -> list[str]:
        """Create an Aurora cluster with ``members`` instances; returns member ids."""
        rds = self.client("rds", region)
        rds.create_db_cluster(
            DBClusterIdentifier=name,
            Engine=engine,
            MasterUsername="snooze",
            MasterUserPassword="not-a-real-pass",
            Tags=[{"Key": k, "Value": v} for k, v in (tags or {}).items()],
        )
        ids = [f"{name}-m{i}" for i in range(members)]
        for member in ids:
            rds.create_db_instance(
                DBInstanceIdentifier=member,
                DBClusterIdentifier=name,
                Engine=engine,
                DBInstanceClass=instance_class,
            )
        return ids


def child_aws_env(base: dict[str, str], config_dir: Path) -> dict[str, str]:
    """The environment for a child process (``serve``, ``worker``) talking to moto:
    ``base`` without any AWS_ or SNOOZEQL_ setting, plus fake keys and private, empty
    config files in ``config_dir``: nothing from the real user's AWS setup."""
    env = {k: v for k, v in base.items() if not k.startswith(("AWS_", "SNOOZEQL_"))}
    config_dir.mkdir(parents=True, exist_ok=True)
    (config_dir / "config").write_text("")
    (config_dir / "credentials").write_text("")
    env.update(AWS_ACCESS_KEY_ID=FAKE_ACCESS_KEY, AWS_SECRET_ACCESS_KEY=FAKE_SECRET_KEY,
               AWS_DEFAULT_REGION="us-east-1", AWS_EC2_METADATA_DISABLED="true",
               AWS_CONFIG_FILE=str(config_dir / "config"),
               AWS_SHARED_CREDENTIALS_FILE=str(config_dir / "credentials"))
    return env


def rds_client(url: str, region: str = "us-east-1") -> Any:
    """A boto3 RDS client on the moto server at ``url``, with the fake keys."""
    return boto3.session.Session(
        aws_access_key_id=FAKE_ACCESS_KEY, aws_secret_access_key=FAKE_SECRET_KEY,
        region_name=region,
    ).client("rds", endpoint_url=url,
             config=Config(retries={"mode": "standard", "max_attempts": 2}))


def isolate_aws_env(monkeypatch: pytest.MonkeyPatch, config_dir: Path) -> None:
    """Fake keys and private config files; nothing from the real user's AWS setup."""
    for var in list(os.environ):
        if var.startswith("AWS_"):
            monkeypatch.delenv(var, raising=False)
    config_dir.mkdir(parents=True, exist_ok=True)
    (config_dir / "config").write_text("")
    (config_dir / "credentials").write_text("")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config_dir / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(config_dir / "credentials"))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", FAKE_ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", FAKE_SECRET_KEY)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture
def aws_env(moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> AwsTestEnv:
    moto_server.reset()
    isolate_aws_env(monkeypatch, tmp_path / "aws")
    settings = Settings(
        data_dir=tmp_path / "data",
        aws_connect_timeout=2.0,
        aws_read_timeout=30.0,
        aws_max_attempts=3,
        discovery_workers=4,
    )
    return AwsTestEnv(endpoint_url=moto_server.url, settings=settings, config_dir=tmp_path / "aws")
