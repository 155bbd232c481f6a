from datetime import timedelta

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.urls import reverse

from opensync.jobs import Job, job_statuses, status_field


class EvalTag(models.Model):
    """A workspace's tag vocabulary: every tag a reviewer has used there, for autocomplete.

    Sessions keep their tags by name (Session.eval_tags) so that filtering by tag is one GIN
    index lookup; this table only remembers which names exist.
    """

    workspace = models.ForeignKey("accounts.Workspace", on_delete=models.CASCADE, related_name="eval_tags")
    name = models.CharField(max_length=50)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["workspace", "name"], name="eval_tag_workspace_name_uniq")]

    def __str__(self) -> str:
        return self.name


class ReviewEvent(models.Model):
    """One change of one review field of a session: who, what (old and new value), when."""

    session = models.ForeignKey(
        "sessions_app.Session", on_delete=models.CASCADE, related_name="review_events", db_index=False
    )
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")
    field = models.CharField(max_length=32)
    old = models.JSONField(null=True)
    new = models.JSONField(null=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["session", "-created_at"], name="review_event_session_idx")]

    def __str__(self) -> str:
        return f"{self.field} of session {self.session_id}"


class Verdict(models.TextChoices):
    GOOD = "good", "Good"
    BAD = "bad", "Bad"


class MessageLabel(models.Model):
    """A reviewer's label on one assistant turn: good or bad, and optionally the answer it should
    have given (exports use it in place of the turn's own answer)."""

    # session too: deleting a session (sessions_delete removes messages with raw SQL first) takes
    # its labels with it through the session's cascade
    session = models.ForeignKey(
        "sessions_app.Session", on_delete=models.CASCADE, related_name="message_labels", db_index=False
    )
    message = models.OneToOneField("sessions_app.Message", on_delete=models.CASCADE, related_name="review_label")
    verdict = models.CharField(max_length=8, choices=Verdict.choices, null=True, blank=True)
    corrected_answer = models.TextField(null=True, blank=True)
    labeled_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [models.Index(fields=["session"], name="message_label_session_idx")]

    def __str__(self) -> str:
        return f"{self.verdict or 'unlabelled'} message {self.message_id}"


# What the export pages say for each status.
ExportStatus = job_statuses("ExportStatus", pending="Queued", running="Building", done="Ready")


def export_upload_to(job: "ExportJob", filename: str) -> str:
    return f"exports/{job.workspace_id}/{job.pk}/{filename}"


class ExportJob(Job):
    """An eval dataset export, built by a Celery task; once done it is a frozen dataset version:
    the exact sessions that went in (`session_ids`) and a hash of the records (`content_hash`),
    so a later export can be compared with it.

    Anyone in the workspace may see and download it (workspace members see all its sessions).
    """

    workspace = models.ForeignKey("accounts.Workspace", on_delete=models.CASCADE, related_name="export_jobs")
    # Deleting my data (or account) deletes the exports I built (they copy sessions' content).
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="export_jobs")
    via = models.CharField(max_length=8, default="web", help_text="web or api")
    format = models.CharField(max_length=32)
    options = models.JSONField(default=dict, help_text="evals.formats.Options as a dict.")
    # {"kind": "filter", "filters": {...}} or {"kind": "selection", "ids": [...]}
    scope = models.JSONField(default=dict)
    scope_label = models.CharField(max_length=500, blank=True)
    status = status_field(ExportStatus)
    total = models.IntegerField(default=0, help_text="Sessions in scope when the build started.")
    processed = models.IntegerField(default=0)
    sessions = models.IntegerField(default=0, help_text="Sessions with at least one record.")
    records = models.IntegerField(default=0)
    skipped = models.IntegerField(default=0)
    warnings = models.JSONField(default=dict, blank=True)
    file = models.FileField(upload_to=export_upload_to, max_length=500, blank=True)
    filename = models.CharField(max_length=200, blank=True)
    size = models.BigIntegerField(default=0)
    content_hash = models.CharField(max_length=64, blank=True)
    session_ids = ArrayField(models.BigIntegerField(), default=list, blank=True)
    # Set when the nightly prune removed the file (OPENSYNC_EXPORT_FILE_DAYS after the build): the
    # job stays, as the dataset version it records, and its page and API say the file is gone.
    file_expired_at = models.DateTimeField(null=True, blank=True)

    task = "evals.tasks.export_job_run_task"
    stale_after = timedelta(minutes=10)  # a running build writes progress every half second
    # A queued job may wait behind other long tasks (the task's time limit is an hour).
    queued_stale_after = timedelta(minutes=65)
    # A build starts over from nothing: a lost one fails (evals.export_jobs.export_job_check_stale).
    resumable = False
    stale_error = "The build stopped without finishing (its worker was interrupted). Build it again."
    queued_stale_error = (
        "No worker picked the build up within an hour: check that the Celery worker runs, then build again."
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["workspace", "-created_at"], name="exportjob_ws_created_idx")]

    def __str__(self) -> str:
        return f"{self.format} export #{self.pk}"

    def progress_total(self) -> int:
        return self.total

    def progress_url(self) -> str:
        return reverse("evals:export-job", args=[self.pk])

    def progress_done(self) -> int:
        return self.processed

    @property
    def file_kept_days(self) -> int | None:
        """How many days the file was kept before the prune removed it."""
        if self.file_expired_at is None or self.finished_at is None:
            return None
        return (self.file_expired_at - self.finished_at).days
