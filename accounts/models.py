import hashlib
import zoneinfo
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.contrib.auth.models import PermissionsMixin
from django.contrib.postgres.fields import ArrayField
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from opensync.jobs import Job, JobStatus, job_statuses, status_field


def validate_timezone(value: str) -> None:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValidationError(f"Unknown time zone “{value[:60]}”; use a name like Europe/Berlin.") from None


class UserManager(BaseUserManager):
    use_in_migrations = True

    def _create_user(self, email: str, password: str | None, **extra):
        if not email:
            raise ValueError("An email address is required")
        user = self.model(email=self.normalize_email(email).lower(), **extra)
        user.set_password(password)
        # Its personal workspace comes with it (accounts.signals).
        user.save(using=self._db)
        return user

    def create_user(self, email: str, password: str | None = None, **extra):
        extra.setdefault("is_staff", False)
        extra.setdefault("is_superuser", False)
        return self._create_user(email, password, **extra)

    def create_superuser(self, email: str, password: str | None = None, **extra):
        extra["is_staff"] = True
        extra["is_superuser"] = True
        return self._create_user(email, password, **extra)


class User(AbstractBaseUser, PermissionsMixin):
    """A person. Email is the login; there is no username."""

    email = models.EmailField("email address", unique=True)
    name = models.CharField(max_length=150, blank=True)
    # Settings → Agents: sources the user switched off in the filters. Stored as the ones hidden
    # so a newly supported agent shows up for everyone without a data migration.
    hidden_sources = ArrayField(models.CharField(max_length=64), default=list, blank=True)
    is_staff = models.BooleanField(default=False, help_text="Can log into the admin site.")
    is_active = models.BooleanField(default=True)
    date_joined = models.DateTimeField(default=timezone.now)

    objects = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: list[str] = []

    class Meta:
        ordering = ["email"]

    def __str__(self) -> str:
        return self.email

    def get_full_name(self) -> str:
        return self.name or self.email

    def get_short_name(self) -> str:
        return self.name or self.email.split("@")[0]


class Role(models.TextChoices):
    ADMIN = "admin", "Admin"
    REVIEWER = "reviewer", "Reviewer"
    MEMBER = "member", "Member"


# Retention bounds: a day at least (0 would delete a session being synced), ten years at most.
RETENTION_MIN_DAYS = 1
RETENTION_MAX_DAYS = 3650


class Workspace(models.Model):
    """Sessions belong to a workspace; people see a workspace through their Membership."""

    name = models.CharField(max_length=100)
    slug = models.SlugField(max_length=60, unique=True)
    is_personal = models.BooleanField(default=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="created_workspaces"
    )
    created_at = models.DateTimeField(default=timezone.now)
    # Analytics: the day boundaries (an IANA name) and the monthly budget banner.
    timezone = models.CharField(
        "time zone",
        max_length=64,
        db_default="UTC",
        default="UTC",
        validators=[validate_timezone],
        help_text="Decides where days and months begin in Analytics, e.g. Europe/Berlin.",
    )
    monthly_budget = models.DecimalField(
        "monthly budget (USD)",
        max_digits=12,
        decimal_places=2,
        null=True,
        blank=True,
        validators=[MinValueValidator(0)],
        help_text="Admins see a banner at 80% and 100% of it (the month's cost so far).",
    )
    # Retention (off when null): the nightly job deletes sessions idle for longer than this.
    retention_days = models.PositiveIntegerField(
        "delete sessions older than (days)",
        null=True,
        blank=True,
        validators=[MinValueValidator(RETENTION_MIN_DAYS), MaxValueValidator(RETENTION_MAX_DAYS)],
        help_text="Sessions with no activity for this many days are deleted every night. Empty: keep everything.",
    )
    # Set while a run works on the workspace (each batch is its own transaction, so a row lock
    # can't span the run); a claim older than RETENTION_CLAIM_TIMEOUT is a crashed run's.
    retention_running_since = models.DateTimeField(null=True, blank=True)
    retention_last_run_at = models.DateTimeField(null=True, blank=True)
    retention_last_removed = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["-is_personal", "name"]
        constraints = [
            # Every user has exactly one personal workspace.
            models.UniqueConstraint(
                fields=["created_by"], condition=Q(is_personal=True), name="workspace_one_personal_per_user"
            ),
        ]

    def __str__(self) -> str:
        return self.name


class Membership(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.MEMBER)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["workspace", "user"]
        constraints = [
            models.UniqueConstraint(fields=["user", "workspace"], name="membership_user_workspace_uniq"),
        ]
        indexes = [
            # "who is in this workspace" (members page)
            models.Index(fields=["workspace", "role"], name="membership_ws_role_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.workspace} ({self.role})"


class InvitationQuerySet(models.QuerySet):
    def pending(self):
        return self.filter(accepted_at__isnull=True, revoked_at__isnull=True, expires_at__gt=timezone.now())


class Invitation(models.Model):
    """An email invitation to a team workspace. Only a hash of the link token is stored."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="invitations")
    email = models.EmailField()
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.MEMBER)
    token_hash = models.CharField(max_length=64, unique=True)
    invited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="sent_invitations"
    )
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True)
    accepted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = InvitationQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.email} -> {self.workspace}"

    @property
    def is_pending(self) -> bool:
        return self.accepted_at is None and self.revoked_at is None and self.expires_at > timezone.now()


class ApiKeyScope(models.TextChoices):
    SYNC = "sync", "Sync (read and write)"
    READ = "read", "Read only"


def hash_api_key(raw_key: str) -> str:
    # Keys carry >= 256 bits of randomness, so a fast unsalted hash is enough to make a leaked
    # table useless while keeping lookup a single indexed equality.
    return hashlib.sha256(raw_key.encode()).hexdigest()


class ApiKeyQuerySet(models.QuerySet):
    def active(self):
        return self.filter(revoked_at__isnull=True)


class ApiKey(models.Model):
    """A bearer key `osk_...` for the plugins and the public API. Only its SHA-256 is stored."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_keys")
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100)
    scope = models.CharField(max_length=8, choices=ApiKeyScope.choices, default=ApiKeyScope.SYNC)
    prefix = models.CharField(max_length=16, help_text="First characters of the key, to recognise it.")
    key_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = ApiKeyQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            # settings page: "my keys"
            models.Index(fields=["user", "-created_at"], name="apikey_user_created_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None

    @property
    def can_write(self) -> bool:
        return self.scope == ApiKeyScope.SYNC


class ApiRequestLog(models.Model):
    """One row per API request made with a key (endpoint, status, latency) for the usage page."""

    api_key = models.ForeignKey(ApiKey, on_delete=models.CASCADE, related_name="request_logs")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+", db_index=False)
    method = models.CharField(max_length=8)
    endpoint = models.CharField(max_length=100)
    status_code = models.PositiveSmallIntegerField()
    latency_ms = models.PositiveIntegerField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            # usage page: requests per day and per endpoint for one user
            models.Index(fields=["user", "created_at"], name="apilog_user_created_idx"),
            models.Index(fields=["api_key", "created_at"], name="apilog_key_created_idx"),
            # Settings → Usage: a workspace's requests of the last 30 days (also serves the FK)
            models.Index(fields=["workspace", "created_at"], name="apilog_ws_created_idx"),
            # the nightly prune (services.api_request_logs_prune): rows past the window, oldest
            # first; the indexes above lead with a user, key or workspace, so without this one
            # every batch would scan the whole table
            models.Index(fields=["created_at"], name="apilog_created_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.method} {self.endpoint} {self.status_code}"


class DeletionKind(models.TextChoices):
    DATA = "data", "Delete all my data"
    ACCOUNT = "account", "Delete account"


# What the deletion pages say for each status.
DeletionStatus = job_statuses("DeletionStatus", pending="Waiting to start", running="Deleting")
DELETION_COUNT_LABELS = {
    "sessions": "Sessions",
    "messages": "Messages",
    "parts": "Message parts",
    "request_logs": "API request log entries",
    "api_keys": "API keys",
    "invitations": "Invitations",
    "memberships": "Workspace memberships",
    "workspaces": "Workspaces",
}


class DeletionJob(Job):
    """A "delete my data" / "delete my account" request, run in batches by a Celery task.

    The row outlives the user (user -> NULL) so the public progress page can still answer; it
    holds only an email snapshot, counts and the status.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="deletion_jobs"
    )
    email = models.EmailField(help_text="Who asked, kept after the account is gone.")
    kind = models.CharField(max_length=16, choices=DeletionKind.choices)
    status = status_field(DeletionStatus)
    # What was deleted so far, e.g. {"sessions": 500, "messages": 12000, "parts": 30000, "request_logs": 80}
    counts = models.JSONField(default=dict, blank=True)
    # What there was to delete when the job started (for the percentage); same keys as counts.
    totals = models.JSONField(default=dict, blank=True)
    # Only exposes the progress of this job (no login needed after the account is gone).
    token = models.CharField(max_length=64, unique=True)

    task = "accounts.tasks.deletion_job_run_task"
    fail_with = "accounts.deletion.deletion_job_fail"  # gives a disabled account back
    # A job without progress for this long lost its worker; asking again (or the admin) resumes it.
    stale_after = queued_stale_after = timedelta(minutes=15)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            # One pending/running job per user: a second request gets the running one, even when
            # two requests race.
            models.UniqueConstraint(
                fields=["user"],
                condition=Q(status__in=["pending", "running"]),
                name="deletionjob_one_active_per_user",
            ),
        ]
        indexes = [
            # Data & account page: "my latest job"
            models.Index(fields=["user", "-created_at"], name="deletionjob_user_created_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} for {self.email} ({self.status})"

    def progress_total(self) -> int:
        return sum(self.totals.values())

    def progress_url(self) -> str:
        return reverse("accounts:deletion-progress", args=[self.token])

    def progress_done(self) -> int:
        return sum(min(self.counts.get(key, 0), value) for key, value in self.totals.items())

    @property
    def can_retry(self) -> bool:
        # A pending job whose task got lost is queued again too: the claim keeps it to one worker.
        return self.status == JobStatus.PENDING or super().can_retry

    @property
    def count_rows(self) -> list[tuple[str, int, int | None]]:
        """(label, deleted so far, total or None) for the progress display."""
        keys = [key for key in DELETION_COUNT_LABELS if key in self.counts or key in self.totals]
        return [(DELETION_COUNT_LABELS[key], self.counts.get(key, 0), self.totals.get(key)) for key in keys]
