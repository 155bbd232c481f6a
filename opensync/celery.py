import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "opensync.settings")

app = Celery("opensync")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
# opensync is plumbing, not an installed app: its scheduled tasks (opensync/tasks.py) are found here.
app.autodiscover_tasks(["opensync"])
