# SnoozeQL in one image: `serve` (the API), `worker` (the job queue's workers), `migrate`.
# Build from the repository root:  docker build -t snoozeql .
# Settings are environment variables (SNOOZEQL_*); see docs/deployment.md.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# A user of its own; its home holds nothing but the data directory.
RUN groupadd --system --gid 10001 snoozeql \
    && useradd --system --uid 10001 --gid snoozeql --home-dir /var/lib/snoozeql \
       --create-home --shell /usr/sbin/nologin snoozeql

WORKDIR /opt/snoozeql
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install --no-compile . \
    && rm -rf /opt/snoozeql/src /root/.cache

USER 10001:10001
WORKDIR /var/lib/snoozeql

# Inside a container the API must listen on every interface of the container's own
# network namespace to be reachable through a published port or a compose network.
ENV SNOOZEQL_HOST=0.0.0.0 \
    SNOOZEQL_PORT=8080 \
    SNOOZEQL_DATA_DIR=/var/lib/snoozeql \
    SNOOZEQL_LOG_JSON=true

EXPOSE 8080
VOLUME ["/var/lib/snoozeql"]

# /healthz answers 200 while the store is reachable, 503 otherwise. The slim image has
# no curl: Python's standard library makes the request.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('SNOOZEQL_PORT', '8080'), timeout=4).status == 200 else 1)"]

ENTRYPOINT ["snoozeql"]
CMD ["serve"]
