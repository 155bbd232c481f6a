"""Prometheus metrics: our own (ingest, queue depth, job outcomes) and the `/metrics` endpoint.

django-prometheus (its two middlewares, settings) records request latencies and responses by
view, method and status; this module adds what only OpenSync knows:

- `opensync_ingest_sessions_total` / `opensync_ingest_messages_total` {source}: rows the sync API
  wrote (`record_ingest`, called by sessions_app.services.sync);
- `opensync_job_outcomes_total` {kind, outcome}: background jobs done or failed (opensync.jobs);
- `opensync_queue_depth` {queue}: tasks waiting in the Celery queue, read from Redis (LLEN) when
  Prometheus scrapes, never stored.

`/metrics` answers only a request carrying `Authorization: Bearer $OPENSYNC_METRICS_TOKEN`;
without the setting it is a 404, as if it did not exist (metrics name views and sources, and an
open endpoint would also be a free way to make the server work).

Several processes (gunicorn's workers, Celery's) each count on their own: with
PROMETHEUS_MULTIPROC_DIR set (in their environment before prometheus_client is imported)
they write to files there and `/metrics` sums them. `make run` points every process at
<data folder>/prometheus; gunicorn started otherwise gets a temporary folder of its own
(opensync.gunicorn_worker). See README "Operations".
"""

import hmac
import logging
import os
from collections.abc import Mapping

import redis
from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter, generate_latest
from prometheus_client.core import GaugeMetricFamily

from opensync.settings.env import redis_py_url

logger = logging.getLogger(__name__)
# prometheus_client picked its mode when it was imported (just above): values in files when the
# folder was set in the environment then, in memory otherwise. /metrics reads from the same place.
MULTIPROCESS = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))

INGEST_SESSIONS = Counter(
    "opensync_ingest_sessions", "Sessions written by the sync API (created or updated), by source.", ["source"]
)
INGEST_MESSAGES = Counter(
    "opensync_ingest_messages", "Messages written by the sync API (created or updated), by source.", ["source"]
)
JOB_OUTCOMES = Counter("opensync_job_outcomes", "Background jobs finished, by kind and outcome.", ["kind", "outcome"])

REDIS_TIMEOUT = 0.5  # seconds: a scrape (or a readiness probe) waits no longer on a dead Redis


def record_ingest(sessions: Mapping[str, int], messages: Mapping[str, int]) -> None:
    """Count rows written, given {source label: count} for sessions and for messages. The caller
    bounds the labels (sessions_app.services: a known source or "other"), so a client cannot grow
    the number of time series (each costs memory in every process and in Prometheus)."""
    for source, count in sessions.items():
        INGEST_SESSIONS.labels(source=source).inc(count)
    for source, count in messages.items():
        INGEST_MESSAGES.labels(source=source).inc(count)


def record_job_outcome(kind: str | None, outcome: str) -> None:
    """`kind`: the job model's name (deletionjob, exportjob, repricingjob); `outcome`: done or failed."""
    JOB_OUTCOMES.labels(kind=kind or "job", outcome=outcome).inc()


def redis_url(url: str) -> str | None:
    """The broker URL as redis-py reads it, or None when the broker is not Redis."""
    url = redis_py_url(url)
    return url if url.startswith(("redis://", "rediss://", "unix://")) else None


def broker_client() -> redis.Redis | None:
    url = redis_url(settings.CELERY_BROKER_URL)
    if url is None:
        return None
    return redis.Redis.from_url(url, socket_connect_timeout=REDIS_TIMEOUT, socket_timeout=REDIS_TIMEOUT)


def celery_queues() -> list[str]:
    # The only queue today is Celery's default; tasks routed elsewhere would add theirs here.
    return [getattr(settings, "CELERY_TASK_DEFAULT_QUEUE", "celery")]


class QueueDepthCollector:
    """`opensync_queue_depth`, read at scrape time: one LLEN per queue, nothing kept."""

    def collect(self):
        family = GaugeMetricFamily("opensync_queue_depth", "Tasks waiting in the Celery queue.", labels=["queue"])
        client = broker_client()
        if client is not None:
            try:
                with client:
                    for queue in celery_queues():
                        family.add_metric([queue], client.llen(queue))
            except redis.RedisError as exc:
                # the other metrics still matter when Redis is down; the gap in this one says so
                logger.warning("queue depth unavailable: %s", exc)
        yield family


def _registry():
    if MULTIPROCESS:
        from prometheus_client import multiprocess  # only in multiprocess mode (it reads the folder)

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return registry
    return REGISTRY


def metrics_view(request: HttpRequest) -> HttpResponse:
    token = settings.OPENSYNC_METRICS_TOKEN
    if not token:
        raise Http404
    given = request.headers.get("Authorization", "")
    if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
        response = HttpResponse("Unauthorized\n", status=401, content_type="text/plain")
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    output = generate_latest(_registry())
    queues = CollectorRegistry()
    queues.register(QueueDepthCollector())
    return HttpResponse(output + generate_latest(queues), content_type=CONTENT_TYPE_LATEST)
