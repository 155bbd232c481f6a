"""The MCP server: OpenSync's search, sessions, context and usage as tools an agent can call,
built on the official SDK (`mcp`). Each tool's name, description and argument schema here are
its documented, stable interface (tests/fixtures/mcp_tools.json pins them); what it does is
`search.mcp.tools`.

Tools are coroutines for the SDK; the Django work runs with `sync_to_async` (thread-sensitive):
over HTTP that is the very thread serving the request (search.mcp.http), over stdio one thread
for the whole process.
"""

import logging
from datetime import date
from typing import Annotated, Any, Literal

from asgiref.sync import sync_to_async
from django.db import close_old_connections
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ResourceNotFoundError, ToolError
from mcp_types import ToolAnnotations
from pydantic import Field

from .. import context
from ..selectors import MAX_QUERY_CHARS
from . import tools

logger = logging.getLogger(__name__)

INSTRUCTIONS = """\
OpenSync holds the past sessions of this team's coding agents (Claude Code, OpenCode, Codex,
Cursor, Factory Droid, Pi): every prompt, answer, tool call and result, with tokens and cost.
Search it before solving a problem that may have been solved before ("how did we fix this
ECONNREFUSED?", "what did the last session on this repo decide?"). search_sessions finds
sessions and the message that matched; get_messages reads a session from that message on;
get_context returns the best matches as one prompt-ready text within a token budget. Cite
sessions by their url."""

READ_ONLY = ToolAnnotations(read_only_hint=True, open_world_hint=False)

# subscriptions=False: no `subscriptions/listen` (a stream held open), which a stateless JSON server
# behind sync workers must not serve
mcp = MCPServer(name="opensync", title="OpenSync", instructions=INSTRUCTIONS, version="1", subscriptions=False)

# `manage.py mcp` (stdio) sets this: the one user the process serves.
stdio_caller: tools.Caller | None = None

Mode = Literal["fulltext", "semantic", "hybrid"]
Query = Annotated[
    str,
    Field(
        min_length=1,
        max_length=MAX_QUERY_CHARS,
        description="What to look for: words, an error, a path, or a question.",
    ),
]
SessionId = Annotated[str, Field(max_length=20, description="A session's id (sessionId in other tools' results).")]
Agent = Annotated[
    str | None,
    Field(
        max_length=64,
        description="Only sessions of this agent: claude-code, opencode, codex-cli, cursor-sync, factory-droid, pi.",
    ),
]
Project = Annotated[str | None, Field(max_length=255, description="Only sessions of this project name.")]
Model = Annotated[str | None, Field(max_length=255, description="Only sessions of this model, e.g. claude-sonnet-4-5.")]
DateFrom = Annotated[date | None, Field(description="Only sessions started on or after this day (YYYY-MM-DD).")]
DateTo = Annotated[date | None, Field(description="Only sessions started on or before this day (YYYY-MM-DD).")]


def _caller(ctx: Context) -> tools.Caller:
    request = ctx.request_context.request
    if request is not None:
        return request.scope[tools.CALLER_SCOPE_KEY]
    if stdio_caller is None:
        raise ToolError("No user: run the stdio server with manage.py mcp --user EMAIL")
    return stdio_caller


def _call(fn, caller: tools.Caller, kwargs: dict) -> dict:
    if stdio_caller is not None:
        close_old_connections()  # a long-lived process: no request cycle does this for it
    return fn(caller, **kwargs)


async def _run(ctx: Context, fn, **kwargs) -> dict[str, Any]:
    caller = _caller(ctx)
    try:
        return await sync_to_async(_call)(fn, caller, kwargs)
    except tools.ToolInputError as exc:
        raise ToolError(str(exc)) from None
    except Exception:
        logger.exception("MCP tool %s failed", fn.__name__)
        raise ToolError("The tool failed on the server; its log has the details") from None


@mcp.tool(
    title="Search past sessions",
    description="Find past coding sessions by words, an error message, a path or an idea. Each result is a "
    "session (id, title, agent, project, model, tokens, cost, url) with the message that matched best: its id, "
    "role, a snippet with the matches in **bold**, and a url to it in the viewer. mode: fulltext (exact words; "
    "quotes for phrases, OR, -word), semantic (meaning, no shared words needed) or hybrid (both, the default). "
    "Semantic and hybrid fall back to fulltext (with a notice) when the server has no embeddings. Page with "
    "offset = nextOffset.",
    annotations=READ_ONLY,
)
async def search_sessions(
    query: Query,
    ctx: Context,
    mode: Annotated[Mode, Field(description="How to match.")] = "hybrid",
    agent: Agent = None,
    project: Project = None,
    model: Model = None,
    date_from: DateFrom = None,
    date_to: DateTo = None,
    limit: Annotated[int, Field(ge=1, le=50, description="Results per page.")] = 10,
    offset: Annotated[int, Field(ge=0, le=1000, description="Results to skip (nextOffset).")] = 0,
) -> dict[str, Any]:
    return await _run(
        ctx,
        tools.search_sessions,
        query=query,
        mode=mode,
        limit=limit,
        offset=offset,
        filters=tools.Filters(agent, project, model, date_from, date_to),
    )


@mcp.tool(
    title="List recent sessions",
    description="The workspace's sessions, most recently updated first, with optional filters. Page with "
    "cursor = nextCursor (null on the last page).",
    annotations=READ_ONLY,
)
async def list_sessions(
    ctx: Context,
    agent: Agent = None,
    project: Project = None,
    model: Model = None,
    date_from: DateFrom = None,
    date_to: DateTo = None,
    limit: Annotated[int, Field(ge=1, le=100, description="Sessions per page.")] = 20,
    cursor: Annotated[str | None, Field(max_length=500, description="nextCursor of the previous page.")] = None,
) -> dict[str, Any]:
    return await _run(
        ctx,
        tools.list_sessions,
        limit=limit,
        cursor=cursor,
        filters=tools.Filters(agent, project, model, date_from, date_to),
    )


@mcp.tool(
    title="Session overview",
    description="One session's overview: title, agent, model, project, times, message count, tokens, cost (USD, "
    "null when unknown, with where it came from) and review state (eval-ready, status, tags, notes).",
    annotations=READ_ONLY,
)
async def get_session(session_id: SessionId, ctx: Context) -> dict[str, Any]:
    return await _run(ctx, tools.get_session, session_id=session_id)


@mcp.tool(
    title="Read a session's messages",
    description="A page of a session's messages, oldest first: id, role, time, text, tool calls (name and "
    "arguments) and tool outputs. Long texts and outputs are cut at max_chars with a marker saying how much was "
    "left out. Start at the beginning, at from_message_id (e.g. a search match), or at cursor = nextCursor of the "
    "previous page.",
    annotations=READ_ONLY,
)
async def get_messages(
    session_id: SessionId,
    ctx: Context,
    from_message_id: Annotated[
        str | None, Field(max_length=20, description="Start at this message (included).")
    ] = None,
    cursor: Annotated[str | None, Field(max_length=500, description="nextCursor of the previous page.")] = None,
    limit: Annotated[int, Field(ge=1, le=100, description="Messages per page.")] = 20,
    max_chars: Annotated[
        int, Field(ge=100, le=20_000, description="Longest text or tool output kept per message.")
    ] = 2_000,
) -> dict[str, Any]:
    return await _run(
        ctx,
        tools.get_messages,
        session_id=session_id,
        limit=limit,
        cursor=cursor,
        from_message_id=from_message_id,
        max_chars=max_chars,
    )


@mcp.tool(
    title="Past sessions as prompt context",
    description="Exactly what /api/context returns: the sessions best matching query (or the session_ids given, "
    "in that order), each with its first message, the matching one and its last messages, trimmed to fit "
    "max_tokens (tiktoken cl100k_base), gaps marked. format: text, markdown, xml or messages (chat messages with "
    "metadata). Pass query or session_ids, not both.",
    annotations=READ_ONLY,
)
async def get_context(
    ctx: Context,
    query: Annotated[str | None, Field(max_length=MAX_QUERY_CHARS, description="What the context is for.")] = None,
    session_ids: Annotated[
        list[Annotated[str, Field(max_length=20)]] | None,
        Field(max_length=20, description="These sessions instead of a search."),
    ] = None,
    mode: Annotated[Mode, Field(description="How query matches sessions.")] = "hybrid",
    format: Annotated[Literal["text", "markdown", "xml", "messages"], Field(description="The output format.")] = (
        "markdown"
    ),
    max_tokens: Annotated[
        int, Field(ge=context.MIN_BUDGET, le=context.MAX_BUDGET, description="Token budget of the whole context.")
    ] = context.DEFAULT_BUDGET,
    limit: Annotated[int, Field(ge=1, le=20, description="Sessions at most (query only).")] = 5,
    messages_per_session: Annotated[
        int, Field(ge=1, le=context.MAX_LAST, description="The last N messages of each session (and the first).")
    ] = context.DEFAULT_LAST,
    agent: Agent = None,
    project: Project = None,
    model: Model = None,
) -> dict[str, Any]:
    return await _run(
        ctx,
        tools.get_context,
        query=query,
        session_ids=session_ids,
        mode=mode,
        limit=limit,
        fmt=format,
        max_tokens=max_tokens,
        messages_per_session=messages_per_session,
        filters=tools.Filters(agent, project, model),
    )


@mcp.tool(
    title="Tokens and cost",
    description="Tokens and cost (USD) over a date range, in total and per model, agent or project (the Analytics "
    "page's figures). range: 7d, 30d (default), 90d, mtd, last-month, ytd, 12m, all, or date_from/date_to. A cost "
    "the server could not price is null and its sessions are counted in sessionsWithUnknownCost.",
    annotations=READ_ONLY,
)
async def usage_summary(
    ctx: Context,
    range: Annotated[
        Literal["7d", "30d", "90d", "mtd", "last-month", "ytd", "12m", "all"],
        Field(description="A preset range, in the workspace's time zone."),
    ] = "30d",
    date_from: Annotated[
        date | None,
        Field(
            description="First day (YYYY-MM-DD); overrides range. Without it, a date_to counts from the first session."
        ),
    ] = None,
    date_to: Annotated[
        date | None, Field(description="Last day (YYYY-MM-DD), included; overrides range. Default today.")
    ] = None,
    group_by: Annotated[Literal["model", "agent", "project"], Field(description="Groups of the breakdown.")] = "model",
    agent: Agent = None,
    project: Project = None,
    model: Model = None,
    limit: Annotated[int, Field(ge=1, le=200, description="Groups at most, costliest first.")] = 20,
) -> dict[str, Any]:
    return await _run(
        ctx,
        tools.usage_summary,
        range=range,
        date_from=date_from,
        date_to=date_to,
        group_by=group_by,
        agent=agent,
        project=project,
        model=model,
        limit=limit,
    )


@mcp.tool(
    title="Bookmark a session or message",
    description="Save a session, or one message of it, to the key owner's bookmarks (the context library in the "
    "web app), e.g. a fix worth finding again; on=false removes the bookmark. Needs an API key with the sync "
    "scope; read-scope keys get an error. Idempotent.",
    annotations=ToolAnnotations(
        read_only_hint=False, destructive_hint=False, idempotent_hint=True, open_world_hint=False
    ),
)
async def bookmark(
    session_id: SessionId,
    ctx: Context,
    message_id: Annotated[str | None, Field(max_length=20, description="A message of that session.")] = None,
    on: Annotated[bool, Field(description="false removes the bookmark.")] = True,
) -> dict[str, Any]:
    return await _run(ctx, tools.bookmark, session_id=session_id, message_id=message_id, on=on)


@mcp.resource(
    "opensync://sessions/{session_id}",
    name="session",
    title="A past session",
    description="A session as Markdown: its first and last messages (the context library's format), within "
    "8,000 tokens. The url of each search result names its session id.",
    mime_type="text/markdown",
)
async def session_resource(session_id: str, ctx: Context) -> str:
    try:
        body = await _run(ctx, tools.get_context, **tools.SESSION_RESOURCE_ARGS, session_ids=[session_id])
    except ToolError as exc:  # the only anticipated one: no such session in the workspace
        raise ResourceNotFoundError(str(exc)) from None
    return body["text"]
