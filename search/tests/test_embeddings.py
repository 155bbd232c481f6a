"""Embeddings: providers, chunking, the embed task after sync, retries, and semantic queries.

The real `openai` client talks to a local fake of the embeddings endpoint (fake_embeddings_server).
"""

import json
import logging
import uuid
from datetime import timedelta

import psycopg
import pytest
from celery.app import autoretry
from django.db import connection
from django.utils import timezone

from accounts.services import api_key_create
from accounts.tests.factories import UserFactory
from search import tasks
from search.embeddings import (
    EmbeddingConfigError,
    get_provider,
    queries,
    semantic_message_hits,
    semantic_search_available,
    semantic_session_ids,
    services,
)
from search.embeddings.text import SessionText, chunk_text, message_text, text_hash
from search.models import EmbeddingLease, MessageChunkEmbedding, SessionEmbedding
from search.tasks import embed_session
from sessions_app.models import Message, Session
from sessions_app.tests.factories import MessageFactory, PartFactory, SessionFactory

from .fake_embeddings_server import FakeEmbeddingsServer, fake_vector

pytestmark = pytest.mark.django_db

COLUMN_DIMENSIONS = MessageChunkEmbedding._meta.get_field("embedding").dimensions


@pytest.fixture
def embedding_server():
    server = FakeEmbeddingsServer().start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _fresh_caches(monkeypatch):
    # per-process caches that would leak between tests
    monkeypatch.setattr(services, "_column_dimensions", None)
    queries._query_vector.cache_clear()
    yield
    queries._query_vector.cache_clear()


@pytest.fixture
def provider(settings, embedding_server):
    """The openai provider pointed at the fake server; returns the server."""
    settings.OPENSYNC_EMBEDDINGS_PROVIDER = "openai"
    settings.OPENSYNC_EMBEDDINGS_MODEL = "text-embedding-3-small"
    settings.OPENSYNC_EMBEDDINGS_DIMENSIONS = COLUMN_DIMENSIONS
    settings.OPENSYNC_EMBEDDINGS_BASE_URL = embedding_server.url
    settings.OPENSYNC_EMBEDDINGS_API_KEY = "test-key"
    settings.OPENSYNC_EMBEDDINGS_SEND_DIMENSIONS = "auto"
    settings.OPENSYNC_EMBEDDINGS_BATCH_SIZE = 64
    return embedding_server


def post(client, path, body):
    return client.post(path, data=json.dumps(body), content_type="application/json")


def sync_batch(client, capture, body):
    """POST /sync/batch and run what was queued for after the commit (the pytest-django test
    transaction never commits, so on_commit callbacks are captured and run here)."""
    with capture(execute=True):
        response = post(client, "/sync/batch", body)
    assert response.status_code == 200, response.content
    assert response.json()["errors"] == []
    return response


BATCH = {
    "sessions": [{"externalId": "s1", "title": "Fix the postgres connection"}],
    "messages": [
        {
            "sessionExternalId": "s1",
            "externalId": "m1",
            "role": "user",
            "textContent": "The app fails with ECONNREFUSED when it connects to postgres",
        },
        {
            "sessionExternalId": "s1",
            "externalId": "m2",
            "role": "assistant",
            "parts": [
                {"type": "text", "content": "Let me check whether the database server is running."},
                {"type": "tool-call", "content": {"toolName": "bash", "args": {"command": "pg_isready"}}},
                {"type": "tool-result", "content": {"output": "no response"}},
            ],
        },
    ],
}


# --- no provider ----------------------------------------------------------------------------------


def test_no_provider_sync_computes_nothing_and_queries_are_empty(sync_client, django_capture_on_commit_callbacks):
    assert get_provider() is None
    assert not semantic_search_available()
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = post(sync_client, "/sync/batch", BATCH)
    assert response.status_code == 200
    assert not any(getattr(cb, "__module__", "") == tasks.__name__ for cb in callbacks)
    assert not MessageChunkEmbedding.objects.exists() and not SessionEmbedding.objects.exists()
    session = Session.objects.get(external_id="s1")
    embed_session.delay(session.pk)  # a task queued before the provider was switched off
    assert not MessageChunkEmbedding.objects.exists()
    assert semantic_session_ids(session.workspace_id, "postgres", 10) == []
    assert semantic_message_hits(session.workspace_id, "postgres", 10) == []


# --- after sync -----------------------------------------------------------------------------------


def test_sync_embeds_messages_and_session_after_commit(provider, sync_client, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        post(sync_client, "/sync/batch", BATCH)
    assert provider.requests == [] and not MessageChunkEmbedding.objects.exists()  # nothing before the commit
    for callback in callbacks:
        callback()

    session = Session.objects.get(external_id="s1")
    chunks = MessageChunkEmbedding.objects.filter(session=session).order_by("message__external_id")
    assert [(c.message.external_id, c.chunk_index) for c in chunks] == [("m1", 0), ("m2", 0)]
    assert all(c.workspace_id == session.workspace_id for c in chunks)
    assert len(chunks[0].embedding) == COLUMN_DIMENSIONS
    assert list(chunks[0].embedding) == pytest.approx(
        fake_vector("The app fails with ECONNREFUSED when it connects to postgres", COLUMN_DIMENSIONS), abs=1e-6
    )
    # text parts stand in for the missing text content; tool calls come with their arguments;
    # tool results are left out
    assert provider.texts[:2] == [
        "The app fails with ECONNREFUSED when it connects to postgres",
        'Let me check whether the database server is running.\nTool: bash {"command":"pg_isready"}',
    ]
    session_vector = SessionEmbedding.objects.get(session=session)
    assert provider.texts[2] == (
        "Fix the postgres connection\n\nThe app fails with ECONNREFUSED when it connects to postgres\n\n"
        'Let me check whether the database server is running.\nTool: bash {"command":"pg_isready"}'
    )
    assert session_vector.text_hash == text_hash(
        provider.texts[2], model="text-embedding-3-small", dimensions=COLUMN_DIMENSIONS
    )
    assert all(body["model"] == "text-embedding-3-small" for body in provider.requests)
    assert all(body["dimensions"] == COLUMN_DIMENSIONS for body in provider.requests)  # text-embedding-3: sent
    assert len(provider.requests) == 2  # the chunks in one batch, then the session text


def test_unchanged_text_is_never_sent_again(provider, sync_client, django_capture_on_commit_callbacks):
    sync_batch(sync_client, django_capture_on_commit_callbacks, BATCH)
    before = len(provider.requests)
    sync_batch(sync_client, django_capture_on_commit_callbacks, BATCH)  # plugins re-send whole sessions
    with django_capture_on_commit_callbacks(execute=True):
        post(sync_client, "/sync/session", {"externalId": "s1", "cost": 0.5})  # a stats-only update
    assert len(provider.requests) == before

    # A new message: only its text goes out, and the session text (which it extends)
    new = {"sessionExternalId": "s1", "externalId": "m3", "role": "assistant", "textContent": "Start postgres first."}
    with django_capture_on_commit_callbacks(execute=True):
        post(sync_client, "/sync/message", new)
    assert provider.texts[-2] == "Start postgres first."
    assert provider.texts[-1].endswith("Start postgres first.")
    assert len(provider.requests) == before + 2
    assert MessageChunkEmbedding.objects.count() == 3


def test_changed_text_is_recomputed(provider, sync_client, django_capture_on_commit_callbacks):
    sync_batch(sync_client, django_capture_on_commit_callbacks, BATCH)
    old = MessageChunkEmbedding.objects.get(message__external_id="m1")
    changed = {**BATCH["messages"][0], "textContent": "The deploy to kubernetes times out"}
    with django_capture_on_commit_callbacks(execute=True):
        post(sync_client, "/sync/message", changed)
    new = MessageChunkEmbedding.objects.get(message__external_id="m1")
    assert new.pk == old.pk and new.text_hash != old.text_hash
    assert list(new.embedding) == pytest.approx(
        fake_vector("The deploy to kubernetes times out", COLUMN_DIMENSIONS), abs=1e-6
    )
    assert "The deploy to kubernetes times out" in provider.texts
    assert provider.texts.count("The app fails with ECONNREFUSED when it connects to postgres") == 1


def test_a_changed_model_recomputes_everything(provider, settings, sync_client, django_capture_on_commit_callbacks):
    sync_batch(sync_client, django_capture_on_commit_callbacks, BATCH)
    settings.OPENSYNC_EMBEDDINGS_MODEL = "text-embedding-3-large"
    embed_session.delay(Session.objects.get(external_id="s1").pk)  # waits for the switch: sends nothing
    tasks.embeddings_backfill.delay()  # switches (drops the old vectors) and embeds the session again
    models = [body["model"] for body in provider.requests]
    assert models == [
        "text-embedding-3-small",
        "text-embedding-3-small",
        "text-embedding-3-large",
        "text-embedding-3-large",
    ]


def test_sync_still_answers_when_the_provider_fails(provider, sync_client, django_capture_on_commit_callbacks, caplog):
    provider.fail_next = [500] * 20
    with caplog.at_level(logging.ERROR, logger="search.tasks"):
        sync_batch(sync_client, django_capture_on_commit_callbacks, BATCH)
    assert Message.objects.count() == 2  # the sync is stored
    # Eager tasks that propagate (the test settings) raise Retry instead of running again.
    assert provider.failed == [500]
    assert "Could not queue (or, run eagerly, compute) the embeddings" in caplog.text
    assert not MessageChunkEmbedding.objects.exists()


# --- the task -------------------------------------------------------------------------------------


def test_task_embeds_text_parts_that_the_text_content_lacks(provider):
    """The worker reads every message's text parts, not only those of messages without text
    content, so code a client sent only as a part is embedded (sessions_app.message_text)."""
    session = SessionFactory()
    message = MessageFactory(session=session, text_content="Here is the fix")
    PartFactory(message=message, order=0, type="text", content={"text": "Here is the fix"})
    PartFactory(message=message, order=1, type="text", content={"text": "def retry(n): return backoff(n)"})
    embed_session.apply(args=(session.pk,))
    assert "Here is the fix\ndef retry(n): return backoff(n)" in provider.texts


def test_task_for_a_deleted_session_exits_quietly(provider):
    session = SessionFactory()
    MessageFactory(session=session, text_content="hello there")
    session_id = session.pk
    session.delete()
    result = embed_session.apply(args=(session_id,))
    assert result.successful() and result.result is None
    assert provider.requests == [] and not MessageChunkEmbedding.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_session_deleted_while_it_is_embedded_exits_quietly(provider, monkeypatch, caplog):
    session = SessionFactory()
    MessageFactory(session=session, text_content="hello there")
    real_embed = type(get_provider()).embed

    def embed_then_delete(self, texts):
        vectors = real_embed(self, texts)
        Session.objects.filter(pk=session.pk).delete()  # e.g. the dashboard, between two batches
        return vectors

    monkeypatch.setattr(type(get_provider()), "embed", embed_then_delete)
    with caplog.at_level(logging.INFO, logger="search.tasks"):
        result = embed_session.apply(args=(session.pk,))
    assert result.successful()
    assert f"Session {session.pk} is gone" in caplog.text
    assert not MessageChunkEmbedding.objects.exists()


@pytest.fixture
def worker_retries(monkeypatch):
    """Eager runs that retry like a worker does (at once instead of after the countdown), and
    the backoff countdowns Celery computed for them."""
    monkeypatch.setitem(embed_session.app.conf, "task_eager_propagates", False)
    backoffs = []
    real_backoff = autoretry.get_exponential_backoff_interval

    def record(**kwargs):
        backoffs.append(kwargs)
        return real_backoff(**kwargs)

    monkeypatch.setattr(autoretry, "get_exponential_backoff_interval", record)
    return backoffs


def test_retries_with_exponential_backoff_then_succeeds(provider, worker_retries):
    session = SessionFactory(title="Retry me")
    MessageFactory(session=session, text_content="flaky provider")
    provider.fail_next = [429, 500, 503]
    result = embed_session.apply(args=(session.pk,))
    assert result.successful()
    assert provider.failed == [429, 500, 503]
    assert [b["retries"] for b in worker_retries] == [0, 1, 2]
    assert all(b["factor"] == 5 and b["maximum"] == 600 and b["full_jitter"] for b in worker_retries)
    assert MessageChunkEmbedding.objects.filter(session=session).count() == 1
    assert SessionEmbedding.objects.filter(session=session).exists()


def test_gives_up_after_max_retries(provider, worker_retries):
    session = SessionFactory()
    MessageFactory(session=session, text_content="down for good")
    provider.fail_next = [500] * 20
    result = embed_session.apply(args=(session.pk,))
    assert result.failed()
    assert provider.failed == [500] * (embed_session.max_retries + 1)
    assert not MessageChunkEmbedding.objects.exists()


def test_configuration_errors_are_logged_not_retried(provider, settings, caplog):
    settings.OPENSYNC_EMBEDDINGS_API_KEY = "wrong-key"
    session = SessionFactory()
    MessageFactory(session=session, text_content="hello")
    with caplog.at_level(logging.ERROR, logger="search.tasks"):
        result = embed_session.apply(args=(session.pk,))
    assert result.successful()
    assert "HTTP 401" in caplog.text
    assert provider.requests == [] and not MessageChunkEmbedding.objects.exists()


@pytest.fixture
def other_worker():
    """A second connection to the test database in autocommit, as another worker's would be. Its
    tests commit as they go (transaction=True): a lease row the test's own transaction took over
    would keep it waiting until the end of that transaction."""
    params = connection.get_connection_params()
    other = psycopg.connect(
        autocommit=True, **{key: params[key] for key in ("dbname", "user", "password", "host", "port") if key in params}
    )
    with other:
        yield other
        other.execute("DELETE FROM search_embeddinglease")


def hold_lease(other_worker, session_id: int, *, expires_in: str = "5 minutes") -> None:
    other_worker.execute(
        "INSERT INTO search_embeddinglease (session_id, token, expires_at) VALUES (%s, gen_random_uuid(), now() + %s)",
        [session_id, expires_in],
    )


@pytest.mark.django_db(transaction=True)  # another connection sees (and waits on) its rows
def test_a_busy_session_is_queued_again_instead_of_embedded_twice(provider, monkeypatch, other_worker):
    session = SessionFactory()
    MessageFactory(session=session, text_content="hello")
    queued = []
    monkeypatch.setitem(embed_session.app.conf, "task_always_eager", False)  # as in a worker
    monkeypatch.setattr(embed_session, "apply_async", lambda args, countdown: queued.append((args, countdown)))
    hold_lease(other_worker, session.pk)
    embed_session.run(session.pk)
    assert queued == [((session.pk,), 10)]
    assert provider.requests == []
    other_worker.execute("DELETE FROM search_embeddinglease WHERE session_id = %s", [session.pk])  # it finished
    embed_session.run(session.pk)
    assert len(provider.requests) == 2
    assert not EmbeddingLease.objects.exists()  # released


@pytest.mark.django_db(transaction=True)  # another connection sees (and waits on) its rows
def test_the_lease_of_a_worker_that_died_expires_and_is_taken_over(provider, other_worker):
    session = SessionFactory()
    MessageFactory(session=session, text_content="hello")
    hold_lease(other_worker, session.pk, expires_in="-1 second")  # its holder stopped renewing
    embed_session.run(session.pk)
    assert len(provider.requests) == 2
    assert not EmbeddingLease.objects.filter(session_id=session.pk).exists()


def test_the_lease_is_renewed_after_each_provider_request(provider):
    session = SessionFactory()
    for text in ("one", "two", "three"):
        MessageFactory(session=session, text_content=text)
    seen = []
    with services.session_lock(session.pk, wait=False) as lease:
        EmbeddingLease.objects.filter(session_id=session.pk).update(expires_at=timezone.now())
        original = lease.renew

        def renew():
            original()
            seen.append(EmbeddingLease.objects.get(session_id=session.pk).expires_at)

        lease.renew = renew
        services.session_embed(session_id=session.pk, provider=get_provider(), batch_size=1, lease=lease)
    assert len(seen) == 4  # three chunk requests and the session vector
    assert all(expiry > timezone.now() + services.LEASE_SECONDS - timedelta(minutes=1) for expiry in seen)


def test_a_lease_lost_to_another_worker_is_reported(caplog):
    with services.session_lock(7, wait=False) as lease:
        EmbeddingLease.objects.filter(session_id=7).update(token=uuid.uuid4())  # taken over meanwhile
        with caplog.at_level(logging.WARNING, logger="search.embeddings.services"):
            lease.renew()
    assert "lost to another worker" in caplog.text


@pytest.mark.django_db(transaction=True)  # another connection sees (and waits on) its rows
def test_a_waiting_holder_gets_the_lease_once_it_is_released(other_worker, monkeypatch):
    monkeypatch.setattr(services, "LEASE_POLL_SECONDS", 0.01)
    hold_lease(other_worker, 42)
    tries = []
    take = services._lease_take

    def take_and_release_on_the_third_try(session_id):
        tries.append(session_id)
        if len(tries) == 3:
            other_worker.execute("DELETE FROM search_embeddinglease WHERE session_id = 42")
        return take(session_id)

    monkeypatch.setattr(services, "_lease_take", take_and_release_on_the_third_try)
    with services.session_lock(42, wait=True) as lease:
        assert lease is not None and len(tries) == 3
    with services.session_lock(42, wait=False) as again:
        assert again is not None  # the first block released it


def test_schedule_is_debounced_per_session(provider, settings, monkeypatch, django_capture_on_commit_callbacks):
    from django.core.cache import cache

    cache.clear()
    monkeypatch.setitem(embed_session.app.conf, "task_always_eager", False)
    queued = []
    monkeypatch.setattr(embed_session, "apply_async", lambda args, countdown: queued.append((args, countdown)))
    with django_capture_on_commit_callbacks(execute=True):
        for _ in range(100):  # a hundred syncs of one session within the debounce window
            tasks.schedule_embeddings([1, 2])
    countdown = settings.OPENSYNC_EMBEDDINGS_DEBOUNCE_SECONDS + 1
    assert queued == [((1,), countdown), ((2,), countdown)]
    cache.clear()


# --- chunking and texts ---------------------------------------------------------------------------


def test_chunk_text_overlaps_and_cuts_at_boundaries():
    words = " ".join(f"word{i:03d}" for i in range(300))  # 2,399 characters
    chunks = chunk_text(words, size=500, overlap=100, max_chunks=50)
    assert all(len(chunk) <= 500 for chunk in chunks)
    assert all(not chunk.startswith(" ") and not chunk.endswith(" ") for chunk in chunks)
    assert all(chunk.split()[0].startswith("word") and len(chunk.split()[0]) == 7 for chunk in chunks)  # whole words
    for first, second in zip(chunks, chunks[1:], strict=False):
        assert first.split()[-1] in second.split()[:15]  # the overlap carries context over
    covered = set(" ".join(chunks).split())
    assert covered == set(words.split())
    assert chunk_text(words, size=500, overlap=100, max_chunks=2) == chunks[:2]
    assert chunk_text("short", size=500, overlap=100, max_chunks=5) == ["short"]
    assert chunk_text("   ", size=500, overlap=100, max_chunks=5) == []
    assert chunk_text("x" * 1200, size=500, overlap=0, max_chunks=9) == ["x" * 500, "x" * 500, "x" * 200]


def test_long_message_is_embedded_in_chunks(provider, settings):
    settings.OPENSYNC_EMBEDDINGS_CHUNK_CHARS = 200
    settings.OPENSYNC_EMBEDDINGS_CHUNK_OVERLAP = 40
    settings.OPENSYNC_EMBEDDINGS_BATCH_SIZE = 3
    session = SessionFactory()
    text = "\n\n".join(f"Paragraph {i}: " + "the migration locks the table " * 3 for i in range(10))
    message = MessageFactory(session=session, text_content=text)
    embed_session.apply(args=(session.pk,))
    expected = chunk_text(text, size=200, overlap=40, max_chunks=20)
    assert len(expected) > 3
    rows = list(MessageChunkEmbedding.objects.filter(message=message).order_by("chunk_index"))
    assert [row.chunk_index for row in rows] == list(range(len(expected)))
    assert provider.texts[: len(expected)] == expected
    assert all(len(body["input"]) <= 3 for body in provider.requests)  # batches of BATCH_SIZE

    # The message gets shorter: its extra chunks go, the unchanged first chunk is not re-sent.
    message.text_content = expected[0]
    message.save()
    sent = len(provider.texts)
    embed_session.apply(args=(session.pk,))
    assert MessageChunkEmbedding.objects.filter(message=message).count() == 1
    assert expected[0] not in provider.texts[sent:]


def test_message_text_prefers_text_content_and_adds_tool_calls():
    parts = [
        ("text", "The words"),
        ("tool_use", {"name": "read", "input": {"path": "src/app/models.py"}}),
        ("tool-call", {"toolName": "bash", "args": json.dumps({"command": "x" * 5000})}),
    ]
    text = message_text("The words", parts)
    lines = text.split("\n")
    assert lines[0] == "The words"
    assert lines[1] == 'Tool: read {"path":"src/app/models.py"}'
    assert lines[2].startswith('Tool: bash {"command":"xxx') and len(lines[2]) == len("Tool: bash ") + 1000
    assert message_text(None, [("text", {"text": "from a part"})]) == "from a part"
    assert message_text("", []) == ""


def test_message_text_keeps_text_parts_that_text_content_lacks():
    """sessions_app.message_text's rule: a text part whose words are not in textContent (code a
    client left out of it) is embedded too, once."""
    parts = [("text", "Here is the fix"), ("text", "def retry(n):\n    return backoff(n)")]
    assert message_text("Here is the fix", parts) == "Here is the fix\ndef retry(n):\n    return backoff(n)"


def test_session_text_puts_the_prompts_first_and_is_bounded():
    text = SessionText(title="Title", summary=None, limit=100)
    text.add("assistant", "an answer " * 5)
    text.add("user", "the question")
    text.add("tool", "")
    assert text.text().startswith("Title\n\nthe question\n\nan answer")
    text.add("user", "q" * 500)
    assert len(text.text()) <= 100


def test_session_with_text_parts_only_messages(provider):
    session = SessionFactory(title=None)
    message = MessageFactory(session=session, text_content=None)
    PartFactory(message=message, type="text", content={"text": "only in a part"}, order=0)
    embed_session.apply(args=(session.pk,))
    assert provider.texts == ["only in a part", "only in a part"]  # the chunk, then the session text


# --- providers ------------------------------------------------------------------------------------


def test_batches_keep_their_order(provider, settings):
    settings.OPENSYNC_EMBEDDINGS_BATCH_SIZE = 2
    texts = ["alpha", "beta gamma", "delta", "epsilon zeta", "eta"]
    vectors = get_provider().embed(texts)
    assert len(provider.requests) == 3
    assert [body["input"] for body in provider.requests] == [texts[0:2], texts[2:4], texts[4:]]
    assert vectors == [pytest.approx(fake_vector(text, COLUMN_DIMENSIONS), abs=1e-6) for text in texts]


def test_dimensions_are_only_sent_to_models_that_take_them(provider, settings):
    settings.OPENSYNC_EMBEDDINGS_MODEL = "nomic-embed-text"
    provider.native_dimensions = 768
    with pytest.raises(EmbeddingConfigError, match="vectors of 768 dimensions.*OPENSYNC_EMBEDDINGS_DIMENSIONS"):
        get_provider().embed(["hello"])
    assert "dimensions" not in provider.requests[-1]

    settings.OPENSYNC_EMBEDDINGS_SEND_DIMENSIONS = "always"
    assert len(get_provider().embed(["hello"])[0]) == COLUMN_DIMENSIONS
    assert provider.requests[-1]["dimensions"] == COLUMN_DIMENSIONS


def test_sentence_transformers_missing_gives_a_clear_error(settings):
    settings.OPENSYNC_EMBEDDINGS_PROVIDER = "sentence-transformers"
    settings.OPENSYNC_EMBEDDINGS_MODEL = "all-MiniLM-L6-v2"
    provider = get_provider()
    assert provider is not None and provider.name == "sentence-transformers"
    try:
        import sentence_transformers  # noqa: F401
    except ImportError:
        with pytest.raises(EmbeddingConfigError, match=r"pip install 'sentence-transformers>=3'"):
            provider.embed(["hello"])
    else:
        pytest.skip("sentence-transformers is installed")


# --- semantic queries -----------------------------------------------------------------------------

CORPUS = {
    "pg": ("Postgres connection refused", "psql says connection refused on port 5432, is postgres running"),
    "react": ("React effect runs twice", "why does useEffect run twice in development strict mode"),
    "docs": ("Write the deploy docs", "document how to deploy the app with docker compose"),
}


def _sync_corpus(client, capture, prefix=""):
    body = {
        "sessions": [{"externalId": prefix + key, "title": title} for key, (title, _) in CORPUS.items()],
        "messages": [
            {"sessionExternalId": prefix + key, "externalId": prefix + key + "-m", "role": "user", "textContent": text}
            for key, (_, text) in CORPUS.items()
        ],
    }
    sync_batch(client, capture, body)


def _client_for(client_class, user):
    from accounts.models import Workspace

    workspace = Workspace.objects.get(created_by=user, is_personal=True)
    _, raw = api_key_create(user=user, workspace=workspace, name="t", scope="sync")
    client = client_class()
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {raw}"
    return client, workspace


def test_semantic_ranking_and_workspace_isolation(provider, client, django_capture_on_commit_callbacks):
    alice, alice_ws = _client_for(type(client), UserFactory())
    bob, bob_ws = _client_for(type(client), UserFactory())
    _sync_corpus(alice, django_capture_on_commit_callbacks)
    _sync_corpus(bob, django_capture_on_commit_callbacks)  # the very same texts in another workspace

    results = semantic_session_ids(alice_ws.pk, "postgres connection refused", 10)
    sessions = Session.objects.in_bulk([session_id for session_id, _ in results])
    assert {s.workspace_id for s in sessions.values()} == {alice_ws.pk}
    assert len(results) == 3
    assert sessions[results[0][0]].external_id == "pg"
    assert all(0.0 <= score <= 1.0 for _, score in results)
    assert results[0][1] > results[1][1]
    assert semantic_session_ids(alice_ws.pk, "postgres connection refused", 1) == results[:1]

    hits = semantic_message_hits(bob_ws.pk, "useEffect twice", 5)
    assert Message.objects.get(pk=hits[0][0]).external_id == "react-m"
    assert {Session.objects.get(pk=session_id).workspace_id for _, session_id, _ in hits} == {bob_ws.pk}
    assert len({message_id for message_id, _, _ in hits}) == len(hits) == 3

    # A stray row claiming the wrong workspace is still never returned.
    bob_chunk = MessageChunkEmbedding.objects.filter(workspace=bob_ws).first()
    MessageChunkEmbedding.objects.filter(pk=bob_chunk.pk).update(workspace=alice_ws)
    found = {sid for sid, _ in semantic_session_ids(alice_ws.pk, "postgres connection refused", 10)}
    assert bob_chunk.session_id not in found

    assert semantic_session_ids(alice_ws.pk, "   ", 10) == []
    assert semantic_session_ids(alice_ws.pk, "postgres", 0) == []


def test_the_query_vector_is_cached(provider, sync_client, django_capture_on_commit_callbacks):
    _sync_corpus(sync_client, django_capture_on_commit_callbacks)
    workspace_id = Session.objects.first().workspace_id
    before = len(provider.requests)
    semantic_session_ids(workspace_id, "docker deploy", 5)
    semantic_message_hits(workspace_id, "docker deploy", 5)
    assert len(provider.requests) == before + 1


@pytest.mark.django_db(transaction=True)
def test_deleting_sessions_takes_their_vectors(provider):
    """The dashboard deletes messages with raw SQL, then the sessions through the ORM: the chunk
    rows go with the sessions in the same transaction, before the deferred foreign keys are checked."""
    from sessions_app.services import sessions_delete

    session = SessionFactory()
    MessageFactory(session=session, text_content="to be deleted")
    embed_session.apply(args=(session.pk,))
    assert MessageChunkEmbedding.objects.count() == 1 and SessionEmbedding.objects.count() == 1
    assert sessions_delete(session_ids=[session.pk])["sessions"] == 1
    assert not MessageChunkEmbedding.objects.exists() and not SessionEmbedding.objects.exists()
