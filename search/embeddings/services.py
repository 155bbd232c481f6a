"""Writes for embeddings: bring one session's vectors up to date, switch the stored vectors to
the configured model (resizing the vector columns), find the sessions the backfill embeds."""

import datetime
import logging
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.db.models import DateTimeField, ExpressionWrapper, Q
from django.db.models.functions import Now
from pgvector.django import HnswIndex

from sessions_app.models import Message, Part, Session
from sessions_app.rendering import TEXT_TYPES, TOOL_CALL_TYPES

from ..models import EmbeddingLease, EmbeddingSpace, MessageChunkEmbedding, SessionEmbedding
from .providers import EmbeddingConfigError, EmbeddingProvider, EmbeddingSwitchPending
from .text import SessionText, chunk_text, message_text, text_hash

logger = logging.getLogger(__name__)

MESSAGE_PAGE = 500  # messages read per query while a session is embedded
# A lease on embedding a session (session_lock) lasts this long past its last renewal: longer than
# one provider request with its retries (OPENSYNC_EMBEDDINGS_TIMEOUT, 30 s, up to three tries).
LEASE_SECONDS = datetime.timedelta(minutes=5)
LEASE_POLL_SECONDS = 0.5  # how often a waiting holder (`manage.py embeddings`) tries again
EMBEDDING_MODELS = (MessageChunkEmbedding, SessionEmbedding)
UPDATE_FIELDS = ["text_hash", "embedding", "updated_at"]  # of a row that exists: its new vector
LOCK_TIMEOUT = "10s"  # how long a switch waits for the embedding tables before the next run tries


class SessionGone(Exception):
    """The session was deleted while it was being embedded."""


@dataclass
class EmbedStats:
    chunks_embedded: int = 0
    chunks_unchanged: int = 0
    chunks_deleted: int = 0
    session_embedded: bool = False
    requests: int = 0

    def add(self, other: "EmbedStats") -> None:
        self.chunks_embedded += other.chunks_embedded
        self.chunks_unchanged += other.chunks_unchanged
        self.chunks_deleted += other.chunks_deleted
        self.session_embedded |= other.session_embedded
        self.requests += other.requests


@dataclass
class _Chunk:
    message_id: int
    index: int
    text: str
    hash: str


# --- the vector columns ---------------------------------------------------------------------------

_column_dimensions: int | None = None


def vector_column_dimensions() -> int | None:
    """The dimensions the vector columns have in the database (None if they disagree, or the
    tables don't exist yet)."""
    global _column_dimensions
    if _column_dimensions is None:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT DISTINCT atttypmod FROM pg_attribute WHERE attname = 'embedding' "
                "AND attrelid IN (SELECT to_regclass(name) FROM unnest(%s::text[]) AS name)",
                [[model._meta.db_table for model in EMBEDDING_MODELS]],
            )
            found = {row[0] for row in cursor.fetchall()}
        if len(found) != 1:
            return None
        _column_dimensions = found.pop()
    return _column_dimensions


def check_dimensions(provider: EmbeddingProvider) -> None:
    global _column_dimensions
    columns = vector_column_dimensions()
    if columns != provider.dimensions:  # a worker may have resized them since this process looked
        _column_dimensions = None
        columns = vector_column_dimensions()
    if columns is None:
        raise EmbeddingConfigError("The embedding tables are missing or inconsistent: run `manage.py migrate`")
    if columns != provider.dimensions:
        raise EmbeddingConfigError(
            f"The vector columns have {columns} dimensions but {provider} is configured for {provider.dimensions} "
            f"(OPENSYNC_EMBEDDINGS_DIMENSIONS): a worker resizes them on its next run (or `manage.py embeddings --all "
            f"--rebuild`)"
        )


def vector_columns_resize(*, dimensions: int) -> None:
    """Empty both embedding tables and give their vector columns `dimensions`, rebuilding the
    HNSW indexes. Every workspace loses its vectors; they come back as sessions are re-embedded."""
    global _column_dimensions
    with connection.schema_editor() as editor:  # one transaction
        _truncate(editor.execute)
        for model in EMBEDDING_MODELS:
            index = next(index for index in model._meta.indexes if isinstance(index, HnswIndex))
            table = editor.quote_name(model._meta.db_table)
            editor.remove_index(model, index)
            editor.execute(f"ALTER TABLE {table} ALTER COLUMN embedding TYPE vector({int(dimensions)})")
            editor.add_index(model, index)
    _column_dimensions = None


def _truncate(execute) -> None:
    """Empty both embedding tables at once (TRUNCATE, not a DELETE of millions of rows), giving up
    after LOCK_TIMEOUT rather than queue every search and sync behind a lock it waits for: the
    next run tries again. ALTER and TRUNCATE refuse to run while deferred foreign-key checks of
    rows written earlier in the same transaction are pending (a caller's, or a test's): those run
    first."""
    execute("SET CONSTRAINTS ALL IMMEDIATE")
    execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
    tables = ", ".join(connection.ops.quote_name(model._meta.db_table) for model in EMBEDDING_MODELS)
    execute(f"TRUNCATE {tables}")


def provider_signature(provider: EmbeddingProvider) -> str:
    """What vectors must share to be compared: provider, model and dimensions."""
    return f"{provider.name}:{provider.model}:{provider.dimensions}"


def coverage_key(workspace_id: int, signature: str) -> str:
    """Where queries.vector_coverage keeps a workspace's counts (forgotten when a vector is written)."""
    return f"search:vector-coverage:{workspace_id}:{signature}"


def stored_signature() -> str:
    """The signature of the stored vectors ("" before any worker recorded one)."""
    return EmbeddingSpace.objects.filter(pk=1).values_list("signature", flat=True).first() or ""


def embedding_space_switch(provider: EmbeddingProvider) -> bool:
    """Make the stored vectors the configured provider's. When its signature differs from the
    stored one, every workspace's vectors are dropped (and the columns resized to its dimensions)
    so that none of another model is ever compared with its queries; the backfill
    (search.tasks.embeddings_backfill) then embeds every session again. The first time (a new
    install, or an upgrade from before signatures were kept) vectors of the right size are
    adopted. Returns True when vectors were dropped. Cheap when nothing changed: one read."""
    global _column_dimensions
    signature = provider_signature(provider)
    if stored_signature() == signature and vector_column_dimensions() == provider.dimensions:
        return False
    EmbeddingSpace.objects.get_or_create(pk=1, defaults={"signature": ""})
    with transaction.atomic():
        space = EmbeddingSpace.objects.select_for_update().get(pk=1)  # one switch at a time
        _column_dimensions = None  # another process may have resized them
        columns = vector_column_dimensions()
        if space.signature == signature and columns == provider.dimensions:
            return False  # another worker switched while this one waited
        dropped = False
        if columns != provider.dimensions:
            logger.warning(
                "Embeddings now come from %s: resizing the vector columns from %s to %s dimensions and "
                "dropping the old vectors; every session is embedded again in the background",
                signature,
                columns,
                provider.dimensions,
            )
            vector_columns_resize(dimensions=provider.dimensions)
            dropped = True
        elif space.signature and space.signature != signature:
            logger.warning(
                "Embeddings now come from %s, not %s: dropping the old vectors; every session is embedded "
                "again in the background",
                signature,
                space.signature,
            )
            with connection.cursor() as cursor:
                _truncate(cursor.execute)
            dropped = True
        space.signature = signature
        space.save()
    return dropped


def sessions_without_vectors(*, limit: int, exclude=()) -> list[int]:
    """Ids of sessions never embedded with the current vectors (no session row: a session with
    nothing to embed still gets one), most recently updated first, so the backfill brings back
    what people are working on before the archive."""
    return list(
        Session.objects.filter(embedding__isnull=True)
        .exclude(pk__in=list(exclude))
        .order_by("-updated_at", "-pk")
        .values_list("pk", flat=True)[:limit]
    )


def sessions_without_vectors_count() -> int:
    return Session.objects.filter(embedding__isnull=True).count()


# --- one session ---------------------------------------------------------------------------------


class Lease:
    """A held claim on embedding one session (an EmbeddingLease row, see its docstring)."""

    def __init__(self, session_id: int, token: uuid.UUID):
        self.session_id = session_id
        self.token = token

    def renew(self) -> None:
        """Push the expiry out again: called after each provider request, so only a holder that
        stopped working loses its lease."""
        # the database's clock, as _lease_take compares with: a worker's clock may be off
        renewed = EmbeddingLease.objects.filter(session_id=self.session_id, token=self.token).update(
            expires_at=ExpressionWrapper(Now() + LEASE_SECONDS, output_field=DateTimeField())
        )
        if not renewed:  # it expired and another worker took it: both pay for this session once
            logger.warning("The embedding lease of session %s was lost to another worker", self.session_id)


def _lease_take(session_id: int) -> Lease | None:
    """A new row, or else an expired one taken over: two single statements, each its own
    transaction in autocommit. (Not one INSERT ... ON CONFLICT DO UPDATE WHERE: that locks the row
    of a live lease even when its WHERE is false, until the caller's transaction ends.)"""
    token = uuid.uuid4()
    table = connection.ops.quote_name(EmbeddingLease._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (session_id, token, expires_at) VALUES (%s, %s, now() + %s) "
            f"ON CONFLICT (session_id) DO NOTHING RETURNING token",
            [session_id, token, LEASE_SECONDS],
        )
        taken = cursor.fetchone()
        if not taken:
            cursor.execute(
                f"UPDATE {table} SET token = %s, expires_at = now() + %s "
                f"WHERE session_id = %s AND expires_at < now() RETURNING token",
                [token, LEASE_SECONDS, session_id],
            )
            taken = cursor.fetchone()
    return Lease(session_id, token) if taken else None


@contextmanager
def session_lock(session_id: int, *, wait: bool) -> Iterator[Lease | None]:
    """Hold the lease on embedding one session for the block. Yields the Lease, or None when
    another holder has it (never None with `wait`, which polls until it is free or expired)."""
    lease = _lease_take(session_id)
    while lease is None and wait:
        time.sleep(LEASE_POLL_SECONDS)
        lease = _lease_take(session_id)
    try:
        yield lease
    finally:
        if lease is not None:
            try:
                EmbeddingLease.objects.filter(session_id=session_id, token=lease.token).delete()
            except DatabaseError:  # the database is gone: the lease expires by itself
                logger.warning("Could not release the embedding lease of session %s", session_id, exc_info=True)


def session_embed(
    *, session_id: int, provider: EmbeddingProvider, batch_size: int | None = None, lease: Lease | None = None
) -> EmbedStats | None:
    """Embed what is missing or stale for one session: chunks whose text hash changed, and the
    session vector. Unchanged text is never sent to the provider; chunks of text that went away
    are deleted. Vectors are saved after each request, so a run that fails part-way keeps what it
    paid for. The `lease` held on it (session_lock) is renewed after each request. Returns None when
    the session does not exist (any more)."""
    session = Session.objects.filter(pk=session_id).values("workspace_id", "title", "summary").first()
    if session is None:
        return None
    check_dimensions(provider)
    batch_size = batch_size or settings.OPENSYNC_EMBEDDINGS_BATCH_SIZE
    workspace_id = session["workspace_id"]
    stats = EmbedStats()
    existing = {
        (message_id, index): (pk, hash_)
        for pk, message_id, index, hash_ in MessageChunkEmbedding.objects.filter(session_id=session_id).values_list(
            "pk", "message_id", "chunk_index", "text_hash"
        )
    }
    current: set[tuple[int, int]] = set()
    pending: list[_Chunk] = []
    session_text = SessionText(title=session["title"], summary=session["summary"])
    try:
        for message_id, role, text in _message_texts(session_id):
            session_text.add(role, text)
            chunks = chunk_text(
                text,
                size=settings.OPENSYNC_EMBEDDINGS_CHUNK_CHARS,
                overlap=settings.OPENSYNC_EMBEDDINGS_CHUNK_OVERLAP,
                max_chunks=settings.OPENSYNC_EMBEDDINGS_MAX_CHUNKS,
            )
            for index, chunk in enumerate(chunks):
                current.add((message_id, index))
                hash_ = text_hash(chunk, model=provider.model, dimensions=provider.dimensions)
                if existing.get((message_id, index), (None, None))[1] == hash_:
                    stats.chunks_unchanged += 1
                    continue
                pending.append(_Chunk(message_id, index, chunk, hash_))
                if len(pending) >= batch_size:
                    _save_chunks(session_id, workspace_id, pending, provider, stats, lease)
                    pending = []
        if pending:
            _save_chunks(session_id, workspace_id, pending, provider, stats, lease)
        stale = [pk for key, (pk, _) in existing.items() if key not in current]
        if stale:
            stats.chunks_deleted, _ = MessageChunkEmbedding.objects.filter(pk__in=stale).delete()
        _save_session_vector(session_id, workspace_id, session_text.text(), provider, stats, lease)
    except SessionGone:
        return None
    return stats


def _message_texts(session_id: int) -> Iterator[tuple[int, str, str]]:
    """(message id, role, text to embed) of a session's messages in display order, read a page
    at a time (keyset on the viewer's index), loading only the parts that contribute text."""
    messages = (
        Message.objects.filter(session_id=session_id)
        .order_by("created_at", "order")
        .values_list("id", "role", "text_content", "created_at", "order")
    )
    after = None
    while True:
        page = messages
        if after is not None:
            page = page.filter(Q(created_at__gt=after[0]) | Q(created_at=after[0], order__gt=after[1]))
        rows = list(page[:MESSAGE_PAGE])
        if not rows:
            return
        ids = [row[0] for row in rows]
        parts: dict[int, list] = {}
        # every message's text parts: text.message_text keeps those whose words are not already in
        # its text content (sessions_app.message_text's rule)
        wanted = Q(type__in=(*TOOL_CALL_TYPES, *TEXT_TYPES))
        for message_id, type_, content in (
            Part.objects.filter(wanted, message_id__in=ids)
            .order_by("message_id", "order")
            .values_list("message_id", "type", "content")
        ):
            parts.setdefault(message_id, []).append((type_, content))
        for message_id, role, text_content, _, _ in rows:
            yield message_id, role, message_text(text_content, parts.get(message_id, ()))
        if len(rows) < MESSAGE_PAGE:
            return
        after = (rows[-1][3], rows[-1][4])


def _embed(provider: EmbeddingProvider, texts: list[str], stats: EmbedStats, lease: Lease | None) -> list:
    """One provider request, counted; the lease held on the session is renewed after it."""
    vectors = provider.embed(texts)
    stats.requests += 1
    if lease is not None:
        lease.renew()
    return vectors


def _save_chunks(session_id, workspace_id, chunks: list[_Chunk], provider, stats: EmbedStats, lease) -> None:
    vectors = _embed(provider, [chunk.text for chunk in chunks], stats, lease)
    rows = [
        MessageChunkEmbedding(
            workspace_id=workspace_id,
            session_id=session_id,
            message_id=chunk.message_id,
            chunk_index=chunk.index,
            text_hash=chunk.hash,
            embedding=vector,
        )
        for chunk, vector in zip(chunks, vectors, strict=True)
    ]
    _upsert(
        session_id,
        MessageChunkEmbedding,
        rows,
        unique_fields=["message", "chunk_index"],
        update_fields=UPDATE_FIELDS,
        signature=provider_signature(provider),
    )
    stats.chunks_embedded += len(rows)


def _save_session_vector(session_id, workspace_id, text: str, provider, stats: EmbedStats, lease) -> None:
    hash_ = text_hash(text, model=provider.model, dimensions=provider.dimensions)
    if SessionEmbedding.objects.filter(session_id=session_id, text_hash=hash_).exists():
        return
    signature = provider_signature(provider)
    # nothing to embed: a row without a vector still says the session was seen (coverage, backfill)
    [vector] = _embed(provider, [text], stats, lease) if text else [None]
    row = SessionEmbedding(workspace_id=workspace_id, session_id=session_id, text_hash=hash_, embedding=vector)
    _upsert(
        session_id,
        SessionEmbedding,
        [row],
        unique_fields=["session"],
        update_fields=UPDATE_FIELDS,
        signature=signature,
    )
    cache.delete(coverage_key(workspace_id, signature))  # counted again on the next search
    stats.session_embedded = True


def _upsert(session_id, model, rows, *, unique_fields, update_fields, signature: str) -> None:
    # A concurrent delete of the session (or of its messages) fails the deferred foreign keys at
    # commit; that is the "session gone" case, anything else is a real error.
    try:
        with transaction.atomic():
            # The stored vectors' signature, held (FOR SHARE) until this write commits: a switch
            # (FOR UPDATE) waits for it, and a writer still on the old model once the switch has
            # committed writes nothing, so two models' vectors never mix.
            with connection.cursor() as cursor:
                cursor.execute(
                    f"SELECT signature FROM {EmbeddingSpace._meta.db_table} WHERE id = 1 FOR SHARE"  # noqa: S608 - our table
                )
                stored = cursor.fetchone()
            if stored and stored[0] and stored[0] != signature:
                raise EmbeddingSwitchPending(f"the stored vectors are now {stored[0]}'s, not {signature}'s")
            model.objects.bulk_create(
                rows, update_conflicts=True, unique_fields=unique_fields, update_fields=update_fields
            )
    except IntegrityError:
        if not Session.objects.filter(pk=session_id).exists():
            raise SessionGone from None
        raise
