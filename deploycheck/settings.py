"""One settings module, read from the environment.

Every variable is listed in the README's configuration table. A bad value stops the
process at start with a message naming the variable, instead of failing later.
"""

from __future__ import annotations

import os
import re
from datetime import timedelta
from pathlib import Path
from typing import Any, TypedDict
from urllib.parse import parse_qsl, unquote, urlsplit

import dj_database_url
from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext_lazy as _

from deploycheck.logs import uvicorn_access_logger

BASE_DIR = Path(__file__).resolve().parent.parent

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def envbool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean (use 1/0, true/false, yes/no)")


def envint(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not an integer") from None


def envlist(name: str, default: str) -> list[str]:
    return [part.strip() for part in os.environ.get(name, default).split(",") if part.strip()]


def envpositive(name: str, default: int) -> int:
    value = envint(name, default)
    if value <= 0:
        raise ImproperlyConfigured(f"{name}={value!r} must be a positive integer")
    return value


DEBUG = envbool("DEBUG", False)
# Demo accounts with a shared password are only ever acceptable on a developer's machine.
DEMO_MODE = envbool("DEMO_MODE", False) and DEBUG

DATA_DIR = Path(os.environ.get("DATA_DIR", BASE_DIR / "var"))

SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off")
    SECRET_KEY = "insecure-development-key-only-used-with-DEBUG-on"

ALLOWED_HOSTS = envlist("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]" if DEBUG else "")
CSRF_TRUSTED_ORIGINS = envlist("CSRF_TRUSTED_ORIGINS", "")
CSRF_FAILURE_VIEW = "releases.errors.csrf_failure"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_htmx",
    "template_partials",
    "axes",
    "csp",
    "releases",
    "checks",
    "api",
    "notifications",
]

MIDDLEWARE = [
    # First: the HTTPS redirect and HSTS come before any work is done for a request.
    "django.middleware.security.SecurityMiddleware",
    # Before the session is read: NUL or a lone surrogate in a cookie (the session key)
    # is a 400, not a PostgreSQL error.
    "releases.inputs.unstorable_cookie_middleware",
    # Static files are answered here, cacheable and without the page-only headers below.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "csp.middleware.CSPMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "deploycheck.security.private_cache_middleware",
    "releases.language.user_language_middleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Before anything reads the path, query or form for the database, once the person's
    # language is known: NUL or a lone surrogate there is refused in that language,
    # naming the field, with nothing typed lost.
    "releases.inputs.unstorable_input_middleware",
    "releases.login_redirect.login_redirect_middleware",
    # A form's action opened as a page gets one saying where to go, not an empty 405.
    "releases.openable.not_allowed_middleware",
    # Last, as django-axes requires: it turns a login refused for a lockout into our
    # lockout page, with everything the outer middleware set up for the request.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "deploycheck.urls"
WSGI_APPLICATION = "deploycheck.wsgi.application"
ASGI_APPLICATION = "deploycheck.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "OPTIONS": {
            # As django-template-partials sets them up. Templates are read as written: a
            # loader rewriting template source would have to know everywhere white space
            # means something (<pre>, mail, plain text). The shared board and status
            # bodies lose their indentation after rendering instead (releases.pages).
            "loaders": [
                (
                    "template_partials.loader.Loader",
                    [
                        (
                            "django.template.loaders.cached.Loader",
                            [
                                "django.template.loaders.filesystem.Loader",
                                "django.template.loaders.app_directories.Loader",
                            ],
                        )
                    ],
                )
            ],
            "builtins": ["releases.templatetags.moments"],
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

_sqlite_path = DATA_DIR / "deploycheck.sqlite3"
DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL") or f"sqlite:///{_sqlite_path}",
        conn_max_age=envint("DB_CONN_MAX_AGE", 0),
    )
}
DB_POOL_SIZE = envint("DB_POOL_SIZE", 0)
if DB_POOL_SIZE and DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # A pool keeps connections for the next requests, whichever thread serves them (a
    # live stream's access is checked on a thread of its own), and takes each back at
    # the end of its request.
    if DATABASES["default"]["CONN_MAX_AGE"]:
        raise ImproperlyConfigured("DB_POOL_SIZE and DB_CONN_MAX_AGE cannot both be set")
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        # Opened up front: a burst of checks or requests finds them ready.
        "min_size": DB_POOL_SIZE,
        "max_size": DB_POOL_SIZE,
        "timeout": 10,
    }

# Threads one web process serves its pages on (deploycheck/asgi.py); more requests
# than this wait on the event loop, their bodies already read. Each thread in a request
# holds a database connection: keep DB_POOL_SIZE at least this.
WEB_THREADS = envpositive("WEB_THREADS", 2)

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    # IMMEDIATE takes the write lock at BEGIN, so two writers queue instead of one
    # failing with "database is locked" half-way through a transaction.
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "releases:list"
LOGOUT_REDIRECT_URL = "login"

# Login throttling (django-axes): after AXES_FAILURE_LIMIT failed logins on one account,
# or from one address, logins there are refused for the cool-off, on our login page and
# the admin's alike. The two are counted apart, so that guessing one password from many
# addresses, or many accounts' passwords from one address, are both stopped. The
# address is the client's as uvicorn reports it: with --proxy-headers it is the one the
# proxies in FORWARDED_ALLOW_IPS forwarded, not the proxy's own.
AUTHENTICATION_BACKENDS = [
    # Refuses a locked-out login before any password is checked; logs nobody in itself.
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = envpositive("AXES_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = timedelta(minutes=envpositive("AXES_COOLOFF_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
# A person who mistyped a few times and then got in starts again from zero.
AXES_RESET_ON_SUCCESS = True
# The username as axes reads it, cut to what its table holds (see the function).
AXES_USERNAME_CALLABLE = "deploycheck.security.axes_username"
# Our page, saying how long to wait, with status 429 and Retry-After.
AXES_LOCKOUT_CALLABLE = "deploycheck.security.lockout_response"

LANGUAGE_CODE = os.environ.get("LANGUAGE_CODE", "es")
LANGUAGES = [("es", _("Español")), ("en", _("English"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = os.environ.get("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = DATA_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
# Production images run collectstatic with STATIC_MANIFEST on and serve hashed,
# compressed files; without that step (make run, tests) whitenoise serves straight from
# the source folders.
STATIC_MANIFEST = envbool("STATIC_MANIFEST", (STATIC_ROOT / "staticfiles.json").exists())
WHITENOISE_USE_FINDERS = not STATIC_MANIFEST
if WHITENOISE_USE_FINDERS:
    # whitenoise warns on every start when STATIC_ROOT is missing, even unused.
    STATIC_ROOT.mkdir(parents=True, exist_ok=True)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if WHITENOISE_USE_FINDERS
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}

REDIS_URL = os.environ.get("REDIS_URL", "")
# Connections one process may hold to Redis for its cache and sessions.
REDIS_CONNECTIONS = envpositive("REDIS_CONNECTIONS", 50)
# Shared by every web process when there is Redis (pipeline rate limits hold across
# them); per process otherwise. django-redis, not Django's own RedisCache: Django's keeps
# its connection pool on the cache object, which a request served on a2wsgi's threads
# gets anew (each runs in a fresh copy of the context), so every request that read its
# session opened a Redis connection of its own: 3,676 in 8 s of wrk on one process.
# django-redis keeps one pool per process.
CACHES = {
    "default": {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": REDIS_URL,
        "OPTIONS": {
            # A Redis that stops answering fails a page in seconds (503, releases.errors)
            # instead of holding its thread for as long as the network keeps the socket.
            "SOCKET_CONNECT_TIMEOUT": 5,
            "SOCKET_TIMEOUT": 5,
            # Django's ASGI handler gives each request a thread of its own: a thousand
            # live pages opening at once read their sessions side by side. They wait
            # their turn for a connection; redis-py's default pool refused the 101st.
            "CONNECTION_POOL_CLASS": "redis.BlockingConnectionPool",
            "CONNECTION_POOL_KWARGS": {"max_connections": REDIS_CONNECTIONS, "timeout": 5},
        },
    }
    if REDIS_URL
    else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    # The parts of the page shell that are the same for everyone reading one language
    # (staff or not), kept by Django's {% cache %} in each process's memory until it
    # restarts, as a deploy that changes them does.
    "shell": {
        "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
        "LOCATION": "shell",
        "TIMEOUT": None,
    },
}
# Sessions in the database, read through Redis when there is Redis. The rows stay the
# truth: a logout deletes its row, which ends the person's open live streams
# (releases.streams.still_admitted). Without Redis the cache is each process's own
# memory, where a session logged out through another web process would still let its
# cookie in: there they are read from the database only.
SESSION_ENGINE = (
    "django.contrib.sessions.backends.cached_db"
    if REDIS_URL
    else "django.contrib.sessions.backends.db"
)
# Requests one pipeline token may make per minute.
PIPELINE_REQUESTS_PER_MINUTE = envint("PIPELINE_REQUESTS_PER_MINUTE", 60)
BROKER_DIR = DATA_DIR / "broker"
if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
    CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, object] = {}
else:
    # A broker that is just a folder, so a machine with nothing but Python can run the
    # worker and beat: kombu's filesystem transport, writing each message whole
    # (deploycheck.broker). Beside queue/ it keeps tmp/ and unreadable/.
    CELERY_BROKER_URL = "filesystem://"
    CELERY_BROKER_TRANSPORT = "deploycheck.broker:Transport"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(BROKER_DIR / "queue"),
        "data_folder_out": str(BROKER_DIR / "queue"),
        # Exchange tables; kombu's default is a control/ folder in the working directory.
        "control_folder": str(BROKER_DIR / "control"),
        # A folder has no push: poll it often enough that a task starts promptly.
        "polling_interval": 0.2,
    }
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Tasks keep no results, so the result backend is Celery's "disabled" one, which holds
# nothing to share. Shared, it is looked up once per worker; per thread (the default),
# each of a run's threads scanned every installed package's entry points for it first,
# about 4 ms of CPU apiece while the whole run waits on one interpreter lock.
CELERY_RESULT_BACKEND_THREAD_SAFE = True
CELERY_TASK_ALWAYS_EAGER = envbool("CELERY_TASK_ALWAYS_EAGER", False)
# Where workers share cores with web processes (make run, one host of containers), the
# pages come first: a worker formatting an audit CSV took the CPU that a status page
# beside it needed (make bench: p95 70 ms, 49 ms with the worker at +10). Added to the
# worker's niceness when it starts; 0 leaves it as started.
WORKER_NICENESS = envint("WORKER_NICENESS", 10)
CELERY_BEAT_SCHEDULE_FILENAME = str(DATA_DIR / "celerybeat-schedule")
CELERY_TIMEZONE = TIME_ZONE
CELERY_BEAT_SCHEDULE = {
    # A worker killed mid-check, or a message the filesystem broker lost, is noticed
    # within this long after its deadline.
    "requeue-overdue-checks": {"task": "checks.requeue_overdue", "schedule": 15.0},
    # Pages are rendered once per release revision and reused, so a maintenance window
    # that starts or ends by the clock must get a revision of its own to be shown so on
    # every open page; beat records it (audited, on the timeline) within 30 s.
    "advance-maintenance-windows": {"task": "releases.advance_windows", "schedule": 30.0},
    # Notifications whose worker was lost mid-delivery, or whose retry is due, are sent
    # again within this long.
    "sweep-notifications": {"task": "notifications.sweep", "schedule": 15.0},
    # Approval reminders and "maintenance starting soon" fall due by the clock; a minute
    # late is on time for both.
    "send-reminders": {"task": "notifications.remind", "schedule": 60.0},
    # An audit export whose download died with its web process is left in the database.
    "drop-abandoned-exports": {"task": "releases.drop_abandoned_exports", "schedule": 600.0},
}

# The site-wide part of every maintenance window's calendar UID (its @domain). Each
# window keeps the UID it was first given, so changing this later renames no event.
CALENDAR_UID_DOMAIN = os.environ.get("CALENDAR_UID_DOMAIN", "") or next(
    (host.lstrip(".") for host in ALLOWED_HOSTS if host.strip(".*[]:0123456789")),
    "deploycheck.invalid",
)

# Live updates: how often a web process looks for new revisions when there is no Redis
# pub/sub to wake it, and how long an idle stream waits before a keep-alive comment.
LIVE_POLL_SECONDS = float(os.environ.get("LIVE_POLL_SECONDS", "0.1"))
LIVE_KEEPALIVE_SECONDS = float(os.environ.get("LIVE_KEEPALIVE_SECONDS", "15"))

CHECKLIST_MAX_BYTES = envint("CHECKLIST_MAX_BYTES", 1024 * 1024)
# The largest request body a web process reads; a larger one is refused with 413 before
# it is read (deploycheck/edge.py). Twice the checklist limit: an import's confirm form
# carries the checklist again, signed, compressed and base64-encoded, which is up to
# 4/3 of it when it does not compress.
MAX_REQUEST_BYTES = envpositive("MAX_REQUEST_BYTES", 2 * CHECKLIST_MAX_BYTES)
# Django's own limit on a form's fields follows it, so that the two never disagree.
DATA_UPLOAD_MAX_MEMORY_SIZE = MAX_REQUEST_BYTES
# Items per checklist: a board of more would be too big to serve or to read.
CHECKLIST_MAX_ITEMS = envint("CHECKLIST_MAX_ITEMS", 2000)

# Automated checks: how long one request may wait to connect and for each read.
CHECKS_CONNECT_TIMEOUT = float(os.environ.get("CHECKS_CONNECT_TIMEOUT", "5"))
CHECKS_READ_TIMEOUT = float(os.environ.get("CHECKS_READ_TIMEOUT", "10"))
# The most a check reads of one answer; a vendor's longer answer is not one it can judge.
CHECKS_MAX_RESPONSE_BYTES = envpositive("CHECKS_MAX_RESPONSE_BYTES", 1024 * 1024)
# How long one attempt of a check may take: the worker ends it then (a vendor dripping
# its answer), and past it beat hands the attempt to another worker (a worker killed
# mid-check); well above a check's few requests and their timeouts.
CHECKS_ATTEMPT_SECONDS = envint("CHECKS_ATTEMPT_SECONDS", 120)
# Beat re-verifies releases in progress, approved or deployed this often.
CHECKS_INTERVAL_SECONDS = envint("CHECKS_INTERVAL_SECONDS", 900)
# A ticked item whose checks have not answered within this many seconds blocks approval.
CHECKS_MAX_AGE = envint("CHECKS_MAX_AGE", 3600)
# Checks one release may have: a checks file declaring more is refused whole.
CHECKS_MAX_PER_RELEASE = envpositive("CHECKS_MAX_PER_RELEASE", 500)
# Attempts per check and the first backoff; a server's Retry-After wins, capped at 60 s.
CHECKS_MAX_ATTEMPTS = envint("CHECKS_MAX_ATTEMPTS", 3)
CHECKS_RETRY_BASE_SECONDS = float(os.environ.get("CHECKS_RETRY_BASE_SECONDS", "1"))
# Runs one person may start per minute; asking for checks already under way joins them
# and starts none.
CHECKS_RUNS_PER_MINUTE = envpositive("CHECKS_RUNS_PER_MINUTE", 10)
if CHECKS_INTERVAL_SECONDS > 0:
    CELERY_BEAT_SCHEDULE["reverify-releases"] = {
        "task": "checks.reverify",
        "schedule": float(CHECKS_INTERVAL_SECONDS),
    }

# The longest maintenance window people or a pipeline may set: a longer one is a typo
# (2027 for 2037), and would hold the release "in maintenance" for as long.
MAINTENANCE_WINDOW_MAX_HOURS = envpositive("MAINTENANCE_WINDOW_MAX_HOURS", 7 * 24)

# Notifications (notifications/): the site's address, for the links events carry.
SITE_URL = os.environ.get("SITE_URL", "http://127.0.0.1:8000").strip()
_site = urlsplit(SITE_URL)
if _site.scheme not in ("http", "https") or not _site.hostname:
    raise ImproperlyConfigured(f"SITE_URL={SITE_URL!r} must be an http(s):// URL with a host")


def envseconds(name: str, default: str) -> list[float]:
    raw = os.environ.get(name, default)
    try:
        values = [float(part) for part in raw.split(",") if part.strip()]
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} must be seconds separated by commas") from None
    if any(value < 0 for value in values):
        raise ImproperlyConfigured(f"{name}={raw!r} must not hold a negative number")
    return values


# Seconds to wait before each retry of a failed delivery, Standard Webhooks' schedule by
# default (5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h); jittered by 10%.
NOTIFY_RETRY_SCHEDULE = envseconds("NOTIFY_RETRY_SCHEDULE", "5,300,1800,7200,18000,36000,36000")
# Deliveries to private, loopback and link-local addresses (and plain http to them) are
# refused unless this is on: a channel's URL must not reach into the server's network.
NOTIFY_ALLOW_PRIVATE = envbool("NOTIFY_ALLOW_PRIVATE", False)
NOTIFY_CONNECT_TIMEOUT = float(os.environ.get("NOTIFY_CONNECT_TIMEOUT", "5"))
NOTIFY_READ_TIMEOUT = float(os.environ.get("NOTIFY_READ_TIMEOUT", "10"))
# The most of a receiver's answer read; its body says nothing we use.
NOTIFY_MAX_RESPONSE_BYTES = envpositive("NOTIFY_MAX_RESPONSE_BYTES", 64 * 1024)
# Past this, an attempt under way is taken for lost (its worker killed) and sent again.
NOTIFY_ATTEMPT_SECONDS = envpositive("NOTIFY_ATTEMPT_SECONDS", 60)

# The product owner is reminded this often while a release waits for go-live approval
# (notifications.reminders); 0 sends no reminders at all. Staff turn them off per
# release on its go/no-go panel.
APPROVAL_REMINDER_MINUTES = envint("APPROVAL_REMINDER_MINUTES", 30)
if APPROVAL_REMINDER_MINUTES < 0:
    raise ImproperlyConfigured(
        f"APPROVAL_REMINDER_MINUTES={APPROVAL_REMINDER_MINUTES!r} must be 0 (off) or more"
    )

# HTTPS. Production serves through a TLS-terminating proxy, which says so in
# X-Forwarded-Proto. SECURE_COOKIES is the switch "this site is served over HTTPS": the
# redirect and HSTS follow it unless set apart, so a deployment that serves plain HTTP
# on purpose (SECURE_COOKIES=0) is not redirected to an HTTPS that does not exist.
SESSION_COOKIE_SECURE = envbool("SECURE_COOKIES", not DEBUG)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = envbool("SSL_REDIRECT", SESSION_COOKIE_SECURE)
# The container's health check asks the web process itself, over plain HTTP.
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
SECURE_HSTS_SECONDS = envint("HSTS_SECONDS", 31536000 if SESSION_COOKIE_SECURE else 0)
if SECURE_HSTS_SECONDS < 0:
    raise ImproperlyConfigured(f"HSTS_SECONDS={SECURE_HSTS_SECONDS!r} must not be negative")
SECURE_HSTS_INCLUDE_SUBDOMAINS = envbool("HSTS_INCLUDE_SUBDOMAINS", True)
SECURE_HSTS_PRELOAD = envbool("HSTS_PRELOAD", False)
SILENCED_SYSTEM_CHECKS = [
    # W021 asks for HSTS preload. Preloading is the domain owner's commitment for the
    # whole registrable domain and all its subdomains, submitted by hand to the browsers'
    # list, and is hard to undo; deploycheck usually runs on one subdomain of a team's
    # domain, where the directive does nothing. HSTS_PRELOAD=1 sends it.
    "security.W021",
]
SECURE_CONTENT_TYPE_NOSNIFF = True
# Django's default, stated: a share link's URL is its token and must never leave in a
# Referer header to the sites an evidence link or a contact points to.
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

# Content-Security-Policy (django-csp): nothing but our own files runs or styles the
# pages, so markup that slipped past escaping (a note, a checklist line) stays inert.
# Templates hold no inline <script>, style= or on*= attributes for that reason.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        # data: is the page's empty favicon.
        "img-src": [SELF, "data:"],
        # The live stream and its polling fallback.
        "connect-src": [SELF],
        "frame-ancestors": [NONE],
        "form-action": [SELF],
        "base-uri": [NONE],
        "object-src": [NONE],
    }
}

# Email, from EMAIL_URL: smtp://user:pass@host:587?tls=1, smtps://… (TLS from the
# start), anymail+<esp>://?api_key_env=NAME (an ESP's HTTP API through django-anymail,
# its key read from the variable NAME), or console:// (printed on the server's output,
# for development, with the secrets a log line would hide hidden there too:
# deploycheck.logs). Without it,
# development prints mail and production sends none, and password reset, whose only
# way to reach a person is a mail, is not offered (deploycheck.urls).
EMAIL_URL = os.environ.get("EMAIL_URL", "").strip()
DEFAULT_FROM_EMAIL = os.environ.get("EMAIL_FROM", "").strip() or "deploycheck@localhost"
SERVER_EMAIL = DEFAULT_FROM_EMAIL
# A mail server that stops answering must not hold a request's thread (and its
# database connection) for ever.
EMAIL_TIMEOUT = 10


class _Email(TypedDict, total=False):
    EMAIL_BACKEND: str
    EMAIL_HOST: str
    EMAIL_PORT: int
    EMAIL_HOST_USER: str
    EMAIL_HOST_PASSWORD: str
    EMAIL_USE_TLS: bool
    EMAIL_USE_SSL: bool
    EMAIL_TIMEOUT: int
    ANYMAIL: dict[str, Any]


# The ESPs EMAIL_URL may name as anymail+<esp>://: django-anymail's backend module for
# each, and the setting its API key goes in ("" for Amazon SES, whose credentials boto3
# finds itself: AWS_ACCESS_KEY_ID…, an instance role).
_ESPS = {
    "amazon-ses": ("amazon_ses", ""),
    "brevo": ("brevo", "API_KEY"),
    "mailgun": ("mailgun", "API_KEY"),
    "postmark": ("postmark", "SERVER_TOKEN"),
    "resend": ("resend", "API_KEY"),
    "sendgrid": ("sendgrid", "API_KEY"),
    # Brevo's former name.
    "sendinblue": ("brevo", "API_KEY"),
}
_VARIABLE_NAME = re.compile(r"^[A-Z_][A-Z0-9_]{0,99}$")


def _email_settings(url: str) -> _Email:
    """Django's EMAIL_* settings for EMAIL_URL. Messages never quote the URL: it holds
    the mail server's password."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "console":
        return {"EMAIL_BACKEND": "deploycheck.logs.ConsoleEmailBackend"}
    if scheme.startswith("anymail+"):
        return _anymail_settings(scheme.removeprefix("anymail+"), parts.netloc, parts.query)
    if scheme not in {"smtp", "smtps"}:
        raise ImproperlyConfigured(
            f"EMAIL_URL: unknown scheme {scheme!r} (use smtp://, smtps://, anymail+<esp>:// "
            "or console://)"
        )
    if not parts.hostname:
        raise ImproperlyConfigured("EMAIL_URL: no mail server host")
    options = dict(parse_qsl(parts.query, keep_blank_values=True))
    unknown = sorted(set(options) - {"tls", "ssl", "timeout"})
    if unknown:
        raise ImproperlyConfigured(f"EMAIL_URL: unknown option {unknown[0]!r} (tls, ssl, timeout)")

    def flag(name: str) -> bool:
        value = options.get(name, "0").strip().lower()
        if value not in _TRUE | _FALSE:
            raise ImproperlyConfigured(f"EMAIL_URL: {name}={value!r} is not a boolean")
        return value in _TRUE

    use_ssl = scheme == "smtps" or flag("ssl")
    use_tls = flag("tls")
    if use_ssl and use_tls:
        raise ImproperlyConfigured("EMAIL_URL: tls and ssl (smtps) exclude each other")
    try:
        port = parts.port
        timeout = int(options.get("timeout", EMAIL_TIMEOUT))
    except ValueError:
        raise ImproperlyConfigured("EMAIL_URL: the port and timeout must be integers") from None
    return {
        "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
        "EMAIL_HOST": parts.hostname,
        "EMAIL_PORT": port or (465 if use_ssl else 587 if use_tls else 25),
        "EMAIL_HOST_USER": unquote(parts.username or ""),
        "EMAIL_HOST_PASSWORD": unquote(parts.password or ""),
        "EMAIL_USE_TLS": use_tls,
        "EMAIL_USE_SSL": use_ssl,
        "EMAIL_TIMEOUT": timeout,
    }


def _anymail_settings(esp: str, netloc: str, query: str) -> _Email:
    """django-anymail's backend and ANYMAIL settings for anymail+<esp>://?options. The
    API key is read from the variable api_key_env names, so that EMAIL_URL holds none."""
    if esp not in _ESPS:
        raise ImproperlyConfigured(
            f"EMAIL_URL: unknown ESP {esp!r} (anymail+ one of {', '.join(sorted(_ESPS))})"
        )
    module, key_setting = _ESPS[esp]
    if netloc:
        raise ImproperlyConfigured(
            f"EMAIL_URL: anymail+{esp}:// takes no host or credentials; name the variable "
            "holding the API key with ?api_key_env=, and the API's address with api_url="
        )
    options = dict(parse_qsl(query, keep_blank_values=True))
    known = ("api_key_env", "api_url", "timeout") if key_setting else ("region",)
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise ImproperlyConfigured(
            f"EMAIL_URL: unknown option {unknown[0]!r} for anymail+{esp}:// ({', '.join(known)})"
        )
    prefix = module.upper()
    anymail: dict[str, Any] = {}
    if not key_setting:
        region = options.get("region", "").strip()
        if region:
            anymail["AMAZON_SES_CLIENT_PARAMS"] = {"region_name": region}
        return {"EMAIL_BACKEND": f"anymail.backends.{module}.EmailBackend", "ANYMAIL": anymail}
    name = options.get("api_key_env", "").strip()
    if not _VARIABLE_NAME.fullmatch(name):
        raise ImproperlyConfigured(
            f"EMAIL_URL: anymail+{esp}:// needs api_key_env=, the name of the variable "
            "holding the API key (such as POSTMARK_SERVER_TOKEN)"
        )
    key = os.environ.get(name, "").strip()
    if not key:
        raise ImproperlyConfigured(f"EMAIL_URL: {name}, named by api_key_env, is not set")
    anymail[f"{prefix}_{key_setting}"] = key
    api_url = options.get("api_url", "").strip()
    if api_url:
        api = urlsplit(api_url)
        local = api.hostname in ("127.0.0.1", "::1", "localhost")
        if not api.hostname or not (api.scheme == "https" or (api.scheme == "http" and local)):
            raise ImproperlyConfigured(
                "EMAIL_URL: api_url must be an https:// URL (http:// only to this machine)"
            )
        anymail[f"{prefix}_API_URL"] = api_url
    try:
        anymail["REQUESTS_TIMEOUT"] = int(options.get("timeout", EMAIL_TIMEOUT))
    except ValueError:
        raise ImproperlyConfigured("EMAIL_URL: the timeout must be an integer") from None
    return {"EMAIL_BACKEND": f"anymail.backends.{module}.EmailBackend", "ANYMAIL": anymail}


if EMAIL_URL:
    _email = _email_settings(EMAIL_URL)
elif DEBUG:
    _email = {"EMAIL_BACKEND": "deploycheck.logs.ConsoleEmailBackend"}
else:
    # Whatever would send mail sends nothing, rather than trying a server on localhost.
    _email = {"EMAIL_BACKEND": "django.core.mail.backends.dummy.EmailBackend"}
# Whether mail reaches people; password reset is offered only then.
EMAIL_ENABLED = bool(EMAIL_URL) or DEBUG
EMAIL_BACKEND = _email["EMAIL_BACKEND"]
EMAIL_HOST = _email.get("EMAIL_HOST", "localhost")
EMAIL_PORT = _email.get("EMAIL_PORT", 25)
EMAIL_HOST_USER = _email.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = _email.get("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = _email.get("EMAIL_USE_TLS", False)
EMAIL_USE_SSL = _email.get("EMAIL_USE_SSL", False)
EMAIL_TIMEOUT = _email.get("EMAIL_TIMEOUT", EMAIL_TIMEOUT)
# An ESP's settings (API key, API URL), when EMAIL_URL names one; the key's setting name
# ends in _KEY or _TOKEN, which Django's error reports hide.
ANYMAIL = _email.get("ANYMAIL", {})

# uvicorn's access log goes through the redacting handler too, unless uvicorn was told to
# keep none (deploycheck.logs.uvicorn_access_logger).
_uvicorn_access = uvicorn_access_logger()
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    # Share-link and reset tokens, Authorization values: never written (deploycheck.logs).
    "filters": {"redact_secrets": {"()": "deploycheck.logs.RedactSecrets"}},
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        # uvicorn's access line, in the same frame as every other line.
        "access": {
            "()": "uvicorn.logging.AccessFormatter",
            "fmt": '%(asctime)s %(levelname)s %(name)s %(client_addr)s - "%(request_line)s" '
            "%(status_code)s",
            "use_colors": False,
        },
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "filters": ["redact_secrets"],
        },
        "access": {
            "class": "logging.StreamHandler",
            "formatter": "access",
            "filters": ["redact_secrets"],
        },
    },
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {
        # httpx logs every request line at INFO, query string included: a key passed that
        # way by a misconfigured check would reach the log.
        "httpx": {"level": "WARNING"},
        "httpcore": {"level": "WARNING"},
        # Django's own defaults give "django" a console handler of its own (with DEBUG)
        # and mail_admins (no ADMINS here): its lines would be written unredacted before
        # they reach root's handler. Root's alone writes them.
        "django": {"handlers": [], "propagate": True},
        # django-axes announces itself at INFO in every process, manage.py commands too;
        # its failed logins and lockouts are warnings, and stay.
        "axes.apps": {"level": "WARNING"},
        **({"uvicorn.access": _uvicorn_access} if _uvicorn_access else {}),
    },
}
