from django.urls import path

from . import views

# The search and context API, mounted at both /api/ and /api/v1/ by opensync/urls.py (next to the
# sessions app's read_urlpatterns).
read_urlpatterns = [
    path("search", views.SearchApi.as_view(), name="api-search"),
    path("context", views.ContextApi.as_view(), name="api-context"),
]
