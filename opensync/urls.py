from django.contrib import admin
from django.urls import include, path
from django.views import defaults
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from accounts.middleware import API_PATH
from evals.api.urls import read_urlpatterns as eval_read_urlpatterns
from opensync.api import json_error, suspicious_message, suspicious_status
from opensync.metrics import metrics_view
from opensync.readiness import ready_view
from search.api.urls import read_urlpatterns as search_read_urlpatterns
from search.mcp.http import McpApi
from sessions_app.api.urls import read_urlpatterns
from sessions_app.views.overview import home

# /api/<x> and its versioned alias /api/v1/<x> (no trailing slashes: ApiEdgeMiddleware strips
# them). The schema and its docs page need no API key.
api_urlpatterns = [
    *read_urlpatterns,
    *search_read_urlpatterns,
    *eval_read_urlpatterns,
    path("schema", SpectacularAPIView.as_view(), name="api-schema"),
    # api/swagger_ui.html: drf-spectacular's page with the CSP nonce on its inline style and script
    path(
        "docs",
        SpectacularSwaggerView.as_view(url_name="api-schema", template_name="api/swagger_ui.html"),
        name="api-docs",
    ),
]

urlpatterns = [
    # operations (README "Operations"): readiness for orchestrators, metrics for Prometheus
    path("health/ready", ready_view, name="health-ready"),
    path("metrics", metrics_view, name="metrics"),
    # the MCP server (Streamable HTTP) for agents: README "MCP server"
    path("mcp", McpApi.as_view(), name="mcp"),
    path("", include("sessions_app.api.urls")),
    path("api/", include(api_urlpatterns)),
    path("api/v1/", include((api_urlpatterns, "v1"))),
    path("", home, name="home"),
    path("", include("accounts.urls")),
    path("", include("sessions_app.urls")),
    path("", include("search.urls")),
    path("", include("evals.urls")),
    path("accounts/", include("allauth.urls")),
    path("admin/", admin.site.urls),
]


# Machine clients get JSON errors; people get the styled pages in templates/.
def page_not_found(request, exception):
    if API_PATH.match(request.path_info):
        return json_error("Not found", 404)
    return defaults.page_not_found(request, exception)


def bad_request(request, exception):
    """Django's SuspiciousOperations outside the API views (a body over DATA_UPLOAD_MAX_MEMORY_SIZE
    read by a middleware, too many fields): 413 or 400 JSON on the API."""
    if API_PATH.match(request.path_info):
        return json_error(suspicious_message(exception), suspicious_status(exception))
    return defaults.bad_request(request, exception)


def server_error(request):
    if API_PATH.match(request.path_info):
        return json_error("Internal server error", 500)
    return defaults.server_error(request)


handler400 = bad_request
handler404 = page_not_found
handler500 = server_error
