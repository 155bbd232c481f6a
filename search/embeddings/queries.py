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
from typing import NamedTuple

from django.core.cache import cache
from django.db import connection, transaction
from django.db.models import Value
from pgvector import Vector
from pgvector.django import CosineDistance

from sessions_app.models import Session

from ..models import MessageChunkEmbedding, SessionEmbedding
from .providers import EmbeddingProvider, EmbeddingSwitchPending, get_provider
from .services import (
    check_dimensions,
    coverage_key,
    provider_signature,
    stored_signature,
    vector_column_dimensions,
)

logger = logging.getLogger(__name__)

QUERY_CHARS = 8_000  # longer queries are cut (upstream does the same)
MAX_CANDIDATES = 1_000  # hnsw.ef_search's upper bound
MIN_CANDIDATES = 50  # chunks fetched at least, however few sessions are wanted
COVERAGE_SECONDS = 60
CHUNKS_PER_SESSION = 5  # a session usually matches with several chunks: fetch more chunks than sessions


def semantic_search_available() -> bool:
    """Whether an embeddings provider is configured (otherwise say so and use full-text)."""
    return get_provider() is not None


def vector_coverage(workspace_id: int) -> tuple[int, int]:
    """(sessions embedded with the current vectors, sessions) in the workspace: search says plainly
    that it may miss sessions while the first is smaller (a backfill after a switch, new syncs
    waiting for the worker). Two counts that grow with the workspace, so kept in the shared cache
    for COVERAGE_SECONDS; writing a session's vector forgets its workspace's (services), so the
    notice goes as soon as the last session is embedded."""
    # keyed by the provider's signature (no read of the stored one: a search only gets here when
    # they are equal, _check_space), so a switch starts afresh
    provider = get_provider()
    key = coverage_key(workspace_id, provider_signature(provider) if provider else "")
    cached = cache.get(key)
    if cached is not None:
        return tuple(cached)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT (SELECT count(*) FROM {SessionEmbedding._meta.db_table} WHERE workspace_id = %s), "
            f"(SELECT count(*) FROM {Session._meta.db_table} WHERE workspace_id = %s)",
            [workspace_id, workspace_id],
        )
        embedded, total = cursor.fetchone()
    coverage = (min(embedded, total), total)
    cache.set(key, coverage, COVERAGE_SECONDS)
    return coverage


def _check_space(provider: EmbeddingProvider) -> None:
    """Refuse to compare a query of one model with stored vectors of another (until a worker has
    switched them: search.embeddings.services.embedding_space_switch). Before any worker recorded
    a signature (an upgrade), vector columns of another size say the same."""
    stored, signature = stored_signature(), provider_signature(provider)
    if not stored and vector_column_dimensions() not in (None, provider.dimensions):
        raise EmbeddingSwitchPending(
            f"the vector columns are not yet resized to {provider.dimensions} dimensions; a worker does it as it starts"
        )
    if stored and stored != signature:
        raise EmbeddingSwitchPending(
            f"the stored vectors come from {stored}, not {signature}; they are replaced as soon as a worker runs"
        )


class SessionMatch(NamedTuple):
    """A session near the query, and where in it: the message (and its chunk) whose vector is
    nearest to the query, or None when the session has no chunk vectors (its session vector
    matched)."""

    session_id: int
    score: float
    message_id: int | None
    chunk_index: int | None


def semantic_session_ids(workspace_id: int, query_text: str, limit: int, *, within=None) -> list[tuple[int, float]]:
    """[(session id, score)] of the workspace's sessions nearest to the query, best first (see
    `semantic_session_matches`, which also says which message matched)."""
    return [
        (match.session_id, match.score)
        for match in semantic_session_matches(workspace_id, query_text, limit, within=within)
    ]


def semantic_session_matches(
    workspace_id: int, query_text: str, limit: int, *, offset: int = 0, within=None
) -> list[SessionMatch]:
    """The workspace's sessions nearest to the query, best first, `limit` of them from `offset`.

    A session scores by its best-matching chunk or its session vector, whichever is nearer, and
    names the message of its nearest chunk. That chunk is usually among the chunks the vector
    scan returns; for a session found by its session vector alone it is looked up among that
    session's chunks, in the same statement, so a page costs the same few queries whatever it holds.
    `within` (a queryset of session ids) restricts the search to those sessions, inside the
    vector scans, so a filtered page is as full as an unfiltered one.
    Returns [] with no provider configured or an empty query; raises EmbeddingError when the
    provider fails (the caller falls back to full-text).
    """
    provider = get_provider()
    query_text = (query_text or "").strip()[:QUERY_CHARS]
    if provider is None or not query_text or limit <= 0:
        return []
    _check_space(provider)
    vector = _query_vector(provider, query_text)
    depth = min(offset + limit, MAX_CANDIDATES)
    candidates = min(max(depth * CHUNKS_PER_SESSION, MIN_CANDIDATES), MAX_CANDIDATES)
    within_sql, within_params = "", []
    if within is not None:
        sql, params = within.query.sql_with_params()
        within_sql, within_params = f"AND e.session_id IN ({sql})", list(params)
    with _vector_search(candidates), connection.cursor() as cursor:
        cursor.execute(
            _SESSION_MATCHES_SQL.format(within=within_sql),
            [
                vector,
                *[workspace_id, *within_params, candidates],
                *[workspace_id, *within_params, depth],
                workspace_id,
                max(0, depth - offset),
                offset,
                workspace_id,
            ],
        )
        rows = cursor.fetchall()
    return [
        SessionMatch(session_id, _score(distance), message_id, chunk_index)
        for session_id, distance, message_id, chunk_index in rows
    ]


# The query vector is sent once (`q`); `(SELECT v FROM q)` is an init-plan parameter, which the
# HNSW index scans order by as they would by a literal. The sessions found are joined to
# sessions_app_session on the workspace once more, so no row of another workspace comes back
# even if an embedding row's workspace copy were wrong. `+ 0` keeps the per-session fallback
# off the HNSW index: the few chunks of one session are read through the session index.
_SESSION_MATCHES_SQL = f"""
WITH q AS (SELECT %s::vector AS v),
chunks AS MATERIALIZED (
    SELECT e.session_id, e.message_id, e.chunk_index, e.embedding <=> (SELECT v FROM q) AS distance
    FROM {MessageChunkEmbedding._meta.db_table} e
    WHERE e.workspace_id = %s {{within}}
    ORDER BY distance LIMIT %s
),
whole AS MATERIALIZED (
    SELECT e.session_id, e.embedding <=> (SELECT v FROM q) AS distance
    FROM {SessionEmbedding._meta.db_table} e
    WHERE e.workspace_id = %s AND e.embedding IS NOT NULL {{within}}
    ORDER BY distance LIMIT %s
),
best_chunk AS (
    SELECT DISTINCT ON (session_id) session_id, message_id, chunk_index, distance
    FROM chunks ORDER BY session_id, distance, message_id, chunk_index
),
ranked AS MATERIALIZED (
    SELECT coalesce(c.session_id, w.session_id) AS session_id, least(c.distance, w.distance) AS distance,
           c.message_id, c.chunk_index
    FROM best_chunk c FULL OUTER JOIN whole w ON w.session_id = c.session_id
),
page AS (
    SELECT r.* FROM ranked r
    WHERE r.session_id IN (
        SELECT s.id FROM {Session._meta.db_table} s
        WHERE s.id = ANY(ARRAY(SELECT session_id FROM ranked)) AND s.workspace_id = %s
    )
    ORDER BY r.distance, r.session_id
    LIMIT %s OFFSET %s
)
SELECT p.session_id, p.distance, coalesce(p.message_id, n.message_id), coalesce(p.chunk_index, n.chunk_index)
FROM page p LEFT JOIN LATERAL (
    SELECT e.message_id, e.chunk_index FROM {MessageChunkEmbedding._meta.db_table} e
    WHERE p.message_id IS NULL AND e.session_id = p.session_id AND e.workspace_id = %s
    ORDER BY (e.embedding <=> (SELECT v FROM q)) + 0, e.message_id, e.chunk_index
    LIMIT 1
) n ON true
ORDER BY p.distance, p.session_id
"""


def semantic_message_hits(workspace_id: int, query_text: str, limit: int) -> list[tuple[int, int, float]]:
    """[(message id, session id, score)] of the workspace's messages nearest to the query, best
    first, one entry per message (its best chunk). [] with no provider; EmbeddingError on failure."""
    provider = get_provider()
    query_text = (query_text or "").strip()[:QUERY_CHARS]
    if provider is None or not query_text or limit <= 0:
        return []
    _check_space(provider)
    vector = _query_vector(provider, query_text)
    candidates = min(max(limit * 3, 50), MAX_CANDIDATES)
    with _vector_search(candidates):
        chunks = list(
            MessageChunkEmbedding.objects.filter(workspace_id=workspace_id)
            .annotate(distance=CosineDistance("embedding", Value(vector)))
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
def _query_vector(provider: EmbeddingProvider, text: str) -> str:
    """The query's vector as pgvector text ('[0.1,...]'), what the SQL takes.

    Cached per process (the provider instance holds the model and dimensions): the next page of
    results, hybrid search right after semantic, or the same search run again by someone else
    asks for the same vector, and neither the provider's round trip nor the formatting is paid
    twice. Failures are not cached: they raise."""
    check_dimensions(provider)
    [vector] = provider.embed([text])
    return Vector(vector).to_text()


@contextmanager
def _vector_search(candidates: int) -> Iterator[None]:
    """Let the HNSW scans return `candidates` rows even when most of the graph's nearest rows
    belong to other workspaces: a larger ef_search, and (pgvector 0.8+) iterative scans, which
    keep walking the graph until enough rows pass the workspace filter. SET LOCAL: this
    transaction only."""
    with transaction.atomic(), connection.cursor() as cursor:
        sql = "SELECT set_config('hnsw.ef_search', %s, true)"
        if _has_iterative_scan():
            sql += ", set_config('hnsw.iterative_scan', 'strict_order', true)"
        cursor.execute(sql, [str(max(40, candidates))])  # one round trip
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
