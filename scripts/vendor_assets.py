#!/usr/bin/env python3
"""Vendor the dashboard's third-party JS/CSS from their npm packages, pinned.

    python scripts/vendor_assets.py           # download (npm pack), copy, write MANIFEST.json
    python scripts/vendor_assets.py --check   # only check the files on disk against MANIFEST.json

Each package is fetched with ``npm pack NAME@VERSION`` in a temporary directory (the
npm registry's own tarball, with its integrity checked by npm), and the listed dist
files plus the package's licence are copied into ``src/snoozeql/web/static/vendor/``.
MANIFEST.json records, for every copied file, its package, version and sha256; the
test suite (tests/e2e/test_web_assets.py) checks the files on disk still match it, so a
hand-edited or truncated vendored file is caught. Nothing is fetched at install time:
the files ship inside the Python package.

axe-core is vendored for the browser tests only; no page loads it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENDOR = ROOT / "src" / "snoozeql" / "web" / "static" / "vendor"
MANIFEST = VENDOR / "MANIFEST.json"

# package -> (pinned version, {file in the package: name under vendor/})
PACKAGES: dict[str, tuple[str, dict[str, str]]] = {
    "htmx.org": ("2.0.8", {
        "dist/htmx.min.js": "htmx.min.js",
        "LICENSE": "htmx.LICENSE",
    }),
    "uplot": ("1.6.32", {
        "dist/uPlot.iife.min.js": "uPlot.iife.min.js",
        "dist/uPlot.min.css": "uPlot.min.css",
        "LICENSE": "uPlot.LICENSE",
    }),
    "axe-core": ("4.10.3", {
        "axe.min.js": "axe.min.js",
        "LICENSE": "axe-core.LICENSE",
    }),
}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def fetch() -> dict[str, dict[str, str]]:
    VENDOR.mkdir(parents=True, exist_ok=True)
    manifest: dict[str, dict[str, str]] = {}
    for package, (version, files) in PACKAGES.items():
        with tempfile.TemporaryDirectory(prefix="snoozeql-vendor-") as tmp:
            out = subprocess.run(
                ["npm", "pack", f"{package}@{version}", "--silent"],
                cwd=tmp, check=True, capture_output=True, text=True,
            ).stdout.strip().splitlines()[-1]
            with tarfile.open(Path(tmp) / out) as tar:
                tar.extractall(tmp, filter="data")
            for src, dest in files.items():
                shutil.copyfile(Path(tmp) / "package" / src, VENDOR / dest)
                manifest[dest] = {"package": package, "version": version,
                                  "source": src, "sha256": sha256(VENDOR / dest)}
                print(f"{package}@{version} {src} -> vendor/{dest}")
    MANIFEST.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest


def check() -> list[str]:
    """Problems with the vendored files (empty when they match the manifest)."""
    manifest = json.loads(MANIFEST.read_text())
    problems = []
    for name, entry in manifest.items():
        path = VENDOR / name
        if not path.is_file():
            problems.append(f"{name}: missing")
        elif sha256(path) != entry["sha256"]:
            problems.append(f"{name}: sha256 differs from MANIFEST.json")
    for package, (version, files) in PACKAGES.items():
        for dest in files.values():
            entry = manifest.get(dest)
            if entry is None or entry["version"] != version or entry["package"] != package:
                problems.append(f"{dest}: not vendored from {package}@{version}; rerun the script")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only verify the files on disk")
    args = parser.parse_args()
    if not args.check:
        fetch()
    problems = check()
    for p in problems:
        print(p, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
