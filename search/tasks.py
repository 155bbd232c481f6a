"""Celery tasks of the search app: embeddings after each sync, and the backfill of sessions
without vectors (after a provider switch, an upgrade, or a run that failed)."""

import logging
import time

from celery import shared_task
from celery.signals import worker_ready
from django.conf import settings
from django.core.cache import cache
from django.db import transaction

from .embeddings import (
    EmbeddingConfigError,
    EmbeddingError,
    EmbeddingSwitchPending,
    EmbeddingTransientError,
    get_provider,
)
from .embeddings import services as embedding_services

logger = logging.getLogger(__name__)

DEBOUNCE_KEY = "search:embed-pending:{}"


def schedule_embeddings(session_ids) -> None:
    """Queue `embed_session` for each session once the current transaction commits (at once when
    there is none). Does nothing when embeddings are turned off.

    Debounced per session: while a run is queued but not yet started, further syncs of that
    session queue nothing more. The key lives exactly as long as the run's countdown and is never
    deleted, so any sync that found it committed before that run starts and is seen by it; any
    later sync finds it expired and queues the next run. The cache is the shared Redis (settings
    CACHES); with a per-process cache (a broker that isn't Redis) each web process debounces on its
    own, which only costs a few more (cheap, hash-skipping) runs.
    """
    if settings.OPENSYNC_EMBEDDINGS_PROVIDER == "none":
        return
    session_ids = sorted(set(session_ids))
    if session_ids:
        transaction.on_commit(lambda: _enqueue(session_ids))


def _enqueue(session_ids: list[int]) -> None:
    delay = settings.OPENSYNC_EMBEDDINGS_DEBOUNCE_SECONDS
    if embed_session.app.conf.task_always_eager:
        delay = 0  # eager runs ignore countdowns: a key would hide the next sync from the next run
    for session_id in session_ids:
        try:
            if not delay:
                embed_session.delay(session_id)
            elif cache.add(DEBOUNCE_KEY.format(session_id), 1, timeout=delay):
                embed_session.apply_async((session_id,), countdown=delay + 1)
        except Exception:
            # The sync is committed whatever happens here; `manage.py embeddings` catches up.
            logger.exception("Could not queue (or, run eagerly, compute) the embeddings of session %s", session_id)


@shared_task(
    bind=True,
    ignore_result=True,
    autoretry_for=(EmbeddingTransientError,),
    retry_backoff=5,  # 5, 10, 20 ... seconds,
    retry_backoff_max=600,  # at most 10 minutes,
    retry_jitter=True,  # each a random time up to that (full jitter)
    max_retries=8,
    soft_time_limit=20 * 60,
    time_limit=25 * 60,
)
def embed_session(self, session_id: int) -> None:
    """Bring one session's embeddings up to date; quietly does nothing if it is gone.

    Provider trouble that may pass (network, 429, 5xx) is retried with exponential backoff; a
    configuration problem is logged and not retried (the next sync tries again).
    """
    provider = get_provider()
    if provider is None:
        return
    stored, signature = embedding_services.stored_signature(), embedding_services.provider_signature(provider)
    if stored and stored != signature:
        # Switching is the backfill's (one run at a time, as a worker starts and on beat's
        # schedule), not every task's: a worker left on the old settings mid-deploy must not undo it.
        logger.warning(
            "Session %s not embedded: the stored vectors are %s's, this worker has %s", session_id, stored, signature
        )
        return
    if not stored:  # the first time: adopt the vectors, or resize the columns
        try:
            if embedding_services.embedding_space_switch(provider):
                embeddings_backfill.delay()
        except EmbeddingConfigError as exc:
            logger.error("Embeddings of session %s not computed: %s", session_id, exc)
            return
    with embedding_services.session_lock(session_id, wait=False) as lease:
        if lease is None:
            # Another run is on this session and may have read it before the latest sync: go again
            # after it. (Not when eager: that would spin right here until the other run ends.)
            if not embed_session.app.conf.task_always_eager:
                countdown = max(settings.OPENSYNC_EMBEDDINGS_DEBOUNCE_SECONDS, 5)
                embed_session.apply_async((session_id,), countdown=countdown)
            return
        try:
            stats = embedding_services.session_embed(session_id=session_id, provider=provider, lease=lease)
        except EmbeddingSwitchPending as exc:  # another worker switched the vectors: its backfill takes this one
            logger.warning("Embeddings of session %s not written: %s", session_id, exc)
            return
        except EmbeddingConfigError as exc:
            logger.error("Embeddings of session %s not computed: %s", session_id, exc)
            return
    if stats is None:
        logger.info("Session %s is gone; nothing to embed", session_id)
    elif stats.requests:
        logger.info(
            "Session %s: %s chunks embedded, %s unchanged, %s deleted%s",
            session_id,
            stats.chunks_embedded,
            stats.chunks_unchanged,
            stats.chunks_deleted,
            ", session vector updated" if stats.session_embedded else "",
        )


BACKFILL_KEY = "search:embeddings-backfill"
BACKFILL_SECONDS = 4 * 60  # per run: under the beat interval, so runs don't pile up
BACKFILL_PAGE = 50
# A configuration error on this many sessions in a row is the configuration's (a bad key, a model
# that won't load), not theirs: the run stops. Fewer are skipped, like a failing request.
BACKFILL_CONFIG_ERRORS = 3


@shared_task(ignore_result=True, soft_time_limit=BACKFILL_SECONDS + 60, time_limit=BACKFILL_SECONDS + 120)
def embeddings_backfill() -> None:
    """Embed the sessions that have no vectors, most recently updated first, for up to
    BACKFILL_SECONDS; beat runs it every OPENSYNC_EMBEDDINGS_BACKFILL_MINUTES and the next run
    continues. First it switches the stored vectors to the configured model if that changed
    (dropping the old ones). One run at a time (a key in the shared cache); a session being embedded
    by a sync's run is skipped, and a session whose provider request fails is left to the next run.
    Progress is logged, and search says how many sessions have vectors while some don't."""
    provider = get_provider()
    if provider is None or not settings.OPENSYNC_EMBEDDINGS_BACKFILL_MINUTES:  # off: `manage.py embeddings` does it
        return
    if not cache.add(BACKFILL_KEY, 1, timeout=BACKFILL_SECONDS + 120):
        return
    try:
        embedding_services.embedding_space_switch(provider)
        _backfill(provider, deadline=time.monotonic() + BACKFILL_SECONDS)
    except EmbeddingError as exc:
        logger.error("Embeddings backfill stopped: %s", exc)
    finally:
        cache.delete(BACKFILL_KEY)


@worker_ready.connect
def _backfill_when_a_worker_starts(sender, **kwargs) -> None:
    """A worker that starts runs the backfill at once (beat's first run of an interval comes one
    interval later): after an upgrade or a switch, vectors come back without waiting."""
    if settings.OPENSYNC_EMBEDDINGS_PROVIDER != "none":
        embeddings_backfill.delay()


def _backfill(provider, *, deadline: float) -> None:
    skipped: set[int] = set()
    done = config_errors = 0
    while time.monotonic() < deadline:
        session_ids = embedding_services.sessions_without_vectors(limit=BACKFILL_PAGE, exclude=skipped)
        if not session_ids:
            break
        for session_id in session_ids:
            if time.monotonic() >= deadline:
                break
            with embedding_services.session_lock(session_id, wait=False) as lease:
                if lease is None:  # a sync's run has it
                    skipped.add(session_id)
                    continue
                try:
                    embedding_services.session_embed(session_id=session_id, provider=provider, lease=lease)
                except EmbeddingTransientError as exc:
                    logger.warning("Embeddings backfill: session %s left for the next run: %s", session_id, exc)
                    skipped.add(session_id)
                    continue
                except EmbeddingConfigError as exc:  # e.g. a 400 for this session's text
                    config_errors += 1
                    if config_errors >= BACKFILL_CONFIG_ERRORS:
                        raise
                    logger.warning("Embeddings backfill: session %s skipped: %s", session_id, exc)
                    skipped.add(session_id)
                    continue
            done += 1
            config_errors = 0
    if done or skipped:  # one count per run (it reads every session), not per page
        left = embedding_services.sessions_without_vectors_count()
        logger.info("Embeddings backfill: %s sessions embedded in this run, %s without vectors left", done, left)
