"""Dragoman settings: everything comes from the environment, read by the small typed helpers below.

Bad values fail loudly at start-up (ImproperlyConfigured); secrets have no production default.
"""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def envbool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    if value.lower() in ("1", "true", "yes", "on"):
        return True
    if value.lower() in ("0", "false", "no", "off"):
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, not {value!r}")


def envint(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, not {value!r}") from None


def envfloat(name: str, default: float) -> float:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return float(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number, not {value!r}") from None


def envlist(name: str, default: list[str]) -> list[str]:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return [v.strip() for v in value.split(",") if v.strip()]


DEBUG = envbool("DEBUG", False)

SECRET_KEY = os.environ.get("DRAGOMAN_SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "DRAGOMAN_SECRET_KEY must be set when DEBUG is off; in a local checkout the make targets turn "
            "DEBUG on (make run, make applyconfig FILE=dragoman.yaml, make newkey NAME=laptop, make changepassword)"
        )
    SECRET_KEY = "dragoman-insecure-development-key"

ALLOWED_HOSTS = envlist("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"] if DEBUG else [])
if not DEBUG and not ALLOWED_HOSTS:
    raise ImproperlyConfigured("ALLOWED_HOSTS must be set when DEBUG is off")
CSRF_TRUSTED_ORIGINS = envlist("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "gateway",
    "inspector",
]

# /v1/* skips the session/auth/CSRF/messages middleware (they hop threads per request under
# ASGI); the admin gets the full stack. See gateway.middleware.
MIDDLEWARE = [
    "gateway.middleware.RequestIdMiddleware",
    "gateway.middleware.AdminOnlyMiddleware",
]
ADMIN_MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

# The admin's checks look for these middleware in MIDDLEWARE; they run, inside AdminOnlyMiddleware.
SILENCED_SYSTEM_CHECKS = ["admin.E408", "admin.E409", "admin.E410"]

ROOT_URLCONF = "gateway.urls"
ASGI_APPLICATION = "gateway.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
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

VAR_DIR = Path(os.environ.get("DRAGOMAN_VAR_DIR", BASE_DIR / "var"))
DATABASE_URL = os.environ.get("DATABASE_URL", "")
if not DATABASE_URL:
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    DATABASE_URL = f"sqlite:///{VAR_DIR / 'dragoman.sqlite3'}"
DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=0)}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the inspector's batch writer and the admin work side by side.
    DATABASES["default"].setdefault("OPTIONS", {})
    DATABASES["default"]["OPTIONS"].update(
        {"init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;", "timeout": 20}
    )
    if not DATABASES["default"].get("TEST"):
        DATABASES["default"]["TEST"] = {}
# PostgreSQL: a connection pool per process (psycopg_pool, Django's "pool" option) instead of a new
# connection for every admin request and config check; the size covers the inspector's writer,
# the admin and the config checks (requests never query the database). 0: no pool. Behind
# pgbouncer in transaction mode leave it at 0.
DB_POOL_SIZE = envint("DRAGOMAN_DB_POOL_SIZE", 0)
if DB_POOL_SIZE < 0:
    raise ImproperlyConfigured("DRAGOMAN_DB_POOL_SIZE must not be negative")
if DB_POOL_SIZE:
    if DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
        raise ImproperlyConfigured("DRAGOMAN_DB_POOL_SIZE needs PostgreSQL (DATABASE_URL=postgres://…)")
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {"min_size": 1, "max_size": DB_POOL_SIZE,
                                                              "timeout": 10}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Redis: the channel layer that carries the inspector's live tail between instances.
REDIS_URL = os.environ.get("REDIS_URL", "")
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {"BACKEND": "channels_redis.core.RedisChannelLayer", "CONFIG": {"hosts": [REDIS_URL]}}
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"

# Request bodies: Anthropic accepts up to 32 MB on /v1/messages (Anthropic docs, errors).
MAX_BODY_BYTES = envint("DRAGOMAN_MAX_BODY_BYTES", 32 * 1024 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = MAX_BODY_BYTES

DRAGOMAN_CONFIG = os.environ.get("DRAGOMAN_CONFIG", "")
# How often an instance checks whether config changed elsewhere (admin on another instance).
CONFIG_REFRESH_SECONDS = envfloat("DRAGOMAN_CONFIG_REFRESH_SECONDS", 1.0)
# Inspector: capture level (full | metadata | off) and batch writer cadence.
INSPECTOR_CAPTURE = os.environ.get("DRAGOMAN_INSPECTOR_CAPTURE", "full")
if INSPECTOR_CAPTURE not in ("full", "metadata", "off"):
    raise ImproperlyConfigured("DRAGOMAN_INSPECTOR_CAPTURE must be full, metadata or off")
INSPECTOR_FLUSH_SECONDS = envfloat("DRAGOMAN_INSPECTOR_FLUSH_SECONDS", 0.5)
INSPECTOR_BATCH_SIZE = envint("DRAGOMAN_INSPECTOR_BATCH_SIZE", 200)
# Records waiting for the writer; beyond this (database down or slow) new ones are dropped and counted.
INSPECTOR_QUEUE_MAX = envint("DRAGOMAN_INSPECTOR_QUEUE_MAX", 10_000)
# Caps per exchange, applied by the writer with an explicit {"_truncated": true, ...} marker.
INSPECTOR_MAX_BODY_BYTES = envint("DRAGOMAN_INSPECTOR_MAX_BODY_BYTES", 1024 * 1024)
INSPECTOR_MAX_EVENTS = envint("DRAGOMAN_INSPECTOR_MAX_EVENTS", 5000)
# Retention: exchanges older than DAYS, or beyond the newest MAX_COUNT, are deleted by
# `manage.py pruneexchanges` and by the writer thread every PRUNE_SECONDS (0: never; 0 days/count: no limit).
INSPECTOR_RETENTION_DAYS = envfloat("DRAGOMAN_INSPECTOR_RETENTION_DAYS", 30.0)
INSPECTOR_RETENTION_MAX_COUNT = envint("DRAGOMAN_INSPECTOR_RETENTION_MAX_COUNT", 1_000_000)
INSPECTOR_PRUNE_SECONDS = envfloat("DRAGOMAN_INSPECTOR_PRUNE_SECONDS", 600.0)
# Retention by size: the oldest exchanges go until rows and pieces fit in this many bytes (0: no limit).
INSPECTOR_RETENTION_MAX_BYTES = envint("DRAGOMAN_INSPECTOR_RETENTION_MAX_BYTES", 0)
# Bodies stored as pieces shared across exchanges (inspector.storage); 0 stores each row whole,
# as before (for comparison: the storage benchmark's baseline).
INSPECTOR_STORE_PIECES = envint("DRAGOMAN_INSPECTOR_STORE_PIECES", 1) != 0
for _name in ("INSPECTOR_QUEUE_MAX", "INSPECTOR_MAX_BODY_BYTES", "INSPECTOR_MAX_EVENTS"):
    if globals()[_name] < 1:
        raise ImproperlyConfigured(f"DRAGOMAN_{_name} must be at least 1")
for _name in ("INSPECTOR_RETENTION_DAYS", "INSPECTOR_RETENTION_MAX_COUNT", "INSPECTOR_PRUNE_SECONDS",
              "INSPECTOR_RETENTION_MAX_BYTES"):
    if globals()[_name] < 0:
        raise ImproperlyConfigured(f"DRAGOMAN_{_name} must not be negative")

SECURE_CONTENT_TYPE_NOSNIFF = True
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
# Behind a proxy that terminates TLS (nginx, a cloud load balancer) and sets X-Forwarded-Proto:
# trust that header so Django knows the admin is on https (CSRF origin checks, absolute URLs).
# Only set it when the proxy overwrites the header; a client could send it otherwise.
if envbool("DRAGOMAN_TRUST_X_FORWARDED_PROTO", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# Session and CSRF cookies only over https: on by default with the setting above.
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = envbool(
    "DRAGOMAN_SECURE_COOKIES", envbool("DRAGOMAN_TRUST_X_FORWARDED_PROTO", False))

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("DRAGOMAN_LOG_LEVEL", "INFO")},
    "loggers": {"django.request": {"level": "ERROR"}, "daphne": {"level": "WARNING"}},
}
STREAM_PING_SECONDS = envfloat("DRAGOMAN_STREAM_PING_SECONDS", 10.0)

# Passive backend health (gateway.health): a backend failing DRAGOMAN_EJECT_FAILURES times within
# DRAGOMAN_EJECT_WINDOW_SECONDS is skipped by routes for DRAGOMAN_EJECT_SECONDS, then probed with
# one request. Instances share ejections (Redis when REDIS_URL is set, else the database) every
# DRAGOMAN_HEALTH_SYNC_SECONDS (0: not shared).
HEALTH_EJECT_FAILURES = envint("DRAGOMAN_EJECT_FAILURES", 3)
HEALTH_EJECT_WINDOW_SECONDS = envfloat("DRAGOMAN_EJECT_WINDOW_SECONDS", 30.0)
HEALTH_EJECT_SECONDS = envfloat("DRAGOMAN_EJECT_SECONDS", 30.0)
HEALTH_SYNC_SECONDS = envfloat("DRAGOMAN_HEALTH_SYNC_SECONDS", 0.5)

# Prometheus /metrics (gateway.metrics): scraped with `Authorization: Bearer DRAGOMAN_METRICS_TOKEN`
# (unset: only a staff admin session may scrape), which also guards /healthz?verbose=1. With several
# daphne processes on one host, set PROMETHEUS_MULTIPROC_DIR to one directory they share (read by
# prometheus_client itself, emptied before they start); each process writes its gauges of state
# (pools, in-flight, inspector, health, config age) every DRAGOMAN_METRICS_REFRESH_SECONDS.
METRICS_TOKEN = os.environ.get("DRAGOMAN_METRICS_TOKEN", "")
METRICS_REFRESH_SECONDS = envfloat("DRAGOMAN_METRICS_REFRESH_SECONDS", 1.0)
if METRICS_REFRESH_SECONDS <= 0:
    raise ImproperlyConfigured("DRAGOMAN_METRICS_REFRESH_SECONDS must be positive")
if os.environ.get("PROMETHEUS_MULTIPROC_DIR") and not os.path.isdir(os.environ["PROMETHEUS_MULTIPROC_DIR"]):
    raise ImproperlyConfigured("PROMETHEUS_MULTIPROC_DIR must be an existing directory")

# OpenTelemetry (gateway.tracing): traces and metrics over OTLP, on when OTEL_EXPORTER_OTLP_ENDPOINT
# is set; the SDK reads the standard OTEL_* variables itself. Message content goes into spans only
# with DRAGOMAN_OTEL_CAPTURE_CONTENT. DRAGOMAN_TRACE_URL links the inspector's exchange page to its
# trace: a URL with {trace_id} in it (https://grafana.example/explore?traceId={trace_id}).
TRACE_CAPTURE_CONTENT = envbool("DRAGOMAN_OTEL_CAPTURE_CONTENT", False)
TRACE_URL = os.environ.get("DRAGOMAN_TRACE_URL", "")
if TRACE_URL and "{trace_id}" not in TRACE_URL:
    raise ImproperlyConfigured("DRAGOMAN_TRACE_URL must contain {trace_id}")

# The longest line (or event) the stream relay takes from a backend's event stream, in bytes:
# past it the stream fails with an error naming the limit, instead of buffering on. The default
# is the decoder's own (translation.sse.LINE_MAX_BYTES, which says why 16 MiB).
SSE_LINE_MAX_BYTES = envint("DRAGOMAN_SSE_LINE_MAX_BYTES", 16 * 1024 * 1024)
if SSE_LINE_MAX_BYTES < 1:
    raise ImproperlyConfigured("DRAGOMAN_SSE_LINE_MAX_BYTES must be at least 1")
