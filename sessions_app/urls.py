from django.urls import path

from .views import analytics, prices, public, sessions

app_name = "sessions"

urlpatterns = [
    path("sessions/", sessions.session_list, name="list"),
    path("sessions/bulk/", sessions.session_bulk, name="bulk"),
    path("sessions/<int:session_id>/", sessions.session_detail, name="detail"),
    path("sessions/<int:session_id>/messages/", sessions.session_messages, name="messages"),
    path("sessions/<int:session_id>/messages/<int:message_id>/text", sessions.message_text, name="message-text"),
    path("sessions/<int:session_id>/rename/", sessions.session_rename, name="rename"),
    path("sessions/<int:session_id>/share/", sessions.session_share, name="share"),
    path("sessions/<int:session_id>/delete/", sessions.session_delete, name="delete"),
    path("sessions/<int:session_id>/export.<str:fmt>", sessions.session_export, name="export"),
    path("s/<str:slug>", public.shared_session, name="public"),
    path("s/<str:slug>/messages/", public.shared_messages, name="public-messages"),
    path("s/<str:slug>/text/<str:position>", public.shared_message_text, name="public-message-text"),
    path("analytics/", analytics.analytics, name="analytics"),
    path("analytics/compare/", analytics.compare, name="analytics-compare"),
    path("analytics/export.csv", analytics.export_csv, name="analytics-csv"),
    path("analytics/settings/", prices.prices, name="prices"),
    path("analytics/settings/prices/<int:override_id>/edit/", prices.price_edit, name="price-edit"),
    path("analytics/settings/prices/<int:override_id>/delete/", prices.price_delete, name="price-delete"),
    path("analytics/settings/repricing/<int:job_id>/", prices.repricing_job, name="repricing-job"),
    path("analytics/settings/repricing/<int:job_id>/resume/", prices.repricing_resume, name="repricing-resume"),
]
