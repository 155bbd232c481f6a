"""The search and context API (/api/search, /api/context), part of the read API: the key's
workspace's sessions best matching a query, and past sessions as context for a prompt."""

from drf_spectacular.utils import extend_schema
from rest_framework.response import Response

from opensync.api import BAD_REQUEST, READ, UNAUTHORIZED, ReadApi
from sessions_app.api.serializers import session_filters
from sessions_app.selectors import SessionFilters

from .. import context
from ..selectors import search_sessions
from . import serializers


def _search(request, params: dict, *, limit: int, offset: int = 0):
    filters = session_filters(params)
    return search_sessions(
        request.auth.workspace,
        params["q"],
        mode=params["type"],
        limit=limit,
        offset=offset,
        filters=filters if filters != SessionFilters() else None,
    )


class SearchApi(ReadApi):
    query_serializer = serializers.SearchQuerySerializer
    throttle_scope = "search"
    max_limit = 50

    @extend_schema(
        operation_id="search",
        tags=READ,
        summary="Search sessions",
        description="`fulltext` (default) matches message text, tool calls and results, and titles, in web-search "
        "syntax; `semantic` ranks by meaning (embeddings); `hybrid` fuses both rankings by reciprocal rank fusion. "
        "Without an embeddings provider, semantic and hybrid answer full-text results, `type: fulltext` and a "
        "`notice`. Every result has both `id` and `_id`, the session's fields, `score`, a highlighted `snippet` "
        "and the matching `messageId`.",
        parameters=[serializers.SearchQuerySerializer],
        responses={200: serializers.SearchSerializer, 400: BAD_REQUEST, 401: UNAUTHORIZED},
    )
    def get(self, request):
        params = self.query(request)
        result = _search(request, params, limit=min(params["limit"], self.max_limit), offset=params["offset"])
        sessions = []
        for hit in result.hits:
            hit.session.search_hit = hit
            sessions.append(hit.session)
        return Response(
            {
                "results": serializers.SearchResultSerializer(sessions, many=True).data,
                "type": result.mode,
                "notice": result.notice,
            }
        )


class ContextApi(ReadApi):
    query_serializer = serializers.ContextQuerySerializer
    throttle_scope = "search"
    max_limit = 20

    @extend_schema(
        operation_id="context",
        tags=READ,
        summary="Past sessions as context for a prompt",
        description="Finds the sessions best matching `q` (hybrid by default) and returns, for each, its first "
        "message, the matching message and its last `messagesPerSession` messages, trimmed to fit `maxTokens` "
        "(counted with tiktoken's cl100k_base): sessions in rank order, within a session the matching and first "
        "messages before the newest; stretches left out are marked. `format=text` is upstream's "
        '(`Relevant coding sessions for: "<q>"` …), `messages` upstream\'s chat messages with metadata, '
        "`markdown` and `xml` tagged blocks. A message's content is its text parts joined by newlines, else its "
        "text, without `<thinking>` blocks; messages without text (tool plumbing) are skipped.",
        parameters=[serializers.ContextQuerySerializer],
        responses={200: serializers.ContextSerializer, 400: BAD_REQUEST, 401: UNAUTHORIZED},
    )
    def get(self, request):
        params = self.query(request)
        result = _search(request, params, limit=min(params["limit"], self.max_limit))
        return Response(
            context_answer(
                request.auth.workspace,
                context.hit_picks(result.hits),
                last=params["messagesPerSession"],
                fmt=params["format"],
                budget=params["maxTokens"],
                query=params["q"],
                mode=result.mode,
                notice=result.notice,
            )
        )


def context_answer(
    workspace, picks, *, last: int, fmt: str, budget: int, query: str = "", mode: str | None = None,
    notice: str | None = None,
) -> dict:  # fmt: skip
    """/api/context's answer for the picked sessions (the MCP server's get_context answers the
    same). `mode` and `notice` are the search's that picked them (None when nothing searched)."""
    built = context.build(context.load_blocks(workspace, picks, last=last), fmt=fmt, budget=budget, query=query)
    body: dict[str, object] = {"messages": built.messages} if built.format == context.MESSAGES else {"text": built.text}
    included = built.included
    return {
        **body,
        "sessionCount": len(included),
        "sessionIds": [str(block.session.pk) for block in included],
        "tokenCount": built.tokens,
        "maxTokens": built.budget,
        "truncated": built.trimmed,
        "type": mode,
        "notice": notice,
    }
