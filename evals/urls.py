from django.urls import path

from . import views

app_name = "evals"

urlpatterns = [
    path("sessions/<int:session_id>/review/", views.review, name="review"),
    path("evals/", views.evals_page, name="evals"),
    path("evals/bulk/", views.evals_bulk, name="bulk"),
    path("evals/queue/", views.queue, name="queue"),
    path("sessions/<int:session_id>/messages/<int:message_id>/label/", views.label, name="label"),
]
