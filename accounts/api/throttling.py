"""Per-API-key rate limits: every key has its own budget per scope, shared by every web process.

A view names its budget with `throttle_scope` (settings OPENSYNC_API_RATE_LIMITS, README
"Configuration"):

* `sync`: the sync API's writes (the plugins);
* `read`: the read API, and `/sync/sessions/list`;
* `search`: `/api/search` and `/api/context` (full-text and vector search, an embeddings call);
* `export`: eval dataset builds, `GET /api/export/evals` (built while you wait) and `POST` (a job).

A window opens with a key's first request in a scope and lasts the period; past the limit the
request gets 429 `{"error": ...}` with `Retry-After` (seconds until the window closes). Requests
refused count too, but never extend the window, so a client that waits Retry-After gets through.

The counter lives in the shared cache (Redis): one Lua script does the increment, starts the
window and reads its remaining time in one round trip, atomically, so two processes can't both
take the last request. If Redis can't be reached the request goes through (fail open, logged):
a rate limit must never take the API down with it.
"""

import hashlib
import logging
import math
import time

from django.conf import settings
from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache
from redis.exceptions import NoScriptError
from rest_framework import exceptions
from rest_framework.throttling import BaseThrottle

from accounts.cache import UNAVAILABLE, warn_unavailable
from accounts.models import ApiKey

logger = logging.getLogger(__name__)

SETTINGS = {
    "sync": "OPENSYNC_RATE_LIMIT_SYNC",
    "read": "OPENSYNC_RATE_LIMIT_READ",
    "search": "OPENSYNC_RATE_LIMIT_SEARCH",
    "export": "OPENSYNC_RATE_LIMIT_EXPORT",
}

# KEYS[1] the counter, ARGV[1] the window in ms -> {requests in the window, ms until it closes}.
# The expiry is set by the first request only (or repaired if a counter somehow has none).
HIT_SCRIPT = """
local count = redis.call('INCR', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {count, ttl}
"""
HIT_SHA = hashlib.sha1(HIT_SCRIPT.encode()).hexdigest()  # noqa: S324 (Redis names scripts by SHA-1)


def hit(name: str, period: int) -> tuple[int, float]:
    """Count one request against the window `name`: (requests in it so far, seconds until it closes)."""
    cache = caches["default"]
    key = cache.make_and_validate_key(name)
    if isinstance(cache, RedisCache):
        client = cache._cache.get_client(key, write=True)  # type: ignore[attr-defined]  # private, not in the stubs: the redis-py client, for the script
        try:
            count, ttl_ms = client.evalsha(HIT_SHA, 1, key, period * 1000)
        except NoScriptError:  # first use since Redis started: EVAL also caches it for EVALSHA
            count, ttl_ms = client.eval(HIT_SCRIPT, 1, key, period * 1000)
        return int(count), int(ttl_ms) / 1000
    # Any other cache (the tests' in-process LocMemCache): the same windows, for this process only.
    now = time.time()
    cache.add(f"{name}:closes", now + period, period)
    cache.add(name, 0, period)
    try:
        count = cache.incr(name)
    except ValueError:  # expired between the two calls: a new window
        cache.set(name, 1, period)
        count = 1
    return count, max(cache.get(f"{name}:closes", now + period) - now, 0.0)


def describe_period(seconds: int) -> str:
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds % size == 0:
            count = seconds // size
            return unit if count == 1 else f"{count} {unit}s"
    return "second" if seconds == 1 else f"{seconds} seconds"


class ApiKeyRateThrottle(BaseThrottle):
    """The budget of the request's API key for the view's `throttle_scope`. Requests without a
    key (the health check, the schema) and views without a scope are not limited; a request whose
    key was refused never gets here (authentication and permissions run first)."""

    def allow_request(self, request, view):
        scope = getattr(view, "throttle_scope", None)
        key = request.auth
        if scope is None or not isinstance(key, ApiKey):
            return True
        rate = settings.OPENSYNC_API_RATE_LIMITS.get(scope)
        if rate is None:  # turned off
            return True
        limit, period = rate
        try:
            count, remaining = hit(f"ratelimit:{scope}:{key.pk}", period)
        except UNAVAILABLE as exc:
            warn_unavailable("API rate limits are not enforced", exc)
            return True
        except Exception:
            logger.exception("The API rate limit could not be checked; the request goes through")
            return True
        if count <= limit:
            return True
        # Raised here rather than returning False, so the answer can say which budget ran out.
        raise exceptions.Throttled(
            wait=max(math.ceil(remaining), 1),
            detail=f"Too many {scope} requests: this API key may make {limit} per {describe_period(period)} "
            f"({SETTINGS[scope]}).",
        )
