"""The shared cache (Redis/Valkey, see settings CACHES): what the API rate limits, the login limits,
the embeddings debounce and the filter suggestions keep, shared by every web process.

Redis being down must not take the site with it: an API request would fail on its rate limit,
and a login on allauth's. So when Redis can't be reached the cache behaves as an empty cache that
accepts every write (the limits let the request through, "fail open"), and says so in the log,
at most once a minute per process so an outage doesn't flood it.
"""

import logging
import time

from django.core.cache.backends.redis import RedisCache
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

logger = logging.getLogger(__name__)

UNAVAILABLE = (RedisConnectionError, RedisTimeoutError)
WARN_EVERY_SECONDS = 60
_last_warning = 0.0


def warn_unavailable(what: str, exc: Exception) -> None:
    """Log that Redis is unreachable, at most once a minute per process."""
    global _last_warning
    now = time.monotonic()
    if now - _last_warning >= WARN_EVERY_SECONDS:
        _last_warning = now
        logger.warning("Redis (the shared cache) is unavailable, %s: %s", what, exc)


def _fail_open(method, fallback):
    def wrapper(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except UNAVAILABLE as exc:
            warn_unavailable(f"{method.__name__} answered as if empty (limits are not enforced)", exc)
            return fallback(*args, **kwargs) if callable(fallback) else fallback

    wrapper.__name__ = method.__name__
    wrapper.__doc__ = method.__doc__
    return wrapper


class FailOpenRedisCache(RedisCache):
    """Django's Redis cache; when Redis can't be reached, reads miss and writes "succeed".

    `add` answers True: allauth takes a lock with it before counting attempts, and a lock never
    taken would count as rate limited."""

    get = _fail_open(RedisCache.get, lambda key, default=None, version=None: default)
    get_many = _fail_open(RedisCache.get_many, {})
    has_key = _fail_open(RedisCache.has_key, False)
    add = _fail_open(RedisCache.add, True)
    set = _fail_open(RedisCache.set, None)
    set_many = _fail_open(RedisCache.set_many, [])
    touch = _fail_open(RedisCache.touch, False)
    incr = _fail_open(RedisCache.incr, lambda key, delta=1, version=None: delta)
    delete = _fail_open(RedisCache.delete, False)
    delete_many = _fail_open(RedisCache.delete_many, None)
