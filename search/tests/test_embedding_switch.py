"""Switching the embeddings provider or model, the background backfill, and what search says while
some sessions have no vectors yet."""

import logging
import uuid
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.utils import timezone

from search import tasks
from search.embeddings import EmbeddingSwitchPending, get_provider, semantic_session_ids, services, vector_coverage
from search.models import EmbeddingLease, EmbeddingSpace, MessageChunkEmbedding, SessionEmbedding
from search.selectors import SEMANTIC, SWITCH_PENDING_NOTICE, search_sessions
from sessions_app.tests.factories import MessageFactory, SessionFactory

from .test_embeddings import COLUMN_DIMENSIONS, _fresh_caches, embedding_server, provider  # noqa: F401 - fixtures

pytestmark = pytest.mark.django_db

SIGNATURE = f"openai:text-embedding-3-small:{COLUMN_DIMENSIONS}"


def session_with(workspace=None, *texts, title="A session"):
    session = SessionFactory(title=title, **({"workspace": workspace} if workspace else {}))
    for text in texts:
        MessageFactory(session=session, text_content=text)
    return session


def test_the_first_worker_adopts_the_vectors_it_finds(
    provider,  # noqa: F811
):
    session = session_with(None, "postgres refused the connection")
    services.session_embed(session_id=session.pk, provider=get_provider())  # as before signatures were kept
    sent = len(provider.requests)
    assert not EmbeddingSpace.objects.exists()

    tasks.embed_session.apply(args=(session.pk,))
    assert services.stored_signature() == SIGNATURE
    assert len(provider.requests) == sent  # nothing dropped, nothing sent again
    assert SessionEmbedding.objects.filter(session=session).exists()


def test_a_changed_model_drops_the_old_vectors_and_the_backfill_embeds_every_session(
    provider,  # noqa: F811
    settings,
):
    first = session_with(None, "postgres refused the connection")
    second = session_with(first.workspace, "the container was OOMKilled")
    for session in (first, second):
        tasks.embed_session.apply(args=(session.pk,))
    assert services.stored_signature() == SIGNATURE

    settings.OPENSYNC_EMBEDDINGS_MODEL = "text-embedding-3-large"
    settings.OPENSYNC_EMBEDDINGS_SEND_DIMENSIONS = "always"
    # The web process has the new model but no worker has switched yet: search won't compare a
    # query of one model with vectors of another.
    with pytest.raises(EmbeddingSwitchPending):
        semantic_session_ids(first.workspace_id, "postgres", 5)
    result = search_sessions(first.workspace, "postgres", mode=SEMANTIC)
    assert result.mode == "fulltext" and result.notice == SWITCH_PENDING_NOTICE

    before = len(provider.requests)
    tasks.embed_session.apply(args=(first.pk,))  # a sync's task on the new settings leaves switching to the backfill
    assert services.stored_signature() == SIGNATURE and len(provider.requests) == before
    tasks.embeddings_backfill.apply()  # as a worker starts, and on beat's schedule: it switches and re-embeds
    assert services.stored_signature() == f"openai:text-embedding-3-large:{COLUMN_DIMENSIONS}"
    assert all(body["model"] == "text-embedding-3-large" for body in provider.requests[before:])
    hashes = set(MessageChunkEmbedding.objects.values_list("text_hash", flat=True))
    assert len(hashes) == 2 and all(
        row.text_hash
        == services.text_hash(
            "postgres refused the connection" if row.session_id == first.pk else "the container was OOMKilled",
            model="text-embedding-3-large",
            dimensions=COLUMN_DIMENSIONS,
        )
        for row in MessageChunkEmbedding.objects.all()
    )
    assert SessionEmbedding.objects.count() == 2
    assert vector_coverage(first.workspace_id) == (2, 2)
    result = search_sessions(first.workspace, "postgres", mode=SEMANTIC)
    assert result.mode == SEMANTIC and result.notice is None and result.hits[0].session == first


def test_changed_dimensions_resize_the_columns(
    provider,  # noqa: F811
    settings,
):
    session = session_with(None, "postgres refused the connection")
    tasks.embed_session.apply(args=(session.pk,))
    settings.OPENSYNC_EMBEDDINGS_DIMENSIONS = 8
    tasks.embeddings_backfill.apply()
    assert services.vector_column_dimensions() == 8
    assert services.stored_signature() == "openai:text-embedding-3-small:8"
    assert [len(v) for v in MessageChunkEmbedding.objects.values_list("embedding", flat=True)] == [8]
    # a web process that read the columns' size before the worker resized them looks again
    services._column_dimensions = COLUMN_DIMENSIONS
    assert semantic_session_ids(session.workspace_id, "postgres", 5)[0][0] == session.pk


def test_the_backfill_embeds_sessions_synced_while_embeddings_were_off(
    provider,  # noqa: F811
    settings,
    caplog,
):
    settings.OPENSYNC_EMBEDDINGS_PROVIDER = "none"
    workspace = session_with(None, "postgres refused the connection", title="Postgres").workspace
    session_with(workspace, "the container was OOMKilled", title="Kubernetes")
    empty = SessionFactory(workspace=workspace, title="")  # nothing to embed
    settings.OPENSYNC_EMBEDDINGS_PROVIDER = "openai"
    assert vector_coverage(workspace.pk) == (0, 3)
    result = search_sessions(workspace, "postgres", mode=SEMANTIC)
    assert result.notice == (
        "Semantic search is still indexing: 0 of 3 sessions have vectors so far, so it may miss the others "
        "(full-text search covers them all)."
    )

    with caplog.at_level(logging.INFO, logger="search.tasks"):
        tasks.embeddings_backfill.apply()
    assert "3 sessions embedded in this run, 0 without vectors left" in caplog.text
    assert vector_coverage(workspace.pk) == (3, 3)
    assert SessionEmbedding.objects.get(session=empty).embedding is None  # seen, with nothing to embed
    result = search_sessions(workspace, "postgres", mode=SEMANTIC)
    assert result.notice is None and result.hits[0].session.title == "Postgres"
    assert all(hit.session != empty for hit in result.hits)

    sent = len(provider.requests)
    tasks.embeddings_backfill.apply()  # nothing left: nothing sent
    assert len(provider.requests) == sent


def test_the_backfill_leaves_a_busy_session_and_a_failing_one_for_the_next_run(
    provider,  # noqa: F811
    caplog,
):
    busy = session_with(None, "postgres refused the connection")
    failing = session_with(busy.workspace, "the container was OOMKilled")
    EmbeddingLease.objects.create(
        session_id=busy.pk, token=uuid.uuid4(), expires_at=timezone.now() + timedelta(minutes=5)
    )
    provider.fail_next = [503]  # the failing session's first request (the busy one sends none)
    with caplog.at_level(logging.INFO, logger="search.tasks"):
        tasks.embeddings_backfill.apply()
    assert "left for the next run" in caplog.text
    assert vector_coverage(busy.workspace_id) == (0, 2) and len(provider.failed) == 1
    EmbeddingLease.objects.all().delete()
    tasks.embeddings_backfill.apply()
    assert vector_coverage(busy.workspace_id) == (2, 2)
    assert MessageChunkEmbedding.objects.filter(session=failing).exists()


def test_only_one_backfill_runs_at_a_time(
    provider,  # noqa: F811
):
    session = session_with(None, "postgres refused the connection")
    cache.add(tasks.BACKFILL_KEY, 1)
    try:
        tasks.embeddings_backfill.apply()
        assert provider.requests == []
    finally:
        cache.delete(tasks.BACKFILL_KEY)
    tasks.embeddings_backfill.apply()
    assert SessionEmbedding.objects.filter(session=session).exists()


def test_the_backfill_skips_a_session_the_provider_refuses_and_embeds_the_others(
    provider,  # noqa: F811
    caplog,
):
    older = session_with(None, "postgres refused the connection")
    newer = session_with(older.workspace, "the container was OOMKilled")  # taken first: newest first
    provider.fail_next = [400]  # the newer session's text is refused (a configuration error, not retried)
    with caplog.at_level(logging.INFO, logger="search.tasks"):
        tasks.embeddings_backfill.apply()
    assert f"session {newer.pk} skipped" in caplog.text
    assert SessionEmbedding.objects.filter(session=older).exists()
    assert not SessionEmbedding.objects.filter(session=newer).exists()
    tasks.embeddings_backfill.apply()  # the next run tries it again
    assert vector_coverage(older.workspace_id) == (2, 2)


def test_the_backfill_stops_when_every_session_is_refused(
    provider,  # noqa: F811
    caplog,
):
    workspace = session_with(None, "one").workspace
    for text in ("two", "three", "four"):
        session_with(workspace, text)
    provider.fail_next = [401] * 10  # a bad key: every request refused
    with caplog.at_level(logging.INFO, logger="search.tasks"):
        tasks.embeddings_backfill.apply()
    assert "Embeddings backfill stopped" in caplog.text
    assert len(provider.failed) == tasks.BACKFILL_CONFIG_ERRORS  # it gave up, not tried every session


def test_a_writer_still_on_the_old_model_writes_nothing_after_a_switch(
    provider,  # noqa: F811
    settings,
):
    session = session_with(None, "postgres refused the connection")
    old = get_provider()
    EmbeddingSpace.objects.create(
        pk=1, signature=f"openai:text-embedding-3-large:{COLUMN_DIMENSIONS}"
    )  # switched meanwhile
    with pytest.raises(EmbeddingSwitchPending):
        services.session_embed(session_id=session.pk, provider=old)
    assert not MessageChunkEmbedding.objects.exists() and not SessionEmbedding.objects.exists()
    tasks.embed_session.apply(args=(session.pk,))  # a task on the old settings doesn't switch them back
    assert not SessionEmbedding.objects.exists()
    assert services.stored_signature() == f"openai:text-embedding-3-large:{COLUMN_DIMENSIONS}"


def test_before_any_worker_switched_columns_of_another_size_fall_back_with_the_switch_notice(
    provider,  # noqa: F811
    settings,
):
    session = session_with(None, "postgres refused the connection")
    settings.OPENSYNC_EMBEDDINGS_DIMENSIONS = 8  # an upgrade: no signature stored, columns of the old size
    result = search_sessions(session.workspace, "postgres", mode=SEMANTIC)
    assert result.mode == "fulltext" and result.notice == SWITCH_PENDING_NOTICE


def test_coverage_counts_one_workspace_and_is_forgotten_when_a_vector_is_written(
    provider,  # noqa: F811
):
    first = session_with(None, "postgres refused the connection")
    other = session_with(None, "the container was OOMKilled")  # another user's workspace
    tasks.embed_session.apply(args=(other.pk,))
    assert vector_coverage(first.workspace_id) == (0, 1)  # counted, and kept in the cache
    assert vector_coverage(other.workspace_id) == (1, 1)
    tasks.embed_session.apply(args=(first.pk,))
    assert vector_coverage(first.workspace_id) == (1, 1)  # not the cached (0, 1)


def test_no_backfill_when_it_is_turned_off(
    provider,  # noqa: F811
    settings,
):
    session = session_with(None, "postgres refused the connection")
    settings.OPENSYNC_EMBEDDINGS_BACKFILL_MINUTES = 0  # README: never, not even as a worker starts
    tasks.embeddings_backfill.apply()
    assert provider.requests == [] and not SessionEmbedding.objects.filter(session=session).exists()
