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
5. add the number of newly inserted messages to each session's message_count;
6. price the sessions (`sessions_price`: the cost engine, `pricing`), and bring the daily
   rollups up to date with what the request changed (`rollups.tracking`).

Step 1 locks the session rows first and in a fixed order, so concurrent requests for the same
session serialise there instead of deadlocking, and message_count stays exact.
"""

import json
import logging
import re
import secrets
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import psycopg
from django.core.exceptions import ValidationError
from django.db import OperationalError, connection, transaction
from django.utils import timezone

from accounts.models import Membership, Role, validate_timezone
from opensync import metrics
from opensync.jobs import job_claim, job_enqueue, job_fail, job_finish, job_retry, job_save_progress

from . import rollups
from .models import MESSAGE_ORDER_SEQUENCE, Message, Part, PriceOverride, RepricingJob, Session, Source
from .pricing import CostSource, PriceBook, SessionFacts, price_session
from .search_text import SEARCH_TEXT_SQL
from .selectors import price_book
from .wire import MessageInput, SessionInput

logger = logging.getLogger(__name__)

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
    prompt_tokens, completion_tokens, cache_read_tokens, cache_write_tokens, cache_write_5m_tokens,
    cache_write_1h_tokens, reasoning_tokens, model_usage, reported_cost, cost, duration_ms,
    end_reason, message_count, is_public, created_at, updated_at)
SELECT %(workspace)b, %(owner)b, i.external_id, i.title, i.project_path, i.project_name, i.model,
       i.provider, COALESCE(i.source, 'opencode'), COALESCE(i.prompt_tokens, 0),
       COALESCE(i.completion_tokens, 0), COALESCE(i.cache_read_tokens, 0),
       COALESCE(i.cache_write_tokens, 0), COALESCE(i.cache_write_5m_tokens, 0),
       COALESCE(i.cache_write_1h_tokens, 0), COALESCE(i.reasoning_tokens, 0), i.model_usage::jsonb,
       i.cost, i.cost, i.duration_ms, i.end_reason, 0, false, COALESCE(i.created_at, now()), now()
FROM unnest(%(external_id)b::text[], %(title)b::text[], %(project_path)b::text[],
            %(project_name)b::text[], %(model)b::text[], %(provider)b::text[], %(source)b::text[],
            %(prompt_tokens)b::bigint[], %(completion_tokens)b::bigint[],
            %(cache_read_tokens)b::bigint[], %(cache_write_tokens)b::bigint[],
            %(cache_write_5m_tokens)b::bigint[], %(cache_write_1h_tokens)b::bigint[],
            %(reasoning_tokens)b::bigint[], %(model_usage)b::text[], %(cost)b::numeric[],
            %(duration_ms)b::bigint[], %(end_reason)b::text[], %(created_at)b::timestamptz[])
     AS i(external_id, title, project_path, project_name, model, provider, source, prompt_tokens,
          completion_tokens, cache_read_tokens, cache_write_tokens, cache_write_5m_tokens,
          cache_write_1h_tokens, reasoning_tokens, model_usage, cost, duration_ms, end_reason,
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
    cache_write_5m_tokens = CASE WHEN i.cache_write_5m_tokens > 0 THEN i.cache_write_5m_tokens
                                 ELSE s.cache_write_5m_tokens END,
    cache_write_1h_tokens = CASE WHEN i.cache_write_1h_tokens > 0 THEN i.cache_write_1h_tokens
                                 ELSE s.cache_write_1h_tokens END,
    reasoning_tokens = CASE WHEN i.reasoning_tokens > 0 THEN i.reasoning_tokens ELSE s.reasoning_tokens END,
    model_usage = COALESCE(i.model_usage::jsonb, s.model_usage),
    reported_cost = COALESCE(i.cost, s.reported_cost),
    duration_ms = COALESCE(i.duration_ms, s.duration_ms),
    end_reason = COALESCE(i.end_reason, s.end_reason)
FROM unnest(%(id)b::bigint[], %(title)b::text[], %(project_path)b::text[], %(project_name)b::text[],
            %(model)b::text[], %(provider)b::text[], %(source)b::text[], %(prompt_tokens)b::bigint[],
            %(completion_tokens)b::bigint[], %(cache_read_tokens)b::bigint[],
            %(cache_write_tokens)b::bigint[], %(cache_write_5m_tokens)b::bigint[],
            %(cache_write_1h_tokens)b::bigint[], %(reasoning_tokens)b::bigint[],
            %(model_usage)b::text[], %(cost)b::numeric[], %(duration_ms)b::bigint[],
            %(end_reason)b::text[])
     AS i(id, title, project_path, project_name, model, provider, source, prompt_tokens,
          completion_tokens, cache_read_tokens, cache_write_tokens, cache_write_5m_tokens,
          cache_write_1h_tokens, reasoning_tokens, model_usage, cost, duration_ms, end_reason)
WHERE s.id = i.id
"""

_UPSERT_MESSAGES_SQL = f"""
INSERT INTO {MESSAGE_TABLE} AS m (
    session_id, external_id, role, text_content, model, prompt_tokens, completion_tokens,
    cache_read_tokens, cache_write_tokens, cache_write_5m_tokens, cache_write_1h_tokens,
    reasoning_tokens, duration_ms, created_at, sync_hash, "order")
SELECT i.session_id, i.external_id, i.role, i.text_content, i.model, i.prompt_tokens,
       i.completion_tokens, i.cache_read_tokens, i.cache_write_tokens, i.cache_write_5m_tokens,
       i.cache_write_1h_tokens, i.reasoning_tokens, i.duration_ms, COALESCE(i.created_at, now()),
       i.sync_hash, nextval('{MESSAGE_ORDER_SEQUENCE}')
FROM unnest(%(session_id)b::bigint[], %(external_id)b::text[], %(role)b::text[],
            %(text_content)b::text[], %(model)b::text[], %(prompt_tokens)b::bigint[],
            %(completion_tokens)b::bigint[], %(cache_read_tokens)b::bigint[],
            %(cache_write_tokens)b::bigint[], %(cache_write_5m_tokens)b::bigint[],
            %(cache_write_1h_tokens)b::bigint[], %(reasoning_tokens)b::bigint[],
            %(duration_ms)b::bigint[], %(created_at)b::timestamptz[], %(sync_hash)b::text[]) WITH ORDINALITY
     AS i(session_id, external_id, role, text_content, model, prompt_tokens, completion_tokens,
          cache_read_tokens, cache_write_tokens, cache_write_5m_tokens, cache_write_1h_tokens,
          reasoning_tokens, duration_ms, created_at, sync_hash, ord)
ORDER BY i.ord
ON CONFLICT (session_id, external_id) DO UPDATE SET
    role = CASE WHEN EXCLUDED.role = 'unknown' THEN m.role ELSE EXCLUDED.role END,
    text_content = COALESCE(EXCLUDED.text_content, m.text_content),
    model = COALESCE(EXCLUDED.model, m.model),
    prompt_tokens = COALESCE(EXCLUDED.prompt_tokens, m.prompt_tokens),
    completion_tokens = COALESCE(EXCLUDED.completion_tokens, m.completion_tokens),
    cache_read_tokens = COALESCE(EXCLUDED.cache_read_tokens, m.cache_read_tokens),
    cache_write_tokens = COALESCE(EXCLUDED.cache_write_tokens, m.cache_write_tokens),
    cache_write_5m_tokens = COALESCE(EXCLUDED.cache_write_5m_tokens, m.cache_write_5m_tokens),
    cache_write_1h_tokens = COALESCE(EXCLUDED.cache_write_1h_tokens, m.cache_write_1h_tokens),
    reasoning_tokens = COALESCE(EXCLUDED.reasoning_tokens, m.reasoning_tokens),
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
    "completion_tokens", "cache_read_tokens", "cache_write_tokens", "cache_write_5m_tokens",
    "cache_write_1h_tokens", "reasoning_tokens", "model_usage", "cost", "duration_ms", "end_reason",
)  # fmt: skip
_MESSAGE_USAGE_COLUMNS = (
    "prompt_tokens", "completion_tokens", "cache_read_tokens", "cache_write_tokens", "cache_write_5m_tokens",
    "cache_write_1h_tokens", "reasoning_tokens",
)  # fmt: skip


def _cursor():
    """A plain psycopg cursor on Django's connection (inside Django's transaction).

    Django's default client-side binding would quote every array element into the SQL text; a
    server-side-bound cursor sends the arrays as parameters, which is markedly faster for the
    thousands of values a batch carries.
    """
    connection.ensure_connection()
    return psycopg.Cursor(connection.connection)


def _metric_source(source: str | None) -> str:
    """The ingest metrics' label: the stored source (a missing one is stored as the field's
    default), or "other" for a source no plugin sends, since it comes from clients."""
    source = source or Session._meta.get_field("source").default
    return source if source in Source.values else "other"


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
        inserted_ids = [result.session_ids[external_id] for external_id in sorted(inserted_sessions)]
        to_patch = [s for s in sessions if s.external_id not in inserted_sessions]
        patched_ids = [result.session_ids[s.external_id] for s in to_patch]

        # The rollups follow: what the patched sessions contributed before; new sessions
        # contributed nothing; sessions that only gain messages need no "before" read.
        with rollups.tracking(patched_ids) as changes:
            changes.session_ids.extend(inserted_ids)
            if to_patch:
                params = {"id": patched_ids}
                for column in _SESSION_COLUMNS:
                    params[column] = [getattr(s, column) for s in to_patch]
                cursor.execute(_PATCH_SESSIONS_SQL, params)
            result.sessions_written = len(sessions)

            if messages:
                changes.messages_added.update(_upsert_messages(cursor, messages, result))
            # message tokens don't change a session's cost: only new or patched sessions are priced
            if inserted_ids or patched_ids:
                books = {workspace_id: _price_book(workspace_id)}
                sessions_price(cursor, sorted({*inserted_ids, *patched_ids}), books=books)

    # ingest rate by source (a message without one counts under its session's, as it is stored)
    sources = {s.external_id: s.source for s in rows}
    metrics.record_ingest(
        Counter(_metric_source(s.source) for s in sessions),
        Counter(_metric_source(m.source or sources.get(m.session_external_id)) for m in messages),
    )
    # Embeddings for semantic search, computed by Celery once this commits (no-op without a provider).
    from search.tasks import schedule_embeddings  # search depends on sessions_app, not the reverse

    schedule_embeddings(result.session_ids.values())
    return result


def _upsert_messages(cursor, messages: list[MessageInput], result: SyncResult) -> dict[int, int]:
    """Upsert the messages and their parts; returns the number of new messages per session."""
    session_ids = [result.session_ids[m.session_external_id] for m in messages]
    cursor.execute(
        _UPSERT_MESSAGES_SQL,
        {
            "session_id": session_ids,
            "external_id": [m.external_id for m in messages],
            "role": [m.role for m in messages],
            "text_content": [m.text_content for m in messages],
            "model": [m.model for m in messages],
            **{column: [getattr(m, column) for m in messages] for column in _MESSAGE_USAGE_COLUMNS},
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
    return added


# --- cost ----------------------------------------------------------------------------------------

_PRICE_FIELDS = (
    "source", "model", "provider", "created_at", "prompt_tokens", "completion_tokens", "cache_read_tokens",
    "cache_write_tokens", "cache_write_5m_tokens", "cache_write_1h_tokens", "reasoning_tokens", "model_usage",
    "reported_cost",
)  # fmt: skip
# What pricing writes, in the order of PricedSession's fields as stored (see _priced_row)
_PRICED_COLUMNS = (
    "usage_input_tokens", "usage_output_tokens", "usage_cache_read_tokens", "usage_cache_write_5m_tokens",
    "usage_cache_write_1h_tokens", "usage_reasoning_tokens", "subagent_tokens", "computed_cost", "subagent_cost",
    "cost", "cost_source", "cost_note", "price_model",
)  # fmt: skip
_PRICED_TYPES = {
    column: "numeric" if column.endswith("cost") else "bigint" if column.endswith("tokens") else "text"
    for column in _PRICED_COLUMNS
}
_SELECT_FOR_PRICING_SQL = (
    f"SELECT id, workspace_id, {', '.join(_PRICE_FIELDS)}, {', '.join(_PRICED_COLUMNS)} "
    f"FROM {SESSION_TABLE} WHERE id = ANY(%s) ORDER BY id"
)
_UPDATE_PRICES_SQL = f"""
UPDATE {SESSION_TABLE} AS s SET {", ".join(f"{c} = i.{c}" for c in _PRICED_COLUMNS)}, priced_at = now()
FROM unnest(%(id)s::bigint[], {", ".join(f"%({c})s::{_PRICED_TYPES[c]}[]" for c in _PRICED_COLUMNS)})
     AS i(id, {", ".join(_PRICED_COLUMNS)})
WHERE s.id = i.id
"""


def _priced_row(facts: SessionFacts, book: PriceBook) -> tuple:
    priced = price_session(facts, book)
    usage = priced.usage
    return (
        usage.input, usage.output, usage.cache_read, usage.cache_write_5m, usage.cache_write_1h, usage.reasoning,
        priced.subagent_usage.total, priced.computed_cost, priced.subagent_cost, priced.cost, priced.cost_source,
        priced.cost_note, priced.price_model,
    )  # fmt: skip


def sessions_price(cursor, session_ids: list[int], *, books: dict[int, PriceBook]) -> int:
    """Price these (locked) sessions with their workspace's price book; writes only the rows
    whose figures changed and returns how many did. Call inside rollups.tracking."""
    if not session_ids:
        return 0
    cursor.execute(_SELECT_FOR_PRICING_SQL, [session_ids])
    width = len(_PRICE_FIELDS)
    changed: list[tuple] = []
    for row in cursor.fetchall():
        session_id, workspace_id, fields, current = row[0], row[1], row[2 : 2 + width], tuple(row[2 + width :])
        facts = SessionFacts(*fields)
        if isinstance(facts.model_usage, str):  # jsonb read by a plain psycopg cursor is parsed; be safe
            facts = SessionFacts(*fields[:-2], json.loads(facts.model_usage), fields[-1])
        book = books.get(workspace_id)
        if book is None:
            book = books[workspace_id] = _price_book(workspace_id)
        new = _priced_row(facts, book)
        if new != current:
            changed.append((session_id, *new))
    if changed:
        params = {"id": [row[0] for row in changed]}
        for index, column in enumerate(_PRICED_COLUMNS, start=1):
            params[column] = [row[index] for row in changed]
        cursor.execute(_UPDATE_PRICES_SQL, params)
    return len(changed)


def _lock_sessions(cursor, session_ids) -> list[tuple[int, int]]:
    """Lock sessions in the order the sync does (by external id within a workspace and owner);
    (id, workspace id) of those that exist."""
    cursor.execute(
        f"SELECT id, workspace_id FROM {SESSION_TABLE} WHERE id = ANY(%s) "
        "ORDER BY workspace_id, owner_id, external_id FOR UPDATE",
        [list(session_ids)],
    )
    return cursor.fetchall()


@contextmanager
def sessions_changing(session_ids: list[int]):
    """Wrap a write of existing sessions made outside the sync (the admin's change form): the
    sessions are locked, re-priced after the write, and the rollups follow."""
    with transaction.atomic(), connection.cursor() as cursor:
        ids = [pk for pk, _ in _lock_sessions(cursor, session_ids)]
        with rollups.tracking(ids):
            yield
            sessions_price(cursor, ids, books={})


def sessions_added(session_ids: list[int]) -> None:
    """Price sessions just created outside the sync (test factories, fixtures) and add them to
    the rollups."""
    with transaction.atomic(), connection.cursor() as cursor:
        ids = [pk for pk, _ in _lock_sessions(cursor, session_ids)]
        with rollups.tracking([]) as changes:  # new: they contributed nothing before
            changes.session_ids.extend(ids)
            sessions_price(cursor, ids, books={})


# --- re-pricing ----------------------------------------------------------------------------------

REPRICE_BATCH = 1000  # sessions per transaction (their progress commits with them)
REPRICE_LOCK_TIMEOUT_MS = 200  # a batch that waits longer on a session row lets the sync go first
REPRICE_RETRIES = 20


def _scope_sql(job: RepricingJob) -> tuple[str, list]:
    """WHERE clause (over sessions `s`) of the sessions a job re-prices, and its parameters."""
    where: list[str] = ["s.id > %s"]
    params: list[object] = [job.last_id]
    if job.workspace_id is not None:
        where.append("s.workspace_id = %s")
        params.append(job.workspace_id)
    if job.pending_only:
        where.append("s.cost_source = %s")
        params.append(CostSource.PENDING)
    pattern = job.model_pattern.strip().lower()
    if pattern:
        if pattern.endswith("*"):
            op, value = "LIKE", re.sub(r"([%_\\])", r"\\\1", pattern[:-1]) + "%"
        else:
            op, value = "=", pattern
        where.append(
            f"(lower(btrim(s.model)) {op} %s OR EXISTS (SELECT 1 FROM jsonb_array_elements("
            f"CASE WHEN jsonb_typeof(s.model_usage) = 'array' THEN s.model_usage ELSE '[]' END) e "
            f"WHERE lower(btrim(e->>'model')) {op} %s))"
        )
        params += [value, value]
    return " AND ".join(where), params


def repricing_job_start(*, workspace=None, model_pattern: str = "", reason: str = "", user=None,
                        pending_only: bool = False) -> RepricingJob:  # fmt: skip
    """Queue the re-pricing of a workspace's sessions (every workspace's when None), only those
    of the models matching `model_pattern` when given. The Celery worker runs it after commit."""
    job = RepricingJob.objects.create(
        workspace=workspace,
        model_pattern=model_pattern,
        pending_only=pending_only,
        reason=reason[:300],
        created_by=user,
    )
    job_enqueue(job)
    return job


def _reprice_batch(job: RepricingJob, batch_size: int, books: dict) -> int:
    """One transaction: lock the next sessions in scope, price them, move the rollups and the
    job's progress. Returns how many sessions it took (0: done)."""
    where, params = _scope_sql(job)
    with transaction.atomic(), _cursor() as cursor:
        cursor.execute(f"SET LOCAL lock_timeout = '{REPRICE_LOCK_TIMEOUT_MS}ms'")
        cursor.execute(
            f"SELECT s.id, s.workspace_id FROM {SESSION_TABLE} s WHERE {where} ORDER BY s.id LIMIT %s FOR UPDATE",
            [*params, batch_size],
        )
        found = cursor.fetchall()
        if not found:
            return 0
        ids = [pk for pk, _ in found]
        with rollups.tracking(ids):
            changed = sessions_price(cursor, ids, books=books)
        job.last_id, job.processed, job.changed = ids[-1], job.processed + len(ids), job.changed + changed
        job_save_progress(job, last_id=job.last_id, processed=job.processed, changed=job.changed)
    return len(ids)


def repricing_job_run(*, job_id: int, batch_size: int = REPRICE_BATCH, on_progress=None) -> RepricingJob | None:
    """Run a queued (or interrupted) job to the end, batch after batch. Idempotent: pricing a
    session again gives the same figures, and a job resumes after its last committed batch."""
    job = job_claim(RepricingJob, job_id)
    if job is None:
        return None
    try:
        if not job.total:
            where, params = _scope_sql(job)
            with connection.cursor() as cursor:
                cursor.execute(f"SELECT count(*) FROM {SESSION_TABLE} s WHERE {where}", params)
                job.total = job.processed + cursor.fetchone()[0]
            job_save_progress(job, total=job.total)
        retries = 0
        while True:
            try:
                # each batch reads the price book afresh: a price changed mid-job applies from then on
                taken = _reprice_batch(job, batch_size, {})
            except (OperationalError, psycopg.OperationalError) as exc:  # lock_timeout, deadlock: a sync had the rows
                retries += 1
                if retries > REPRICE_RETRIES:
                    raise
                logger.info("Re-pricing job %s waits for busy sessions (%s)", job.pk, exc)
                time.sleep(min(2.0, 0.05 * retries))
                continue
            retries = 0
            if not taken:
                break
            if on_progress is not None:
                on_progress(job)
        job.total = max(job.total, job.processed)
        job_finish(job, total=job.total)
    except Exception as exc:
        logger.exception("Re-pricing job %s failed", job.pk)
        job_fail(job, error=f"Re-pricing stopped ({type(exc).__name__}); run it again to resume where it stopped.")
        job.refresh_from_db()
    return job


def repricing_job_resume(*, job: RepricingJob) -> bool:
    """A failed (or stuck) job runs again from its last committed batch. Returns whether queued."""
    return job_retry(job)


# --- prices, time zone and budget (workspace admins; staff in the admin) ----------------------------


class PriceError(ValueError):
    """A change that can't be made; the message is for the person who made it."""


def _require_workspace_admin(actor, workspace) -> None:
    if not Membership.objects.filter(user=actor, workspace=workspace, role=Role.ADMIN).exists():
        raise PriceError("Only the workspace's admins can change its prices, time zone and budget.")


def _reprice_after(override_patterns, *, workspace, actor, reason: str) -> list[RepricingJob]:
    patterns = sorted({pattern.strip() for pattern in override_patterns if pattern and pattern.strip()})
    return [
        repricing_job_start(workspace=workspace, model_pattern=pattern, reason=reason, user=actor)
        for pattern in patterns
    ]


PRICE_LOCK_CLASS = 0x0506  # pg_advisory_xact_lock(PRICE_LOCK_CLASS, workspace id or 0 for instance-wide)


def _lock_prices(workspace_id: int | None, *, shared: bool) -> None:
    """A price change holds its scope's lock exclusively until it commits, and whoever prices
    sessions holds both its workspace's and the instance-wide one shared while it does: so a
    sync never prices with a book that a committed change (and its re-pricing job) has already
    replaced."""
    with connection.cursor() as cursor:
        if shared:  # one statement (a sync takes these on every priced write)
            cursor.execute(
                "SELECT pg_advisory_xact_lock_shared(%s, 0), pg_advisory_xact_lock_shared(%s, %s)",
                [PRICE_LOCK_CLASS, PRICE_LOCK_CLASS, workspace_id or 0],
            )
        else:
            cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [PRICE_LOCK_CLASS, workspace_id or 0])


def _price_book(workspace_id: int) -> PriceBook:
    """The workspace's price book, read under the shared price locks (call inside a transaction)."""
    _lock_prices(workspace_id, shared=True)
    return price_book(workspace_id)


def _require_price_admin(actor, workspace) -> None:
    """Workspace admins set their workspace's prices; staff (the Django admin) any workspace's
    and the instance-wide ones (`workspace` None)."""
    if getattr(actor, "is_staff", False):
        return
    if workspace is None:
        raise PriceError("Only staff can change instance-wide prices.")
    _require_workspace_admin(actor, workspace)


def price_override_clashes(*, workspace, model_pattern: str, effective_from, exclude_pk=None) -> bool:
    """Whether the model already has a price from that moment (in that workspace, or instance-wide)."""
    return (
        PriceOverride.objects.filter(
            workspace=workspace, model_pattern__iexact=model_pattern.strip(), effective_from=effective_from
        )
        .exclude(pk=exclude_pk)
        .exists()
    )


@transaction.atomic
def price_override_save(
    *, actor, workspace, override: PriceOverride, old_pattern: str | None = None
) -> list[RepricingJob]:
    """Create or change a workspace's price override (`workspace` None: instance-wide, staff only)
    and re-price the sessions it affects (both models' when the model changed) in the background."""
    _require_price_admin(actor, workspace)
    override.model_pattern = override.model_pattern.strip()
    override.workspace = workspace
    override.updated_at = timezone.now()
    if override.pk is None:
        override.created_by = actor
    try:
        override.full_clean(exclude=["workspace", "created_by"], validate_unique=False, validate_constraints=False)
    except ValidationError as exc:
        raise PriceError(" ".join(exc.messages)) from None
    _lock_prices(workspace.pk if workspace else None, shared=False)
    if price_override_clashes(
        workspace=workspace,
        model_pattern=override.model_pattern,
        effective_from=override.effective_from,
        exclude_pk=override.pk,
    ):
        raise PriceError("This model already has a price from that date; change that one instead.")
    override.save()
    verb = "changed" if old_pattern is not None else "added"
    return _reprice_after(
        [override.model_pattern, old_pattern or ""],
        workspace=workspace,
        actor=actor,
        reason=f"Price for {override.model_pattern} {verb}",
    )


@transaction.atomic
def price_override_delete(*, actor, override: PriceOverride) -> list[RepricingJob]:
    _require_price_admin(actor, override.workspace)
    pattern, workspace = override.model_pattern, override.workspace
    _lock_prices(override.workspace_id, shared=False)
    override.delete()
    return _reprice_after([pattern], workspace=workspace, actor=actor, reason=f"Price for {pattern} removed")


@transaction.atomic
def workspace_analytics_settings(*, actor, workspace, timezone_name: str, monthly_budget) -> bool:
    """Set a workspace's time zone and monthly budget. A new time zone moves day boundaries, so
    the rollups are rebuilt in the background. Returns whether they will be."""
    _require_workspace_admin(actor, workspace)
    try:
        validate_timezone(timezone_name)
    except ValidationError as e:
        raise PriceError(e.messages[0]) from None
    if monthly_budget is not None and monthly_budget < 0:
        raise PriceError("The budget can't be negative.")
    moved = timezone_name != workspace.timezone
    workspace.timezone, workspace.monthly_budget = timezone_name, monthly_budget
    workspace.save(update_fields=["timezone", "monthly_budget"])
    if moved:
        rollups_rebuild_later(workspace.pk)
    return moved


def rollups_rebuild_later(workspace_id: int) -> None:
    """After the transaction commits, rebuild a workspace's rollups in the background (here if
    the queue is unreachable)."""
    transaction.on_commit(lambda: _send_rollups_rebuild(workspace_id))


def _send_rollups_rebuild(workspace_id: int) -> None:
    from . import tasks  # tasks imports this module (its tasks call these services)

    try:
        tasks.rollups_rebuild_task.delay(workspace_id)
    except Exception:
        logger.exception("Could not queue the rollup rebuild of workspace %s; rebuilding now", workspace_id)
        rollups.rebuild(workspace_id)


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


# Sessions per UPDATE: each batch is one short statement on the busy sessions table.
SHARE_PRUNE_BATCH = 5000


def sessions_unshare_expired(*, now: datetime | None = None) -> int:
    """Turn off public links whose expiry has passed; returns how many were turned off.

    Such a link is already a 404 (views.public.shared checks the expiry); this drops its slug as
    "stop sharing" does, so it can never come back, but keeps share_expires_at: the session page
    goes on saying when the last link expired. Set-based, in batches; the WHERE is checked again
    on each row, so a session shared anew meanwhile keeps its new link and two runs at once never
    count one session twice. Running again turns off nothing more.
    """
    expired = Session.objects.filter(is_public=True, share_expires_at__lte=now or timezone.now())
    removed = 0
    while True:
        batch = expired.order_by("share_expires_at").values("pk")[:SHARE_PRUNE_BATCH]
        updated = expired.filter(pk__in=batch).update(is_public=False, share_slug=None)
        if not updated:
            break
        removed += updated
    logger.info("expired shares prune: turned off %s public links", removed)
    return removed


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
        found = _lock_sessions(cursor, session_ids)
        session_ids = [pk for pk, _ in found]
        # their share of the rollups goes with them
        with rollups.tracking(session_ids):
            cursor.execute(
                f"DELETE FROM {PART_TABLE} p USING {MESSAGE_TABLE} m "
                "WHERE p.message_id = m.id AND m.session_id = ANY(%s)",
                [session_ids],
            )
            counts["parts"] = cursor.rowcount
            cursor.execute(f"DELETE FROM {MESSAGE_TABLE} WHERE session_id = ANY(%s)", [session_ids])
            counts["messages"] = cursor.rowcount
            _, per_model = Session.objects.filter(pk__in=session_ids).delete()
    counts["sessions"] = per_model.get(Session._meta.label, 0)
    return counts
