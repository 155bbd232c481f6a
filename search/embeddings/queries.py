"""Reads for semantic search: nearest sessions and messages to a query, within one workspace.

Scores are cosine similarities, 1 - cosine distance, clamped to [0, 1] (1 = same direction;
unrelated text from a real model lands around 0.1-0.3). Results are ordered by score, best
first, ties by id.

Every query filters on the workspace column of the embedding rows, and the sessions found are
checked against `sessions_app.Session.workspace` once more before anything is returned, so no
result ever comes from another workspace.
"""

import functools
import logging
from collections.abc import Iterator
from contextlib import contextmanager

from django.db import connection, transaction
from pgvector.django import CosineDistance

from sessions_app.models import Session

from ..models import MessageChunkEmbedding, SessionEmbedding
from .providers import EmbeddingProvider, get_provider
from .services import check_dimensions

logger = logging.getLogger(__name__)

QUERY_CHARS = 8_000  # longer queries are cut (upstream does the same)
MAX_CANDIDATES = 1_000  # hnsw.ef_search's upper bound


def semantic_search_available() -> bool:
    """Whether an embeddings provider is configured (otherwise say so and use full-text)."""
    return get_provider() is not None


def semantic_session_ids(workspace_id: int, query_text: str, limit: int, *, within=None) -> list[tuple[int, float]]:
    """[(session id, score)] of the workspace's sessions nearest to the query, best first.

    A session scores by its best-matching chunk or its session vector, whichever is nearer.
    `within` (a queryset of session ids) restricts the search to those sessions, inside the
    vector scans, so a filtered page is as full as an unfiltered one.
    Returns [] with no provider configured or an empty query; raises EmbeddingError when the
    provider fails (the caller falls back to full-text).
    """
    provider = get_provider()
    query_text = (query_text or "").strip()[:QUERY_CHARS]
    if provider is None or not query_text or limit <= 0:
        return []
    vector = _query_vector(provider, query_text)
    # A session usually matches with several chunks: fetch more chunks than sessions wanted.
    candidates = min(max(limit * 5, 50), MAX_CANDIDATES)
    chunk_rows = MessageChunkEmbedding.objects.filter(workspace_id=workspace_id)
    session_rows = SessionEmbedding.objects.filter(workspace_id=workspace_id)
    if within is not None:
        chunk_rows = chunk_rows.filter(session_id__in=within)
        session_rows = session_rows.filter(session_id__in=within)
    with _vector_search(candidates):
        chunks = list(
            chunk_rows.annotate(distance=CosineDistance("embedding", vector))
            .order_by("distance")
            .values_list("session_id", "distance")[:candidates]
        )
        sessions = list(
            session_rows.annotate(distance=CosineDistance("embedding", vector))
            .order_by("distance")
            .values_list("session_id", "distance")[: min(limit, MAX_CANDIDATES)]
        )
    best: dict[int, float] = {}
    for session_id, distance in (*chunks, *sessions):
        best[session_id] = min(distance, best.get(session_id, distance))
    in_workspace = set(Session.objects.filter(workspace_id=workspace_id, pk__in=best).values_list("pk", flat=True))
    ranked = sorted((distance, session_id) for session_id, distance in best.items() if session_id in in_workspace)
    return [(session_id, _score(distance)) for distance, session_id in ranked[:limit]]


def semantic_message_hits(workspace_id: int, query_text: str, limit: int) -> list[tuple[int, int, float]]:
    """[(message id, session id, score)] of the workspace's messages nearest to the query, best
    first, one entry per message (its best chunk). [] with no provider; EmbeddingError on failure."""
    provider = get_provider()
    query_text = (query_text or "").strip()[:QUERY_CHARS]
    if provider is None or not query_text or limit <= 0:
        return []
    vector = _query_vector(provider, query_text)
    candidates = min(max(limit * 3, 50), MAX_CANDIDATES)
    with _vector_search(candidates):
        chunks = list(
            MessageChunkEmbedding.objects.filter(workspace_id=workspace_id)
            .annotate(distance=CosineDistance("embedding", vector))
            .order_by("distance")
            .values_list("message_id", "session_id", "distance")[:candidates]
        )
    best: dict[int, tuple[float, int]] = {}
    for message_id, session_id, distance in chunks:
        if message_id not in best or distance < best[message_id][0]:
            best[message_id] = (distance, session_id)
    session_ids = {session_id for _, session_id in best.values()}
    in_workspace = set(
        Session.objects.filter(workspace_id=workspace_id, pk__in=session_ids).values_list("pk", flat=True)
    )
    ranked = sorted(
        (distance, message_id, session_id)
        for message_id, (distance, session_id) in best.items()
        if session_id in in_workspace
    )
    return [(message_id, session_id, _score(distance)) for distance, message_id, session_id in ranked[:limit]]


def _score(distance: float) -> float:
    return min(1.0, max(0.0, 1.0 - distance))


@functools.lru_cache(maxsize=256)
def _query_vector(provider: EmbeddingProvider, text: str) -> list[float]:
    # Cached per process: the next page of results, or hybrid search right after semantic,
    # asks for the same query again. (Failures are not cached: they raise.)
    check_dimensions(provider)
    [vector] = provider.embed([text])
    return vector


@contextmanager
def _vector_search(candidates: int) -> Iterator[None]:
    """Let the HNSW scans return `candidates` rows even when most of the graph's nearest rows
    belong to other workspaces: a larger ef_search, and (pgvector 0.8+) iterative scans, which
    keep walking the graph until enough rows pass the workspace filter. SET LOCAL: this
    transaction only."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT set_config('hnsw.ef_search', %s, true)", [str(max(40, candidates))])
        if _has_iterative_scan():
            cursor.execute("SELECT set_config('hnsw.iterative_scan', 'strict_order', true)")
        yield


_iterative_scan: bool | None = None


def _has_iterative_scan() -> bool:
    global _iterative_scan
    if _iterative_scan is None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
            row = cursor.fetchone()
        version = tuple(int(part) for part in row[0].split(".")[:2] if part.isdigit()) if row else ()
        _iterative_scan = version >= (0, 8)
    return _iterative_scan
