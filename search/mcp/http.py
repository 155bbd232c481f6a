"""/mcp: the MCP server over Streamable HTTP, on the same host and port as the app.

The web process is WSGI (gunicorn's sync workers); the SDK's transport is ASGI. This view is
the bridge: DRF authenticates the key, applies the read API's rate limit and the request log
like any /api/ endpoint, then hands the one HTTP request to a session manager of the SDK in
stateless JSON-response mode (every POST is self-contained, so any worker of any host can answer
any request) with `async_to_sync`. The tools' Django work runs back in this very thread
(sync_to_async, thread-sensitive), on its database connection, as in any view.

The SDK itself (its pydantic models, starlette: about 26 MB and 1 s of imports) loads on a
worker's first /mcp request, so web workers that never serve one don't carry it.
"""

import json
from collections.abc import MutableMapping
from typing import Any

import anyio
from asgiref.sync import async_to_sync
from django.http import HttpRequest, HttpResponse
from drf_spectacular.utils import extend_schema
from rest_framework.views import APIView

from accounts.api.authentication import HasApiKey
from accounts.selectors import plugin_base_url
from opensync.api import JsonOnly
from opensync.inputs import whole_number

from .tools import CALLER_SCOPE_KEY, Caller


@extend_schema(exclude=True)  # JSON-RPC, described by the MCP specification and tools/list
class McpApi(APIView):
    permission_classes = [HasApiKey]
    content_negotiation_class = JsonOnly
    throttle_scope = "read"
    parser_classes: list = []  # the SDK reads the body

    def check_throttles(self, request):
        # A search costs what /api/search does (and semantic search calls the embeddings
        # provider): it takes the key's `search` budget, as /api/search and /api/context do;
        # anything else the `read` budget, as /api/sessions.
        self.throttle_scope = "search" if searches(request.body) else "read"
        super().check_throttles(request)

    def post(self, request):
        key = request.auth
        caller = Caller(
            user=key.user, workspace=key.workspace, can_write=key.can_write, base_url=plugin_base_url(request)
        )
        return answer(request._request, caller)

    # Only POST: stateless, the server opens no event stream (GET) and keeps no session to end
    # (DELETE); DRF answers them 405 before the SDK could hold the request open.


SEARCHING_TOOLS = {"search_sessions", "get_context"}


def searches(body: bytes) -> bool:
    """Whether the JSON-RPC request runs a search: search_sessions, or get_context with a query
    (with session ids it searches nothing). A body that isn't one request is the SDK's to refuse."""
    try:
        message = json.loads(body)
    except ValueError:
        return False
    if not isinstance(message, dict) or message.get("method") != "tools/call":
        return False
    params = message.get("params")
    if not isinstance(params, dict) or params.get("name") not in SEARCHING_TOOLS:
        return False
    arguments = params.get("arguments")
    return params["name"] == "search_sessions" or (isinstance(arguments, dict) and bool(arguments.get("query")))


def asgi_scope(request: HttpRequest, caller: Caller) -> dict:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": request.method,
        "scheme": request.scheme,
        "path": request.path_info,
        "raw_path": request.path_info.encode(),
        "root_path": "",
        "query_string": request.META.get("QUERY_STRING", "").encode("latin-1"),
        "headers": [
            (name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in request.headers.items()
        ],
        "client": (request.META.get("REMOTE_ADDR", ""), 0),
        "server": (request.META.get("SERVER_NAME", ""), whole_number(str(request.META.get("SERVER_PORT"))) or 80),
        CALLER_SCOPE_KEY: caller,
    }


def answer(request: HttpRequest, caller: Caller) -> HttpResponse:
    return async_to_sync(_answer)(asgi_scope(request, caller), request.body)


async def _answer(scope: dict, body: bytes) -> HttpResponse:
    # Imported here, not at the top: the SDK loads on the first /mcp request (see the docstring).
    from mcp.server.streamable_http_manager import StreamableHTTPSessionManager

    from .server import mcp  # the tools import the SDK: loaded on the first request too

    # A manager runs once (its task group lives in `run()`); a stateless one holds nothing between
    # requests, so one per request costs a task group and is safe across threads and workers.
    manager = StreamableHTTPSessionManager(mcp._lowlevel_server, json_response=True, stateless=True)  # noqa: SLF001 - the SDK's Client reaches it the same way
    pending = [{"type": "http.request", "body": body, "more_body": False}]
    done = anyio.Event()
    started: dict = {}
    chunks: list[bytes] = []

    async def receive() -> dict:
        if pending:
            return pending.pop()
        await done.wait()  # the client is there until the answer is complete
        return {"type": "http.disconnect"}

    async def send(message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.start":
            started.update(message)
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                done.set()

    async with manager.run():
        await manager.handle_request(scope, receive, send)
    done.set()
    response = HttpResponse(b"".join(chunks), status=started.get("status", 500))
    for name, value in started.get("headers", []):
        if name.lower() not in (b"content-length",):
            response[name.decode("latin-1")] = value.decode("latin-1")
    return response
