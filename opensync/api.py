"""The DRF plumbing the apps' APIs share: every error as `{"error": ...}` JSON, the OpenAPI
schema's common pieces (the key scheme, error responses, the hooks settings.SPECTACULAR_SETTINGS
names), the fields the query serializers reuse and the base of the read API (/api/...).

Each app keeps its own endpoints, serializers and urls in its `api/` package.
"""

import logging

from django.conf import settings
from django.core.exceptions import PermissionDenied, RequestDataTooBig, SuspiciousOperation, ValidationError
from django.http import Http404, JsonResponse
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import OpenApiResponse, extend_schema_field
from rest_framework import exceptions, serializers
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework.views import exception_handler as drf_exception_handler

from accounts.api.authentication import HasApiKey
from accounts.api.throttling import SETTINGS as THROTTLE_SETTINGS
from opensync.inputs import validate_text

# --- errors: always {"error": "<message>"} with the right 4xx/5xx status ---------------------------

logger = logging.getLogger(__name__)


def _flatten(detail) -> str:
    if isinstance(detail, dict):
        parts = [
            f"{key}: {_flatten(value)}" if key != "non_field_errors" else _flatten(value)
            for key, value in detail.items()
        ]
        return "; ".join(parts)
    if isinstance(detail, list):
        return "; ".join(_flatten(item) for item in detail)
    return str(detail)


def exception_handler(exc, context):
    if isinstance(exc, SuspiciousOperation):
        # Django's own limits (DATA_UPLOAD_MAX_MEMORY_SIZE, _NUMBER_FIELDS, _NUMBER_FILES) and
        # malformed requests: the client's fault, which DRF would leave to become a 500.
        return Response({"error": suspicious_message(exc)}, status=suspicious_status(exc))
    if isinstance(exc, ValidationError):
        exc = exceptions.ValidationError(exc.message_dict if hasattr(exc, "error_dict") else exc.messages)
    response = drf_exception_handler(exc, context)
    if response is None:
        logger.exception("Unhandled API error", exc_info=exc)
        return Response({"error": "Internal server error"}, status=500)
    if isinstance(exc, exceptions.ParseError):
        message = f"Malformed JSON body: {exc.detail}"
    elif isinstance(exc, Http404):
        message = "Not found"
    elif isinstance(exc, PermissionDenied):
        message = str(exc) or "Forbidden"
    else:
        message = _flatten(getattr(exc, "detail", response.data))
    response.data = {"error": message}
    return response


def suspicious_status(exc: SuspiciousOperation) -> int:
    return 413 if isinstance(exc, RequestDataTooBig) else 400


def suspicious_message(exc: SuspiciousOperation) -> str:
    if isinstance(exc, RequestDataTooBig):
        return f"Request body is too large; the limit is {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes"
    return str(exc) or "Bad request"


def json_error(message: str, status: int, **headers) -> JsonResponse:
    response = JsonResponse({"error": message}, status=status)
    for name, value in headers.items():
        response[name] = value
    return response


# --- the OpenAPI schema (drf-spectacular) ------------------------------------------------------------
# The bearer API key scheme, the error responses, and the hooks that list each endpoint once
# (every /api/<x> is also served at /api/v1/<x>) and add the errors every operation may answer.


class ErrorSerializer(serializers.Serializer):
    error = serializers.CharField(help_text="What is wrong, for a person to read.")


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


RATE_LIMITED = "This API key used up its `{scope}` budget ({setting}); `Retry-After` says in how many seconds to retry."
RETRY_AFTER = {"schema": {"type": "integer"}, "description": "Seconds until the key's budget refills."}


def document_rate_limits(result, generator, request, public):
    """429 + Retry-After on every operation with a per-key budget (accounts.api.throttling)."""
    for path, _, method, callback in generator.endpoints:
        scope = getattr(getattr(callback, "cls", None), "throttle_scope", None)
        operation = result["paths"].get(path, {}).get(method.lower())
        if scope is None or operation is None:
            continue
        text = RATE_LIMITED.format(scope=scope, setting=THROTTLE_SETTINGS[scope])
        existing = operation["responses"].get("429")
        response = existing or {
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
            "description": "",
        }
        response["description"] = f"{response['description']} Or: {text}" if existing else text
        response.setdefault("headers", {})["Retry-After"] = RETRY_AFTER
        operation["responses"]["429"] = response
    return result


# --- fields the query and answer serializers reuse ---------------------------------------------------


@extend_schema_field({"type": "integer", "format": "int64", "description": "Epoch milliseconds (UTC)."})
class EpochMillisField(serializers.ReadOnlyField):
    def to_representation(self, value):
        return int(value.timestamp() * 1000)


def limit_field(*, default: int, maximum: int, name: str = "limit") -> serializers.IntegerField:
    """A page size: an integer >= 1; values above `maximum` are served as `maximum` (clients of
    upstream, which had no cap, keep working), anything else is a 400."""
    return serializers.IntegerField(
        required=False,
        default=default,
        min_value=1,
        help_text=f"Default {default}; values above {maximum} are treated as {maximum}.",
        error_messages={
            "invalid": f"{name} must be a whole number",
            "min_value": f"{name} must be at least 1",
            "max_string_length": f"{name} must be a whole number",
        },
    )


def text_filter(name: str, help_text: str, *, max_length: int = 255) -> serializers.CharField:
    return serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=max_length,
        validators=[validate_text],
        help_text=help_text,
        error_messages={"max_length": f"{name} must be at most {max_length} characters"},
    )


# --- the read API ---------------------------------------------------------------------------------

READ = ["Read"]  # the schema's tag of the read endpoints, whichever app serves them


class JsonOnly(BaseContentNegotiation):
    """Always JSON, like upstream: `format` is a parameter of the endpoints themselves
    (/api/export?format=markdown), not DRF's renderer override, and an Accept header naming
    something else doesn't make a 406."""

    def select_parser(self, request, parsers):
        return parsers[0] if parsers else None

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


class ReadApi(APIView):
    """Base of /api/...: a key of either scope; everything scoped to the key's workspace."""

    permission_classes = [HasApiKey]
    content_negotiation_class = JsonOnly
    throttle_scope = "read"
    query_serializer: type[serializers.Serializer]

    def query(self, request) -> dict:
        """The validated query parameters; a 400 naming the first bad one otherwise."""
        query = self.query_serializer(data=request.query_params)
        if not query.is_valid():
            raise exceptions.ValidationError(first_error(query.errors))
        return query.validated_data


def first_error(errors) -> str:
    """The first message of a serializer's (nested) errors: the API answers one problem at a time."""
    while isinstance(errors, dict | list):
        errors = next(iter(errors.values())) if isinstance(errors, dict) else errors[0]
    return str(errors)
