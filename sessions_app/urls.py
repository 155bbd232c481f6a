from django.urls import path

from . import views

app_name = "sessions"

urlpatterns = [
    path("sessions/<int:session_id>/", views.session_detail, name="detail"),
]
