from django.conf import settings
from django.db import models


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
