from django.urls import path

from .views import context, search

app_name = "search"

urlpatterns = [
    path("search/", search.search, name="search"),
    path("context/", context.context_page, name="context"),
    path("context/pick/", context.context_pick, name="context-pick"),
    path("context/panel/", context.context_panel, name="context-panel"),
    path("context/download/", context.context_download, name="context-download"),
    path("context/saved/", context.saved_search_create, name="saved-create"),
    path("context/saved/<int:saved_id>/delete/", context.saved_search_delete, name="saved-delete"),
    path("context/bookmarks/", context.bookmarks, name="bookmarks"),
    path("context/bookmark/", context.bookmark, name="bookmark"),
]
