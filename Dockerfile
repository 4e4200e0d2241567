# avatarbot: one image for the bot and the generation worker.
#
#   make image                      # podman or docker; tags localhost/avatarbot:latest
#   docker run --rm -e REDIS_URL=redis://redis:6379/0 -e AVATARBOT_WORKER_HEALTH_PORT=9100 \
#       -v avatarbot-data:/data localhost/avatarbot:latest             # a CPU worker
#   docker run --rm -e REDIS_URL=redis://redis:6379/0 -p 8080:8080 \
#       -v avatarbot-data:/data localhost/avatarbot:latest avatarbot bot   # the bot
#
# Build arguments:
#   BASE     a Debian-family image. python:3.11-slim-bookworm (the default) has Python;
#            a base without it (a debootstrapped Debian, an nvidia/cuda image) gets the
#            distribution's python3 from apt, which must be 3.11 or newer.
#   EXTRAS   pip extras of the project: empty for the CPU style engine, `diffusion` for
#            the diffusers worker (torch 2.13.0 as pinned in constraints.txt).
#   BACKEND  the image's default AVATARBOT_BACKEND: cpu, or diffusers.
#   `make image VARIANT=cuda` sets EXTRAS=diffusion BACKEND=diffusers (docs/deployment.md).
#
# The source tree is copied whole (.dockerignore keeps out .git, .venv, data, caches,
# tests) and built into a wheel with `pip wheel .`, so moving or adding packages needs no
# change here. The dependencies go into a virtual environment in one build stage,
# avatarbot's wheel is built in another, and the final stage takes the environment and
# installs the wheel: no compiler, pip, pip cache, apt lists or source tree are left in
# the image, and a code change rebuilds only the small top layers. Every dependency
# installs from a wheel.
ARG BASE=python:3.11-slim-bookworm

# --- Python 3.11+ on the base ---------------------------------------------------------
FROM ${BASE} AS runtime-base
RUN set -eu; \
    if ! command -v python3 >/dev/null 2>&1; then \
        apt-get update; \
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
            python3 ca-certificates; \
        rm -rf /var/lib/apt/lists/*; \
    fi; \
    python3 -c 'import sys; sys.exit(sys.version_info < (3, 11) and \
        "avatarbot needs Python 3.11+, the base has " + sys.version)'

# --- deps: a virtual environment with avatarbot's dependencies --------------------------
FROM runtime-base AS deps
ARG EXTRAS=
# Only with `make image CA_BUNDLE=...`: the host's CA bundle, mounted for pip (a TLS proxy).
ARG PIP_CERT
# Debian's python3 creates virtual environments only with python3-venv (ensurepip).
RUN set -eu; \
    if ! python3 -c 'import ensurepip' 2>/dev/null; then \
        apt-get update; \
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3-venv; \
        rm -rf /var/lib/apt/lists/*; \
    fi; \
    python3 -m venv /opt/avatarbot
ENV PATH=/opt/avatarbot/bin:$PATH \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore
WORKDIR /src
# The dependencies, read from pyproject.toml: this stage is rebuilt only when
# pyproject.toml or constraints.txt change, not on every code change.
COPY pyproject.toml constraints.txt ./
RUN python3 -c 'import sys, tomllib; \
        p = tomllib.load(open("pyproject.toml", "rb"))["project"]; \
        extras = [e for e in sys.argv[1].split(",") if e]; \
        print("\n".join(p["dependencies"] + [d for e in extras for d in p["optional-dependencies"][e]]))' \
        "$EXTRAS" > /tmp/requirements.txt \
    && pip install -c constraints.txt -r /tmp/requirements.txt

# --- wheel: avatarbot itself, from the whole source tree -----------------------------------
FROM deps AS wheel
ARG PIP_CERT
COPY . .
RUN pip wheel --no-deps --wheel-dir /wheels .

# --- the image --------------------------------------------------------------------------
FROM runtime-base
ARG BACKEND=cpu
RUN groupadd --system --gid 10001 avatarbot \
    && useradd --system --uid 10001 --gid 10001 --home-dir /data --no-create-home \
        --shell /usr/sbin/nologin avatarbot \
    && install -d -o 10001 -g 10001 -m 0750 /data
# The dependencies (a layer that changes only with them), then avatarbot on top; pip goes.
COPY --from=deps /opt/avatarbot /opt/avatarbot
COPY --from=wheel /wheels /tmp/wheels
RUN /opt/avatarbot/bin/pip install --no-deps --no-index --no-cache-dir \
        --disable-pip-version-check /tmp/wheels/*.whl \
    && /opt/avatarbot/bin/pip uninstall -y --disable-pip-version-check pip \
    && rm -rf /tmp/wheels \
    && /opt/avatarbot/bin/avatarbot --version
COPY deploy/image/healthcheck.py /opt/avatarbot/bin/avatarbot-healthcheck
ENV PATH=/opt/avatarbot/bin:$PATH \
    AVATARBOT_BACKEND=${BACKEND} \
    AVATARBOT_DATA_DIR=/data \
    AVATARBOT_LOG_JSON=true \
    AVATARBOT_WEB_HOST=0.0.0.0 \
    PYTHONUNBUFFERED=1
# A numeric user, so Kubernetes' runAsNonRoot can check it without reading /etc/passwd.
USER 10001:10001
WORKDIR /data
# The default data dir: the embedded-Redis fallback (no REDIS_URL) and the instance's
# identity (C2PA chain, watermark key). deploy/ sets REDIS_URL, and AVATARBOT_DATA_DIR to
# the identity mounted from a Secret; /data stays the user's writable home.
VOLUME ["/data"]
# The bot's HTTP server (web chat, /healthz, /metrics, Telegram webhook) and the
# worker's health server (when AVATARBOT_WORKER_HEALTH_PORT=9100).
EXPOSE 8080 9100
# The command is PID 1 and handles SIGTERM itself: a worker finishes the batch in hand and
# exits 0; a bot stops taking updates, delivers what is ready (5 s) and exits 0. Give
# workers the time of one batch (docker stop -t, terminationGracePeriodSeconds).
STOPSIGNAL SIGTERM
# /healthz of the bot (AVATARBOT_WEB_PORT) or of a worker (AVATARBOT_WORKER_HEALTH_PORT,
# healthy while that is 0). Kept by the docker image format (`make image` uses it);
# Kubernetes ignores it and uses the probes in deploy/.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["avatarbot-healthcheck"]
CMD ["avatarbot", "worker"]
