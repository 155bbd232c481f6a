"""OpenAPI schema pieces (drf-spectacular): the bearer API key scheme, the error responses, and
the hook that lists each endpoint once (every /api/<x> is also served at /api/v1/<x>)."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import OpenApiResponse

from .serializers import ErrorSerializer

DESCRIPTION = """\
The API of this OpenSync server, compatible with upstream OpenSync
(waynesutton/opensync): the **sync** endpoints the plugins write with, and the **read**
endpoints for scripts.

**Authentication.** `Authorization: Bearer osk_…` with an API key from Settings → API keys.
A key belongs to one workspace and sees only that workspace's sessions. Both scopes may read;
only `sync` keys may write. `/health`, this schema and the docs page need no key.

**Errors.** Every error is JSON `{"error": "<what is wrong>"}` with a 4xx/5xx status: 400 for a
bad parameter or body, 401 for a missing, unknown or revoked key, 403 for a `read` key that
writes, 404 for a session that isn't in the key's workspace, 413 for a body over the size limit.

**Versions.** Every `/api/<x>` path is also served at `/api/v1/<x>`. The sync paths also work
behind a `/convex.site` prefix and with a doubled slash, as the plugins send them.

**Shapes.** Keys are camelCase as upstream sends them, times are epoch milliseconds. Unlike
upstream, every key is always present (null when unknown) and sessions always carry `id`
and `source`.

**Rate limits.** Each API key has a budget of requests per scope: `sync` (the sync writes),
`read` (the read API and `/sync/sessions/list`), `search` (`/api/search`, `/api/context`) and
`export` (eval dataset builds). Past it the answer is 429 `{"error": ...}` with a `Retry-After`
header, the seconds until the budget refills; wait that long and send again.
"""


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "accounts.api.authentication.ApiKeyAuthentication"
    name = "apiKey"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "osk_…",
            "description": "An OpenSync API key (Settings → API keys), sent as `Authorization: Bearer osk_…`.",
        }


def canonical_endpoints(endpoints):
    """Leave the /api/v1/ aliases out: the schema describes each operation once."""
    return [endpoint for endpoint in endpoints if not endpoint[0].startswith("/api/v1/")]


def describe(result, generator, request, public):
    result["info"]["description"] = DESCRIPTION
    return result


# The errors any operation may answer, whatever its view does: the server's limits, checked
# before the view runs (accounts.middleware.ApiEdgeMiddleware, Django, gunicorn's
# opensync.gunicorn_worker). All are `{"error": ...}`. An operation's own description of a
# status wins. Another answer every endpoint can give (a rate limit's 429) belongs here.
COMMON_ERRORS = {
    400: "A malformed request: a bad `Content-Length`, too many query parameters, or (for a body) JSON "
    "that doesn't parse or is nested more than 100 levels deep.",
    413: "The body is over OPENSYNC_MAX_REQUEST_BYTES.",
    414: "The request line (method, path and query string) is over 4,094 bytes.",
    431: "Too many request headers (over 100), or one over 8,190 bytes.",
}


def common_errors(result, generator, request, public):
    """Adds COMMON_ERRORS to every operation (a drf-spectacular postprocessing hook)."""
    for operations in result["paths"].values():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            for status, description in COMMON_ERRORS.items():
                responses.setdefault(
                    str(status),
                    {
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
                        "description": description,
                    },
                )
    return result


def error(description: str) -> OpenApiResponse:
    return OpenApiResponse(ErrorSerializer, description=description)


BAD_REQUEST = error("A parameter or the body is invalid; `error` says which and why.")
UNAUTHORIZED = error("Missing, unknown or revoked API key.")
NOT_FOUND = error('`{"error": "Session not found"}`: no such session in the key\'s workspace.')


RATE_LIMITED = "This API key used up its `{scope}` budget ({setting}); `Retry-After` says in how many seconds to retry."
RETRY_AFTER = {"schema": {"type": "integer"}, "description": "Seconds until the key's budget refills."}


def document_rate_limits(result, generator, request, public):
    """429 + Retry-After on every operation with a per-key budget (accounts.api.throttling)."""
    from accounts.api.throttling import SETTINGS

    for path, _, method, callback in generator.endpoints:
        scope = getattr(getattr(callback, "cls", None), "throttle_scope", None)
        operation = result["paths"].get(path, {}).get(method.lower())
        if scope is None or operation is None:
            continue
        text = RATE_LIMITED.format(scope=scope, setting=SETTINGS[scope])
        existing = operation["responses"].get("429")
        response = existing or {
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
            "description": "",
        }
        response["description"] = f"{response['description']} Or: {text}" if existing else text
        response.setdefault("headers", {})["Retry-After"] = RETRY_AFTER
        operation["responses"]["429"] = response
    return result
