from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVector, SearchVectorField
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator
from django.db import models
from django.db.models import F, Func, Q, Value
from django.urls import reverse
from django.utils import timezone

from opensync.jobs import Job

from .pricing import CostSource

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


class Session(models.Model):
    """One agent session as synced by a plugin.

    Tokens are the plugin's session totals as reported (upstream's fields, plus the cache-write
    split and reasoning). The cost engine (`pricing`) turns them into `usage_*` counts in one
    convention and a computed cost; `cost` is what every page shows: the computed cost, else the
    plugin's reported one (`cost_source` says which, `cost_note` why).
    """

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
    cache_write_tokens = models.BigIntegerField(default=0, help_text="Every cache write, as reported.")
    # Of cache_write_tokens, as reported: writes cached for 5 minutes and for 1 hour (priced
    # differently); both 0 when the plugin doesn't split them.
    cache_write_5m_tokens = models.BigIntegerField(db_default=0, default=0)
    cache_write_1h_tokens = models.BigIntegerField(db_default=0, default=0)
    reasoning_tokens = models.BigIntegerField(db_default=0, default=0, help_text="Of completion_tokens.")
    # Per-model usage as reported (`modelUsage`: [{"model", "subagent", "inputTokens", ...}]).
    model_usage = models.JSONField(null=True, blank=True)
    # NULL = the plugin never reported a cost (e.g. droid-sync), which is not the same as $0.
    reported_cost = models.DecimalField(max_digits=18, decimal_places=8, null=True, blank=True)
    # --- written by the cost engine (services.sessions_price) ---
    computed_cost = models.DecimalField(max_digits=18, decimal_places=8, null=True, blank=True)
    # What the pages and the API show: computed_cost, else reported_cost; NULL = unknown.
    cost = models.DecimalField(max_digits=18, decimal_places=8, null=True, blank=True)
    cost_source = models.CharField(max_length=16, choices=CostSource.CHOICES, db_default=CostSource.PENDING)
    cost_note = models.CharField(max_length=300, blank=True, db_default="")
    price_model = models.CharField(max_length=255, blank=True, db_default="", help_text="The prices used.")
    priced_at = models.DateTimeField(null=True, blank=True)
    # The tokens in one convention (pricing.TokenUsage): input without cache, output with reasoning.
    usage_input_tokens = models.BigIntegerField(db_default=0, default=0)
    usage_output_tokens = models.BigIntegerField(db_default=0, default=0)
    usage_cache_read_tokens = models.BigIntegerField(db_default=0, default=0)
    usage_cache_write_5m_tokens = models.BigIntegerField(db_default=0, default=0)
    usage_cache_write_1h_tokens = models.BigIntegerField(db_default=0, default=0)
    usage_reasoning_tokens = models.BigIntegerField(db_default=0, default=0)
    # Of the usage above: what subagents (Claude Code sidechains) used, and cost.
    subagent_tokens = models.BigIntegerField(db_default=0, default=0)
    subagent_cost = models.DecimalField(max_digits=18, decimal_places=8, null=True, blank=True)
    duration_ms = models.BigIntegerField(null=True, blank=True)
    message_count = models.IntegerField(default=0)
    end_reason = models.CharField(max_length=64, null=True, blank=True)
    summary = models.TextField(null=True, blank=True)
    # Public sharing: /s/<slug> with >= 128 random bits; "stop sharing" drops the slug (a new
    # share gets a new link) and a past share_expires_at makes the link a 404. The nightly prune
    # (services.sessions_unshare_expired) then drops an expired link's slug too, keeping
    # share_expires_at so the session page can still say when the last link expired.
    is_public = models.BooleanField(default=False)
    share_slug = models.CharField(max_length=64, null=True, blank=True, unique=True)
    share_expires_at = models.DateTimeField(null=True, blank=True)
    title_vector = models.GeneratedField(
        expression=SearchVector("title", config="english") + SearchVector("title", config="simple"),
        output_field=SearchVectorField(),
        db_persist=True,
    )
    # --- the review: owned by the evals app ---
    # evals.services is the only writer (session_review, sessions_mark_eval_ready), and records each
    # change in evals.ReviewEvent; nothing in this app writes these columns (evals/tests/
    # test_review_ownership.py checks). They live on the session row because the session list's
    # filters and indexes, the rollups and the exports read them with the session: a table of
    # their own would add a join to every list page. Tags are names from the workspace's
    # vocabulary (evals.EvalTag). EvalStatus stays here, with the column it constrains, so this
    # app never imports evals.
    eval_ready = models.BooleanField(db_default=False)  # db_default: the sync upsert is raw SQL
    eval_status = models.CharField(max_length=16, choices=EvalStatus.choices, null=True, blank=True)
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

    # Not columns: set on instances by the reads that load them.
    viewer_role: str | None  # the viewer's role in the workspace (selectors.get_session_for_user)
    chunk_text: str | None  # the start of the chunk a semantic search hit matched (search.selectors)

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
            # `manage.py reprice --pending` finds the sessions stored before the cost engine at once
            models.Index(F("id"), name="session_pending_price_idx", condition=Q(cost_source=CostSource.PENDING)),
            # the nightly prune of expired public links: only the shared sessions that have an expiry
            models.Index(
                F("share_expires_at"),
                name="session_share_expiry_idx",
                condition=Q(is_public=True, share_expires_at__isnull=False),
            ),
        ]

    def __str__(self) -> str:
        return self.title or self.external_id

    @property
    def source_label(self) -> str:
        return SOURCE_LABELS.get(self.source, self.source)

    @property
    def share_active(self) -> bool:
        """Whether /s/<slug> serves this session right now."""
        return self.is_public and not self.share_expired

    @property
    def share_expired(self) -> bool:
        """The last public link ran out (rather than being stopped, which clears the expiry)."""
        return self.share_expires_at is not None and self.share_expires_at <= timezone.now()

    @property
    def usage_cache_write_tokens(self) -> int:
        return self.usage_cache_write_5m_tokens + self.usage_cache_write_1h_tokens

    @property
    def usage_total_tokens(self) -> int:
        """Every token processed: input, cache reads and writes, output."""
        return (
            self.usage_input_tokens
            + self.usage_cache_read_tokens
            + self.usage_cache_write_tokens
            + self.usage_output_tokens
        )


class Message(models.Model):
    session = models.ForeignKey(Session, on_delete=models.CASCADE, related_name="messages", db_index=False)
    external_id = models.CharField(max_length=255, help_text="The plugin's message id.")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.UNKNOWN)
    text_content = models.TextField(null=True, blank=True)
    model = models.CharField(max_length=255, null=True, blank=True)
    prompt_tokens = models.BigIntegerField(null=True, blank=True)
    completion_tokens = models.BigIntegerField(null=True, blank=True)
    # This request's cache reads and writes (writes split by lifetime when known) and reasoning
    # (of completion_tokens), as reported; NULL when the plugin doesn't send them.
    cache_read_tokens = models.BigIntegerField(null=True, blank=True)
    cache_write_tokens = models.BigIntegerField(null=True, blank=True)
    cache_write_5m_tokens = models.BigIntegerField(null=True, blank=True)
    cache_write_1h_tokens = models.BigIntegerField(null=True, blank=True)
    reasoning_tokens = models.BigIntegerField(null=True, blank=True)
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

    # Not a column: this request's price, set by selectors.attach_message_costs (None = unknown).
    cost: Decimal | None

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


# --- cost and analytics ---------------------------------------------------------------------------

# Session durations are counted in buckets growing by DURATION_RATIO from 1 second (bucket 0 is
# under a second; the last one takes everything longer), so a median or p90 over any range is
# read off summed buckets to within about ±6% (geometric interpolation inside a bucket).
DURATION_BUCKETS = 64
DURATION_RATIO = 1.25


class RollupFigures(models.Model):
    """The sums a rollup row keeps of the sessions it covers (see sessions_app.rollups)."""

    sessions = models.IntegerField(default=0)
    messages = models.BigIntegerField(default=0)
    # as reported (upstream's promptTokens / completionTokens, for /api/stats)
    prompt_tokens = models.BigIntegerField(default=0)
    completion_tokens = models.BigIntegerField(default=0)
    # in one convention (Session.usage_*)
    input_tokens = models.BigIntegerField(default=0)
    output_tokens = models.BigIntegerField(default=0)
    cache_read_tokens = models.BigIntegerField(default=0)
    cache_write_5m_tokens = models.BigIntegerField(default=0)
    cache_write_1h_tokens = models.BigIntegerField(default=0)
    reasoning_tokens = models.BigIntegerField(default=0)
    subagent_tokens = models.BigIntegerField(default=0)
    cost = models.DecimalField(max_digits=28, decimal_places=8, default=0, help_text="Shown cost, summed.")
    computed_cost = models.DecimalField(max_digits=28, decimal_places=8, default=0)
    reported_cost = models.DecimalField(max_digits=28, decimal_places=8, default=0)
    subagent_cost = models.DecimalField(max_digits=28, decimal_places=8, default=0)
    # sessions by Session.cost_source
    sessions_computed = models.IntegerField(default=0)
    sessions_reported = models.IntegerField(default=0)
    sessions_unpriced = models.IntegerField(default=0)
    sessions_no_usage = models.IntegerField(default=0)
    sessions_pending = models.IntegerField(default=0)
    sessions_cost_reported = models.IntegerField(default=0, help_text="Sessions whose plugin reported a cost.")
    priced_tokens = models.BigIntegerField(default=0, help_text="Tokens of the sessions with a cost.")
    duration_ms = models.BigIntegerField(default=0)
    sessions_with_duration = models.IntegerField(default=0)
    duration_buckets = ArrayField(models.IntegerField(), size=DURATION_BUCKETS)
    # sessions by review status (Session.eval_status)
    reviews_golden = models.IntegerField(default=0)
    reviews_correct = models.IntegerField(default=0)
    reviews_incorrect = models.IntegerField(default=0)
    reviews_needs_review = models.IntegerField(default=0)

    class Meta:
        abstract = True


class UsageRollup(RollupFigures):
    """The sums of a workspace's sessions per day (the workspace's time zone; a session counts
    on the day it started), model, agent, owner and project: the finest rollup, which answers
    any combination of filters.

    Kept exact by every write of a session (sessions_app.rollups) in the same transaction.
    `manage.py rollups --rebuild` recomputes them from the sessions.
    """

    workspace = models.ForeignKey(
        "accounts.Workspace", on_delete=models.CASCADE, related_name="usage_rollups", db_index=False
    )
    day = models.DateField()
    model = models.CharField(max_length=255, blank=True, help_text="Empty: no model reported.")
    source = models.CharField(max_length=64)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    project = models.CharField(max_length=255, blank=True, help_text="Name, else path; empty: none.")
    project_named = models.BooleanField(help_text="Whether `project` is a project name (not a path).")

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["workspace", "day", "model", "source", "owner", "project", "project_named"],
                name="usagerollup_key_uniq",
            ),
        ]
        indexes = [models.Index(fields=["workspace", "day"], name="usagerollup_ws_day_idx")]

    def __str__(self) -> str:
        return f"{self.day} {self.model or '?'} {self.source}: {self.sessions} sessions"


class RollupPeriod(models.TextChoices):
    DAY = "day", "Day"
    MONTH = "month", "Month"


class DimensionRollup(RollupFigures):
    """The same sums by one dimension (model, owner, project or source) and agent, per day and
    per month: what a page without a model, owner or project filter reads. A range is covered by
    its whole months plus the days at its edges, so a year is a few dozen rows per key whatever
    the number of sessions. Kept with UsageRollup, in the same statement batch."""

    workspace = models.ForeignKey(
        "accounts.Workspace", on_delete=models.CASCADE, related_name="dimension_rollups", db_index=False
    )
    dimension = models.CharField(max_length=8)
    period = models.CharField(max_length=5, choices=RollupPeriod.choices)
    start = models.DateField(help_text="The day, or the first day of the month.")
    source = models.CharField(max_length=64)
    key = models.CharField(max_length=255, blank=True, help_text="The model, owner id, project or source.")
    key_named = models.BooleanField(default=False, help_text="project: whether `key` is a project name.")

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["workspace", "dimension", "period", "start", "source", "key", "key_named"],
                name="dimensionrollup_key_uniq",
            ),
        ]
        indexes = [
            models.Index(fields=["workspace", "dimension", "period", "start"], name="dimrollup_ws_dim_start_idx")
        ]

    def __str__(self) -> str:
        return f"{self.dimension} {self.key or '?'} {self.period} {self.start}: {self.sessions} sessions"


MAX_RATE = 100_000  # USD per million tokens; no model costs near that
EARLIEST_PRICE = datetime(2000, 1, 1, tzinfo=UTC)  # sessions can't start earlier (wire.MIN_EPOCH_MS)


def validate_price_date(value) -> None:
    if value < EARLIEST_PRICE or value.year > 2100:
        raise ValidationError("Choose a date between 2000 and 2100.")


def validate_model_pattern(value: str) -> None:
    value = value.strip()
    if not value.rstrip("*").strip():
        raise ValidationError("Name a model, or a prefix ending in *, not every model.")
    if "*" in value[:-1]:
        raise ValidationError("Only a trailing * is supported.")


class PriceOverride(models.Model):
    """A price that replaces the price book's for matching models, from `effective_from` on:
    negotiated rates, a self-hosted model at $0, a model the book doesn't know.

    A workspace's overrides win over instance-wide ones (workspace NULL, set by staff in the
    admin). Prices are USD per million tokens; an empty cache price is the input price.
    """

    workspace = models.ForeignKey(
        "accounts.Workspace",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="price_overrides",
        help_text="Empty: every workspace (instance-wide).",
    )
    model_pattern = models.CharField(
        "model",
        max_length=255,
        validators=[validate_model_pattern],
        help_text='The model id as the plugins send it, e.g. "claude-sonnet-4-5-20250929"; '
        'end it with * to match every id that starts so ("claude-sonnet-4-5*").',
    )
    input_per_m = models.DecimalField(
        "input $/M", max_digits=14, decimal_places=6, validators=[MaxValueValidator(MAX_RATE)]
    )
    output_per_m = models.DecimalField(
        "output $/M", max_digits=14, decimal_places=6, validators=[MaxValueValidator(MAX_RATE)]
    )
    cache_read_per_m = models.DecimalField(
        "cache read $/M",
        max_digits=14,
        decimal_places=6,
        null=True,
        blank=True,
        validators=[MaxValueValidator(MAX_RATE)],
    )
    cache_write_5m_per_m = models.DecimalField(
        "cache write (5 min) $/M",
        max_digits=14,
        decimal_places=6,
        null=True,
        blank=True,
        validators=[MaxValueValidator(MAX_RATE)],
    )
    cache_write_1h_per_m = models.DecimalField(
        "cache write (1 hour) $/M",
        max_digits=14,
        decimal_places=6,
        null=True,
        blank=True,
        validators=[MaxValueValidator(MAX_RATE)],
    )
    effective_from = models.DateTimeField(
        help_text="Sessions started from this moment on use this price.", validators=[validate_price_date]
    )
    note = models.CharField(max_length=200, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["model_pattern", "-effective_from"]
        constraints = [
            models.UniqueConstraint(
                fields=["workspace", "model_pattern", "effective_from"],
                name="priceoverride_uniq",
                nulls_distinct=False,
            ),
            models.CheckConstraint(
                condition=Q(input_per_m__gte=0, output_per_m__gte=0)
                & (Q(cache_read_per_m__isnull=True) | Q(cache_read_per_m__gte=0))
                & (Q(cache_write_5m_per_m__isnull=True) | Q(cache_write_5m_per_m__gte=0))
                & (Q(cache_write_1h_per_m__isnull=True) | Q(cache_write_1h_per_m__gte=0)),
                name="priceoverride_non_negative",
            ),
        ]

    def __str__(self) -> str:
        where = self.workspace or "every workspace"
        return f"{self.model_pattern} from {self.effective_from:%Y-%m-%d} ({where})"


class RepricingJob(Job):
    """Re-prices the sessions a price change affects, in batches, by a Celery task (or
    `manage.py reprice`). Each batch commits with its progress (`last_id`), so a job stopped
    half-way resumes where it was, and pricing a session twice gives the same figures.
    """

    workspace = models.ForeignKey(
        "accounts.Workspace", on_delete=models.CASCADE, null=True, blank=True, related_name="repricing_jobs"
    )
    model_pattern = models.CharField(max_length=255, blank=True, help_text="Empty: every session in scope.")
    pending_only = models.BooleanField(default=False, help_text="Only sessions never priced.")
    reason = models.CharField(max_length=300, blank=True)
    total = models.IntegerField(default=0)
    processed = models.IntegerField(default=0)
    changed = models.IntegerField(default=0, help_text="Sessions whose cost changed.")
    last_id = models.BigIntegerField(default=0, help_text="Sessions up to this id are done.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    task = "sessions_app.tasks.repricing_job_run_task"
    stale_after = timedelta(minutes=10)  # a batch commits its progress every few seconds
    queue_down_error = "The task queue is unavailable ({error}): run `manage.py reprice` instead."

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["workspace", "-created_at"], name="repricingjob_ws_created_idx")]

    def __str__(self) -> str:
        return f"Re-pricing #{self.pk} ({self.status})"

    def progress_total(self) -> int:
        return self.total

    def progress_url(self) -> str:
        return reverse("sessions:repricing-job", args=[self.pk])

    def progress_done(self) -> int:
        return self.processed
