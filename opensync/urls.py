from django.contrib import admin
from django.urls import include, path
from django.views import defaults

from accounts.api.errors import json_error
from accounts.middleware import API_PATH
from sessions_app.views.overview import home

urlpatterns = [
    path("", include("sessions_app.api.urls")),
    path("", home, name="home"),
    path("", include("accounts.urls")),
    path("", include("sessions_app.urls")),
    path("accounts/", include("allauth.urls")),
    path("admin/", admin.site.urls),
]


# Machine clients get JSON errors; people get the styled pages in templates/.
def page_not_found(request, exception):
    if API_PATH.match(request.path_info):
        return json_error("Not found", 404)
    return defaults.page_not_found(request, exception)


def server_error(request):
    if API_PATH.match(request.path_info):
        return json_error("Internal server error", 500)
    return defaults.server_error(request)


handler404 = page_not_found
handler500 = server_error
