"""fdm settings: everything comes from the environment (.env.example lists every variable) and, for the
pipeline's tunables, config/pipeline.yaml (fdm.pipeline_settings)."""

from __future__ import annotations

import re
import secrets
import warnings
from datetime import timedelta
from pathlib import Path

from croniter import croniter
from csp.constants import NONE, SELF, UNSAFE_INLINE
from django.core.exceptions import ImproperlyConfigured

from fdm import pipeline_settings
from fdm.env import ConfigurationError, env_bool, env_int, env_list, env_str
from fdm.local_state import (
    database_settings,
    embedded_database_url,
    read_secret_key,
    running_embedded_database_url,
)

BASE_DIR = Path(__file__).resolve().parent.parent
STATE_DIR = Path(
    env_str("FDM_STATE_DIR", str(BASE_DIR / ".fdm"))
)  # local runs: embedded database, demo state


DEBUG = env_bool("DEBUG", False)
# Production posture: HTTPS only, secure cookies, HSTS, a configured SECRET_KEY (`check --deploy` is clean).
# FDM_HTTPS=false is the one switch for plain-http local runs (`make demo`, `manage.py runserver`).
FDM_HTTPS = env_bool("FDM_HTTPS", not DEBUG)


def _secret_key() -> str:
    """SECRET_KEY; in the production posture nothing else will do. Local runs (FDM_HTTPS=false, DEBUG) may use
    the key kept under FDM_STATE_DIR (fdm.local_state.ensure_secret_key), else a random key for this process
    only (tests, one-off commands). Reading settings writes nothing."""
    configured = env_str("SECRET_KEY")
    if configured:
        return configured
    if FDM_HTTPS and not DEBUG:
        # A key made up per process would log everyone out on each restart, differ between gunicorn workers,
        # and make workers refuse the tasks that the web process signed.
        raise ImproperlyConfigured(
            "SECRET_KEY is not set: set SECRET_KEY (or SECRET_KEY_FILE) to one long random value shared by "
            "the web and worker processes, or FDM_HTTPS=false for a plain-http local run"
        )
    return read_secret_key(STATE_DIR) or secrets.token_urlsafe(50)


SECRET_KEY = _secret_key()
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])


def _proxy_ssl_header() -> tuple[str, str] | None:
    """FDM_PROXY_SSL_HEADER, e.g. HTTP_X_FORWARDED_PROTO=https: the header by which a trusted proxy in front
    says that the client spoke HTTPS. Off by default: without a proxy that sets it, anyone could."""
    value = env_str("FDM_PROXY_SSL_HEADER")
    if value is None:
        return None
    name, _, expected = value.partition("=")
    if not re.fullmatch(r"HTTP_[A-Z0-9_]+", name.strip()) or not expected.strip():
        raise ConfigurationError(
            f"FDM_PROXY_SSL_HEADER: expected e.g. HTTP_X_FORWARDED_PROTO=https, got {value!r}"
        )
    return name.strip(), expected.strip()


SECURE_PROXY_SSL_HEADER = _proxy_ssl_header()
# Proxies in front that append the client's address to X-Forwarded-For; the login lockout counts by that
# address. 0 reads the connection's own address (REMOTE_ADDR); a proxy that says the scheme is trusted for it.
FDM_TRUSTED_PROXY_COUNT = env_int("FDM_TRUSTED_PROXY_COUNT", 1 if SECURE_PROXY_SSL_HEADER else 0)
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", FDM_HTTPS)
# Load balancers probe these, and Prometheus scrapes /metrics, over plain http inside the cluster; a redirect
# would fail every probe and protect nothing (a scrape's token has already travelled in the first request).
SECURE_REDIRECT_EXEMPT = [r"^health/(live|ready)$", r"^metrics$"]
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 365 * 24 * 3600 if FDM_HTTPS else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", FDM_HTTPS)
# Preloading is a promise to every browser that takes months to undo: only when asked, and then its check
# (security.W021, "not set to True") has nothing to say either way.
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
SILENCED_SYSTEM_CHECKS = ["security.W021"]
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", FDM_HTTPS)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", FDM_HTTPS)

FDM_ENV = env_str("FDM_ENV")  # dev | staging | prod: picks config/environments/{env}.yaml
FDM_CONFIG_DIR = Path(env_str("FDM_CONFIG_DIR", str(BASE_DIR / "config")))

INSTALLED_APPS = [
    "fdm",  # first: its runserver (which prepares local state) overrides staticfiles' one
    "django_prometheus",
    "fdm.apps.AdminConfig",  # Django's admin on fdm's site: a second factor at the login (fdm.admin_site)
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "axes",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI's assets, served from here: no CDN on the admin's origin
    "corsheaders",
    "simple_history",
    "django_q",
    "syncconfig",
    "syncengine",
    "fdm.apikeys",
    "fdm.notifications",
]

MIDDLEWARE = [
    "fdm.api.request_log.RequestLog",  # first: its duration covers everything below
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "corsheaders.middleware.CorsMiddleware",  # before CommonMiddleware, as django-cors-headers asks
    "django.middleware.common.CommonMiddleware",
    "fdm.api.middleware.RejectNulCharacters",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",  # request.user.is_verified(): logged in with a second factor
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "simple_history.middleware.HistoryRequestMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
    "axes.middleware.AxesMiddleware",  # last, as django-axes asks: turns a lockout into its response
]

# The admin's login (django-axes): FDM_LOGIN_FAILURE_LIMIT wrong passwords for one username from one address
# lock that pair out for FDM_LOGIN_COOLOFF_MINUTES, the right password included. API keys never pass here.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",  # first: refuses a locked-out login before the password is checked
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env_int("FDM_LOGIN_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("FDM_LOGIN_COOLOFF_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True  # a typo now and then does not add up to a lockout
AXES_CLIENT_IP_CALLABLE = "fdm.api.client_ip.client_ip"  # X-Forwarded-For only from trusted proxies
AXES_VERBOSE = False
# Two-factor login (django-otp, fdm.two_factor): the name authenticator apps show next to the account.
OTP_TOTP_ISSUER = "fdm"

ROOT_URLCONF = "fdm.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = "fdm.wsgi.application"
ASGI_APPLICATION = "fdm.asgi.application"


# Unset DATABASE_URL: the embedded PostgreSQL under FDM_STATE_DIR, found through its postmaster.pid when it runs.
# Settings never start it: `demo` and `runserver` do (fdm.local_state.ensure_embedded_database); any other
# command that needs it while it is stopped says how to start it (manage.py).
EMBEDDED_PGDATA = STATE_DIR / "pgdata"
EMBEDDED_DATABASE = not env_str("DATABASE_URL")
DATABASE_URL = (
    env_str("DATABASE_URL")
    or running_embedded_database_url(EMBEDDED_PGDATA)
    or embedded_database_url(EMBEDDED_PGDATA)
)
DATABASES = {"default": database_settings(DATABASE_URL)}
# Where synced tables are written; unset means the same database as Django's (see syncengine.connections).
TARGET_DATABASE_URL = env_str("TARGET_DATABASE_URL")

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True  # serve admin assets without collectstatic in local runs
# Without collectstatic (local runs, tests) there is no STATIC_ROOT yet; the finders serve the assets.
warnings.filterwarnings("ignore", message="No directory at: ", category=UserWarning)

# Content-Security-Policy on every response (django-csp): the admin, the docs page and the browsable API load
# only what this origin serves, and run no inline script. Inline styles stay allowed: Django's change list,
# fdm's admin pages and Swagger UI's page carry <style> blocks, and a style cannot run code.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF, UNSAFE_INLINE],
        "img-src": [SELF, "data:"],  # Swagger UI's icons are data: URLs in its stylesheet
        "font-src": [SELF],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    },
}

REDIS_URL = env_str("REDIS_URL")

# django-q2. Its defaults suit short jobs, not syncs:
# - timeout must stay below retry, or a slow sync is handed to a second worker while the first still runs;
# - max_attempts is finite so that a poisoned task does not loop forever;
# - catch_up is off so that a worker that was down does not replay every missed hourly slot at once.
# The pipeline's settings (fdm.pipeline_settings): config/pipeline.yaml, then the environment's file's
# `pipeline:` section, then variables (FDM_COPY_STREAMS, ...). `manage.py show_settings` says where each came from.
FDM_PIPELINE = pipeline_settings.load(FDM_CONFIG_DIR, env_name=FDM_ENV)
SYNC_TIMEOUT_SECONDS = FDM_PIPELINE["sync_timeout_seconds"]
Q_CLUSTER = {
    "name": "fdm",
    "workers": FDM_PIPELINE["workers"],
    "recycle": 50,
    "timeout": SYNC_TIMEOUT_SECONDS,
    "retry": SYNC_TIMEOUT_SECONDS + 300,
    "max_attempts": 1,  # retries of transient failures are decided by fdm and recorded as new attempts
    "catch_up": False,
    # FDM_SCHEDULER=false: a cluster that only works. One cluster fires the schedules (docs/deployment.md).
    "scheduler": env_bool("FDM_SCHEDULER", True),
    "ack_failures": True,
    "save_limit": 1000,
    "label": "Task queue",
}
if REDIS_URL:
    Q_CLUSTER["redis"] = REDIS_URL
else:
    Q_CLUSTER["orm"] = "default"
    Q_CLUSTER["poll"] = 1

# Sync runs (syncengine). A transient failure is retried as a new attempt after a backoff that doubles each
# time, up to FDM_SYNC_MAX_ATTEMPTS attempts in all. The reaper fails a running run whose worker has shown no
# sign of life for longer than the task timeout plus a grace period (the worker must be gone by then), or
# sooner, after FDM_RUN_ORPHAN_GRACE_SECONDS, when nobody holds the table's lock in the target database (the
# run's session is gone); and a queued run that no worker took for FDM_RUN_QUEUED_MAX_AGE seconds.
FDM_SYNC_MAX_ATTEMPTS = FDM_PIPELINE["max_attempts"]
FDM_RETRY_BACKOFF_SECONDS = FDM_PIPELINE["retry_backoff_seconds"]
FDM_RUN_STALE_GRACE_SECONDS = FDM_PIPELINE["run_stale_grace_seconds"]
FDM_RUN_ORPHAN_GRACE_SECONDS = FDM_PIPELINE["run_orphan_grace_seconds"]  # 3 missed heartbeats
FDM_RUN_QUEUED_MAX_AGE = FDM_PIPELINE["run_queued_max_age_seconds"]
FDM_REAPER_INTERVAL_MINUTES = FDM_PIPELINE["reaper_interval_minutes"]
FDM_RUN_LOG_LIMIT = FDM_PIPELINE["run_log_limit"]  # structured log entries kept per run

# Maintenance (syncengine.maintenance): finished runs older than FDM_RUN_RETENTION_DAYS are purged daily (unset
# or 0: runs are kept); scheduled backups of every synced table into FDM_BACKUP_DIR (unset: none), keeping the
# newest FDM_BACKUP_KEEP, on the cron FDM_BACKUP_SCHEDULE (UTC), sealed with the keyring when FDM_BACKUP_ENCRYPT.
FDM_RUN_RETENTION_DAYS = FDM_PIPELINE["run_retention_days"]
_backup_dir = env_str("FDM_BACKUP_DIR")
FDM_BACKUP_DIR = Path(_backup_dir) if _backup_dir else None
FDM_BACKUP_KEEP = env_int("FDM_BACKUP_KEEP", 7)
FDM_BACKUP_SCHEDULE = env_str("FDM_BACKUP_SCHEDULE", "0 2 * * *")
FDM_BACKUP_ENCRYPT = env_bool("FDM_BACKUP_ENCRYPT", False)
if FDM_BACKUP_KEEP < 1:
    raise ConfigurationError(f"FDM_BACKUP_KEEP: expected 1 or more backups to keep, got {FDM_BACKUP_KEEP}")
if FDM_RUN_RETENTION_DAYS < 0:
    raise ConfigurationError(
        f"FDM_RUN_RETENTION_DAYS: expected 0 (keep) or more days, got {FDM_RUN_RETENTION_DAYS}"
    )
if not croniter.is_valid(FDM_BACKUP_SCHEDULE):
    raise ConfigurationError(f"FDM_BACKUP_SCHEDULE: not a cron expression: {FDM_BACKUP_SCHEDULE!r}")

# Notifications (fdm.notifications, docs/notifications.md). Email goes through Django's SMTP backend; a
# channel's secrets (a webhook's signing secret, a URL with a token) are read from FDM_CHANNEL_* variables that
# the channel names. A failed delivery is retried after FDM_NOTIFY_BACKOFF_SECONDS, doubling, up to
# FDM_NOTIFY_MAX_ATTEMPTS attempts. Staleness and failed runs are checked every FDM_NOTIFY_CHECK_MINUTES; key
# rotations every FDM_ROTATION_CHECK_MINUTES (0: never; it counts every encrypted value), and one whose count of
# values left on older keys has not moved for FDM_ROTATION_STUCK_MINUTES is reported stuck.
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL", False)
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 30)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "fdm@localhost")
SERVER_EMAIL = DEFAULT_FROM_EMAIL
if EMAIL_USE_TLS and EMAIL_USE_SSL:
    raise ConfigurationError("EMAIL_USE_TLS and EMAIL_USE_SSL: set one of the two, not both")
FDM_NOTIFY_MAX_ATTEMPTS = env_int("FDM_NOTIFY_MAX_ATTEMPTS", 5)
FDM_NOTIFY_BACKOFF_SECONDS = env_int("FDM_NOTIFY_BACKOFF_SECONDS", 30)
FDM_NOTIFY_TIMEOUT_SECONDS = env_int("FDM_NOTIFY_TIMEOUT_SECONDS", 10)
FDM_NOTIFY_CHECK_MINUTES = env_int("FDM_NOTIFY_CHECK_MINUTES", 5)
FDM_ROTATION_CHECK_MINUTES = env_int("FDM_ROTATION_CHECK_MINUTES", 60)
FDM_ROTATION_STUCK_MINUTES = env_int("FDM_ROTATION_STUCK_MINUTES", 240)
for _name, _value, _least in (
    ("FDM_NOTIFY_MAX_ATTEMPTS", FDM_NOTIFY_MAX_ATTEMPTS, 1),
    ("FDM_NOTIFY_BACKOFF_SECONDS", FDM_NOTIFY_BACKOFF_SECONDS, 0),
    ("FDM_NOTIFY_TIMEOUT_SECONDS", FDM_NOTIFY_TIMEOUT_SECONDS, 1),
    ("FDM_NOTIFY_CHECK_MINUTES", FDM_NOTIFY_CHECK_MINUTES, 1),
    ("FDM_ROTATION_CHECK_MINUTES", FDM_ROTATION_CHECK_MINUTES, 0),
    ("FDM_ROTATION_STUCK_MINUTES", FDM_ROTATION_STUCK_MINUTES, 1),
):
    if _value < _least:
        raise ConfigurationError(f"{_name}: expected {_least} or more, got {_value}")

# The REST API (docs/api.md). Every view names its permission classes; the default denies all but admins, so
# a view that forgot to is closed rather than open.
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "fdm.api.authentication.ApiKeyAuthentication",  # first: its challenge makes anonymous requests 401
        "fdm.api.authentication.SessionAuthentication",  # the browsable API and the docs, after a full login
    ],
    "DEFAULT_PERMISSION_CLASSES": ["fdm.api.permissions.IsAdmin"],
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "DEFAULT_PARSER_CLASSES": ["fdm.api.parsers.JSONParser"],
    "DEFAULT_THROTTLE_CLASSES": ["fdm.api.throttling.ApiKeyRateThrottle"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "fdm.api.errors.exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
# Requests per API key, e.g. 600/min or 20/s; "none" for no limit.
_api_key_rate = env_str("FDM_API_KEY_RATE", "1200/min")
FDM_API_KEY_RATE = None if _api_key_rate.lower() == "none" else _api_key_rate
if FDM_API_KEY_RATE and not re.fullmatch(r"\d+/(s|sec|second|m|min|minute|h|hour|d|day)", FDM_API_KEY_RATE):
    raise ConfigurationError(f"FDM_API_KEY_RATE: expected e.g. 600/min or 20/s, got {FDM_API_KEY_RATE!r}")
# When set, /metrics needs `Authorization: Bearer <token>` (fdm.api.metrics).
FDM_METRICS_TOKEN = env_str("FDM_METRICS_TOKEN")
FDM_READY_CACHE_SECONDS = env_int("FDM_READY_CACHE_SECONDS", 10)  # /health/ready reuses its checks this long

# CORS (django-cors-headers): off unless FDM_CORS_ALLOWED_ORIGINS lists origins (https://app.example.com),
# and then only for the REST API. Browser clients send API keys in the Authorization header, never cookies:
# credentials stay disallowed, so another origin's page cannot act with an admin's session.
CORS_ALLOWED_ORIGINS = env_list("FDM_CORS_ALLOWED_ORIGINS", [])
for _origin in CORS_ALLOWED_ORIGINS:
    if not re.fullmatch(r"https?://[^/\s]+", _origin):
        raise ConfigurationError(
            f"FDM_CORS_ALLOWED_ORIGINS: {_origin!r} is not an origin; expected e.g. https://app.example.com"
        )
CORS_URLS_REGEX = r"^/api/.*$"
CORS_ALLOW_CREDENTIALS = False

SPECTACULAR_SETTINGS = {
    "TITLE": "fdm API",
    "DESCRIPTION": "Tables, runs, metadata and administration of fdm. Guide with examples: docs/api.md.",
    "VERSION": "1",
    "OAS_VERSION": "3.1.0",
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    "SERVE_INCLUDE_SCHEMA": False,
    # The schema and its docs page describe every endpoint: not for anonymous eyes.
    "SERVE_PERMISSIONS": ["fdm.api.permissions.IsViewer"],
    # Swagger UI from drf-spectacular-sidecar's pinned copy under STATIC_URL, not from a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "syncconfig.api.openapi.add_table_components",
        "fdm.api.schema.postprocess",
    ],
    "ENUM_NAME_OVERRIDES": {
        "RunStatusEnum": "syncengine.choices.RunStatus",
        "RunTriggerEnum": "syncengine.choices.RunTrigger",
        "ErrorKindEnum": "syncengine.choices.ErrorKind",
        "HealthStatusEnum": ["ok", "unavailable"],
        "CheckStatusEnum": ["ok", "failing"],
    },
}

# Logs go to stderr, one line per record: text by default, JSON objects with FDM_LOG_FORMAT=json (fdm/log.py).
# Every line passes the redaction filter (no password, token or key), and carries the fields its block bound
# (a worker's run_id and table). fdm.request logs one line per API and admin request (fdm/api/request_log.py).
FDM_LOG_FORMAT = env_str("FDM_LOG_FORMAT", "text").lower()
if FDM_LOG_FORMAT not in {"text", "json"}:
    raise ConfigurationError(f"FDM_LOG_FORMAT: expected text or json, got {FDM_LOG_FORMAT!r}")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "text": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s%(log_context)s"},
        "json": {"()": "fdm.log.json_formatter"},
    },
    "filters": {
        "log_context": {"()": "fdm.log.LogContextFilter"},
        "redact": {"()": "syncengine.redaction.RedactingFilter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": FDM_LOG_FORMAT,
            "filters": ["log_context", "redact"],
        }
    },
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {
        "snowflake.connector": {"level": "WARNING"},
        "pgserver": {"level": "WARNING"},
        "django-q": {"level": "INFO"},
        # fdm.request logs every request; Django's request log keeps only 5xx (with their tracebacks).
        "django.request": {"level": "ERROR"},
        # runserver's access log prints the query string, whose values may be filters on encrypted columns.
        "django.server": {"level": "CRITICAL"},
    },
}
