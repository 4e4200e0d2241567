# avatarbot worker image (CPU style engine by default).
#
#   docker build -t avatarbot-worker .
#   docker run --rm -e REDIS_URL=redis://redis:6379/0 -e AVATARBOT_WORKER_HEALTH_PORT=9100 \
#       -p 9100:9100 -v avatarbot-data:/data avatarbot-worker
#
# CUDA variant (diffusers backend): build FROM an image with CUDA 12 user-space libraries
# and Python 3.11 (e.g. nvidia/cuda:12.4.1-runtime-ubuntu22.04 plus python3.11), install
# with `.[diffusion]` instead of `.`, set AVATARBOT_BACKEND=diffusers, mount the model
# weights (AVATARBOT_MODEL=/models/..., AVATARBOT_LOCAL_FILES_ONLY=true) and run with
# `--gpus 1`. See docs/deployment.md. This file was written without a Docker engine at
# hand and has not been built here.
FROM python:3.11-slim-bookworm

# dlib is built from source by pip (cmake, a C++ compiler); the runtime keeps libstdc++ only.
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential cmake \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY pyproject.toml constraints.txt README.md ./
COPY bot ./bot
COPY adapters ./adapters
COPY generation ./generation
RUN pip install --no-cache-dir -c constraints.txt . \
    && apt-get purge -y build-essential cmake && apt-get autoremove -y

RUN useradd --system --home /data --uid 10001 avatarbot && mkdir -p /data \
    && chown avatarbot /data
USER avatarbot
ENV AVATARBOT_DATA_DIR=/data \
    AVATARBOT_LOG_JSON=true \
    AVATARBOT_WEB_HOST=0.0.0.0 \
    PYTHONUNBUFFERED=1
VOLUME ["/data"]

# SIGTERM finishes the batch in hand; give it time (docker stop -t 60).
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s \
    CMD python -c "import os,sys,urllib.request; p=os.environ.get('AVATARBOT_WORKER_HEALTH_PORT','0'); sys.exit(0 if p=='0' else urllib.request.urlopen(f'http://127.0.0.1:{p}/healthz', timeout=4).status!=200)"
CMD ["avatarbot", "worker"]
