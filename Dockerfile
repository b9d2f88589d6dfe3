# Tessera gateway image: `docker build -t tessera .` (add `--build-arg EXTRAS=otel` for tracing).
# It connects to the MongoDB named by MONGODB_URI; the embedded database is not installed.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml README.md LICENSE ./
COPY blocks ./blocks
COPY cms_adapters ./cms_adapters
COPY common ./common
COPY delivery ./delivery
COPY experiments ./experiments
COPY gateway ./gateway
COPY profiles ./profiles
COPY resolvers ./resolvers
COPY scoring ./scoring

# jemalloc instead of glibc's malloc: in a 30-minute soak the gateway's memory grew
# less than half as fast (BENCHMARKS.md, "Soak"); the link makes the path the same on
# every architecture.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libjemalloc2 \
    && rm -rf /var/lib/apt/lists/* \
    && ln -s /usr/lib/*-linux-gnu/libjemalloc.so.2 /usr/local/lib/libjemalloc.so.2

ARG EXTRAS=""
RUN pip install ".${EXTRAS:+[$EXTRAS]}" \
    && useradd --system --uid 10001 --user-group --create-home --home-dir /var/lib/tessera tessera

USER 10001
ENV LD_PRELOAD=/usr/local/lib/libjemalloc.so.2 \
    HOST=0.0.0.0 \
    PORT=8000 \
    STATE_DIR=/var/lib/tessera \
    LOG_FORMAT=json
EXPOSE 8000

# Liveness only (see docs/deploy.md): the image has no curl, Python is at hand.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"]

CMD ["python", "-m", "gateway", "serve", "--host", "0.0.0.0"]
