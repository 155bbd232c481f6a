from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVector, SearchVectorField
from django.db import models
from django.db.models import F, Func, Q, Value
from django.utils import timezone

# Messages are ordered by (created_at, order); `order` comes from this sequence so arrival order
# breaks ties (the plugins often send no timestamps) and stays correct under concurrent writers.
MESSAGE_ORDER_SEQUENCE = "sessions_app_message_order_seq"


class Source(models.TextChoices):
    OPENCODE = "opencode", "OpenCode"
    CLAUDE_CODE = "claude-code", "Claude Code"
    CODEX = "codex-cli", "Codex"
    CURSOR = "cursor-sync", "Cursor"
    FACTORY_DROID = "factory-droid", "Factory Droid"
    PI = "pi", "Pi"


SOURCE_LABELS = dict(Source.choices)

# Runs of anything but letters, digits and "_" become spaces: "src/app/models.py" is indexed
# (and searched) as the phrase "src app models py" besides its whole-token form.
CODE_SEPARATORS = r"[^[:alnum:]_]+"


def split_code(expression):
    return Func(
        expression,
        Value(CODE_SEPARATORS),
        Value(" "),
        Value("g"),
        function="regexp_replace",
        output_field=models.TextField(),
    )


class Role(models.TextChoices):
    USER = "user", "User"
    ASSISTANT = "assistant", "Assistant"
    SYSTEM = "system", "System"
    TOOL = "tool", "Tool"
    UNKNOWN = "unknown", "Unknown"


class EvalStatus(models.TextChoices):
    GOLDEN = "golden", "Golden"
    CORRECT = "correct", "Correct"
    INCORRECT = "incorrect", "Incorrect"
    NEEDS_REVIEW = "needs_review", "Needs review"


class SessionQuerySet(models.QuerySet):
    def in_workspace(self, workspace):
        return self.filter(workspace=workspace)

    def visible_to(self, user):
        """Sessions of every workspace the user is a member of."""
        return self.filter(workspace__memberships__user=user)


class Session(models.Model):
    """One agent session as synced by a plugin. Tokens and cost are the plugin's session totals."""

    # FK indexes are left out where a composite index below starts with the same column.
    workspace = models.ForeignKey(
        "accounts.Workspace", on_delete=models.CASCADE, related_name="sessions", db_index=False
    )
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="sessions")
    external_id = models.CharField(max_length=255, help_text="The plugin's session id.")
    title = models.TextField(null=True, blank=True)
    project_path = models.TextField(null=True, blank=True)
    project_name = models.CharField(max_length=255, null=True, blank=True)
    model = models.CharField(max_length=255, null=True, blank=True)
    provider = models.CharField(max_length=255, null=True, blank=True)
    source = models.CharField(max_length=64, default=Source.OPENCODE)
    prompt_tokens = models.BigIntegerField(default=0)
    completion_tokens = models.BigIntegerField(default=0)
    total_tokens = models.GeneratedField(
        expression=F("prompt_tokens") + F("completion_tokens"), output_field=models.BigIntegerField(), db_persist=True
    )
    cache_read_tokens = models.BigIntegerField(default=0)
    cache_write_tokens = models.BigIntegerField(default=0)
    # NULL = the plugin never reported a cost (e.g. droid-sync), which is not the same as $0.
    cost = models.DecimalField(max_digits=18, decimal_places=8, null=True, blank=True)
    duration_ms = models.BigIntegerField(null=True, blank=True)
    message_count = models.IntegerField(default=0)
    end_reason = models.CharField(max_length=64, null=True, blank=True)
    summary = models.TextField(null=True, blank=True)
    # Public sharing: /s/<slug> with >= 128 random bits; "stop sharing" drops the slug (a new
    # share gets a new link) and a past share_expires_at makes the link a 404.
    is_public = models.BooleanField(default=False)
    share_slug = models.CharField(max_length=64, null=True, blank=True, unique=True)
    share_expires_at = models.DateTimeField(null=True, blank=True)
    title_vector = models.GeneratedField(
        expression=SearchVector("title", config="english") + SearchVector("title", config="simple"),
        output_field=SearchVectorField(),
        db_persist=True,
    )
    eval_ready = models.BooleanField(db_default=False)  # db_default: the sync upsert is raw SQL
    eval_status = models.CharField(max_length=16, choices=EvalStatus.choices, null=True, blank=True)
    # The review (evals.services.session_review, which also records each change in
    # evals.ReviewEvent). Tags are names from the workspace's vocabulary (evals.EvalTag).
    eval_tags = ArrayField(
        models.CharField(max_length=50),
        blank=True,
        default=list,
        db_default=Value([], output_field=ArrayField(models.CharField(max_length=50))),
    )
    eval_notes = models.TextField(blank=True, db_default="")
    expected_output = models.TextField(null=True, blank=True)
    reviewed_at = models.DateTimeField(null=True, blank=True)
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    # The main programming language of the session's code blocks (evals.language), when known.
    detected_language = models.CharField(max_length=32, null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, help_text="From the client on first sync.")
    updated_at = models.DateTimeField(default=timezone.now)

    objects = SessionQuerySet.as_manager()

    class Meta:
        ordering = ["-updated_at", "-id"]
        constraints = [
            # the sync upsert key: one session per (workspace, owner, plugin session id)
            models.UniqueConstraint(
                fields=["workspace", "owner", "external_id"], name="session_ws_owner_external_uniq"
            ),
            models.CheckConstraint(
                condition=Q(prompt_tokens__gte=0, completion_tokens__gte=0, message_count__gte=0),
                name="session_counts_non_negative",
            ),
        ]
        indexes = [
            # session list: a workspace's sessions, newest activity first (keyset on updated_at, id)
            models.Index(F("workspace"), F("updated_at").desc(), F("id").desc(), name="session_ws_updated_idx"),
            # "my sessions" in a workspace, newest first
            models.Index(F("workspace"), F("owner"), F("updated_at").desc(), name="session_ws_owner_updated_idx"),
            GinIndex(fields=["title_vector"], name="session_title_vector_idx"),
            # the tag filter of the evals page and exports (eval_tags && ARRAY[...])
            GinIndex(fields=["eval_tags"], name="session_eval_tags_idx"),
            # the project filter (the most selective one) on the default sort
            models.Index(
                F("workspace"), F("project_name"), F("updated_at").desc(), F("id").desc(), name="session_ws_project_idx"
            ),
            # the other sorts of the session list (keyset on (key, id); scanned backwards for ascending).
            # Nullable keys sort NULL as the smallest value: DESC NULLS LAST, ASC NULLS FIRST.
            models.Index(F("workspace"), F("created_at").desc(), F("id").desc(), name="session_ws_created_idx"),
            models.Index(F("workspace"), F("total_tokens").desc(), F("id").desc(), name="session_ws_tokens_idx"),
            models.Index(F("workspace"), F("cost").desc(nulls_last=True), F("id").desc(), name="session_ws_cost_idx"),
            models.Index(
                F("workspace"), F("duration_ms").desc(nulls_last=True), F("id").desc(), name="session_ws_duration_idx"
            ),
            models.Index(F("workspace"), F("message_count").desc(), F("id").desc(), name="session_ws_messages_idx"),
        ]

    def __str__(self) -> str:
        return self.title or self.external_id

    @property
    def source_label(self) -> str:
        return SOURCE_LABELS.get(self.source, self.source)

    @property
    def share_active(self) -> bool:
        """Whether /s/<slug> serves this session right now."""
        return self.is_public and (self.share_expires_at is None or self.share_expires_at > timezone.now())

    @property
    def cache_tokens(self) -> int:
        return self.cache_read_tokens + self.cache_write_tokens


class Message(models.Model):
    session = models.ForeignKey(Session, on_delete=models.CASCADE, related_name="messages", db_index=False)
    external_id = models.CharField(max_length=255, help_text="The plugin's message id.")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.UNKNOWN)
    text_content = models.TextField(null=True, blank=True)
    model = models.CharField(max_length=255, null=True, blank=True)
    prompt_tokens = models.BigIntegerField(null=True, blank=True)
    completion_tokens = models.BigIntegerField(null=True, blank=True)
    duration_ms = models.BigIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    # What search matches (search_text.SEARCH_TEXT_SQL: text, tool names and arguments, results),
    # maintained by the sync. search_vector indexes it twice: stemmed (english, which also keeps
    # whole paths, hosts and versions as tokens) for prose, and unstemmed with code split at
    # punctuation (simple) for identifiers and error codes, so `models.py` finds
    # `/home/dev/src/app/models.py` as a phrase. (The embedded PostgreSQL has no pg_trgm, so
    # substrings of code can't rely on trigrams.)
    search_text = models.TextField(null=True, blank=True, editable=False)
    search_vector = models.GeneratedField(
        expression=SearchVector("search_text", config="english")
        + SearchVector(split_code("search_text"), config="simple"),
        output_field=SearchVectorField(),
        db_persist=True,
    )
    # Digest of the last sync payload applied: a re-sent identical message is skipped without
    # writing (plugins re-send whole sessions, e.g. codex every turn, opencode --force).
    sync_hash = models.CharField(max_length=32, null=True, blank=True, editable=False)
    order = models.BigIntegerField(
        db_default=Func(Value(MESSAGE_ORDER_SEQUENCE), function="nextval", output_field=models.BigIntegerField()),
        help_text="Arrival order; breaks ties between equal created_at.",
    )

    class Meta:
        ordering = ["created_at", "order"]
        constraints = [
            # the sync upsert key for messages
            models.UniqueConstraint(fields=["session", "external_id"], name="message_session_external_uniq"),
        ]
        indexes = [
            # the viewer: a session's messages in display order
            models.Index(fields=["session", "created_at", "order"], name="message_session_order_idx"),
            GinIndex(fields=["search_vector"], name="message_search_vector_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.role}: {(self.text_content or '')[:60]}"


class Part(models.Model):
    """A structured piece of a message (text, tool-call, tool-result, thinking...), kept as sent."""

    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="parts", db_index=False)
    type = models.CharField(max_length=64)
    content = models.JSONField(null=True, blank=True)
    order = models.IntegerField()

    class Meta:
        ordering = ["message", "order"]
        indexes = [
            # a message's parts in order (viewer, exports, part replacement on re-sync)
            models.Index(fields=["message", "order"], name="part_message_order_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.type} #{self.order}"
