"""Relevance check: recall@10 and MRR of full-text, semantic and hybrid search on a fixed corpus
of realistic coding sessions with labelled queries (relevance_corpus).

The corpus goes through the sync API (/sync/batch), which maintains the full-text index and,
after the commit, computes embeddings twice over:

* with the real `openai` client against the local fake embeddings server (a hashed bag of words,
  at 1,536 dimensions as it was first measured: it matches shared words, not meaning, so it shows
  the plumbing works rather than what a real model would score);
* with the local model every install runs by default (all-MiniLM-L6-v2 in numpy,
  search.embeddings.minilm), which finds the sessions of the "idea" queries that share no word
  with them.

Run with `-s` to see the table. The floors asserted are below the values measured when this
test was written, so a ranking regression fails it.
"""

from dataclasses import dataclass

import pytest

from search.embeddings import services
from search.selectors import FULLTEXT, HYBRID, SEMANTIC, search_sessions

from .relevance_corpus import QUERIES, SESSIONS
from .test_embeddings import _fresh_caches, embedding_server, provider, sync_batch  # noqa: F401 - fixtures

pytestmark = pytest.mark.django_db

K = 10
FULLTEXT_KNOWN_MISSES = {"connection refused", "kubectl logs -n prod"}


@dataclass
class Scores:
    recall: float  # mean over queries of |relevant ∩ top K| / |relevant|
    mrr: float  # mean over queries of 1 / rank of the first relevant hit (0 when none in the top K)
    per_query: dict[str, tuple[float, float, list[str]]]  # query -> (recall, reciprocal rank, top K ids)


def batch_body():
    sessions = [
        {"externalId": external_id, "title": title, "source": "claude-code"} for external_id, title, _ in SESSIONS
    ]
    messages = [
        {"sessionExternalId": external_id, "externalId": f"{external_id}-m{i}", **message}
        for external_id, _, session_messages in SESSIONS
        for i, message in enumerate(session_messages)
    ]
    return {"sessions": sessions, "messages": messages}


def load_corpus(sync_client, capture, personal_workspace):
    sync_batch(sync_client, capture, batch_body())
    return personal_workspace


def evaluate(workspace, mode: str) -> Scores:
    per_query = {}
    for query, _kind, relevant in QUERIES:
        result = search_sessions(workspace, query, mode=mode, limit=K)
        assert result.mode == mode and result.notice is None, (query, result.notice)
        top = [hit.session.external_id for hit in result.hits]
        recall = len(relevant & set(top)) / len(relevant)
        first = next((rank for rank, external_id in enumerate(top, start=1) if external_id in relevant), None)
        per_query[query] = (recall, 1 / first if first else 0.0, top)
    n = len(per_query)
    return Scores(
        sum(r for r, _, _ in per_query.values()) / n, sum(rr for _, rr, _ in per_query.values()) / n, per_query
    )


def report(title: str, scores: dict[str, Scores]) -> None:
    kinds = sorted({kind for _, kind, _ in QUERIES})
    print(f"\n{title}: {len(SESSIONS)} sessions, {len(QUERIES)} queries, recall@{K} / MRR")
    print(f"{'mode':<10}{'recall@10':>10}{'MRR':>7}  " + "  ".join(f"{kind:>10}" for kind in kinds))
    for mode, s in scores.items():
        by_kind = []
        for kind in kinds:
            recalls = [s.per_query[q][0] for q, k, _ in QUERIES if k == kind]
            by_kind.append(f"{sum(recalls) / len(recalls):>10.2f}")
        print(f"{mode:<10}{s.recall:>10.3f}{s.mrr:>7.3f}  " + "  ".join(by_kind))
    print("queries not perfect in some mode (mode=recall/first relevant rank, '-' when none in the top 10):")
    for query, kind, _ in QUERIES:
        results = {mode: s.per_query[query] for mode, s in scores.items()}
        if any(recall < 1 or rr < 1 for recall, rr, _ in results.values()):
            cells = [f"{mode}={recall:.2f}/{round(1 / rr) if rr else '-'}" for mode, (recall, rr, _) in results.items()]
            print(f"  [{kind}] {query!r}: {' '.join(cells)}")


def test_corpus_is_well_formed():
    ids = [external_id for external_id, _, _ in SESSIONS]
    assert len(ids) == len(set(ids)) and len(ids) >= 60
    assert len(QUERIES) >= 30 and len({q for q, _, _ in QUERIES}) == len(QUERIES)
    for query, _, relevant in QUERIES:
        assert relevant and relevant <= set(ids) and len(relevant) <= K, query
    assert all(3 <= len(messages) <= 8 for _, _, messages in SESSIONS)


def test_relevance_fulltext_semantic_hybrid(
    sync_client,
    provider,  # noqa: F811
    personal_workspace,
    django_capture_on_commit_callbacks,
    settings,
):
    # the fake's figures were measured at 1,536 dimensions (at 384 its hashed words collide more
    # often: semantic 0.837 / 0.772, hybrid 0.863 / 0.859); DDL in the test's transaction, rolled back
    settings.OPENSYNC_EMBEDDINGS_DIMENSIONS = 1536
    services.vector_columns_resize(dimensions=1536)
    workspace = load_corpus(sync_client, django_capture_on_commit_callbacks, personal_workspace)
    scores = {mode: evaluate(workspace, mode) for mode in (FULLTEXT, SEMANTIC, HYBRID)}
    report("fake embeddings (hashed bag of words)", scores)

    full, semantic, hybrid = scores[FULLTEXT], scores[SEMANTIC], scores[HYBRID]
    # Floors a little under what was measured when this was written (recall@10 / MRR: full-text
    # 0.658 / 0.667, semantic 0.875 / 0.808, hybrid 0.902 / 0.853): raise them when ranking improves.
    assert full.recall >= 0.63 and full.mrr >= 0.64
    assert semantic.recall >= 0.85 and semantic.mrr >= 0.75
    assert hybrid.recall >= 0.87 and hybrid.mrr >= 0.80
    assert hybrid.recall >= full.recall - 0.02 and hybrid.recall >= semantic.recall - 0.02
    # Every query but the natural-language ones finds all its sessions with full-text, except
    # "connection refused" (one relevant session only says ECONNREFUSED) and a pasted command
    # whose "-n" flag websearch syntax reads as NOT n.
    for query, kind, _ in QUERIES:
        if kind != "idea" and query not in FULLTEXT_KNOWN_MISSES:
            assert full.per_query[query][0] == 1.0, (query, full.per_query[query][2])


def test_relevance_with_the_local_model(sync_client, personal_workspace, django_capture_on_commit_callbacks, settings):
    settings.OPENSYNC_EMBEDDINGS_PROVIDER = "local"
    settings.OPENSYNC_EMBEDDINGS_MODEL = settings.LOCAL_EMBEDDINGS_MODEL
    settings.OPENSYNC_EMBEDDINGS_DIMENSIONS = 384
    assert services.vector_column_dimensions() == 384  # the default size: no resize needed
    workspace = load_corpus(sync_client, django_capture_on_commit_callbacks, personal_workspace)
    scores = {mode: evaluate(workspace, mode) for mode in (FULLTEXT, SEMANTIC, HYBRID)}
    report("local model (all-MiniLM-L6-v2, numpy)", scores)

    full, semantic, hybrid = scores[FULLTEXT], scores[SEMANTIC], scores[HYBRID]
    # Floors a little under what was measured (recall@10 / MRR: full-text 0.684 / 0.692, semantic
    # 1.000 / 0.968, hybrid 1.000 / 0.968: what sentence-transformers itself scores with this model)
    assert full.recall >= 0.66 and full.mrr >= 0.67
    assert semantic.recall >= 0.97 and semantic.mrr >= 0.94
    assert hybrid.recall >= 0.97 and hybrid.mrr >= 0.94
    ideas = [query for query, kind, _ in QUERIES if kind == "idea"]
    assert len(ideas) == 12
    for query in ideas:  # no word in common with their sessions: full-text finds none, meaning finds all
        assert full.per_query[query][0] == 0.0, query
        assert semantic.per_query[query][0] == 1.0 and hybrid.per_query[query][0] == 1.0, query
