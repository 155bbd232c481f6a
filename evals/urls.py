from django.urls import path

from . import views

app_name = "evals"

urlpatterns = [
    path("sessions/<int:session_id>/review/", views.review, name="review"),
    path("evals/queue/", views.queue, name="queue"),
]
