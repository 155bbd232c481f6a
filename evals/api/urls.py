from django.urls import path

from . import views

# The eval export API, mounted at both /api/ and /api/v1/ by opensync/urls.py (next to the
# sessions app's read_urlpatterns).
read_urlpatterns = [
    path("export/evals", views.EvalExportApi.as_view(), name="api-export-evals"),
    path("export/jobs/<str:job_id>", views.ExportJobApi.as_view(), name="api-export-job"),
    path("export/jobs/<str:job_id>/download", views.ExportJobDownloadApi.as_view(), name="api-export-job-download"),
]
