# fdm: web (gunicorn: admin, API, /metrics), workers and the scheduler (python manage.py qcluster) from one image.
#   docker build -t fdm .
#   docker run --env-file .env -p 8000:8000 fdm                                   # web
#   docker run --env-file .env fdm python manage.py migrate --noinput             # once per release
#   docker run --env-file .env -e FDM_SCHEDULER=false fdm python manage.py qcluster  # workers
# docker-compose.yml runs them all; docs/deployment.md explains each setting.

# Builder: installs exactly what requirements.txt locks (pip refuses a package whose hash differs) into a
# virtual environment, and collects the admin's static files.
FROM python:3.11-slim-bookworm AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PATH=/opt/venv/bin:$PATH

RUN python -m venv /opt/venv
COPY requirements.txt /tmp/requirements.txt
RUN pip install --require-hashes --no-deps -r /tmp/requirements.txt

WORKDIR /app
COPY manage.py pyproject.toml README.md ./
COPY fdm ./fdm
COPY syncconfig ./syncconfig
COPY syncengine ./syncengine
COPY templates ./templates
COPY config ./config
COPY deploy/healthcheck.py ./deploy/healthcheck.py
# Settings need a database URL and a key to load; collectstatic connects to neither.
RUN DATABASE_URL=postgresql://build@localhost/build SECRET_KEY=build-only \
    python manage.py collectstatic --noinput

# Runtime: the virtual environment and the code, run as an unprivileged user. No compiler, no test or demo
# package (the emulator and the embedded PostgreSQL are in the demo extra, never in requirements.txt).
FROM python:3.11-slim-bookworm AS runtime

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/app \
    FDM_STATE_DIR=/var/lib/fdm \
    WEB_CONCURRENCY=3
# glibc gives every thread that allocates its own malloc arena and keeps their freed pages: a full sync's
# reader, COPY and close threads made its peak grow with the table (454 MB at 1M rows, 719 MB at 5M); two
# arenas hold it at 471 and 563 MB (docs/performance.md).
ENV MALLOC_ARENA_MAX=2

RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/fdm --create-home fdm
COPY --from=builder /opt/venv /opt/venv
COPY --from=builder /app /app
WORKDIR /app

USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "/app/deploy/healthcheck.py"]
# gunicorn reads WEB_CONCURRENCY (worker processes) and GUNICORN_CMD_ARGS. Migrations are not run here: two
# web replicas would race; the one-shot `migrate` service (compose) or Job (Kubernetes) runs them first.
CMD ["gunicorn", "fdm.wsgi:application", "--bind", "0.0.0.0:8000", "--timeout", "60", "--graceful-timeout", "30"]
