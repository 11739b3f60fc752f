"""Vendored dashboard assets: on disk exactly what MANIFEST.json records (the pinned
npm tarballs' files, with their licences), and shipped as package data."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
VENDOR = ROOT / "src" / "snoozeql" / "web" / "static" / "vendor"
SCRIPT = ROOT / "scripts" / "vendor_assets.py"


def _script():  # noqa: ANN202
    spec = importlib.util.spec_from_file_location("vendor_assets", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_vendored_files_match_the_manifest_and_the_pins() -> None:
    manifest = json.loads((VENDOR / "MANIFEST.json").read_text())
    pins = _script().PACKAGES
    expected = {dest for _, files in pins.values() for dest in files.values()}
    assert set(manifest) == expected
    for name, entry in manifest.items():
        data = (VENDOR / name).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"], name
        assert entry["version"] == pins[entry["package"]][0]
    for package in pins:  # every package ships with its licence
        assert any(e["package"] == package and e["source"] == "LICENSE"
                   for e in manifest.values())
    assert b"htmx" in (VENDOR / "htmx.min.js").read_bytes()[:2000]


def test_the_check_mode_catches_an_edited_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                               ) -> None:
    script = _script()
    copy = tmp_path / "vendor"
    copy.mkdir()
    for f in VENDOR.iterdir():
        (copy / f.name).write_bytes(f.read_bytes())
    monkeypatch.setattr(script, "VENDOR", copy)
    monkeypatch.setattr(script, "MANIFEST", copy / "MANIFEST.json")
    assert script.check() == []
    (copy / "htmx.min.js").write_bytes(b"alert('not htmx')")
    (copy / "uPlot.LICENSE").unlink()
    assert sorted(script.check()) == ["htmx.min.js: sha256 differs from MANIFEST.json",
                                      "uPlot.LICENSE: missing"]
    r = subprocess.run([sys.executable, str(SCRIPT), "--check"], capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stderr  # the real tree is intact


def test_templates_and_assets_are_package_data() -> None:
    text = (ROOT / "pyproject.toml").read_text()
    assert '"web/static/**/*"' in text and '"web/templates/**/*"' in text
    for page in ("base.html", "instances.html", "partials/instances_table.html"):
        assert (ROOT / "src" / "snoozeql" / "web" / "templates" / page).is_file()
