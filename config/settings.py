"""Settings, read from the environment in this one module.

With no environment at all, taxi runs on the embedded default: SQLite in the project
folder and the in-memory channel layer (one process). `DATABASE_URL` and `REDIS_URL`
move it onto PostgreSQL and Redis. `DEBUG=0` is production mode: it refuses to start
without a real `SECRET_KEY` and turns on every protection `check --deploy` asks for.
"""

import os
import warnings
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: list[str]) -> list[str]:
    value = os.environ.get(name)
    if value is None:
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return default if value in (None, "") else int(value)


def env_float(name: str, default: float) -> float:
    value = os.environ.get(name)
    return default if value in (None, "") else float(value)


DEBUG = env_bool("DEBUG", True)

# The development key is public on purpose: it only ever signs local demo data.
DEVELOPMENT_SECRET_KEY = "taxi-development-key-never-use-in-production"
SECRET_KEY = os.environ.get("SECRET_KEY", DEVELOPMENT_SECRET_KEY)
if not DEBUG and (SECRET_KEY == DEVELOPMENT_SECRET_KEY or len(SECRET_KEY) < 50):
    raise ImproperlyConfigured(
        "Production mode (DEBUG=0) needs SECRET_KEY set to a random value of 50+ characters."
    )

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"] if DEBUG else [])

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
    "channels",
    "accounts",
    "trips",
    "realtime",
    "dispatch",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
ASGI_APPLICATION = "config.asgi.application"

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

# --- Database -------------------------------------------------------------------------
DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL") or f"sqlite:///{BASE_DIR / 'db.sqlite3'}"
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # Django's backend, reading timestamps with psycopg's C loader (config/postgresql).
    DATABASES["default"]["ENGINE"] = "config.postgresql"
    # Under ASGI every sync call may run on another thread, so persistent per-thread
    # connections pile up; a process-wide psycopg pool reuses connections instead.
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    if env_bool("DATABASE_PREPARED_STATEMENTS", True):
        # The hot statements are prepared on each connection, so that PostgreSQL does
        # not plan them again on every run (config/postgresql/kept_plans.py). Values
        # are then bound by the server, for every statement; any threshold lets
        # psycopg prepare, and taxi's cursor says which, statement by statement.
        # Django turns preparing off for the sake of poolers: behind PgBouncer older
        # than 1.21 (or without its `max_prepared_statements`), set
        # DATABASE_PREPARED_STATEMENTS=0.
        DATABASES["default"].setdefault("OPTIONS", {}).update(
            server_side_binding=True, prepare_threshold=0
        )
# Connections of the pool that sockets' database work keeps between calls
# (`realtime.database.KeptConnections`); none without a pool.
DATABASE_CONNECTIONS_KEPT = 0
if DATABASES["default"]["ENGINE"] == "config.postgresql" and env_bool("DATABASE_POOL", True):
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": env_int("DATABASE_POOL_MIN", 2),
        "max_size": env_int("DATABASE_POOL_MAX", 20),
        "timeout": 10,
    }
    # Half the pool at most, so that HTTP requests always find the other half.
    DATABASE_CONNECTIONS_KEPT = DATABASES["default"]["OPTIONS"]["pool"]["max_size"] // 2
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# HTTP requests a process runs at once, each on a thread of its own; more wait for a
# turn. More threads than this only take turns at the GIL (docs/benchmarks.md).
REQUEST_THREADS = env_int("REQUEST_THREADS", 4)
# Threads for sockets' database calls (`realtime.database.worker_threads`). A call
# waits for PostgreSQL, for a core and for the GIL many times as long as it computes
# (8-11 ms against 0.6 ms in a busy hour), so a process needs many at once: as many as
# the pool can give a connection while HTTP's request threads hold theirs
# (docs/benchmarks.md, finding 94), but no more than _SOCKET_THREADS_MAX: each
# call in flight beyond what the load needs only makes the others wait longer for the
# GIL and PostgreSQL (finding 102). Without a pool, as many as asyncio's executor.
_SOCKET_THREADS_MAX = 12
_pool = DATABASES["default"].get("OPTIONS", {}).get("pool")
DATABASE_THREADS = env_int(
    "DATABASE_THREADS",
    min(max(_pool["max_size"] - REQUEST_THREADS, 1), _SOCKET_THREADS_MAX)
    if _pool
    else min(32, (os.cpu_count() or 1) + 4),
)

# --- Redis: channel layer and cache --------------------------------------------------
REDIS_URL = os.environ.get("REDIS_URL", "")
# Every key taxi puts in Redis starts with this, so deployments can share a server.
REDIS_KEY_PREFIX = os.environ.get("REDIS_KEY_PREFIX", "taxi")
if REDIS_URL:
    # Redis pub/sub: each process subscribes once to the channels and groups of its own
    # sockets and fans messages out itself. Measured against the list-based core layer
    # in docs/benchmarks.md; both deliver at most once, which is all taxi relies on.
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "realtime.layers.PipelinedPubSubChannelLayer",
            "CONFIG": {
                # redis-py gives up on a read after 5 s unless told otherwise, which
                # would drop an idle process's subscription.
                "hosts": [{"address": REDIS_URL, "socket_timeout": 10}],
                "prefix": REDIS_KEY_PREFIX,
            },
        }
    }
    CACHES = {
        "default": {
            "BACKEND": "config.cache.SharedPoolRedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": REDIS_KEY_PREFIX,
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- Accounts and authentication -----------------------------------------------------
AUTH_USER_MODEL = "accounts.User"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.authentication.RevocableJWTAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": [
        "config.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    # Django forms put errors that belong to no field under "__all__"; the course's
    # React client reads them there.
    "NON_FIELD_ERRORS_KEY": "__all__",
    "EXCEPTION_HANDLER": "config.exceptions.exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}

SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(minutes=env_int("JWT_ACCESS_MINUTES", 15)),
    "REFRESH_TOKEN_LIFETIME": timedelta(days=env_int("JWT_REFRESH_DAYS", 7)),
    "ROTATE_REFRESH_TOKENS": True,
    "BLACKLIST_AFTER_ROTATION": True,
    "UPDATE_LAST_LOGIN": True,
    "SIGNING_KEY": os.environ.get("JWT_SIGNING_KEY") or SECRET_KEY,
    "USER_ID_CLAIM": "id",
    "AUTH_HEADER_TYPES": ("Bearer",),
    # simplejwt's access token, checked without PyJWT when this server signed it.
    "AUTH_TOKEN_CLASSES": ("accounts.tokens.AccessToken",),
}

SPECTACULAR_SETTINGS = {
    "TITLE": "taxi API",
    "DESCRIPTION": "REST API of taxi, a real-time ride-sharing server. "
    "The WebSocket protocols are described in docs/protocol.md.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
}

# --- WebSockets ------------------------------------------------------------------------
# Browsers always send Origin on a WebSocket handshake; these are the origins allowed to
# open one (scheme://host[:port], or a bare host for any scheme and port). The course's
# development clients run on other localhost ports, so localhost is allowed in DEBUG.
WEBSOCKET_ALLOWED_ORIGINS = env_list(
    "WEBSOCKET_ALLOWED_ORIGINS",
    ["localhost", "127.0.0.1", "[::1]"] if DEBUG else [],
)
WEBSOCKET_MAX_MESSAGE_BYTES = env_int("WEBSOCKET_MAX_MESSAGE_BYTES", 16 * 1024)
WEBSOCKET_TICKET_SECONDS = env_int("WEBSOCKET_TICKET_SECONDS", 30)

# --- Internationalisation, static and media files ----------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
MEDIA_URL = "/media/"
MEDIA_ROOT = Path(os.environ.get("MEDIA_ROOT", BASE_DIR / "media"))
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
DATA_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}
# Locally the static files are served straight from the apps, no collectstatic needed
# (so WhiteNoise's warning about a missing STATIC_ROOT is noise there).
WHITENOISE_USE_FINDERS = DEBUG
WHITENOISE_AUTOREFRESH = DEBUG
if DEBUG:
    warnings.filterwarnings("ignore", message="No directory at", module="whitenoise.base")

# --- Production hardening ------------------------------------------------------------
if not DEBUG:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 60 * 60 * 24 * 365)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "INFO"}},
}

# Log-in attempts per client address ("" turns the limit off, e.g. for benchmarks).
LOGIN_THROTTLE_RATE = os.environ.get("LOGIN_THROTTLE_RATE", "30/minute")

# --- Dispatch and tracking ---------------------------------------------------------------
# Offers go to the DISPATCH_DRIVERS nearest available drivers within DISPATCH_RADIUS_M of
# the pick-up point; after DISPATCH_OFFER_SECONDS without an accept the radius grows by
# DISPATCH_RADIUS_STEP_M, up to DISPATCH_MAX_RADIUS_M, and then the rider is told that no
# driver was found.
DISPATCH_RADIUS_M = env_float("DISPATCH_RADIUS_M", 5_000)
DISPATCH_RADIUS_STEP_M = env_float("DISPATCH_RADIUS_STEP_M", 5_000)
DISPATCH_MAX_RADIUS_M = env_float("DISPATCH_MAX_RADIUS_M", 15_000)
DISPATCH_DRIVERS = env_int("DISPATCH_DRIVERS", 10)
DISPATCH_OFFER_SECONDS = env_float("DISPATCH_OFFER_SECONDS", 15)
# A driver whose positions stop arriving for this long drops out of availability.
DRIVER_POSITION_TTL_SECONDS = env_float("DRIVER_POSITION_TTL_SECONDS", 30)
# New drivers need a staff member's approval before they can go online.
DRIVER_APPROVAL_REQUIRED = env_bool("DRIVER_APPROVAL_REQUIRED", not DEBUG)
# Validation of reported positions.
POSITION_MAX_SPEED_KMH = env_float("POSITION_MAX_SPEED_KMH", 250)
POSITION_MAX_AGE_SECONDS = env_float("POSITION_MAX_AGE_SECONDS", 30)
POSITION_MAX_FUTURE_SECONDS = env_float("POSITION_MAX_FUTURE_SECONDS", 5)
POSITION_MAX_ACCURACY_M = env_float("POSITION_MAX_ACCURACY_M", 100)
# A driver's positions are accepted one every POSITION_MIN_INTERVAL_SECONDS on average,
# POSITION_BURST (1 or more) at once: delays on the way bunch up positions sent evenly.
POSITION_MIN_INTERVAL_SECONDS = env_float("POSITION_MIN_INTERVAL_SECONDS", 0.5)
POSITION_BURST = env_int("POSITION_BURST", 3)
if POSITION_BURST < 1:
    raise ImproperlyConfigured("POSITION_BURST must be 1 or more (0 would refuse every position).")

# --- Socket limits -----------------------------------------------------------------------
WEBSOCKET_MAX_SOCKETS_PER_USER = env_int("WEBSOCKET_MAX_SOCKETS_PER_USER", 10)
WEBSOCKET_MESSAGES_PER_SECOND = env_float("WEBSOCKET_MESSAGES_PER_SECOND", 10)
WEBSOCKET_MESSAGE_BURST = env_int("WEBSOCKET_MESSAGE_BURST", 30)
# How often each server process looks for searches whose offers have timed out.
DISPATCH_SWEEP_SECONDS = env_float("DISPATCH_SWEEP_SECONDS", 0.5)
# Trail points a driver's socket collects before writing them as one segment: at a
# position a second, half a minute of trail a write (docs/benchmarks.md, findings 33 and
# 100); a crashed process loses at most a batch of the trail's history, never a live
# position.
# A socket's first batch is shorter by a random head start (trips.trail).
TRAIL_BATCH_SIZE = env_int("TRAIL_BATCH_SIZE", 30)
# A driver's socket keeps a trip's last known position (for a reconnecting rider's
# snapshot) at most once in this many seconds, and its latest when the trip ends or the
# socket closes: one write a position was a seventh of tracking's throughput
# (docs/benchmarks.md, finding 29), and the live positions follow the snapshot anyway.
LAST_POSITION_KEEP_SECONDS = env_float("LAST_POSITION_KEEP_SECONDS", 3)
