from django.urls import path

from . import export_views, views

app_name = "evals"

urlpatterns = [
    path("sessions/<int:session_id>/review/", views.review, name="review"),
    path("evals/", views.evals_page, name="evals"),
    path("evals/bulk/", views.evals_bulk, name="bulk"),
    path("evals/queue/", views.queue, name="queue"),
    path("sessions/<int:session_id>/messages/<int:message_id>/label/", views.label, name="label"),
    path("evals/export/", export_views.export_modal, name="export"),
    path("evals/export/preview/", export_views.export_preview, name="export-preview"),
    path("evals/exports/", export_views.exports_page, name="exports"),
    path("evals/exports/<int:export_id>/", export_views.export_job, name="export-job"),
    path("evals/exports/<int:export_id>/download/", export_views.export_download, name="export-download"),
    path("evals/exports/<int:export_id>/delete/", export_views.export_delete, name="export-delete"),
]
