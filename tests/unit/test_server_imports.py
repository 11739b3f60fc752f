"""What a server with jobs on imports before it needs it (issue 19, item 1: memory).

``import httpx`` also imports its command line's rich and pygments when they are
installed (typer installs them): about 4 MB of a server that may never send a
webhook. The notifier, which every reconcile imports, loads httpx only to send.
"""

from __future__ import annotations

import subprocess
import sys

# The modules a `snoozeql serve` with jobs on imports to run its jobs.
_SERVER_JOBS = (
    "snoozeql.jobs.runner", "snoozeql.jobs.tasks", "snoozeql.jobs.queue",
    "snoozeql.services.reconciler", "snoozeql.services.discovery",
    "snoozeql.services.notify", "snoozeql.providers.aws.driver",
)


def test_the_jobs_import_httpx_only_to_send_a_webhook() -> None:
    code = (
        "import sys\n"
        + "".join(f"import {m}\n" for m in _SERVER_JOBS)
        + "print(sorted(m for m in ('httpx', 'rich', 'pygments') if m in sys.modules))\n"
        "from snoozeql.providers.webhook import redact_url\n"
        "print(redact_url('https://hooks.example.com:8443/T0/B0/secret'))\n"
        "print('httpx' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.splitlines()
    assert out == ["[]", "https://hooks.example.com:8443/...", "True"]
