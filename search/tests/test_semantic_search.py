"""Semantic and hybrid search end to end: the sync computes embeddings (real `openai` client,
local fake server), search_sessions ranks by them, and a failing provider falls back."""

import pytest

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
