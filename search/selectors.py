"""Search over a workspace's sessions: full-text, semantic and hybrid.

Full-text matches messages (their `search_text`: text, tool names and arguments, tool results;
see sessions_app.search_text.SEARCH_TEXT_SQL) and session titles:

* the query is read with `websearch_to_tsquery` (quotes for phrases, `OR`, `-` to exclude) twice,
  with the stemmed `english` configuration for prose and the unstemmed `simple` one for
  identifiers, against a `tsvector` holding both;
* a query of one token that looks like code (a path, a dotted or snake/camel-case name, an
  upper-case error code) also matches as the phrase of its parts split at punctuation, which
  the index holds too, so `models.py` finds `/home/dev/src/app/models.py`;
* a session's score is its best message's `ts_rank_cd` plus twice its title's, and the result
  says which message matched, with a highlighted snippet.

Semantic search ranks sessions by embedding similarity (search.embeddings), and says which
message matched too: the one whose chunk is nearest to the query, with the start of that chunk
as a plain snippet (there are no words to highlight). Hybrid fuses the two rankings with
reciprocal rank fusion (`fuse`); a session found by both shows its full-text message. With
embeddings turned off (OPENSYNC_EMBEDDINGS_PROVIDER=none) or failing, semantic and hybrid fall
back to full-text and say so in `SearchResult.notice`, which also says when some of the
workspace's sessions have no vectors yet (so a semantic search may miss them).
"""

import functools
import logging
import re
from dataclasses import dataclass, field

from django.conf import settings
from django.db import connection, transaction
from django.utils.html import escape

from sessions_app.models import CODE_SEPARATORS, Message, Session
from sessions_app.selectors import SessionFilters, filter_sessions

from . import embeddings
from .embeddings import EmbeddingError, EmbeddingSwitchPending
from .embeddings.text import chunk_at, prefix_chars

logger = logging.getLogger(__name__)

FULLTEXT, SEMANTIC, HYBRID = "fulltext", "semantic", "hybrid"
MODES = (FULLTEXT, SEMANTIC, HYBRID)
MAX_QUERY_CHARS = 500
MAX_LIMIT = 100
NO_PROVIDER_NOTICE = (
    "Semantic search is turned off on this server (OPENSYNC_EMBEDDINGS_PROVIDER=none); "
    "showing full-text results instead."
)
SWITCH_PENDING_NOTICE = (
    "The embeddings model changed and the stored vectors are being replaced; showing full-text results "
    "until the worker has started re-embedding."
)

# ts_headline wraps matches in these; the snippet is escaped, then they become <mark>s.
_START, _STOP = "\u27e6", "\u27e7"
HEADLINE_OPTIONS = (
    f'StartSel={_START}, StopSel={_STOP}, MaxWords=35, MinWords=12, MaxFragments=2, FragmentDelimiter=" … "'
)
_CODE_LIKE = re.compile(r"^\S{3,}$")
_CODE_HINTS = re.compile(r"[./\\_:\-()\[\]]|[a-z][A-Z]|^[A-Z0-9_]{4,}$|\d")


@dataclass
class SessionHit:
    session: Session
    score: float
    message_id: int | None = None
    snippet: str = ""  # escaped HTML with <mark>…</mark> around the matches
    matched_by: tuple[str, ...] = ()


@dataclass
class SearchResult:
    hits: list[SessionHit]
    mode: str  # the mode actually used
    notice: str | None = None
    requested_mode: str = FULLTEXT
    extra: dict = field(default_factory=dict)


def is_code_like(query: str) -> bool:
    """One token with the marks of code: a path, a dotted or snake/camel-case name, an error code."""
    query = query.strip()
    return bool(_CODE_LIKE.match(query)) and bool(_CODE_HINTS.search(query)) and not query.startswith(("-", '"'))


_FLAG = re.compile(r"(?<!\S)(?:-[A-Za-z0-9]|--[A-Za-z0-9][\w-]*)(?!\S)")


def unflag(query: str) -> str:
    """Command-line flags in a pasted command (`kubectl logs -n prod`, `pytest --lf`) are words
    to find, not websearch exclusions: drop their dashes. `-word` (two letters or more, one dash)
    still excludes."""
    return _FLAG.sub(lambda m: m.group(0).lstrip("-"), query)


def tsquery(query: str) -> tuple[str, list]:
    """SQL (and its parameters) of the tsquery for `query`: websearch syntax read stemmed and
    unstemmed, plus, for code-like queries, the query split at punctuation as a phrase (matching
    the split-code part of Message.search_vector)."""
    sql = "(websearch_to_tsquery('english', %s) || websearch_to_tsquery('simple', %s)"
    words = unflag(query)
    params: list = [words, words]
    if is_code_like(query):
        sql += " || phraseto_tsquery('simple', regexp_replace(%s, %s, ' ', 'g'))"
        params += [query.strip(), CODE_SEPARATORS]
    return sql + ")", params


# A broad query can match a tenth of all messages; ranking every match costs time in
# proportion to the data. Only the newest RANKED_MATCHES matching messages are ranked (titles
# always are), so a query that matches everything still answers at once, from recent work.
RANKED_MATCHES = 5_000


def fulltext_ranking(workspace, query: str, *, limit: int, offset: int = 0, filters: SessionFilters | None = None):
    """[(session_id, best message id or None, score)] best first, for one page."""
    sessions = filter_sessions(Session.objects.filter(workspace=workspace), filters or SessionFilters())
    scope_sql, scope_params = sessions.values("id").query.sql_with_params()
    query_sql, query_params = tsquery(query)
    sql = f"""
        WITH q AS (SELECT {query_sql} AS query),
        matches AS MATERIALIZED (
            SELECT m.id, m.session_id, m.search_vector
            FROM {Message._meta.db_table} m, q
            WHERE m.session_id IN ({scope_sql}) AND m.search_vector @@ q.query
            ORDER BY m.id DESC
            LIMIT {RANKED_MATCHES}
        ),
        msg AS (
            SELECT DISTINCT ON (m.session_id) m.session_id, m.id AS message_id,
                   ts_rank_cd(m.search_vector, q.query) AS rank
            FROM matches m, q
            ORDER BY m.session_id, rank DESC, m.id
        ),
        ttl AS (
            SELECT s.id AS session_id, 2 * ts_rank_cd(s.title_vector, q.query) AS rank
            FROM {Session._meta.db_table} s, q
            WHERE s.id IN ({scope_sql}) AND s.title_vector @@ q.query
        )
        SELECT coalesce(msg.session_id, ttl.session_id) AS session_id, msg.message_id,
               coalesce(msg.rank, 0) + coalesce(ttl.rank, 0) AS score
        FROM msg FULL OUTER JOIN ttl ON ttl.session_id = msg.session_id
        ORDER BY score DESC, session_id DESC
        LIMIT %s OFFSET %s
    """
    with transaction.atomic(), connection.cursor() as cursor:
        # Enough memory that a broad query's bitmap stays exact and its sort stays in memory.
        cursor.execute("SET LOCAL work_mem = '64MB'")
        cursor.execute(sql, [*query_params, *scope_params, *scope_params, limit, offset])
        return [(session_id, message_id, float(score)) for session_id, message_id, score in cursor.fetchall()]


def snippets(query: str, message_ids: list[int]) -> dict[int, str]:
    """Highlighted excerpts of the matching messages, as safe HTML."""
    if not message_ids:
        return {}
    query_sql, query_params = tsquery(query)
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT m.id, ts_headline('english', m.search_text, {query_sql}, %s), m.search_text
            FROM {Message._meta.db_table} m WHERE m.id = ANY(%s)
            """,
            [*query_params, HEADLINE_OPTIONS, message_ids],
        )
        rows = cursor.fetchall()
    out = {}
    for message_id, headline, text in rows:
        if _START not in (headline or "") and is_code_like(query):
            # matched through the split-code phrase: show where the text contains it
            headline = _substring_excerpt(text or "", query.strip())
        out[message_id] = mark(headline or "")
    return out


def _substring_excerpt(text: str, needle: str, width: int = 110) -> str:
    at = text.lower().find(needle.lower())
    if at < 0:
        return text[: 2 * width]
    start, end = max(0, at - width), min(len(text), at + len(needle) + width)
    excerpt = text[start:at] + _START + text[at : at + len(needle)] + _STOP + text[at + len(needle) : end]
    return ("… " if start else "") + excerpt + (" …" if end < len(text) else "")


def mark(text: str) -> str:
    """Escape untrusted text, then turn the sentinel pairs into <mark> tags."""
    return str(escape(" ".join(text.split()))).replace(_START, "<mark>").replace(_STOP, "</mark>")


def title_snippets(query: str, titles: dict[int, str | None]) -> dict[int, str]:
    """Highlighted titles of sessions matched without a message (title or semantic hits)."""
    if not titles:
        return {}
    query_sql, query_params = tsquery(query)
    ids, texts = list(titles), [titles[session_id] or "" for session_id in titles]
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT t.id, ts_headline('english', t.title, {query_sql}, %s) "
            "FROM unnest(%s::bigint[], %s::text[]) AS t(id, title)",
            [*query_params, f"StartSel={_START}, StopSel={_STOP}, HighlightAll=true", ids, texts],
        )
        return {session_id: mark(headline or "") for session_id, headline in cursor.fetchall()}


def fulltext_search(workspace, query: str, *, limit: int = 20, offset: int = 0, filters=None) -> list[SessionHit]:
    ranking = fulltext_ranking(workspace, query, limit=limit, offset=offset, filters=filters)
    return _hits(query, ranking, FULLTEXT)


SNIPPET_CHARS = 240  # of a semantic hit's plain snippet


def _hits(query: str, ranking, matched_by: str, chunks: dict[int, int] | None = None) -> list[SessionHit]:
    """SessionHits for [(session id, message id or None, score)]. A message in `chunks` (message
    id -> chunk index) matched by meaning and gets the start of that chunk as its snippet; other
    messages matched words and get them highlighted; a hit without a message, its title."""
    chunks = chunks or {}
    sessions = _sessions({s: (m, chunks[m]) for s, m, _ in ranking if m in chunks}, [s for s, _, _ in ranking])
    excerpts = snippets(query, [message_id for _, message_id, _ in ranking if message_id and message_id not in chunks])
    titled = title_snippets(
        query, {s: sessions[s].title for s, message_id, _ in ranking if not message_id and s in sessions}
    )
    hits = []
    for session_id, message_id, score in ranking:
        session = sessions.get(session_id)
        if session is None:  # deleted meanwhile
            continue
        if message_id in chunks:
            snippet = plain_snippet(session.chunk_text or "", chunks[message_id])
        else:
            snippet = excerpts.get(message_id, "") if message_id else titled.get(session_id, "")
        hits.append(SessionHit(session, score, message_id, snippet, (matched_by,)))
    return hits


def _sessions(matched: dict[int, tuple[int, int]], session_ids: list[int]) -> dict[int, Session]:
    """The sessions by id, in one statement. Those in `matched` (session id -> (message id, chunk
    index), the messages matched by meaning) also carry `chunk_text`: the start of that message's
    text, long enough to hold the start of the chunk (see `chunk_at`). The embedded text starts
    with the text content, or with the text parts when there is none, as search_text does (which
    then holds the tool calls, as the chunks do). No ORDER BY (the ranking gives the order) and no
    title tsvector (nothing reads it)."""
    size = settings.OPENSYNC_EMBEDDINGS_CHUNK_CHARS
    message_ids = [matched[s][0] if s in matched else None for s in session_ids]
    lengths = [
        prefix_chars(matched[s][1], size=size, extra=2 * SNIPPET_CHARS) if s in matched else 0 for s in session_ids
    ]
    rows = Session.objects.raw(_SESSIONS_SQL.format(columns=_session_columns()), [session_ids, message_ids, lengths])
    return {session.pk: session for session in rows}


# substr, not left: it reads only the start of a long (compressed, out-of-line) text
_SESSIONS_SQL = f"""
SELECT {{columns}},
       CASE WHEN btrim(substr(m.text_content, 1, t.length), E' \\t\\r\\n') <> ''
            THEN substr(m.text_content, 1, t.length) ELSE substr(m.search_text, 1, t.length) END AS chunk_text
FROM unnest(%s::bigint[], %s::bigint[], %s::int[]) AS t(session_id, message_id, length)
JOIN {Session._meta.db_table} s ON s.id = t.session_id
LEFT JOIN {Message._meta.db_table} m ON m.id = t.message_id AND m.session_id = s.id
"""


@functools.cache
def _session_columns() -> str:
    return ", ".join(f's."{field.column}"' for field in Session._meta.concrete_fields if field.name != "title_vector")


def plain_snippet(text: str, chunk_index: int) -> str:
    """The start of chunk `chunk_index` of `text`, escaped, about SNIPPET_CHARS long."""
    chunk = chunk_at(
        text,
        chunk_index,
        size=settings.OPENSYNC_EMBEDDINGS_CHUNK_CHARS,
        overlap=settings.OPENSYNC_EMBEDDINGS_CHUNK_OVERLAP,
    )
    words = " ".join(chunk[: 2 * SNIPPET_CHARS].split())
    if len(words) > SNIPPET_CHARS:
        cut = words.rfind(" ", SNIPPET_CHARS // 2, SNIPPET_CHARS)
        words = words[: cut if cut > 0 else SNIPPET_CHARS] + " …"
    elif len(chunk) >= 2 * SNIPPET_CHARS:
        words += " …"
    return str(escape(("… " if chunk_index else "") + words))


# --- semantic and hybrid --------------------------------------------------------------------------


def _embeddings():
    """The embeddings module, or None where semantic search can't run (no provider configured)."""
    return embeddings if embeddings.semantic_search_available() else None


def provider_failed_notice(error: Exception) -> str:
    if isinstance(error, EmbeddingSwitchPending):
        return SWITCH_PENDING_NOTICE
    return (
        f"Semantic search is unavailable right now ({type(error).__name__}); showing full-text results instead. "
        "Try again in a moment."
    )


def incomplete_vectors_notice(workspace) -> str | None:
    """Says plainly that semantic search may miss sessions while some have no vectors yet."""
    embedded, total = embeddings.vector_coverage(workspace.pk)
    if embedded >= total:
        return None
    return (
        f"Semantic search is still indexing: {embedded:,} of {total:,} sessions have vectors so far, so it may "
        "miss the others (full-text search covers them all)."
    )


def semantic_available() -> bool:
    return _embeddings() is not None


def semantic_ranking(workspace, query: str, *, limit: int, offset: int = 0, filters=None):
    """[SessionMatch(session_id, score, message_id, chunk_index)] best first, for one page."""
    embeddings = _embeddings()
    if embeddings is None:
        return []
    within = None
    if filters and filters != SessionFilters():
        # filtered inside the vector scans, so a filtered page is as full as an unfiltered one
        within = filter_sessions(Session.objects.filter(workspace=workspace), filters).values("pk")
    return embeddings.semantic_session_matches(workspace.pk, query, limit, offset=offset, within=within)


def fuse(rankings: dict[str, list[int]], *, k: int, weights: dict[str, float]) -> list[tuple[int, float]]:
    """Reciprocal rank fusion: score(d) = Σ over rankings r of weight_r / (k + rank_r(d)), ranks
    counted from 1; a document missing from a ranking gets nothing from it. Ties keep the order
    of first appearance (full-text before semantic)."""
    scores: dict[int, float] = {}
    for name, ids in rankings.items():
        weight = weights.get(name, 1.0)
        for rank, doc in enumerate(ids, start=1):
            scores[doc] = scores.get(doc, 0.0) + weight / (k + rank)
    return sorted(scores.items(), key=lambda item: -item[1])


def search_sessions(
    workspace, query: str, *, mode: str = FULLTEXT, limit: int = 20, offset: int = 0, filters=None
) -> SearchResult:
    """One page of search results in `workspace`. `query` must be non-empty (callers validate)."""
    mode = mode if mode in MODES else FULLTEXT
    limit = max(1, min(limit, MAX_LIMIT))
    if mode != FULLTEXT and _embeddings() is None:
        hits = fulltext_search(workspace, query, limit=limit, offset=offset, filters=filters)
        return SearchResult(hits, FULLTEXT, NO_PROVIDER_NOTICE, requested_mode=mode)
    if mode != FULLTEXT:
        try:
            result = _semantic_or_hybrid(workspace, query, mode=mode, limit=limit, offset=offset, filters=filters)
            result.notice = incomplete_vectors_notice(workspace)
            return result
        except EmbeddingError as error:  # the provider is down, rate-limited or misconfigured
            logger.warning("Semantic search failed, falling back to full-text: %s", error)
            hits = fulltext_search(workspace, query, limit=limit, offset=offset, filters=filters)
            return SearchResult(hits, FULLTEXT, provider_failed_notice(error), requested_mode=mode)
    return SearchResult(fulltext_search(workspace, query, limit=limit, offset=offset, filters=filters), FULLTEXT)


def _semantic_or_hybrid(workspace, query: str, *, mode: str, limit: int, offset: int, filters) -> SearchResult:
    if mode == SEMANTIC:
        meaning = semantic_ranking(workspace, query, limit=limit, offset=offset, filters=filters)
        ranking = [(m.session_id, m.message_id, m.score) for m in meaning]
        chunks = {m.message_id: m.chunk_index for m in meaning if m.message_id is not None}
        return SearchResult(_hits(query, ranking, SEMANTIC, chunks), SEMANTIC, requested_mode=mode)

    # hybrid: fuse the two top lists, each fetched deeper than the page
    depth = max((offset + limit) * 2, 50)
    text = fulltext_ranking(workspace, query, limit=depth, filters=filters)
    meaning = semantic_ranking(workspace, query, limit=depth, filters=filters)
    fused = fuse(
        {FULLTEXT: [s for s, _, _ in text], SEMANTIC: [m.session_id for m in meaning]},
        k=settings.OPENSYNC_HYBRID_RRF_K,
        weights={
            FULLTEXT: settings.OPENSYNC_HYBRID_FULLTEXT_WEIGHT,
            SEMANTIC: settings.OPENSYNC_HYBRID_SEMANTIC_WEIGHT,
        },
    )[offset : offset + limit]
    # The message shown: the full-text one (its words highlighted), else the nearest by meaning.
    best_message = {s: m for s, m, _ in text if m is not None}
    nearest = {m.session_id: m for m in meaning if m.message_id is not None}
    in_text, in_meaning = {s for s, _, _ in text}, {m.session_id for m in meaning}
    ranking, chunks = [], {}
    for s, score in fused:
        message_id = best_message.get(s)
        if message_id is None and s in nearest:
            message_id = nearest[s].message_id
            chunks[message_id] = nearest[s].chunk_index
        ranking.append((s, message_id, score))
    hits = _hits(query, ranking, HYBRID, chunks)
    for hit in hits:
        hit.matched_by = tuple(
            name for name, ids in ((FULLTEXT, in_text), (SEMANTIC, in_meaning)) if hit.session.pk in ids
        )
    return SearchResult(hits, HYBRID, requested_mode=mode)
