"""Providers are imported lazily: a user who never adds a GCP account never imports
Google's client library (nor boto3 without an AWS account)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

GOOGLE = ("googleapiclient", "google.auth", "google_auth_httplib2", "httplib2")


def _modules_after(code: str, tmp_path: Path) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", code + "\nimport sys, json\n"
         "print(json.dumps(sorted(sys.modules)), file=sys.stderr)"],
        capture_output=True, text=True, check=True,
        env={"SNOOZEQL_DATA_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"},
    )
    return set(json.loads(out.stderr.strip().splitlines()[-1]))


def _google(loaded: set[str]) -> set[str]:
    return {m for m in loaded if any(m == g or m.startswith(g + ".") for g in GOOGLE)}


SETUP = (
    "from snoozeql.config import Settings\n"
    "from snoozeql.providers import registry\n"
    "from snoozeql.services.accounts import normalize_config\n"
    "s = Settings(data_dir={tmp!r})\n"
    "providers = registry.ProviderRegistry(s)\n"
)


def test_describing_every_provider_and_checking_settings_imports_no_client(
    tmp_path: Path,
) -> None:
    code = SETUP.format(tmp=str(tmp_path)) + (
        "registry.plugins(); registry.secret_config_keys(); registry.cloud_names()\n"
        "normalize_config('aws', {'regions': 'eu-west-1'}, s)\n"
        "normalize_config('gcp', {'projects': 'proj-one'}, s)\n"
        "[registry.config_schema(n) for n in registry.names()]\n"
    )
    loaded = _modules_after(code, tmp_path)
    assert not _google(loaded)
    assert "boto3" not in loaded


def test_using_aws_imports_no_google_and_using_gcp_does(tmp_path: Path) -> None:
    aws = SETUP.format(tmp=str(tmp_path)) + (
        "providers.get('aws'); providers.metrics_collector('aws')\n"
        "providers.price_source('aws'); providers.get('demo-gcp')\n"
    )
    loaded = _modules_after(aws, tmp_path)
    assert "boto3" in loaded
    assert not _google(loaded)
    gcp = SETUP.format(tmp=str(tmp_path)) + "providers.get('gcp')\n"
    assert "googleapiclient" in _modules_after(gcp, tmp_path)
