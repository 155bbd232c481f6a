from django.conf import settings
from django.db import models
from pgvector.django import HnswIndex, VectorField

# The vector columns are sized by OPENSYNC_EMBEDDINGS_DIMENSIONS when `migrate` creates them (an
# HNSW index needs fixed dimensions). The migration reads the same setting, so `makemigrations`
# never sees a change; a changed setting is applied to the database by the next worker that
# embeds (search.embeddings.services.embedding_space_switch), which empties and resizes the columns.
DIMENSIONS = settings.OPENSYNC_EMBEDDINGS_DIMENSIONS


class MessageChunkEmbedding(models.Model):
    """The vector of one chunk of a message's text (search.embeddings.chunking)."""

    # workspace and session are copies of the message's: every vector query is scoped to one
    # workspace without a join, and a session's chunks go with it in one DELETE (the dashboard
    # deletes messages with raw SQL, then the sessions through the ORM).
    workspace = models.ForeignKey(
        "accounts.Workspace", on_delete=models.CASCADE, related_name="chunk_embeddings", db_index=False
    )
    session = models.ForeignKey(
        "sessions_app.Session", on_delete=models.CASCADE, related_name="chunk_embeddings", db_index=False
    )
    message = models.ForeignKey(
        "sessions_app.Message", on_delete=models.CASCADE, related_name="chunk_embeddings", db_index=False
    )
    chunk_index = models.PositiveIntegerField()
    # sha256 of (model, dimensions, chunk text): an unchanged chunk is never sent to the provider again
    text_hash = models.CharField(max_length=64)
    embedding = VectorField(dimensions=DIMENSIONS)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["message", "chunk_index"], name="chunk_embedding_message_chunk_uniq"),
        ]
        indexes = [
            # nearest chunks to a query: ORDER BY embedding <=> query, filtered to one workspace
            HnswIndex(
                fields=["embedding"],
                name="chunk_embedding_hnsw",
                m=16,
                ef_construction=64,
                opclasses=["vector_cosine_ops"],
            ),
            # the same query for a small workspace, where scanning its rows exactly beats the graph
            models.Index(fields=["workspace"], name="chunk_embedding_ws_idx"),
            # what is already embedded for a session (the embed task), and the cascade on delete
            models.Index(fields=["session"], name="chunk_embedding_session_idx"),
        ]

    def __str__(self) -> str:
        return f"message {self.message_id} chunk {self.chunk_index}"


class SessionEmbedding(models.Model):
    """One vector per session: its title, summary and opening prompts (search.embeddings.chunking).

    Every session that was embedded has a row: one with nothing to embed has a NULL vector, so
    "how many sessions have vectors" (search coverage, the background backfill) is a count of rows."""

    workspace = models.ForeignKey(
        "accounts.Workspace", on_delete=models.CASCADE, related_name="session_embeddings", db_index=False
    )
    session = models.OneToOneField("sessions_app.Session", on_delete=models.CASCADE, related_name="embedding")
    text_hash = models.CharField(max_length=64)
    embedding = VectorField(dimensions=DIMENSIONS, null=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [
            # nearest sessions to a query, filtered to one workspace
            HnswIndex(
                fields=["embedding"],
                name="session_embedding_hnsw",
                m=16,
                ef_construction=64,
                opclasses=["vector_cosine_ops"],
            ),
            models.Index(fields=["workspace"], name="session_embedding_ws_idx"),
        ]

    def __str__(self) -> str:
        return f"session {self.session_id}"


class SavedSearch(models.Model):
    """A search a person keeps on the context page (per workspace): the query and its mode."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="saved_searches")
    workspace = models.ForeignKey("accounts.Workspace", on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=120)
    query = models.CharField(max_length=500)
    mode = models.CharField(max_length=16, default="fulltext")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            # saving the same search twice (a retried POST) keeps one
            models.UniqueConstraint(fields=["user", "workspace", "query", "mode"], name="saved_search_uniq"),
        ]

    def __str__(self) -> str:
        return self.name


class Bookmark(models.Model):
    """A session, or one message of it, a person keeps at hand on the context page.

    `session` is set for a message bookmark too: deleting a session (sessions_delete removes its
    messages with raw SQL first) takes its bookmarks with it through the session's cascade.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="bookmarks")
    session = models.ForeignKey(
        "sessions_app.Session", on_delete=models.CASCADE, related_name="bookmarks", db_index=False
    )
    message = models.ForeignKey(
        "sessions_app.Message", on_delete=models.CASCADE, null=True, blank=True, related_name="+", db_index=False
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["user", "session", "message"], nulls_distinct=False, name="bookmark_user_session_message_uniq"
            ),
        ]
        indexes = [
            # the cascades from a deleted session or message
            models.Index(fields=["session"], name="bookmark_session_idx"),
            models.Index(fields=["message"], name="bookmark_message_idx"),
        ]

    def __str__(self) -> str:
        return f"bookmark of session {self.session_id}" + (f" message {self.message_id}" if self.message_id else "")


class EmbeddingLease(models.Model):
    """Who is embedding a session right now (search.embeddings.services.session_lock), so two
    workers never pay for the same vectors twice.

    A row with an expiry rather than a session-level advisory lock: behind PgBouncer in transaction
    pooling, a lock taken in one transaction may sit on a server connection the next transaction
    never sees (so it could neither be released nor seen by others). The holder renews it after
    each provider request; a holder that died leaves it to expire. No foreign key: a lease must not
    slow down or block deleting its session, and the holder deletes it when done.
    """

    session_id = models.BigIntegerField(primary_key=True)
    token = models.UUIDField()
    expires_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"embedding lease of session {self.session_id}"


class EmbeddingSpace(models.Model):
    """Which model the stored vectors come from: one row, `signature` = provider:model:dimensions.

    Vectors of two models can't be compared, so when the configured provider's signature differs
    the stored vectors are dropped (the columns resized if the dimensions differ) and the worker
    embeds every session again (search.embeddings.services.embedding_space_switch); until the
    first worker has switched, search falls back to full-text rather than compare a query of one
    model with vectors of another.
    """

    id = models.PositiveSmallIntegerField(primary_key=True, default=1, editable=False)
    signature = models.CharField(max_length=300)
    switched_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return self.signature
