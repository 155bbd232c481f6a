"""Test settings: the same code path as production, with fast hashing and plain static storage."""

from . import *  # noqa: F403
from .env import env_str

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES = {**STORAGES, "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}  # noqa: F405
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
CELERY_TASK_ALWAYS_EAGER = True
ALLOWED_HOSTS = [*ALLOWED_HOSTS, "testserver"]  # noqa: F405
# Lets parallel test runs on one embedded server use separate databases.
DATABASES["default"]["TEST"] = {"NAME": env_str("OPENSYNC_TEST_DB_NAME", "test_opensync")}  # noqa: F405
OPENSYNC_API_REQUEST_LOG_FLUSH_SECONDS = 0  # tests read the log right after a request
# In-process tests count rate limits in this process's memory (a test that needs the shared Redis
# starts Valkey and gunicorn itself: accounts/tests/test_rate_limits_live.py).
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
# The request metrics run in the tests whether or not a metrics token was set when they started
# (tests set OPENSYNC_METRICS_TOKEN per test).
if PROMETHEUS_MIDDLEWARE[0] not in MIDDLEWARE:  # noqa: F405
    MIDDLEWARE = [PROMETHEUS_MIDDLEWARE[0], *MIDDLEWARE, PROMETHEUS_MIDDLEWARE[1]]  # noqa: F405
# Embeddings are off unless a test turns a provider on: most tests are not about search by meaning,
# and the ones that are choose theirs (the fake OpenAI-compatible server, or the local model in
# search/tests/test_local_embeddings.py and the relevance test). The default is `local`
# (opensync/settings/__init__.py), which tests/test_local_semantic.py runs with nothing configured.
OPENSYNC_EMBEDDINGS_PROVIDER = "none"
