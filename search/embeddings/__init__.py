"""Semantic search: embeddings of messages and sessions, stored with pgvector.

The public surface (everything else is internal):

* `get_provider()` -> the configured EmbeddingProvider, or None (OPENSYNC_EMBEDDINGS_PROVIDER empty);
* `semantic_search_available()`;
* `semantic_session_matches(workspace_id, query_text, limit, offset=, within=)` ->
  [SessionMatch(session id, score, message id, chunk index)]: which message matched, too;
* `semantic_session_ids(workspace_id, query_text, limit)` -> [(session id, score)];
* `semantic_message_hits(workspace_id, query_text, limit)` -> [(message id, session id, score)];
* the errors: EmbeddingError, and its kinds EmbeddingTransientError and EmbeddingConfigError.

Vectors are computed by `search.tasks.embed_session` after each sync commits, and by
`manage.py embeddings` for a backfill.
"""

from .providers import (
    EmbeddingConfigError,
    EmbeddingError,
    EmbeddingProvider,
    EmbeddingTransientError,
    get_provider,
)
from .queries import (
    SessionMatch,
    semantic_message_hits,
    semantic_search_available,
    semantic_session_ids,
    semantic_session_matches,
)

__all__ = [
    "EmbeddingConfigError",
    "EmbeddingError",
    "EmbeddingProvider",
    "EmbeddingTransientError",
    "SessionMatch",
    "get_provider",
    "semantic_message_hits",
    "semantic_search_available",
    "semantic_session_ids",
    "semantic_session_matches",
]
