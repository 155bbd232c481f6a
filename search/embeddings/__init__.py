"""Semantic search: embeddings of messages and sessions, stored with pgvector.

The public surface (everything else is internal):

* `get_provider()` -> the configured EmbeddingProvider, or None (OPENSYNC_EMBEDDINGS_PROVIDER=none);
* `semantic_search_available()`;
* `semantic_session_matches(workspace_id, query_text, limit, offset=, within=)` ->
  [SessionMatch(session id, score, message id, chunk index)]: which message matched, too;
* `semantic_session_ids(workspace_id, query_text, limit)` -> [(session id, score)];
* `semantic_message_hits(workspace_id, query_text, limit)` -> [(message id, session id, score)];
* `vector_coverage(workspace_id)` -> (sessions with vectors, sessions);
* the errors: EmbeddingError, and its kinds EmbeddingTransientError, EmbeddingConfigError and
  EmbeddingSwitchPending (the stored vectors are another model's until a worker switches them).

Vectors are computed by `search.tasks.embed_session` after each sync commits, and by
`manage.py embeddings` for a backfill.
"""

from .providers import (
    EmbeddingConfigError,
    EmbeddingError,
    EmbeddingProvider,
    EmbeddingSwitchPending,
    EmbeddingTransientError,
    get_provider,
)
from .queries import (
    SessionMatch,
    semantic_message_hits,
    semantic_search_available,
    semantic_session_ids,
    semantic_session_matches,
    vector_coverage,
)

__all__ = [
    "EmbeddingConfigError",
    "EmbeddingError",
    "EmbeddingProvider",
    "EmbeddingSwitchPending",
    "EmbeddingTransientError",
    "SessionMatch",
    "get_provider",
    "semantic_message_hits",
    "semantic_search_available",
    "semantic_session_ids",
    "semantic_session_matches",
    "vector_coverage",
]
