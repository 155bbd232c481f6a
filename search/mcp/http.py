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

from .tools import CALLER_SCOPE_KEY, Caller


@extend_schema(exclude=True)  # JSON-RPC, described by the MCP specification and tools/list
class McpApi(APIView):
    permission_classes = [HasApiKey]
    content_negotiation_class = JsonOnly
    throttle_scope = "read"
    parser_classes: list = []  # the SDK reads the body

    def post(self, request):
        key = request.auth
        caller = Caller(
            user=key.user, workspace=key.workspace, can_write=key.can_write, base_url=plugin_base_url(request)
        )
        return answer(request._request, caller)

    # Only POST: stateless, the server opens no event stream (GET) and keeps no session to end
    # (DELETE); DRF answers them 405 before the SDK could hold the request open.


def asgi_scope(request: HttpRequest, caller: Caller) -> dict:
    host, _, port = request.get_host().partition(":")
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
        "server": (host, int(port or (443 if request.is_secure() else 80))),
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
