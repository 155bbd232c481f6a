import logging
import re
import time
from urllib.parse import urlencode

from django.conf import settings
from django.contrib.auth import REDIRECT_FIELD_NAME
from django.http import HttpResponse
from django.shortcuts import resolve_url
from django_htmx.http import HttpResponseClientRedirect

from opensync.api import json_error

from . import request_log

logger = logging.getLogger(__name__)

# The plugins' base URL may end in a path segment ending in "convex.site" (so their `login`
# accepts it: opencode-sync wants ".convex.site", e.g. http://host:8000/opensync.convex.site)
# or a trailing slash (giving "//sync/..."): all reach the same views.
API_PATH = re.compile(r"^/+(?:[^/]*convex\.site/+)?(?P<endpoint>(?:sync|api)(?:/.*?)?|health|mcp)/*$")
CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET, POST, DELETE, OPTIONS",
    # MCP-Protocol-Version, Mcp-Session-Id: what a browser-based MCP client sends to /mcp
    "Access-Control-Allow-Headers": "Authorization, Content-Type, MCP-Protocol-Version, Mcp-Session-Id",
}


class ApiEdgeMiddleware:
    """What every machine-facing request gets before and after its view.

    * OPTIONS preflight -> 204 with CORS headers; CORS headers on every API response.
    * A body over OPENSYNC_MAX_REQUEST_BYTES -> 413 JSON, before anything reads it.
    * Non-JSON errors from outside the API views (404, 500) -> `{"error": ...}`.
    * One request-log row per request made with an API key (endpoint, status, latency).
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        match = API_PATH.match(request.path_info)
        if match is None:
            return self.get_response(request)
        # Resolve the canonical path whatever prefix or doubled slash the plugin's base URL gave.
        request.path_info = "/" + match["endpoint"]
        if request.method == "OPTIONS":
            response = HttpResponse(status=204)
            response["Access-Control-Max-Age"] = "86400"
            return self._cors(response)
        limit = settings.OPENSYNC_MAX_REQUEST_BYTES
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return self._cors(json_error("Invalid Content-Length header", 400))
        if length > limit:
            return self._cors(
                json_error(
                    f"Request body is {length} bytes; the limit is {limit} bytes (OPENSYNC_MAX_REQUEST_BYTES)", 413
                )
            )
        started = time.perf_counter()
        response = self.get_response(request)
        if response.status_code >= 400 and not response.get("Content-Type", "").startswith("application/json"):
            message = "Not found" if response.status_code == 404 else response.reason_phrase
            response = json_error(message, response.status_code)
        api_key = getattr(request, "opensync_api_key", None)
        if api_key is not None and settings.OPENSYNC_API_REQUEST_LOG:
            try:
                request_log.record(
                    api_key=api_key,
                    method=request.method,
                    endpoint=request.path_info,
                    status_code=response.status_code,
                    latency_ms=round((time.perf_counter() - started) * 1000),
                )
            except Exception:  # the log must never fail the request it describes
                logger.exception("Could not record API request")
        return self._cors(response)

    @staticmethod
    def _cors(response):
        for name, value in CORS_HEADERS.items():
            response[name] = value
        # a browser script may read Retry-After (429) besides what the view exposes itself
        exposed = [h for h in (response.get("Access-Control-Expose-Headers") or "").split(", ") if h]
        response["Access-Control-Expose-Headers"] = ", ".join(dict.fromkeys([*exposed, "Retry-After"]))
        return response


class HtmxLoginRedirectMiddleware:
    """An HTMX request whose login session has expired gets redirected to the login page as a
    whole page (HX-Redirect), coming back to the page it was on, instead of having the login
    page swapped into a fragment's target."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        htmx = getattr(request, "htmx", None)
        if not htmx or response.status_code != 302:
            return response
        login_url = resolve_url(settings.LOGIN_URL)
        if not response.get("Location", "").startswith(login_url):
            return response
        back = htmx.current_url_abs_path or "/"
        return HttpResponseClientRedirect(f"{login_url}?{urlencode({REDIRECT_FIELD_NAME: back})}")


class SecureCookiesMiddleware:
    """Cookies set on a request that came over HTTPS are marked Secure, so a session or CSRF
    cookie first handed out over HTTPS is never sent back over plain http (where anyone on the
    path could read it). request.is_secure() follows SECURE_PROXY_SSL_HEADER behind a proxy.
    SECURE_COOKIES=true still marks them Secure on every request (settings), http included.

    It must sit outside SessionMiddleware, CsrfViewMiddleware and MessageMiddleware in
    MIDDLEWARE: their cookies are set on the way out, before this sees the response."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if request.is_secure():
            for cookie in response.cookies.values():
                cookie["secure"] = True
        return response
