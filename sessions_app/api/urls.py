from django.urls import path

from . import analytics, views

# Exact paths, no trailing-slash redirects. accounts.middleware.ApiEdgeMiddleware maps the
# plugins' variants ("/<name>.convex.site/sync/...", "//sync/...", a trailing slash) onto these
# before resolution.
urlpatterns = [
    path("health", views.HealthApi.as_view(), name="health"),
    path("sync/session", views.SyncSessionApi.as_view(), name="sync-session"),
    path("sync/message", views.SyncMessageApi.as_view(), name="sync-message"),
    path("sync/batch", views.SyncBatchApi.as_view(), name="sync-batch"),
    path("sync/sessions/list", views.SyncSessionsListApi.as_view(), name="sync-sessions-list"),
]

# The read API, mounted at both /api/ and /api/v1/ by opensync/urls.py.
read_urlpatterns = [
    path("sessions", views.SessionListApi.as_view(), name="api-sessions"),
    path("sessions/get", views.SessionGetApi.as_view(), name="api-session-get"),
    path("export", views.ExportApi.as_view(), name="api-export"),
    path("stats", views.StatsApi.as_view(), name="api-stats"),
    path("analytics/summary", analytics.AnalyticsSummaryApi.as_view(), name="api-analytics-summary"),
    path("analytics/breakdown", analytics.AnalyticsBreakdownApi.as_view(), name="api-analytics-breakdown"),
    path("analytics/timeseries", analytics.AnalyticsTimeseriesApi.as_view(), name="api-analytics-timeseries"),
]
