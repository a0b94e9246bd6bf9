# Spindle's image: the Procfile's processes on Debian's Python image, as a non-root user.
#   docker build -t spindle .          (or: podman build -t spindle .)
# The default command is the Procfile's web line; compose.yaml runs the worker line from the same image.
# tests/test_deploy.py keeps both commands equal to the Procfile's.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH

RUN groupadd --system spindle \
    && useradd --system --gid spindle --home-dir /app --no-create-home --shell /usr/sbin/nologin spindle

WORKDIR /app

# The dependencies first, from pyproject.toml alone: this layer is rebuilt only when the pins change.
# (pyproject installs no packages of its own: the code runs from /app, as it does from a checkout.)
COPY pyproject.toml ./
RUN python -m venv /opt/venv && pip install . && rm -rf build ./*.egg-info

COPY . .

# The gRPC modules are generated from spooled/grpc/spooled.proto, not committed (spooled/grpc/codegen.py).
RUN python -m spooled.grpc

# Static files collected into the image, hashed and precompressed, for WhiteNoise to serve. The settings module
# only needs a key and a var directory for this step; neither stays in the image.
ENV SPINDLE_STATIC_ROOT=/app/static
RUN SECRET_KEY=collectstatic-only-not-a-secret SPINDLE_VAR_DIR=/tmp/build-var \
    python manage.py collectstatic --no-input -v0 \
    && rm -rf /tmp/build-var

# Runtime: listen on every interface of the container; runtime files in a directory the user owns.
ENV HOST=0.0.0.0 \
    PORT=8000 \
    SPINDLE_VAR_DIR=/var/lib/spindle
RUN mkdir -p /var/lib/spindle && chown spindle:spindle /var/lib/spindle
USER spindle
EXPOSE 8000 50051

# The Procfile's web line (the worker: see compose.yaml). `exec` replaces the shell, so uvicorn is PID 1 and gets
# the SIGTERM of `docker stop` itself.
CMD ["sh", "-c", "exec uvicorn config.front:app --host ${HOST:-127.0.0.1} --port ${PORT:-8000} --no-access-log --no-proxy-headers --no-server-header --no-date-header --timeout-keep-alive 5 --limit-concurrency 2000 --timeout-graceful-shutdown 5"]
