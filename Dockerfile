# syntax=docker/dockerfile:1
# dtm-platform: one image for every role, chosen by the command (see docs/operations.md):
#   dtm serve registration|sites|reporting --host 0.0.0.0   the APIs (ports 8001, 8002, 8003)
#   dtm relay registration|sites                           outbox relays
#   dtm consume registration|reporting                     Kafka consumers
#   dtm migrate <service>|all, dtm db provision, dtm topics create, dtm reporting rebuild, dtm verify
#
# Build: docker build -t dtm-platform:dev .
# Dependencies come only from uv.lock (`uv sync --frozen`); the runtime stage holds the virtual
# environment and no build tools, runs as an unprivileged user and works on a read-only root file
# system (writable /tmp only).

# ---------------------------------------------------------------------------------------------------
FROM python:3.11-slim-bookworm AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_NO_CACHE=1 \
    UV_PYTHON_DOWNLOADS=never \
    UV_PYTHON=/usr/local/bin/python3 \
    UV_PROJECT_ENVIRONMENT=/opt/venv

# uv itself from PyPI, pinned (the same major/minor line the lock file was written with).
RUN pip install --no-cache-dir "uv==0.13.9"

WORKDIR /src

# 1. third-party dependencies only: this layer is reused until uv.lock changes.
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project

# 2. the project itself, installed as a wheel (not editable), so the runtime needs no source tree.
COPY shared/ shared/
COPY services/ services/
COPY cli/ cli/
RUN uv sync --frozen --no-dev --no-editable \
 && /opt/venv/bin/dtm --help > /dev/null

# ---------------------------------------------------------------------------------------------------
# the same base as the build stage: the virtual environment's python links to /usr/local/bin
FROM python:3.11-slim-bookworm AS runtime

LABEL org.opencontainers.image.title="dtm-platform" \
      org.opencontainers.image.description="Displacement tracking: registration, sites and reporting services" \
      org.opencontainers.image.licenses="Apache-2.0"

# A fixed, unprivileged uid/gid that Kubernetes securityContext (runAsUser 10001) matches.
RUN groupadd --system --gid 10001 dtm \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
            --shell /usr/sbin/nologin dtm

COPY --from=build /opt/venv /opt/venv

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    DTM_LOG_JSON=true \
    DTM_HOME=/app \
    DTM_KEYS_DIR=/tmp/keys \
    TMPDIR=/tmp

WORKDIR /app
USER 10001:10001

EXPOSE 8001 8002 8003

# The APIs set DTM_HEALTHCHECK_URL (e.g. http://127.0.0.1:8001/health/live); the workers
# (relay, consume) have no HTTP port and leave it unset: their check is that the process runs.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import os, sys, urllib.request as r; u = os.environ.get('DTM_HEALTHCHECK_URL'); sys.exit(0 if not u or r.urlopen(u, timeout=4).status == 200 else 1)"]

ENTRYPOINT ["dtm"]
CMD ["--help"]
