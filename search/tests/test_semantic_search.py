"""Semantic and hybrid search end to end: the sync computes embeddings (real `openai` client,
local fake server), search_sessions ranks by them, and a failing provider falls back."""

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext

from search.selectors import FULLTEXT, HYBRID, SEMANTIC, search_sessions

from .test_embeddings import _fresh_caches, embedding_server, provider, sync_batch  # noqa: F401 - fixtures

pytestmark = pytest.mark.django_db


@pytest.fixture
def corpus(sync_client, provider, personal_workspace, django_capture_on_commit_callbacks):  # noqa: F811
    def add(external_id, title, text):
        sync_batch(
            sync_client,
            django_capture_on_commit_callbacks,
            {
                "sessions": [{"externalId": external_id, "title": title}],
                "messages": [{"sessionExternalId": external_id, "externalId": f"{external_id}-1", "role": "user",
                              "textContent": text}],
            },
        )  # fmt: skip

    add("s-db", "Database outage", "postgres refused connections after the upgrade, restart the database server")
    add("s-ui", "Button styles", "make the primary button blue and round the corners of the card")
    add("s-ci", "CI pipeline", "the github actions workflow caches dependencies between runs")
    return personal_workspace


def test_semantic_ranks_by_meaning(corpus):
    result = search_sessions(corpus, "database server restart after upgrade", mode=SEMANTIC)
    assert result.mode == SEMANTIC and result.notice is None
    assert result.hits[0].session.title == "Database outage"
    assert result.hits[0].matched_by == (SEMANTIC,)


def test_hybrid_fuses_both_rankings(corpus):
    result = search_sessions(corpus, "postgres", mode=HYBRID)
    assert result.mode == HYBRID
    top = result.hits[0]
    assert top.session.title == "Database outage" and set(top.matched_by) == {FULLTEXT, SEMANTIC}
    assert "<mark>postgres</mark>" in top.snippet


def test_a_failing_provider_falls_back_to_fulltext(corpus, provider):  # noqa: F811
    provider.fail_next = [500] * 20
    result = search_sessions(corpus, "postgres refused", mode=HYBRID)
    assert result.mode == FULLTEXT and "unavailable right now" in result.notice
    assert [hit.session.title for hit in result.hits] == ["Database outage"]


def test_filters_apply_inside_the_vector_search(sync_client, corpus, django_capture_on_commit_callbacks):
    """A filter matching few sessions still fills the page (not the workspace's top N, filtered)."""
    from search.selectors import SessionFilters

    for i in range(12):
        sync_batch(
            sync_client,
            django_capture_on_commit_callbacks,
            {
                "sessions": [{"externalId": f"s-pi-{i}", "title": f"pi {i}", "source": "pi"}],
                "messages": [{"sessionExternalId": f"s-pi-{i}", "externalId": f"s-pi-{i}-1", "role": "user",
                              "textContent": f"unrelated gardening note number {i}"}],
            },
        )  # fmt: skip
    result = search_sessions(
        corpus, "database server restart", mode=SEMANTIC, limit=5, filters=SessionFilters(source="pi")
    )
    assert len(result.hits) == 5 and all(hit.session.source == "pi" for hit in result.hits)


# --- which message matched ------------------------------------------------------------------------


def _message(external_id):
    from sessions_app.models import Message

    return Message.objects.get(external_id=external_id)


@pytest.fixture
def long_session(sync_client, corpus, django_capture_on_commit_callbacks):
    """A session of three messages; only the second one is about rate limiting."""
    sync_batch(
        sync_client,
        django_capture_on_commit_callbacks,
        {
            "sessions": [{"externalId": "s-api", "title": "API work"}],
            "messages": [
                {"sessionExternalId": "s-api", "externalId": "s-api-1", "role": "user",
                 "textContent": "set up the project skeleton and a readme"},
                {"sessionExternalId": "s-api", "externalId": "s-api-2", "role": "assistant",
                 "textContent": "The <b>gateway</b> answers 429: add rate limiting with a token bucket per client"},
                {"sessionExternalId": "s-api", "externalId": "s-api-3", "role": "user",
                 "textContent": "thanks, now write the changelog"},
            ],
        },
    )  # fmt: skip
    return corpus


def test_semantic_hit_names_the_message_that_matched(long_session):
    result = search_sessions(long_session, "rate limiting token bucket per client", mode=SEMANTIC)
    top = result.hits[0]
    assert top.session.external_id == "s-api"
    assert top.message_id == _message("s-api-2").pk
    # the start of the matched text, escaped, nothing highlighted (no words to point at)
    assert top.snippet.startswith("The &lt;b&gt;gateway&lt;/b&gt; answers 429: add rate limiting")
    assert "<mark>" not in top.snippet and "<b>" not in top.snippet
    # every semantic hit names a message of its own session
    for hit in result.hits:
        assert hit.message_id is not None and _message_session(hit.message_id) == hit.session.pk


def _message_session(message_id):
    from sessions_app.models import Message

    return Message.objects.values_list("session_id", flat=True).get(pk=message_id)


@pytest.mark.usefixtures("provider")
def test_semantic_hit_found_by_its_session_vector_names_its_nearest_message(
    sync_client, personal_workspace, django_capture_on_commit_callbacks, monkeypatch
):
    """A session whose chunks are not among the nearest chunks, found by its session vector
    (title and prompts), still names its message nearest to the query, in the same statement."""
    from search.embeddings import queries

    def add(external_id, title, *texts):
        sync_batch(
            sync_client,
            django_capture_on_commit_callbacks,
            {
                "sessions": [{"externalId": external_id, "title": title}],
                "messages": [{"sessionExternalId": external_id, "externalId": f"{external_id}-{i}", "role": "user",
                              "textContent": text} for i, text in enumerate(texts, start=1)],
            },
        )  # fmt: skip

    add("near-1", "Notes", "kubernetes rollout helm chart upgrade failed", "helm rollout on kubernetes again")
    add("near-2", "More notes", "kubernetes rollout helm values for staging")
    add("titled", "Kubernetes rollout with helm", "the pods never become ready", "unrelated lunch order")
    monkeypatch.setattr(queries, "MIN_CANDIDATES", 1)
    monkeypatch.setattr(queries, "CHUNKS_PER_SESSION", 1)  # 3 sessions wanted: the 3 nearest chunks
    nearest = {
        message_id
        for message_id, _, _ in queries.semantic_message_hits(personal_workspace.pk, "kubernetes rollout helm", 3)
    }
    assert nearest == {_message("near-1-1").pk, _message("near-1-2").pk, _message("near-2-1").pk}
    with CaptureQueriesContext(connection) as queries_run:
        result = search_sessions(personal_workspace, "kubernetes rollout helm", mode=SEMANTIC, limit=3)
    by_session = {hit.session.external_id: hit for hit in result.hits}
    assert set(by_session) == {"near-1", "near-2", "titled"}
    # "titled" has no chunk among the 3 nearest chunks, but its session vector (its title) is near
    assert by_session["titled"].message_id in {_message("titled-1").pk, _message("titled-2").pk}
    assert by_session["near-1"].message_id == _message("near-1-2").pk  # the nearer of its two (3 of 5 words)
    vector_statements = [q["sql"] for q in queries_run.captured_queries if "<=>" in q["sql"]]
    assert len(vector_statements) == 1  # ranking, workspace check and the fallback: one statement


def test_a_page_costs_the_same_queries_however_many_hits(sync_client, corpus, django_capture_on_commit_callbacks):
    for i in range(8):
        sync_batch(
            sync_client,
            django_capture_on_commit_callbacks,
            {
                "sessions": [{"externalId": f"s-more-{i}", "title": f"Database note {i}"}],
                "messages": [{"sessionExternalId": f"s-more-{i}", "externalId": f"s-more-{i}-{j}", "role": "user",
                              "textContent": f"database server restart number {i} step {j}"} for j in range(3)],
            },
        )  # fmt: skip
    counts = []
    for limit in (1, 10):
        cache.clear()  # the workspace's vector coverage is counted on both pages
        with CaptureQueriesContext(connection) as queries_run:
            result = search_sessions(corpus, "database server restart", mode=SEMANTIC, limit=limit)
        assert len(result.hits) == limit and all(hit.message_id for hit in result.hits)
        counts.append(len(queries_run.captured_queries))
    assert counts[0] == counts[1], counts


def test_hybrid_semantic_only_hit_names_its_message(long_session):
    # full-text needs every word ("cluster" is nowhere), so only meaning finds the outage
    result = search_sessions(long_session, "restart the database cluster", mode=HYBRID)
    assert result.mode == HYBRID
    hit = next(hit for hit in result.hits if hit.session.external_id == "s-db")
    assert hit.matched_by == (SEMANTIC,)
    assert hit.message_id == _message("s-db-1").pk
    assert hit.snippet.startswith("postgres refused connections") and "<mark>" not in hit.snippet


def test_hybrid_hit_found_both_ways_keeps_its_full_text_message(long_session):
    result = search_sessions(long_session, "rate limiting", mode=HYBRID)
    top = result.hits[0]
    assert set(top.matched_by) == {FULLTEXT, SEMANTIC}
    assert top.message_id == _message("s-api-2").pk
    assert "<mark>" in top.snippet


def test_api_search_gives_the_message_id_of_semantic_hits(sync_client, long_session):
    for mode in (SEMANTIC, HYBRID):
        response = sync_client.get("/api/search", {"q": "rate limiting token bucket per client", "type": mode})
        assert response.status_code == 200, response.content
        body = response.json()
        assert body["type"] == mode
        top = body["results"][0]
        assert top["externalId"] == "s-api"
        assert top["messageId"] == str(_message("s-api-2").pk)
        assert SEMANTIC in top["matchedBy"]
        assert all(result["messageId"] for result in body["results"])


def test_search_page_links_semantic_hits_to_their_message(logged_in, long_session):
    message_id = _message("s-api-2").pk
    response = logged_in.get("/search/", {"q": "rate limiting token bucket per client", "mode": SEMANTIC})
    assert response.status_code == 200
    page = response.content.decode()
    session_id = _message("s-api-2").session_id
    assert f"/sessions/{session_id}/?at={message_id}#m-{message_id}" in page
    # the viewer opens at that message
    viewer = logged_in.get(f"/sessions/{session_id}/", {"at": message_id})
    assert viewer.status_code == 200 and f'id="m-{message_id}"' in viewer.content.decode()


@pytest.mark.usefixtures("provider")
def test_semantic_hits_and_their_messages_stay_in_the_workspace(client, django_capture_on_commit_callbacks):
    from accounts.tests.factories import UserFactory
    from search.models import MessageChunkEmbedding
    from search.selectors import SessionFilters

    from .test_embeddings import _client_for

    def sync(api, external_id, text, source="claude-code"):
        sync_batch(
            api,
            django_capture_on_commit_callbacks,
            {
                "sessions": [{"externalId": external_id, "title": "Notes", "source": source}],
                "messages": [{"sessionExternalId": external_id, "externalId": f"{external_id}-m", "role": "user",
                              "textContent": text}],
            },
        )  # fmt: skip

    alice, alice_ws = _client_for(type(client), UserFactory())
    bob, bob_ws = _client_for(type(client), UserFactory())
    sync(alice, "a-1", "postgres refused connections after the upgrade")
    sync(alice, "a-2", "postgres connection pool is exhausted", source="pi")
    sync(bob, "b-1", "postgres refused connections after the upgrade")  # the very same words
    sync(bob, "b-2", "postgres refused connections again, restart it")
    # a stray row claiming Alice's workspace for Bob's message is never followed
    MessageChunkEmbedding.objects.filter(message__external_id="b-2-m").update(workspace=alice_ws)

    bob_messages = set(_messages_of(bob_ws))
    for mode in (SEMANTIC, HYBRID):
        result = search_sessions(alice_ws, "postgres refused connections", mode=mode)
        assert {hit.session.workspace_id for hit in result.hits} == {alice_ws.pk}
        assert {hit.session.external_id for hit in result.hits} == {"a-1", "a-2"}
        assert not {hit.message_id for hit in result.hits} & bob_messages
        response = alice.get("/api/search", {"q": "postgres refused connections", "type": mode})
        ids = {result["messageId"] for result in response.json()["results"]}
        assert ids == {str(m) for m in _messages_of(alice_ws)}

    # `within=` (filters) still applies, and the message is the filtered session's
    result = search_sessions(
        alice_ws, "postgres refused connections", mode=SEMANTIC, filters=SessionFilters(source="pi")
    )
    assert [(hit.session.external_id, hit.message_id) for hit in result.hits] == [("a-2", _message("a-2-m").pk)]


def _messages_of(workspace):
    from sessions_app.models import Message

    return Message.objects.filter(session__workspace=workspace).values_list("pk", flat=True)


def test_a_long_message_shows_the_chunk_that_matched(sync_client, corpus, settings, django_capture_on_commit_callbacks):
    settings.OPENSYNC_EMBEDDINGS_CHUNK_CHARS = 120
    settings.OPENSYNC_EMBEDDINGS_CHUNK_OVERLAP = 20
    filler = " ".join(f"word{i}" for i in range(60))  # about 400 characters: chunks 0 to 3
    text = f"{filler} Finally the cron scheduler skips jobs during daylight saving changes."
    sync_batch(
        sync_client,
        django_capture_on_commit_callbacks,
        {
            "sessions": [{"externalId": "s-long", "title": "Long answer"}],
            "messages": [{"sessionExternalId": "s-long", "externalId": "s-long-1", "role": "assistant",
                          "textContent": text}],
        },
    )  # fmt: skip
    result = search_sessions(corpus, "cron scheduler skips jobs during daylight saving", mode=SEMANTIC)
    top = result.hits[0]
    assert top.session.external_id == "s-long" and top.message_id == _message("s-long-1").pk
    # the snippet starts where the matched chunk does, not at the start of the message
    assert top.snippet.startswith("… ") and "cron scheduler skips jobs" in top.snippet
    assert "word0 " not in top.snippet
