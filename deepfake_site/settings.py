"""Settings, all deploy-time values from the environment (django-environ).

Local use needs nothing: ``make install`` writes a ``.env`` with
``DJANGO_DEBUG=true``.  Without it DEBUG is off, and then a missing or short
``DJANGO_SECRET_KEY`` stops the process at start (an empty one does in every mode).
"""

import os
from datetime import timedelta
from pathlib import Path

import environ
from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured

from .storage_settings import media_storage

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
if (BASE_DIR / ".env").is_file():
    env.read_env(BASE_DIR / ".env")

DEBUG = env.bool("DJANGO_DEBUG", default=False)
MIN_SECRET_KEY_LENGTH = 32
# Refused at start, in one line, rather than a server whose every request fails. (django-environ reads a variable
# set but empty as unset, so the environment itself is asked.)
if "DJANGO_SECRET_KEY" in os.environ and not os.environ["DJANGO_SECRET_KEY"].strip():
    raise ImproperlyConfigured("DJANGO_SECRET_KEY is set but empty: give it a long random value, or unset it")
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default=None)
if SECRET_KEY is None and DEBUG:
    SECRET_KEY = "insecure-local-development-key-do-not-deploy"
if SECRET_KEY is None:
    raise ImproperlyConfigured("DJANGO_SECRET_KEY must be set when DJANGO_DEBUG is false")
if not DEBUG and len(SECRET_KEY) < MIN_SECRET_KEY_LENGTH:
    raise ImproperlyConfigured(
        f"DJANGO_SECRET_KEY is {len(SECRET_KEY)} characters; at least {MIN_SECRET_KEY_LENGTH} are needed when "
        "DJANGO_DEBUG is false (python -c 'import secrets; print(secrets.token_urlsafe(50))')"
    )
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost"] if DEBUG else [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "axes",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "detector",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "detector.middleware.DatabaseUnavailableMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    # before the CSRF check, which reads the whole body: an oversized or over-the-rate upload is refused unread
    "detector.middleware.UploadGuardMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",
    "detector.middleware.NotFoundPageMiddleware",
]

AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]

ROOT_URLCONF = "deepfake_site.urls"

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
                "detector.context_processors.detector_settings",
            ],
        },
    },
]

WSGI_APPLICATION = "deepfake_site.wsgi.application"

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Write-ahead log: readers do not wait for a writer (several gunicorn workers), and a commit is not synced
    # to disk each time (a power cut may lose the last commits, never the file's consistency).
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault(
        "init_command", "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
    )

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
STATIC_ROOT = env.path("DJANGO_STATIC_ROOT", default=BASE_DIR / "staticfiles")
MEDIA_URL = "media/"  # media are never served directly: views check ownership first
MEDIA_ROOT = env.path("DJANGO_MEDIA_ROOT", default=BASE_DIR / "media")
STORAGES = {
    # DETECTOR_MEDIA_STORAGE: "local" (MEDIA_ROOT) or "s3" (DETECTOR_S3_BUCKET, ...); see storage_settings.py
    "default": media_storage(os.environ),
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "detector:history"
LOGOUT_REDIRECT_URL = "detector:upload"

# Shared state for rate limits and lockouts: Redis in production (CACHE_URL=redis://...).
CACHES = {"default": env.cache_url("CACHE_URL", default="locmemcache://")}
EMAIL_CONFIG = env.email_url("EMAIL_URL", default="consolemail://")
vars().update(EMAIL_CONFIG)
DEFAULT_FROM_EMAIL = env("DJANGO_DEFAULT_FROM_EMAIL", default="deepfake-check@localhost")
# Whether this server can send mail to people (EMAIL_URL set to a real server): only then is "forgot your password?"
# offered. The console and in-memory backends print or keep mail, they do not send it.
_MAIL_KEPT_HERE = ("console.EmailBackend", "locmem.EmailBackend", "dummy.EmailBackend")
_SENDS = not EMAIL_CONFIG["EMAIL_BACKEND"].endswith(_MAIL_KEPT_HERE)
DETECTOR_SENDS_MAIL = env.bool("DETECTOR_SENDS_MAIL", default=_SENDS)

# Security headers. Behind a TLS-terminating proxy set DJANGO_BEHIND_PROXY=true.
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
if env.bool("DJANGO_BEHIND_PROXY", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=not DEBUG)
# A load balancer probes over plain HTTP and must see the 200 or the 503, not a redirect.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = env.bool("DJANGO_SECURE_COOKIES", default=not DEBUG)
SECURE_HSTS_SECONDS = env.int("DJANGO_HSTS_SECONDS", default=0 if DEBUG else 31_536_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("DJANGO_HSTS_INCLUDE_SUBDOMAINS", default=True)
SECURE_HSTS_PRELOAD = env.bool("DJANGO_HSTS_PRELOAD", default=True)
# Only the site's own scripts and styles; no inline script or style anywhere.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "blob:"],  # blob: for the preview of the chosen file
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    }
}

# Login brute-force protection (django-axes): lock a username from an address after
# repeated failures, answer 429 until the cool-off has passed.
AXES_FAILURE_LIMIT = env.int("DETECTOR_LOGIN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("DETECTOR_LOGIN_COOLOFF_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_HTTP_RESPONSE_CODE = 429
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_IPWARE_PROXY_COUNT = 1 if env.bool("DJANGO_BEHIND_PROXY", default=False) else None
# Accounts made per client address, and password-reset requests per e-mail address and per client address ("" off).
DETECTOR_SIGNUP_RATE = env("DETECTOR_SIGNUP_RATE", default="3/h")
DETECTOR_PASSWORD_RESET_RATE = env("DETECTOR_PASSWORD_RESET_RATE", default="3/h")
DETECTOR_PASSWORD_RESET_CLIENT_RATE = env("DETECTOR_PASSWORD_RESET_CLIENT_RATE", default="10/h")

# Everything goes to stderr (gunicorn and Celery pass it on to the platform's log): the detector's own lines,
# and every warning and error of Django and the rest, so a 500's traceback is never lost (Django would otherwise
# only mail it to ADMINS). One line per analysis: the detector's, not Celery's too.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "filters": {"without_traceback": {"()": "detector.logs.WithoutTraceback"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain"},
        "console_one_line": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["without_traceback"]},
    },
    # A Celery worker puts its own handler (its format, with the pool process's name) in place of the root's.
    "root": {"handlers": ["console"], "level": "WARNING"},
    "loggers": {
        "detector": {"level": env("DETECTOR_LOG_LEVEL", default="INFO")},
        "django": {"handlers": [], "level": "WARNING"},  # not only mailed to ADMINS: to the root's handler
        "django.server": {"handlers": ["console"], "level": "INFO", "propagate": False},  # runserver: a line a request
        # SuspiciousOperation (a bad Host header, say) is the client's error: one line each, no traceback.
        "django.security": {"handlers": ["console_one_line"], "level": "WARNING", "propagate": False},
        "celery.app.trace": {"level": "WARNING"},  # "Task ... succeeded": the detector logs each analysis itself
    },
}

# The detector.
DETECTOR_MODEL = env.path("DETECTOR_MODEL", default=BASE_DIR / "ml_models" / "ensemble-v2")
DETECTOR_MAX_UPLOAD_MB = env.float("DETECTOR_MAX_UPLOAD_MB", default=10)
DETECTOR_MAX_PIXELS = env.int("DETECTOR_MAX_PIXELS", default=40_000_000)
# Load the model at start in this process; unset: only in server processes (runserver, gunicorn).
DETECTOR_PRELOAD = env.bool("DETECTOR_PRELOAD", default=None)
DETECTOR_THREADS = env.int("DETECTOR_THREADS", default=None)
# auto: the bundle's exported LiteRT form where it has one, else the Keras model; or force "litert" / "keras"
DETECTOR_ENGINE = env("DETECTOR_ENGINE", default="auto")
# Where the model versions reviewers can switch between live: every bundle folder in ml_models/ and in these
# (comma-separated paths). DETECTOR_MODEL serves until a version is activated in the admin.
DETECTOR_MODEL_DIRS = [BASE_DIR / "ml_models", *(Path(p) for p in env.list("DETECTOR_MODEL_DIRS", default=[]))]
# Whether uploads that reviewers mark real or fake may be exported to train the next model (export_reviewed):
# off by default; when on, the upload page says so.
DETECTOR_REVIEWED_FOR_TRAINING = env.bool("DETECTOR_REVIEWED_FOR_TRAINING", default=False)
# Uploads per anonymous visitor's address (signed-in users: DETECTOR_RATE_LIMIT_SIGNED_IN), e.g. "30/h"; "" turns
# the limit off for everyone.
# C2PA signers to mark as trusted: a PEM file of trust anchors (root certificates). None by default: every signer
# is named, none judged trusted. A path given here that cannot be read stops the start.
_TRUST_ANCHORS = env("DETECTOR_C2PA_TRUST_ANCHORS", default="")
DETECTOR_C2PA_TRUST_ANCHORS = Path(_TRUST_ANCHORS).read_text() if _TRUST_ANCHORS else ""
# A read-only report link (the owner makes it on the result page) stops working after this many days.
DETECTOR_SHARE_DAYS = env.int("DETECTOR_SHARE_DAYS", default=7)
DETECTOR_RATE_LIMIT = env("DETECTOR_RATE_LIMIT", default="30/h")
# Signed-in users' own, higher allowance (they are answerable for their account); empty: the same as everyone's.
DETECTOR_RATE_LIMIT_SIGNED_IN = env("DETECTOR_RATE_LIMIT_SIGNED_IN", default="300/h")
# Where the cache that keeps the counts is down: true lets uploads through uncounted (the limit is abuse
# protection, not access control); false refuses them with a 503 until the cache answers.
DETECTOR_RATE_LIMIT_FAIL_OPEN = env.bool("DETECTOR_RATE_LIMIT_FAIL_OPEN", default=True)

# Days an upload (the original, its copies and its verdict) is kept; the sweep and cleanup_detections delete older
# ones. Unset: kept until its owner deletes it or their account.
DETECTOR_RETENTION_DAYS = env.int("DETECTOR_RETENTION_DAYS", default=None)
# The most orphan files, and the most rows without their file, one cleanup run removes (more: none, and it says so).
DETECTOR_CLEANUP_MAX_REMOVALS = env.int("DETECTOR_CLEANUP_MAX_REMOVALS", default=20)

# The largest request body any client may send, whatever it holds (a batch, a video): a larger declared length
# is answered 413 before a byte of it is read. The nginx configuration in deploy/ takes the same value.
DETECTOR_MAX_REQUEST_MB = env.float("DETECTOR_MAX_REQUEST_MB", default=256)

# Uploads larger than this go to a temporary file rather than memory.
FILE_UPLOAD_MAX_MEMORY_SIZE = 2_621_440

# Batches (the batch page and the API): the most files one request may carry.
DETECTOR_BATCH_MAX_FILES = env.int("DETECTOR_BATCH_MAX_FILES", default=20)
# Addresses users give the server (callbacks, media links): refused on loopback, private, link-local and metadata
# ranges, and over plain http, unless this is on (development and tests on loopback). Name resolution is a setting
# so that the tests can stub it (services/outbound.py).
DETECTOR_ALLOW_PRIVATE_URLS = env.bool("DETECTOR_ALLOW_PRIVATE_URLS", default=False)
DETECTOR_URL_RESOLVER = env("DETECTOR_URL_RESOLVER", default="detector.services.outbound.resolve")
# Checks by link (POST /api/v1/detections/ with "url", and the upload page's link form): the server fetches media
# files, never pages, within DETECTOR_FETCH_TIMEOUT seconds in all and the upload size limits. Off by default in
# production, on in development.
DETECTOR_FETCH_URLS = env.bool("DETECTOR_FETCH_URLS", default=DEBUG)
DETECTOR_FETCH_TIMEOUT = env.float("DETECTOR_FETCH_TIMEOUT", default=10)
# Callbacks: each attempt's time limit, how long an endpoint may fail before it is disabled, and how often the
# periodic job sends what is due (Celery beat; without a broker, this process's pool after each analysis).
DETECTOR_WEBHOOK_TIMEOUT = env.float("DETECTOR_WEBHOOK_TIMEOUT", default=10)
DETECTOR_WEBHOOK_DISABLE_AFTER_HOURS = env.float("DETECTOR_WEBHOOK_DISABLE_AFTER_HOURS", default=24)
DETECTOR_WEBHOOK_SWEEP_SECONDS = env.int("DETECTOR_WEBHOOK_SWEEP_SECONDS", default=15)
DETECTOR_WEBHOOKS_PER_USER = env.int("DETECTOR_WEBHOOKS_PER_USER", default=5)
# The site's address as clients reach it (https://check.example.org), for links the server sends outside a request
# (the detection's URL in a callback); unset, those links are paths.
DETECTOR_PUBLIC_URL = env("DETECTOR_PUBLIC_URL", default="")

# Whether the API answers clients without a token or a login (they own their checks through a session cookie).
DETECTOR_API_ANONYMOUS = env.bool("DETECTOR_API_ANONYMOUS", default=False)

# The REST API (detector/api/): tokens for scripts, the session (with CSRF) for the browser, JSON only.
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # Token first: its scheme is the one a 401 names in WWW-Authenticate.
        "detector.api.authentication.ApiTokenAuthentication",  # keys people make, and the older single tokens
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["detector.api.permissions.ApiAccess"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "detector.api.errors.exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Deepfake check API",
    "DESCRIPTION": (
        "Upload face images, get a verdict (Real, Deepfake or Uncertain) with the fake probability, "
        "the calibrated confidence and the judged faces; list, read and delete your own checks. "
        "Authenticate with `Authorization: Token <key>` (a key from an administrator or "
        "`manage.py create_api_token USERNAME`), or with the site's login session and its CSRF token. "
        'Every error is `{"error": {"code", "message", "field"}}`.'
    ),
    "VERSION": "1.1",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # A face's and a video track's own verdict share one enum (an image's label also has No face, No verdict).
    "ENUM_NAME_OVERRIDES": {"JudgedLabelEnum": ["Real", "Deepfake", "Uncertain"]},
}

# Analysis jobs (Celery).  No broker: each upload is analysed at once in the web process (eager),
# as on a laptop.  With CELERY_BROKER_URL=redis://... the upload returns at once and workers analyse.
CELERY_BROKER_URL = env("CELERY_BROKER_URL", default="")
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_IGNORE_RESULT = True  # the verdict lives in the Detection row; no result backend needed
CELERY_TASK_ACKS_LATE = True  # a job is acknowledged once done, so a dead worker's job is delivered again
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1  # analyses are long and CPU-bound: take one at a time
CELERY_TASK_SOFT_TIME_LIMIT = env.int("DETECTOR_TASK_TIME_LIMIT", default=60)
CELERY_TASK_TIME_LIMIT = CELERY_TASK_SOFT_TIME_LIMIT + 15
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Queueing a job while the broker is down gives up within about a second (the upload is kept pending and the
# sweep queues it later) instead of holding the request for Celery's default retries.
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.4}
CELERY_BROKER_TRANSPORT_OPTIONS = {
    # A job taken by a worker that died is handed out again after this many seconds (Redis).
    "visibility_timeout": env.int("DETECTOR_TASK_REDELIVER_AFTER", default=300),
    "unacked_restore_interval": env.int("DETECTOR_TASK_RESTORE_INTERVAL", default=10),
    "unacked_restore_throttle": 1,
    # A broker that does not answer fails a request's queueing quickly rather than holding it.
    "socket_connect_timeout": 2,
    "socket_timeout": 5,
}
CELERY_BEAT_SCHEDULE = {
    "sweep": {
        "task": "detector.tasks.sweep",
        "schedule": env.int("DETECTOR_STUCK_SWEEP_SECONDS", default=300),
    },
    "webhooks": {
        "task": "detector.tasks.send_webhooks",
        "schedule": DETECTOR_WEBHOOK_SWEEP_SECONDS,
    },
}
# The sweep queues again detections unfinished this long after upload (at most DETECTOR_TASK_MAX_ATTEMPTS
# analyses each) and removes orphan files older than this.
DETECTOR_STUCK_AFTER_MINUTES = env.int("DETECTOR_STUCK_AFTER_MINUTES", default=10)
DETECTOR_TASK_MAX_ATTEMPTS = env.int("DETECTOR_TASK_MAX_ATTEMPTS", default=3)

# Videos (MP4, MOV, WebM, MKV): their own limits, and always analysed off the request thread.
DETECTOR_MAX_VIDEO_MB = env.float("DETECTOR_MAX_VIDEO_MB", default=200)
DETECTOR_MAX_VIDEO_SECONDS = env.float("DETECTOR_MAX_VIDEO_SECONDS", default=600)
DETECTOR_VIDEO_FPS = env.float("DETECTOR_VIDEO_FPS", default=2)  # frames sampled a second, evenly
DETECTOR_VIDEO_MAX_FRAMES = env.int("DETECTOR_VIDEO_MAX_FRAMES", default=120)
# Without a broker: videos analysed at once by each web process, in its own threads (0: in the request, for
# tests and debugging only).
DETECTOR_VIDEO_WORKERS = env.int("DETECTOR_VIDEO_WORKERS", default=1)
# A video job's time limit on a worker, and how long its progress may stand still before the sweep (or a
# process starting) takes it up again. A video job is acknowledged when taken: the broker never hands it out
# twice, and a video whose progress moved within this window is never analysed again.
DETECTOR_VIDEO_TIME_LIMIT = env.int("DETECTOR_VIDEO_TIME_LIMIT", default=1800)
DETECTOR_VIDEO_STALLED_MINUTES = env.int("DETECTOR_VIDEO_STALLED_MINUTES", default=5)
