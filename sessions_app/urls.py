from django.urls import path

from .views import overview, public, sessions

app_name = "sessions"

urlpatterns = [
    path("sessions/", sessions.session_list, name="list"),
    path("sessions/bulk/", sessions.session_bulk, name="bulk"),
    path("sessions/<int:session_id>/", sessions.session_detail, name="detail"),
    path("sessions/<int:session_id>/messages/", sessions.session_messages, name="messages"),
    path("sessions/<int:session_id>/rename/", sessions.session_rename, name="rename"),
    path("sessions/<int:session_id>/share/", sessions.session_share, name="share"),
    path("sessions/<int:session_id>/delete/", sessions.session_delete, name="delete"),
    path("sessions/<int:session_id>/export.<str:fmt>", sessions.session_export, name="export"),
    path("s/<str:slug>", public.shared_session, name="public"),
    path("s/<str:slug>/messages/", public.shared_messages, name="public-messages"),
    path("analytics/", overview.analytics, name="analytics"),
]
