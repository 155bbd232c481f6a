from django.contrib import admin
from django.urls import include, path

from sessions_app.views import home

urlpatterns = [
    path("", include("sessions_app.api.urls")),
    path("", home, name="home"),
    path("", include("accounts.urls")),
    path("", include("sessions_app.urls")),
    path("accounts/", include("allauth.urls")),
    path("admin/", admin.site.urls),
]
