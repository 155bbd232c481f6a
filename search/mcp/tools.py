"""What the MCP tools do, as plain Django code: each takes the Caller (whose key, which workspace)
and validated arguments and returns a JSON-ready dict. `search.mcp.server` wraps them as MCP tools
(names, JSON schemas, the SDK); nothing here knows about MCP, so tests call these directly too.

Everything is scoped to the caller's workspace: a session id of another workspace is the same
"not found" as one that never existed. Results are compact and citation-friendly: every session
and message carries its id and a link to the viewer.
"""

import html
import json
import re
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from django.db.models import prefetch_related_objects

from opensync.inputs import unstorable_message
from sessions_app import analytics
from sessions_app.api.analytics import figures_json
from sessions_app.message_text import message_text
from sessions_app.models import Message, Session
from sessions_app.rendering import TOOL_CALL_TYPES, TOOL_RESULT_TYPES, part_text, tool_call, tool_output
from sessions_app.selectors import (
    SessionFilters,
    decode_message_position,
    is_updated_cursor,
    message_by_id,
    message_position,
    messages_page,
    session_by_id,
    session_page,
)
from sessions_app.wire import normalise_source

from .. import context, services
from ..api.views import context_answer
from ..selectors import search_sessions as search

CUT = "[… {n} more characters cut]"
MAX_OFFSET = 1000  # search_sessions' offset, as /api/search's
CALLER_SCOPE_KEY = "opensync.caller"  # where search.mcp.http puts the Caller in the ASGI scope
MAX_SNIPPET_ARGS = 300  # characters of a tool call's arguments
_MARK = re.compile(r"</?mark>")


class ToolInputError(ValueError):
    """A tool's argument that can't be used: the message is for the agent to read and fix."""


@dataclass(frozen=True)
class Caller:
    """Who is asking: the API key's user and workspace (or `manage.py mcp`'s), whether they may
    write (a sync-scope key) and the base URL of the viewer links."""

    user: Any
    workspace: Any
    can_write: bool
    base_url: str


# --- shapes --------------------------------------------------------------------------------------


def session_url(caller: Caller, session_id: int, message_id: int | None = None) -> str:
    url = f"{caller.base_url}/sessions/{session_id}/"
    return f"{url}?at={message_id}#m-{message_id}" if message_id else url


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat().replace("+00:00", "Z") if moment else None


def _money(value: Decimal | None) -> float | None:
    return None if value is None else float(value)


def cut(text: str, limit: int) -> str:
    """`text`, at most `limit` characters of it, with a marker saying how much was cut."""
    if len(text) <= limit:
        return text
    return text[:limit] + " " + CUT.format(n=len(text) - limit)


def session_brief(caller: Caller, session: Session) -> dict:
    return {
        "sessionId": str(session.pk),
        "title": session.title,
        "agent": session.source,
        "project": session.project_name,
        "model": session.model,
        "createdAt": _iso(session.created_at),
        "updatedAt": _iso(session.updated_at),
        "messageCount": session.message_count,
        "totalTokens": session.total_tokens,
        "costUsd": _money(session.cost),
        "url": session_url(caller, session.pk),
    }


def plain_snippet(snippet: str) -> str:
    """The search snippet (escaped HTML with <mark>) as text, the matches in **bold**."""
    return html.unescape(_MARK.sub("**", snippet))


@dataclass(frozen=True)
class Filters:
    """The session filters the search and list tools share (the read API's, plus a date range)."""

    agent: str | None = None
    project: str | None = None
    model: str | None = None
    date_from: date | None = None
    date_to: date | None = None

    def session_filters(self) -> SessionFilters:
        for name in ("agent", "project", "model"):
            storable(name, getattr(self, name))
        if self.date_from and self.date_to and self.date_from > self.date_to:
            raise ToolInputError("date_from must not be after date_to")
        return SessionFilters(
            source=(normalise_source(self.agent) or "") if self.agent else "",
            project=(self.project or "").strip(),
            model=(self.model or "").strip(),
            date_from=self.date_from,
            date_to=self.date_to,
        )

    def or_none(self) -> SessionFilters | None:
        """The search selectors' argument: None when nothing filters."""
        filters = self.session_filters()
        return None if filters == SessionFilters() else filters


def storable(name: str, value: str | None) -> str | None:
    """`value` if PostgreSQL can take it (no NUL, no lone surrogate), else the tool error the read
    API gives as a 400."""
    if value and (problem := unstorable_message(value)):
        raise ToolInputError(f"{name}: {problem}")
    return value


def session_of(caller: Caller, session_id: str) -> Session:
    """A session of the caller's workspace; any other id (another workspace's, a deleted or
    malformed one) is the same error, so ids leak nothing."""
    session = session_by_id(caller.workspace.pk, session_id)
    if session is None:
        raise ToolInputError(f"Session {session_id} not found in this workspace")
    return session


def message_of(session: Session, message_id: str) -> Message:
    message = message_by_id(session, message_id)
    if message is None:
        raise ToolInputError(f"Message {message_id} not found in session {session.pk}")
    return message


# --- the tools -----------------------------------------------------------------------------------


def search_sessions(
    caller: Caller,
    *,
    query: str,
    mode: str,
    limit: int,
    offset: int = 0,
    filters: Filters = Filters(),
) -> dict:
    """The same search as /api/search (same ranking), each result with the best matching message."""
    query = (storable("query", query) or "").strip()
    if not query:
        raise ToolInputError("query must not be empty")
    result = search(caller.workspace, query, mode=mode, limit=limit, offset=offset, filters=filters.or_none())
    roles = dict(
        Message.objects.filter(pk__in=[hit.message_id for hit in result.hits if hit.message_id]).values_list(
            "pk", "role"
        )
    )
    results = []
    for hit in result.hits:
        item = session_brief(caller, hit.session)
        item |= {"score": round(hit.score, 6), "matchedBy": list(hit.matched_by)}
        if hit.message_id:
            item["match"] = {
                "messageId": str(hit.message_id),
                "role": roles.get(hit.message_id),
                "snippet": plain_snippet(hit.snippet),
                "url": session_url(caller, hit.session.pk, hit.message_id),
            }
        else:
            item["match"] = None
        results.append(item)
    return {
        "results": results,
        "mode": result.mode,
        "notice": result.notice,
        # the tool takes offsets up to MAX_OFFSET: past it, no next page is offered
        "nextOffset": offset + limit if len(results) == limit and offset + limit <= MAX_OFFSET else None,
    }


def list_sessions(
    caller: Caller,
    *,
    limit: int,
    cursor: str | None = None,
    filters: Filters = Filters(),
) -> dict:
    if cursor and not is_updated_cursor(cursor):
        raise ToolInputError("cursor is not valid; pass the nextCursor of the previous page")
    sessions, next_cursor = session_page(caller.workspace, filters.session_filters(), cursor=cursor or None, size=limit)
    return {"sessions": [session_brief(caller, s) for s in sessions], "nextCursor": next_cursor}


def get_session(caller: Caller, *, session_id: str) -> dict:
    session = session_of(caller, session_id)
    return {
        **session_brief(caller, session),
        "externalId": session.external_id,
        "provider": session.provider,
        "projectPath": session.project_path,
        "durationMs": session.duration_ms,
        "endReason": session.end_reason,
        "summary": session.summary,
        "tokens": {
            "prompt": session.prompt_tokens,
            "completion": session.completion_tokens,
            "total": session.total_tokens,
            "cacheRead": session.cache_read_tokens,
            "cacheWrite": session.cache_write_tokens,
            "reasoning": session.reasoning_tokens,
        },
        "cost": {
            "usd": _money(session.cost),
            "source": session.cost_source,
            "note": session.cost_note or None,
        },
        "review": {
            "evalReady": session.eval_ready,
            "status": session.eval_status,
            "tags": list(session.eval_tags),
            "notes": session.eval_notes or None,
        },
    }


def _summarise_parts(parts, max_chars: int) -> tuple[list[dict], list[dict]]:
    calls, results = [], []
    for part in parts:
        if part.type in TOOL_CALL_TYPES:
            name, args = tool_call(part.content)
            text = args if isinstance(args, str) else json.dumps(args, ensure_ascii=False, default=str)
            calls.append({"tool": name, "args": cut(text or "", min(MAX_SNIPPET_ARGS, max_chars))})
        elif part.type in TOOL_RESULT_TYPES:
            output = tool_output(part.content)
            text = output if isinstance(output, str) else part_text(output) or json.dumps(output, default=str)
            tool = (
                (part.content.get("toolName") or part.content.get("name")) if isinstance(part.content, dict) else None
            )
            results.append({"tool": tool, "output": cut(text or "", max_chars)})
    return calls, results


def get_messages(
    caller: Caller, *, session_id: str, limit: int, cursor: str | None = None, from_message_id: str | None = None,
    max_chars: int,
) -> dict:  # fmt: skip
    """A page of a session's messages, oldest first: text cut at `max_chars` with a marker, tool
    calls as name + arguments, tool outputs cut the same way."""
    session = session_of(caller, session_id)
    if cursor and from_message_id:
        raise ToolInputError("pass cursor or from_message_id, not both")
    first: list[Message] = []
    after = None
    if cursor:
        after = decode_message_position(cursor)
        if after is None:
            raise ToolInputError("cursor is not valid; pass the nextCursor you were given")
    elif from_message_id:
        start = message_of(session, from_message_id)
        first, after = [start], decode_message_position(message_position(start))
    room = limit - len(first)
    page, more = messages_page(session, after=after, size=max(room, 1))
    if room == 0:  # from_message_id with limit 1: only whether anything follows
        page, more = [], bool(page) or more
    messages = first + page
    if first:
        prefetch_related_objects(first, "parts")  # messages_page prefetched the page's
    parts = {message.pk: list(message.parts.all()) for message in messages}
    out = []
    for message in messages:
        calls, results = _summarise_parts(parts[message.pk], max_chars)
        out.append(
            {
                "messageId": str(message.pk),
                "role": message.role,
                "createdAt": _iso(message.created_at),
                "text": cut(message_text(message.text_content, parts[message.pk]), max_chars),
                "toolCalls": calls,
                "toolResults": results,
                "url": session_url(caller, session.pk, message.pk),
            }
        )
    return {
        "sessionId": str(session.pk),
        "title": session.title,
        "messageCount": session.message_count,
        "messages": out,
        "nextCursor": message_position(messages[-1]) if more and messages else None,
    }


def get_context(
    caller: Caller,
    *,
    query: str | None,
    session_ids: list[str] | None,
    mode: str,
    limit: int,
    fmt: str,
    max_tokens: int,
    messages_per_session: int,
    filters: Filters = Filters(),
) -> dict:
    """/api/context's answer: for a query exactly what the endpoint returns; for session ids the
    same shape, the sessions in the order given (type and notice null: nothing was searched)."""
    query = (storable("query", query) or "").strip()  # trimmed, as /api/context's q
    if bool(query) == bool(session_ids):
        raise ToolInputError("pass either query or session_ids")
    if session_ids:
        picks = [context.Pick(session_of(caller, sid).pk) for sid in session_ids]
        return context_answer(caller.workspace, picks, last=messages_per_session, fmt=fmt, budget=max_tokens)
    result = search(caller.workspace, query, mode=mode, limit=limit, filters=filters.or_none())
    return context_answer(
        caller.workspace,
        context.hit_picks(result.hits),
        last=messages_per_session,
        fmt=fmt,
        budget=max_tokens,
        query=query,
        mode=result.mode,
        notice=result.notice,
    )


GROUPS = {"model": "model", "agent": "source", "project": "project"}


def usage_summary(
    caller: Caller,
    *,
    range: str,
    date_from: date | None = None,
    date_to: date | None = None,
    group_by: str = "model",
    agent: str | None = None,
    project: str | None = None,
    model: str | None = None,
    limit: int = 20,
) -> dict:
    """Tokens and cost over a date range (the Analytics page's figures, from the daily rollups),
    in total and per model, agent or project."""
    params: dict[str, str] = {"range": range}
    if date_from or date_to:
        params |= {"range": "custom", "from": date_from.isoformat() if date_from else ""}
        params["to"] = date_to.isoformat() if date_to else ""
    for name, value in (("agent", agent), ("project", project), ("model", model)):
        storable(name, value)
    for name, value in (("source", agent and normalise_source(agent)), ("project", project), ("model", model)):
        if value is not None:
            params[name] = value
    try:
        query = analytics.parse_query(params, caller.workspace)
        totals = analytics.summary(caller.workspace, query)
        table = analytics.breakdown(caller.workspace, query, GROUPS[group_by], sort="cost", limit=limit)
    except analytics.QueryError as exc:
        raise ToolInputError(str(exc)) from None

    def figures(row: dict) -> dict:
        """/api/analytics' figures of a row, the ones an agent asks about."""
        full = figures_json(row)
        tokens = full["tokens"]
        return {
            "sessions": full["sessions"],
            "messages": full["messages"],
            "tokens": {name: tokens[name] for name in ("input", "output", "cacheRead", "reasoning", "total")},
            "costUsd": full["cost"]["total"],
            "sessionsWithUnknownCost": full["cost"]["sessionsUnknown"],
        }

    return {
        "range": {
            "preset": query.preset,
            "from": query.start.isoformat() if query.start else None,
            "to": query.end.isoformat(),
            "timeZone": query.tz,
        },
        "total": figures(totals),
        "groupBy": group_by,
        "groups": [
            {"key": None if row["key"] is None else str(row["key"]), "label": str(row["label"]), **figures(row)}
            for row in table.rows
        ],
        "truncated": table.truncated,
        "url": f"{caller.base_url}/analytics/",
    }


def bookmark(caller: Caller, *, session_id: str, message_id: str | None = None, on: bool = True) -> dict:
    """Bookmark a session or one of its messages for the key's user (the context library's
    bookmarks), or remove the bookmark. Needs a sync-scope key. Idempotent."""
    if not caller.can_write:
        raise ToolInputError("This API key is read-only; bookmarking needs a key with the sync scope")
    session = session_of(caller, session_id)
    message = message_of(session, message_id) if message_id else None
    marked = services.bookmark_set(user=caller.user, session=session, message=message, on=on)
    return {
        "sessionId": str(session.pk),
        "messageId": str(message.pk) if message else None,
        "bookmarked": marked,
        "url": session_url(caller, session.pk, message.pk if message else None),
    }


# opensync://sessions/{id}: one session as the context library's Markdown, within the default budget
SESSION_RESOURCE_ARGS = {
    "query": None,
    "mode": "hybrid",
    "limit": 1,
    "fmt": context.MARKDOWN,
    "max_tokens": context.DEFAULT_BUDGET,
    "messages_per_session": context.DEFAULT_LAST,
}
