"""Spindle settings: everything comes from the environment, with an embedded default.

With no environment at all Spindle runs on a SQLite file (WAL mode), a filesystem Celery broker and a
local-memory cache, so `make run` needs no server. DATABASE_URL, CELERY_BROKER_URL and CACHE_URL switch it
to PostgreSQL and Redis.
"""

from __future__ import annotations

import os
import tomllib
from datetime import timedelta
from pathlib import Path

import environ

from config.embedded import local_secret_key
from config.logging import logging_config

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("SPINDLE_VAR_DIR", BASE_DIR / "var"))

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False) if (BASE_DIR / ".env").exists() else None

# The version lives in pyproject.toml alone. The code always runs from the checkout (pyproject's `packages = []`
# installs dependencies only), so the file is there; an installed distribution's metadata could lag behind it.
VERSION = tomllib.loads((BASE_DIR / "pyproject.toml").read_text())["project"]["version"]

DEBUG = env.bool("DEBUG", default=False)
# Test runs: test-sized engine timings allowed, any Host, static files from the apps (see below).
SPINDLE_TESTING = env.bool("SPINDLE_TESTING", default=False)
SECRET_KEY = env.str("SECRET_KEY", default="")
if not SECRET_KEY:
    if DEBUG or not os.environ.get("DATABASE_URL"):
        SECRET_KEY = local_secret_key(VAR_DIR)  # embedded/dev: a per-checkout key in var/, never committed
    else:
        raise RuntimeError("SECRET_KEY must be set")

# Host names this deployment answers to. Unset: any name with DEBUG or in tests, else the loopback names only
# (`make run` adds HOST). A deployment lists its own names: any other Host answers 400 (logged as DisallowedHost).
ALLOWED_HOSTS = env.list(
    "ALLOWED_HOSTS", default=["*"] if DEBUG or SPINDLE_TESTING else ["localhost", "127.0.0.1", "[::1]"]
)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework_simplejwt.token_blacklist",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "accounts",
    "billing",
    "queues",
    "jobs",
    "schedules",
    "alerts",
    "dashboard",
    "spooled",
]

MIDDLEWARE = [
    # A request id for every request (X-Request-Id in and out), bound to the log context (config/logging.py).
    "config.middleware.RequestIdMiddleware",
    "config.middleware.HeadAsGetMiddleware",
    "config.middleware.ErrorEnvelopeMiddleware",
    # Frame protection, CSP and Secure cookies outside /v1/: after the middlewares below have set their cookies.
    "config.middleware.BrowserSecurityMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Static files (admin, /docs' Swagger UI) answered before sessions or views: compressed, cached (see STORAGES).
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # Sessions, CSRF, the session user and messages serve the admin only: skipped on /v1/ (CSRF on /api/v1/ too).
    "config.middleware.SessionMiddlewareNotForApi",
    "django.middleware.common.CommonMiddleware",
    "config.middleware.CsrfViewMiddlewareNotForApi",
    "config.middleware.AuthenticationMiddlewareNotForApi",
    "config.middleware.MessageMiddlewareNotForApi",
    "config.ratelimit.RateLimitHeadersMiddleware",
]

ROOT_URLCONF = "config.urls"
APPEND_SLASH = False
WSGI_APPLICATION = "config.wsgi.application"

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
            ]
        },
    }
]

# --- database -------------------------------------------------------------------------------------
if os.environ.get("DATABASE_URL"):
    DATABASES = {"default": env.db("DATABASE_URL")}
    if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
        # Django's backend with a health check that needs no round trip per request (config/db/pgengine).
        DATABASES["default"]["ENGINE"] = "config.db.pgengine"
        DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
        DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
        # Short transactions keep SKIP LOCKED claimers flowing (DESIGN.md, lessons).
        DATABASES["default"].setdefault("OPTIONS", {})["options"] = (
            f"-c statement_timeout={env.int('DB_STATEMENT_TIMEOUT_MS', default=30000)}"
            f" -c idle_in_transaction_session_timeout={env.int('DB_IDLE_TX_TIMEOUT_MS', default=60000)}"
        )
        if os.environ.get("TEST_DB_NAME"):
            DATABASES["default"]["TEST"] = {"NAME": os.environ["TEST_DB_NAME"]}
else:
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": env.str("SQLITE_PATH", default=str(VAR_DIR / "spindle.sqlite3")),
            "OPTIONS": {
                # One writer at a time: BEGIN IMMEDIATE stands in for FOR UPDATE SKIP LOCKED.
                "transaction_mode": "IMMEDIATE",
                "timeout": 20,
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=20000;",
            },
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- cache ----------------------------------------------------------------------------------------
if os.environ.get("CACHE_URL"):
    CACHES = {"default": env.cache("CACHE_URL")}
    EMBEDDED_CACHE = False
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.db.DatabaseCache",
            "LOCATION": "spindle_cache",
        }
    }
    EMBEDDED_CACHE = True
    # django-ratelimit wants a shared cache; the database cache is shared by every local process.
    SILENCED_SYSTEM_CHECKS = ["django_ratelimit.E003", "django_ratelimit.W001"]

# --- celery ---------------------------------------------------------------------------------------
# spindlefs:// is kombu's filesystem transport with atomic message files (config/broker.py).
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="spindlefs://")
if CELERY_BROKER_URL.startswith(("spindlefs://", "filesystem://")):
    _broker_dir = VAR_DIR / "broker"
    for sub in ("queue", "processed", "control"):
        (_broker_dir / sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
        "polling_interval": 0.05,
    }
else:
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Celery's Django fixup closes every database connection before and after each task unless this is set: a new
# PostgreSQL connection per task (connect + cold backend caches) cost ~15 ms of enqueue -> delivery latency.
# jobs.tasks closes unusable or CONN_MAX_AGE-expired connections before each task instead, as Django does per request.
CELERY_DB_REUSE_MAX = env.int("CELERY_DB_REUSE_MAX", default=1000)
CELERY_TASK_TIME_LIMIT = 600
CELERY_TASK_SOFT_TIME_LIMIT = 540
CELERY_TASK_ALWAYS_EAGER = False
# The broker queue hints go to (and workers consume with -Q): lets parallel test sessions share one Redis.
CELERY_TASK_DEFAULT_QUEUE = env.str("SPINDLE_CELERY_QUEUE", default="celery")
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TIMEZONE = "UTC"
# System periodic tasks; django-celery-beat's DatabaseScheduler syncs them into its tables at start.
# Task names are fixed here; each app's tasks.py implements its own.
CELERY_BEAT_SCHEDULE: dict[str, dict] = {
    # jobs: promote due delayed jobs, rescue expired leases, re-kick queues whose hint was lost.
    "spindle-sweeper": {"task": "jobs.sweep", "schedule": env.float("SPINDLE_SWEEP_INTERVAL_S", default=1.0)},
    # schedules: fire every due workspace schedule, set-based (DESIGN.md invariant 7).
    "spindle-schedule-ticker": {"task": "schedules.tick", "schedule": 1.0},
    # billing: delete what each plan no longer retains, in bounded batches.
    "spindle-retention": {"task": "billing.apply_retention", "schedule": 3600.0},
    # alerts: fan out new outbox events to webhook subscriptions and alerts; send what is due.
    "spindle-events-fanout": {"task": "alerts.dispatch_events", "schedule": 1.0},
    "spindle-outbound-send": {"task": "alerts.send_due", "schedule": 1.0},
}
# Each tick expires after about one interval: while workers are busy, stale sweeper/ticker messages are dropped
# instead of piling up (the next tick does the same work). `expires` for celery beat's own scheduler,
# `expire_seconds` for django-celery-beat's (it ignores the other key).
for _entry in CELERY_BEAT_SCHEDULE.values():
    _expires = max(1.0, float(_entry["schedule"]))
    _entry["options"] = {"expires": _expires, "expire_seconds": int(max(1, round(_expires)))}
# System tasks (sweeper, ticker, fan-out, outbound sends, retention) go to their own broker queue,
# `<SPINDLE_CELERY_QUEUE>-system`, so a backlog of push deliveries never sits in front of them; workers consume
# both (`-Q q,q-system`), production can run a dedicated `-Q <q>-system` worker (config.routing.route_task).
CELERY_TASK_ROUTES = ("config.routing.route_task",)
SPINDLE_SYSTEM_TASK_PREFIXES = ("jobs.sweep", "schedules.", "alerts.", "billing.")
# Push deliveries wait on sockets: each worker process carries its batches in flight on one event loop
# (jobs/services/conveyor.py), at most SPINDLE_DELIVERY_IN_FLIGHT jobs; a workspace alone may use all but the
# SPINDLE_DELIVERY_RESERVE that lets a tenant with nothing in flight in at once, busy ones share fairly. Warm shutdown
# waits up to SPINDLE_DELIVERY_DRAIN_S for them. SPINDLE_PUSH_WAKEUP: enqueues wake conveyors by NOTIFY (wakeup.py).
SPINDLE_DELIVERY_IN_FLIGHT = env.int("SPINDLE_DELIVERY_IN_FLIGHT", default=512)
SPINDLE_DELIVERY_RESERVE = env.int("SPINDLE_DELIVERY_RESERVE", default=64)
SPINDLE_DELIVERY_DRAIN_S = env.float("SPINDLE_DELIVERY_DRAIN_S", default=20.0)
SPINDLE_PUSH_WAKEUP = env.bool("SPINDLE_PUSH_WAKEUP", default=True)
# Rows per retention DELETE (alerts.housekeeping.retention_apply): each batch is its own short transaction.
RETENTION_BATCH_ROWS = env.int("SPINDLE_RETENTION_BATCH_ROWS", default=5000)

# --- auth -----------------------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 8}},
]

# --- proxies, cookies, framing ---------------------------------------------------------------------
# Addresses or CIDR ranges of the proxies whose X-Forwarded-For/-Proto count (config/forwarded.py); none by
# default. The scheme they vouch for becomes the request's own, so SECURE_PROXY_SSL_HEADER stays unset: that
# setting would trust the header from any client.
SPINDLE_TRUSTED_PROXIES = env.list("SPINDLE_TRUSTED_PROXIES", default=[])
SECURE_PROXY_SSL_HEADER = None
# Session and CSRF cookies get `Secure` on HTTPS requests (config.middleware.BrowserSecurityMiddleware); these force
# it on every request.
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=False)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=False)
X_FRAME_OPTIONS = "DENY"
# A CSRF failure on a dashboard page renders a dashboard page; elsewhere (the admin) Django's own.
CSRF_FAILURE_VIEW = "dashboard.views.errors.csrf_failure"
# Origins (scheme://host[:port]) whose unsafe requests the admin and dashboard accept, e.g. the public HTTPS origin
# when TLS ends at a proxy that is not in SPINDLE_TRUSTED_PROXIES. Same-origin requests need no entry.
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
# HSTS, sent on HTTPS responses only (direct TLS or a trusted proxy's X-Forwarded-Proto): one year unless DEBUG, 0
# turns it off. Subdomains and preload bind every subdomain (the preload list is slow to leave): opt-in only.
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 365 * 24 * 3600)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=False)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)
# Off by default: the proxy in front should redirect to HTTPS (API clients do not re-send a POST after a 301).
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=False)

# --- REST framework -------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.authentication.ApiKeyAuthentication",
        "accounts.authentication.JwtAuthentication",
    ],
    # Per-workspace requests/minute of the plan, counted in the shared cache (config/ratelimit.py).
    "DEFAULT_THROTTLE_CLASSES": ["config.ratelimit.WorkspaceRateThrottle"],
    "DEFAULT_PERMISSION_CLASSES": ["accounts.permissions.HasWorkspace"],
    # Refuses what PostgreSQL cannot store (NUL, lone surrogates) and deep nesting (config/inputs.py).
    "DEFAULT_PARSER_CLASSES": ["config.parsers.JSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["config.renderers.JSONRenderer"],
    "DEFAULT_PAGINATION_CLASS": None,
    "EXCEPTION_HANDLER": "config.exceptions.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "config.schema.SpindleAutoSchema",
    # OPTIONS: `{"methods": [...]}` + Allow, no serializer introspection or object lookup (config/metadata.py).
    "DEFAULT_METADATA_CLASS": "config.metadata.MethodsMetadata",
    "UNAUTHENTICATED_USER": None,
    "DATETIME_FORMAT": "iso-8601",
    "COERCE_DECIMAL_TO_STRING": False,
}

# JWTs for users (API.md, Accounts): refresh tokens rotate and the used one is blacklisted.
SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(minutes=15),
    "REFRESH_TOKEN_LIFETIME": timedelta(days=30),
    "ROTATE_REFRESH_TOKENS": True,
    "BLACKLIST_AFTER_ROTATION": True,
    "UPDATE_LAST_LOGIN": False,
    "AUTH_HEADER_TYPES": ("Bearer",),
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Spindle API",
    "DESCRIPTION": "Background jobs over REST: queues, jobs, push delivery, pull workers, schedules. "
    'Every GET route also answers HEAD (same status and headers, no body). OPTIONS answers `{"methods": [...]}` '
    "with an `Allow` header and nothing else, after the same authentication as the route (no key: 401).",
    "VERSION": VERSION,
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "JobStateEnum": ["waiting", "delayed", "active", "completed", "failed", "cancelled"],
        "TerminalStateEnum": ["completed", "failed", "cancelled"],
        "RetryableStateEnum": ["failed", "completed"],
        # Shared by /v1/health and /readyz (config/health.py): one name each, as /v1/health had alone.
        "HealthStatusEnum": ["ok", "degraded"],
        "HealthServiceStatusEnum": ["ok", "down"],
    },
    # `/v1` is the API's version, not a resource: operationIds and default tags start after it (config/schema.py).
    "SCHEMA_PATH_PREFIX": "/v1",
    "POSTPROCESSING_HOOKS": ["drf_spectacular.hooks.postprocess_schema_enums", "config.schema.postprocess"],
}

# --- limits and behaviour -------------------------------------------------------------------------
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("SPINDLE_MAX_REQUEST_BYTES", default=10 * 1024 * 1024)
SPINDLE_MAX_REQUEST_BYTES = DATA_UPLOAD_MAX_MEMORY_SIZE
SPINDLE_MAX_PAYLOAD_BYTES = env.int("SPINDLE_MAX_PAYLOAD_BYTES", default=1024 * 1024)
# The one port (config/front.py): a body must arrive in full within this many seconds before any thread is taken;
# bodies being read at once per process are capped in count and in bytes held; the WSGI thread pool's size.
SPINDLE_BODY_READ_TIMEOUT_S = env.float("SPINDLE_BODY_READ_TIMEOUT_S", default=30.0)
SPINDLE_UPLOADS_IN_FLIGHT = env.int("SPINDLE_UPLOADS_IN_FLIGHT", default=32)
SPINDLE_UPLOAD_BUFFER_BYTES = env.int("SPINDLE_UPLOAD_BUFFER_BYTES", default=64 * 1024 * 1024)
SPINDLE_WSGI_THREADS = env.int("SPINDLE_WSGI_THREADS", default=8)
SPINDLE_ALLOW_PRIVATE_TARGETS = env.bool("SPINDLE_ALLOW_PRIVATE_TARGETS", default=False)
SPINDLE_REGISTER_RATE = env.str("SPINDLE_REGISTER_RATE", default="5/h")
SPINDLE_LOGIN_RATE = env.str("SPINDLE_LOGIN_RATE", default="10/m")
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
METRICS_ALLOWED_IPS = env.list("METRICS_ALLOWED_IPS", default=[])
# /metrics renders at most once per this many seconds (a cached snapshot shared by processes and scrapers).
METRICS_SNAPSHOT_S = env.float("SPINDLE_METRICS_SNAPSHOT_S", default=10.0)

# Engine timing. Values below the production floors are refused unless SPINDLE_TESTING is on, so a
# misconfigured production deployment cannot run with test-sized leases.
SPINDLE_SWEEP_INTERVAL_S = env.float("SPINDLE_SWEEP_INTERVAL_S", default=1.0)
SPINDLE_MIN_LEASE_MS = env.int("SPINDLE_MIN_LEASE_MS", default=1000)
SPINDLE_BACKOFF_SCALE = env.float("SPINDLE_BACKOFF_SCALE", default=1.0)
SPINDLE_DELIVERY_BATCH = env.int("SPINDLE_DELIVERY_BATCH", default=100)
if not SPINDLE_TESTING and (
    SPINDLE_SWEEP_INTERVAL_S < 0.5 or SPINDLE_MIN_LEASE_MS < 1000 or SPINDLE_BACKOFF_SCALE != 1.0
):
    raise RuntimeError("test-only engine timings need SPINDLE_TESTING=1")

# Pull long-polls (jobs/services/pull/longpoll.py): waiting claims per web process (half of the Procfile's 8 threads) and
# per workspace across processes; over budget a claim answers at once. Workers silent for longer than the
# heartbeat timeout show `offline`; after SPINDLE_WORKER_REAP_AFTER_S the sweeper deletes them, releasing leases.
SPINDLE_LONGPOLL_MAX_PER_PROCESS = env.int("SPINDLE_LONGPOLL_MAX_PER_PROCESS", default=4)
SPINDLE_LONGPOLL_MAX_PER_WORKSPACE = env.int("SPINDLE_LONGPOLL_MAX_PER_WORKSPACE", default=2)
SPINDLE_WORKER_HEARTBEAT_TIMEOUT_S = env.int("SPINDLE_WORKER_HEARTBEAT_TIMEOUT_S", default=60)
SPINDLE_WORKER_REAP_AFTER_S = env.int("SPINDLE_WORKER_REAP_AFTER_S", default=5 * 60)

# Event streams (jobs/services/streams.py): open streams per workspace across processes (API and dashboard), how often
# an open stream re-checks its key, and the bounded service gunicorn gives streams when reached without the front.
SPINDLE_MAX_STREAMS_PER_WORKSPACE = env.int("SPINDLE_MAX_STREAMS_PER_WORKSPACE", default=10)
SPINDLE_SSE_AUTH_RECHECK_S = env.float("SPINDLE_SSE_AUTH_RECHECK_S", default=30.0)
SPINDLE_WSGI_MAX_STREAMS = env.int("SPINDLE_WSGI_MAX_STREAMS", default=2)
SPINDLE_WSGI_STREAM_MAX_S = env.float("SPINDLE_WSGI_STREAM_MAX_S", default=60.0)
# SSRF guard (config/netguard.py): the time all DNS lookups of one request may take together.
SPINDLE_DNS_BUDGET_S = env.float("SPINDLE_DNS_BUDGET_S", default=2.0)

# --- Stripe ---------------------------------------------------------------------------------------
STRIPE_SECRET_KEY = env.str("STRIPE_SECRET_KEY", default="")
STRIPE_WEBHOOK_SECRET = env.str("STRIPE_WEBHOOK_SECRET", default="")
STRIPE_API_BASE = env.str("STRIPE_API_BASE", default="")  # tests point this at a local fake
STRIPE_PRICE_PRO = env.str("STRIPE_PRICE_PRO", default="")
STRIPE_PRICE_TEAM = env.str("STRIPE_PRICE_TEAM", default="")
# Where Stripe Checkout sends the customer back. Only the embedded mode (no DATABASE_URL) or DEBUG has a localhost
# default: a production checkout must never send customers there, so with Stripe configured both must be set.
_LOCAL_BILLING = "http://localhost:8000/billing" if DEBUG or not os.environ.get("DATABASE_URL") else ""
BILLING_SUCCESS_URL = env.str("BILLING_SUCCESS_URL", default=_LOCAL_BILLING and f"{_LOCAL_BILLING}/success")
BILLING_CANCEL_URL = env.str("BILLING_CANCEL_URL", default=_LOCAL_BILLING and f"{_LOCAL_BILLING}/cancel")
if STRIPE_SECRET_KEY and not (BILLING_SUCCESS_URL and BILLING_CANCEL_URL):
    raise RuntimeError(
        "STRIPE_SECRET_KEY is set: BILLING_SUCCESS_URL and BILLING_CANCEL_URL must be set too "
        "(the public URLs Stripe Checkout returns customers to)"
    )

# --- email ----------------------------------------------------------------------------------------
EMAIL_BACKEND = env.str("EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="spindle@localhost")

# --- i18n, static ---------------------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = Path(env.str("SPINDLE_STATIC_ROOT", default=str(VAR_DIR / "static")))
# WhiteNoise serves STATIC_ROOT as collectstatic left it (make run, the image build): hashed names cached for a
# year, gzip precompressed. With DEBUG or SPINDLE_TESTING: the apps' static folders as they are.
_STATIC_FROM_APPS = DEBUG or SPINDLE_TESTING
_APPS_STORAGE = "django.contrib.staticfiles.storage.StaticFilesStorage"
_COLLECTED_STORAGE = "whitenoise.storage.CompressedManifestStaticFilesStorage"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": _APPS_STORAGE if _STATIC_FROM_APPS else _COLLECTED_STORAGE},
}
WHITENOISE_USE_FINDERS = _STATIC_FROM_APPS
WHITENOISE_AUTOREFRESH = _STATIC_FROM_APPS

# Plain text lines by default; SPINDLE_LOG_FORMAT=json writes one JSON object per line (time, level, logger,
# message, request_id and the job/queue ids when present). Every line carries the request id of its HTTP request,
# or of the request whose hint started the Celery task (config/logging.py); workers get the same format.
SPINDLE_LOG_FORMAT = env.str("SPINDLE_LOG_FORMAT", default="plain")
LOGGING = logging_config(SPINDLE_LOG_FORMAT, level=env.str("LOG_LEVEL", default="INFO"))
# /readyz: the sweeper's and the ticker's last runs (config/liveness.py) must be younger than this, in seconds.
SPINDLE_READY_MAX_AGE_S = env.float("SPINDLE_READY_MAX_AGE_S", default=30.0)
