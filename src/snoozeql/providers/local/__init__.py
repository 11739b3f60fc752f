"""Local databases and stack containers: everything that runs on this machine.

* ``engines/`` - one module per database engine (native setup, Docker command line and
  environment, readiness probe, connection count, version detection) and the registry
  that maps an engine name to its module;
* ``native.py`` - the native runtime (server processes from the machine's binaries),
  built on ``process.py`` (start, stop, liveness) and ``ports.py``;
* ``docker.py`` - the Docker engine connection and the Docker runtime (official images);
* ``containers.py`` - the generic container runtime of stack instances without an engine;
* ``probes.py`` - readiness: one probe attempt, and waiting until the engine answers;
* ``base.py`` - the declared protocols (``LocalRuntime``, ``LocalEngine``) and the
  vocabulary they speak;
* ``provider.py`` - the ``local`` and ``docker`` providers (the one Provider interface);
* ``runtimes.py`` - the runtimes a stack's apply and down go through;
* ``metrics.py`` - connections and CPU of running local databases.

Only the plugins are declared here (import paths), so importing one module does not
import the others.
"""

from snoozeql.providers.base import Measured, ProviderPlugin

_METRICS = "snoozeql.providers.local.metrics:LocalMetricsCollector"

LOCAL_PLUGIN = ProviderPlugin(
    name="local", driver="snoozeql.providers.local.provider:LocalProvider",
    metrics=_METRICS, measured=Measured.ON_HOST, process_cpu=True,
)
"""Databases run as server processes on this machine (their CPU is read by pid)."""
DOCKER_PLUGIN = ProviderPlugin(
    name="docker", driver="snoozeql.providers.local.provider:DockerProvider",
    metrics=_METRICS, measured=Measured.ON_HOST,
)
"""Databases run as Docker containers on this machine's engine."""
