"""Writes for sessions: the sync ingest.

One code path serves /sync/session, /sync/message and /sync/batch. Each request is one
transaction of a few set-based statements (arrays in, `unnest` out), whatever its size:

1. ensure + lock every session the request touches, in external-id order, with
   `INSERT ... ON CONFLICT DO UPDATE` (new sessions get their full values here);
2. patch the pre-existing sessions that the request carries session data for (only the fields
   present; 0 tokens never overwrite; cost overwrites; createdAt only on insert);
3. upsert the messages with `INSERT ... ON CONFLICT (session_id, external_id) DO UPDATE`,
   skipping rows whose last applied payload was identical (`sync_hash`), so a client re-sending
   a whole session rewrites nothing;
4. replace the parts of the (re)written messages that carried `parts`;
5. add the number of newly inserted messages to each session's message_count.

Step 1 locks the session rows first and in a fixed order, so concurrent requests for the same
session serialise there instead of deadlocking, and message_count stays exact.
"""

import secrets
from dataclasses import dataclass, field
from datetime import timedelta

import psycopg
from django.db import connection, transaction
from django.utils import timezone

from .models import MESSAGE_ORDER_SEQUENCE, Message, Part, Session
from .search_text import SEARCH_TEXT_SQL
from .wire import MessageInput, SessionInput

SESSION_TABLE = Session._meta.db_table
MESSAGE_TABLE = Message._meta.db_table
PART_TABLE = Part._meta.db_table


@dataclass
class SyncResult:
    session_ids: dict[str, int] = field(default_factory=dict)  # external id -> id
    message_ids: list[int] = field(default_factory=list)  # in input order
    sessions_written: int = 0
    messages_written: int = 0
    messages_inserted: int = 0


def _last_wins(items, key):
    """Drop earlier duplicates (same key) inside one request, keeping input order of the rest."""
    seen: dict = {}
    for item in items:
        seen.pop(key(item), None)
        seen[key(item)] = item
    return list(seen.values())


_ENSURE_SESSIONS_SQL = f"""
INSERT INTO {SESSION_TABLE} AS s (
    workspace_id, owner_id, external_id, title, project_path, project_name, model, provider, source,
    prompt_tokens, completion_tokens, cache_read_tokens, cache_write_tokens, cost, duration_ms,
    end_reason, message_count, is_public, created_at, updated_at)
SELECT %(workspace)b, %(owner)b, i.external_id, i.title, i.project_path, i.project_name, i.model,
       i.provider, COALESCE(i.source, 'opencode'), COALESCE(i.prompt_tokens, 0),
       COALESCE(i.completion_tokens, 0), COALESCE(i.cache_read_tokens, 0),
       COALESCE(i.cache_write_tokens, 0), i.cost, i.duration_ms, i.end_reason, 0, false,
       COALESCE(i.created_at, now()), now()
FROM unnest(%(external_id)b::text[], %(title)b::text[], %(project_path)b::text[],
            %(project_name)b::text[], %(model)b::text[], %(provider)b::text[], %(source)b::text[],
            %(prompt_tokens)b::bigint[], %(completion_tokens)b::bigint[],
            %(cache_read_tokens)b::bigint[], %(cache_write_tokens)b::bigint[], %(cost)b::numeric[],
            %(duration_ms)b::bigint[], %(end_reason)b::text[], %(created_at)b::timestamptz[])
     AS i(external_id, title, project_path, project_name, model, provider, source, prompt_tokens,
          completion_tokens, cache_read_tokens, cache_write_tokens, cost, duration_ms, end_reason,
          created_at)
ORDER BY i.external_id
ON CONFLICT (workspace_id, owner_id, external_id) DO UPDATE SET updated_at = now()
RETURNING s.id, s.external_id, (s.xmax = 0) AS inserted
"""

_PATCH_SESSIONS_SQL = f"""
UPDATE {SESSION_TABLE} AS s SET
    title = COALESCE(i.title, s.title),
    project_path = COALESCE(i.project_path, s.project_path),
    project_name = COALESCE(i.project_name, s.project_name),
    model = COALESCE(i.model, s.model),
    provider = COALESCE(i.provider, s.provider),
    source = COALESCE(i.source, s.source),
    prompt_tokens = CASE WHEN i.prompt_tokens > 0 THEN i.prompt_tokens ELSE s.prompt_tokens END,
    completion_tokens = CASE WHEN i.completion_tokens > 0 THEN i.completion_tokens ELSE s.completion_tokens END,
    cache_read_tokens = CASE WHEN i.cache_read_tokens > 0 THEN i.cache_read_tokens ELSE s.cache_read_tokens END,
    cache_write_tokens = CASE WHEN i.cache_write_tokens > 0 THEN i.cache_write_tokens ELSE s.cache_write_tokens END,
    cost = COALESCE(i.cost, s.cost),
    duration_ms = COALESCE(i.duration_ms, s.duration_ms),
    end_reason = COALESCE(i.end_reason, s.end_reason)
FROM unnest(%(id)b::bigint[], %(title)b::text[], %(project_path)b::text[], %(project_name)b::text[],
            %(model)b::text[], %(provider)b::text[], %(source)b::text[], %(prompt_tokens)b::bigint[],
            %(completion_tokens)b::bigint[], %(cache_read_tokens)b::bigint[],
            %(cache_write_tokens)b::bigint[], %(cost)b::numeric[], %(duration_ms)b::bigint[],
            %(end_reason)b::text[])
     AS i(id, title, project_path, project_name, model, provider, source, prompt_tokens,
          completion_tokens, cache_read_tokens, cache_write_tokens, cost, duration_ms, end_reason)
WHERE s.id = i.id
"""

_UPSERT_MESSAGES_SQL = f"""
INSERT INTO {MESSAGE_TABLE} AS m (
    session_id, external_id, role, text_content, model, prompt_tokens, completion_tokens,
    duration_ms, created_at, sync_hash, "order")
SELECT i.session_id, i.external_id, i.role, i.text_content, i.model, i.prompt_tokens,
       i.completion_tokens, i.duration_ms, COALESCE(i.created_at, now()), i.sync_hash,
       nextval('{MESSAGE_ORDER_SEQUENCE}')
FROM unnest(%(session_id)b::bigint[], %(external_id)b::text[], %(role)b::text[],
            %(text_content)b::text[], %(model)b::text[], %(prompt_tokens)b::bigint[],
            %(completion_tokens)b::bigint[], %(duration_ms)b::bigint[],
            %(created_at)b::timestamptz[], %(sync_hash)b::text[]) WITH ORDINALITY
     AS i(session_id, external_id, role, text_content, model, prompt_tokens, completion_tokens,
          duration_ms, created_at, sync_hash, ord)
ORDER BY i.ord
ON CONFLICT (session_id, external_id) DO UPDATE SET
    role = CASE WHEN EXCLUDED.role = 'unknown' THEN m.role ELSE EXCLUDED.role END,
    text_content = COALESCE(EXCLUDED.text_content, m.text_content),
    model = COALESCE(EXCLUDED.model, m.model),
    prompt_tokens = COALESCE(EXCLUDED.prompt_tokens, m.prompt_tokens),
    completion_tokens = COALESCE(EXCLUDED.completion_tokens, m.completion_tokens),
    duration_ms = COALESCE(EXCLUDED.duration_ms, m.duration_ms),
    sync_hash = EXCLUDED.sync_hash
WHERE m.sync_hash IS DISTINCT FROM EXCLUDED.sync_hash
RETURNING m.id, m.session_id, m.external_id, (m.xmax = 0) AS inserted
"""

# Ids of messages the upsert skipped because an identical payload was already applied.
_UNCHANGED_MESSAGES_SQL = f"""
SELECT m.id, m.session_id, m.external_id FROM {MESSAGE_TABLE} m
JOIN unnest(%(session_id)b::bigint[], %(external_id)b::text[]) AS i(session_id, external_id)
  ON m.session_id = i.session_id AND m.external_id = i.external_id
"""

_DELETE_PARTS_SQL = f"DELETE FROM {PART_TABLE} WHERE message_id = ANY(%(message_ids)b::bigint[])"

_INSERT_PARTS_SQL = f"""
INSERT INTO {PART_TABLE} (message_id, type, content, "order")
SELECT i.message_id, i.type, i.content::jsonb, i.ord
FROM unnest(%(message_id)b::bigint[], %(type)b::text[], %(content)b::text[], %(ord)b::int[])
     AS i(message_id, type, content, ord)
"""

_COUNT_MESSAGES_SQL = f"""
UPDATE {SESSION_TABLE} AS s SET message_count = s.message_count + i.added, updated_at = now()
FROM unnest(%(id)b::bigint[], %(added)b::int[]) AS i(id, added)
WHERE s.id = i.id
"""

_SEARCH_TEXT_UPDATE_SQL = f"""
UPDATE {MESSAGE_TABLE} AS m SET search_text = {SEARCH_TEXT_SQL}
WHERE m.id = ANY(%(ids)b::bigint[])
"""

_SESSION_COLUMNS = (
    "title", "project_path", "project_name", "model", "provider", "source", "prompt_tokens",
    "completion_tokens", "cache_read_tokens", "cache_write_tokens", "cost", "duration_ms", "end_reason",
)  # fmt: skip


def _cursor():
    """A plain psycopg cursor on Django's connection (inside Django's transaction).

    Django's default client-side binding would quote every array element into the SQL text; a
    server-side-bound cursor sends the arrays as parameters, which is markedly faster for the
    thousands of values a batch carries.
    """
    connection.ensure_connection()
    return psycopg.Cursor(connection.connection)


def sync(*, workspace_id: int, owner_id: int, sessions: list[SessionInput], messages: list[MessageInput]) -> SyncResult:
    """Upsert sessions and messages for one owner in one workspace (see the module docstring)."""
    sessions = _last_wins(sessions, key=lambda s: s.external_id)
    messages = _last_wins(messages, key=lambda m: (m.session_external_id, m.external_id))
    result = SyncResult()
    if not sessions and not messages:
        return result

    # Sessions to ensure: the ones sent, plus the ones messages point at (auto-created with the
    # message's model and source, as upstream does).
    ensure: dict[str, SessionInput] = {s.external_id: s for s in sessions}
    for message in messages:
        if message.session_external_id not in ensure:
            ensure[message.session_external_id] = SessionInput(
                external_id=message.session_external_id, model=message.model, source=message.source
            )
    rows = list(ensure.values())

    with transaction.atomic(), _cursor() as cursor:
        params = {"workspace": workspace_id, "owner": owner_id, "external_id": [r.external_id for r in rows]}
        for column in (*_SESSION_COLUMNS, "created_at"):
            params[column] = [getattr(r, column) for r in rows]
        cursor.execute(_ENSURE_SESSIONS_SQL, params)
        inserted_sessions = set()
        for session_id, external_id, inserted in cursor.fetchall():
            result.session_ids[external_id] = session_id
            if inserted:
                inserted_sessions.add(external_id)

        to_patch = [s for s in sessions if s.external_id not in inserted_sessions]
        if to_patch:
            params = {"id": [result.session_ids[s.external_id] for s in to_patch]}
            for column in _SESSION_COLUMNS:
                params[column] = [getattr(s, column) for s in to_patch]
            cursor.execute(_PATCH_SESSIONS_SQL, params)
        result.sessions_written = len(sessions)

        if messages:
            _upsert_messages(cursor, messages, result)

    # Embeddings for semantic search, computed by Celery once this commits (no-op without a provider).
    from search.tasks import schedule_embeddings  # search depends on sessions_app, not the reverse

    schedule_embeddings(result.session_ids.values())
    return result


def _upsert_messages(cursor, messages: list[MessageInput], result: SyncResult) -> None:
    session_ids = [result.session_ids[m.session_external_id] for m in messages]
    cursor.execute(
        _UPSERT_MESSAGES_SQL,
        {
            "session_id": session_ids,
            "external_id": [m.external_id for m in messages],
            "role": [m.role for m in messages],
            "text_content": [m.text_content for m in messages],
            "model": [m.model for m in messages],
            "prompt_tokens": [m.prompt_tokens for m in messages],
            "completion_tokens": [m.completion_tokens for m in messages],
            "duration_ms": [m.duration_ms for m in messages],
            "created_at": [m.created_at for m in messages],
            "sync_hash": [m.sync_hash() for m in messages],
        },
    )
    # key -> (id, written, inserted); rows absent here were identical re-sends (not rewritten).
    by_key: dict[tuple[int, str], tuple[int, bool, bool]] = {
        (session_id, external_id): (message_id, True, inserted)
        for message_id, session_id, external_id, inserted in cursor.fetchall()
    }
    if len(by_key) < len(messages):
        missing = [
            (s, m.external_id) for s, m in zip(session_ids, messages, strict=True) if (s, m.external_id) not in by_key
        ]
        cursor.execute(
            _UNCHANGED_MESSAGES_SQL, {"session_id": [k[0] for k in missing], "external_id": [k[1] for k in missing]}
        )
        for message_id, session_id, external_id in cursor.fetchall():
            by_key[(session_id, external_id)] = (message_id, False, False)
    added: dict[int, int] = {}
    replace_parts: list[int] = []
    part_rows: tuple[list, list, list, list] = ([], [], [], [])
    for message, session_id in zip(messages, session_ids, strict=True):
        message_id, written, inserted = by_key[(session_id, message.external_id)]
        result.message_ids.append(message_id)
        if inserted:
            added[session_id] = added.get(session_id, 0) + 1
        if written and message.parts is not None:
            if not inserted:
                replace_parts.append(message_id)
            for order, (part_type, content) in enumerate(message.parts):
                part_rows[0].append(message_id)
                part_rows[1].append(part_type)
                part_rows[2].append(content)
                part_rows[3].append(order)
    result.messages_written = len(messages)
    result.messages_inserted = sum(added.values())

    if replace_parts:
        cursor.execute(_DELETE_PARTS_SQL, {"message_ids": replace_parts})
    if part_rows[0]:
        cursor.execute(
            _INSERT_PARTS_SQL,
            {"message_id": part_rows[0], "type": part_rows[1], "content": part_rows[2], "ord": part_rows[3]},
        )
    if added:
        ids = sorted(added)
        cursor.execute(_COUNT_MESSAGES_SQL, {"id": ids, "added": [added[i] for i in ids]})
    rewritten = sorted(message_id for message_id, written, _ in by_key.values() if written)
    if rewritten:
        cursor.execute(_SEARCH_TEXT_UPDATE_SQL, {"ids": rewritten})


# --- dashboard writes -------------------------------------------------------------------------------

SHARE_SLUG_BYTES = 24  # 192 random bits; token_urlsafe gives 32 characters
SHARE_EXPIRY_CHOICES = {"": None, "1d": timedelta(days=1), "7d": timedelta(days=7), "30d": timedelta(days=30)}


def session_rename(*, session: Session, title: str) -> Session:
    session.title = title.strip() or None
    session.save(update_fields=["title"])
    return session


def session_share(*, session: Session, expires_in: timedelta | None) -> Session:
    """Make the session readable at /s/<slug>. Sharing an already shared session keeps its link
    and sets the new expiry; after "stop sharing" or an expiry a new link is minted, so a revoked
    (perhaps leaked) or expired link never comes back."""
    if not session.share_active:  # never shared, revoked or expired: a fresh link
        session.share_slug = secrets.token_urlsafe(SHARE_SLUG_BYTES)
    session.is_public = True
    session.share_expires_at = timezone.now() + expires_in if expires_in else None
    session.save(update_fields=["is_public", "share_slug", "share_expires_at"])
    return session


def session_unshare(*, session: Session) -> Session:
    session.is_public = False
    session.share_slug = None
    session.share_expires_at = None
    session.save(update_fields=["is_public", "share_slug", "share_expires_at"])
    return session


def sessions_delete(*, session_ids: list[int]) -> dict[str, int]:
    """Delete sessions with their messages and parts; returns how many rows of each went.

    Parts and messages go with two set-based statements (Django's cascade would first load the
    id of every message of a 10,000-message session); anything else that points at a session is
    left to the ORM's cascade. Used by the dashboard and by the "delete my data" job.
    """
    counts = {"sessions": 0, "messages": 0, "parts": 0}
    if not session_ids:
        return counts
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            f"DELETE FROM {PART_TABLE} p USING {MESSAGE_TABLE} m WHERE p.message_id = m.id AND m.session_id = ANY(%s)",
            [list(session_ids)],
        )
        counts["parts"] = cursor.rowcount
        cursor.execute(f"DELETE FROM {MESSAGE_TABLE} WHERE session_id = ANY(%s)", [list(session_ids)])
        counts["messages"] = cursor.rowcount
        _, per_model = Session.objects.filter(pk__in=session_ids).delete()
    counts["sessions"] = per_model.get(Session._meta.label, 0)
    return counts
