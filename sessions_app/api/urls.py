from django.urls import path

from . import views

# Exact paths, no trailing-slash redirects. accounts.middleware.ApiEdgeMiddleware maps the
# plugins' variants ("/convex.site/sync/...", "//sync/...") onto these before resolution.
urlpatterns = [
    path("health", views.HealthApi.as_view(), name="health"),
    path("sync/session", views.SyncSessionApi.as_view(), name="sync-session"),
    path("sync/message", views.SyncMessageApi.as_view(), name="sync-message"),
    path("sync/batch", views.SyncBatchApi.as_view(), name="sync-batch"),
    path("sync/sessions/list", views.SyncSessionsListApi.as_view(), name="sync-sessions-list"),
]
