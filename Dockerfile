# fdm: web (admin, API, /metrics) and workers from one image.
#   docker build -t fdm .
#   docker run -e DATABASE_URL=... -e SECRET_KEY=... -e SNOWFLAKE_ACCOUNT=... -p 8000:8000 fdm            # web
#   docker run -e DATABASE_URL=... -e SECRET_KEY=... -e SNOWFLAKE_ACCOUNT=... fdm python manage.py qcluster # workers
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    FDM_STATE_DIR=/var/lib/fdm

WORKDIR /app
RUN useradd --system --create-home --home-dir /var/lib/fdm fdm

COPY pyproject.toml README.md ./
COPY fdm ./fdm
COPY syncconfig ./syncconfig
COPY syncengine ./syncengine
RUN pip install --upgrade pip && pip install .

COPY manage.py ./
COPY templates ./templates
COPY config ./config
RUN DATABASE_URL=postgresql://build@localhost/build SECRET_KEY=build python manage.py collectstatic --noinput

USER fdm
EXPOSE 8000
CMD ["sh", "-c", "python manage.py migrate --noinput && gunicorn fdm.wsgi:application --bind 0.0.0.0:8000 --workers 3 --timeout 60"]
