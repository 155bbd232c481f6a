"""Shapes of the API: query parameters in, JSON out, and the wire bodies of the sync API.

Keys are camelCase as upstream OpenSync sends them. Fixes to upstream's inconsistencies only add
keys: every optional key is always present (null when unknown) instead of sometimes missing,
every session carries `id` and `source` (and search results, in search/api/serializers.py, carry
upstream's semantic `_id` too).

The sync API parses its bodies with `sessions_app.wire` (see api/views.py); the `Sync*`
serializers here only describe those bodies in the OpenAPI schema.
"""

from rest_framework import serializers

from opensync.api import EpochMillisField, limit_field, text_filter

from ..models import Role, Source
from ..selectors import SessionFilters
from ..wire import normalise_source

# `# type: ignore[assignment]` below: a field named `source` or `errors` (the wire's names) is
# declared like any other (DRF's metaclass takes declared fields off the class), but the stubs see
# it overriding the Field/Serializer attribute of that name.

# --- sessions -------------------------------------------------------------------------------------


class UsageOfSessionSerializer(serializers.Serializer):
    """A session's tokens in one convention, whatever the agent: input without cache, output
    with reasoning."""

    inputTokens = serializers.IntegerField(source="usage_input_tokens", help_text="Input without cache.")
    outputTokens = serializers.IntegerField(source="usage_output_tokens", help_text="Output, reasoning included.")
    reasoningTokens = serializers.IntegerField(source="usage_reasoning_tokens", help_text="Of outputTokens.")
    cacheReadTokens = serializers.IntegerField(source="usage_cache_read_tokens")
    cacheWrite5mTokens = serializers.IntegerField(source="usage_cache_write_5m_tokens")
    cacheWrite1hTokens = serializers.IntegerField(source="usage_cache_write_1h_tokens")
    totalTokens = serializers.IntegerField(source="usage_total_tokens", help_text="All of the above but reasoning.")
    subagentTokens = serializers.IntegerField(source="subagent_tokens", help_text="Of the total: subagents'.")


class SessionSerializer(serializers.Serializer):
    """A session as `/api/sessions` and `/api/sessions/get` return it (upstream's fields, plus
    `source`, cache tokens, the cost's provenance, `endReason` and the eval fields)."""

    id = serializers.CharField(source="pk", help_text="The server's id of the session.")
    externalId = serializers.CharField(source="external_id", help_text="The plugin's session id.")
    title = serializers.CharField(allow_null=True)
    projectPath = serializers.CharField(source="project_path", allow_null=True)
    projectName = serializers.CharField(source="project_name", allow_null=True)
    model = serializers.CharField(allow_null=True)
    provider = serializers.CharField(allow_null=True)
    source = serializers.CharField(help_text=f"The plugin that synced it: {', '.join(Source.values)}, or another.")  # type: ignore[assignment]
    promptTokens = serializers.IntegerField(source="prompt_tokens")
    completionTokens = serializers.IntegerField(source="completion_tokens")
    totalTokens = serializers.IntegerField(source="total_tokens", help_text="promptTokens + completionTokens.")
    cacheReadTokens = serializers.IntegerField(source="cache_read_tokens")
    cacheCreationTokens = serializers.IntegerField(source="cache_write_tokens")
    cacheWrite5mTokens = serializers.IntegerField(source="cache_write_5m_tokens", help_text="As reported.")
    cacheWrite1hTokens = serializers.IntegerField(source="cache_write_1h_tokens", help_text="As reported.")
    reasoningTokens = serializers.IntegerField(source="reasoning_tokens", help_text="As reported.")
    cost = serializers.SerializerMethodField(
        help_text="USD: the server's computed cost, else the plugin's reported one (see costSource); 0 when "
        "unknown (costKnown false), as upstream's clients expect a number."
    )
    costKnown = serializers.SerializerMethodField(help_text="False when the cost is unknown (not $0).")
    costSource = serializers.ChoiceField(
        source="cost_source",
        choices=["computed", "reported", "unpriced", "none", "pending"],
        help_text="computed: priced by the server; reported: the plugin's figure (the server couldn't price "
        "it); unpriced: a model with no price and no usable reported cost; none: no usage reported; pending: "
        "stored before the cost engine and not re-priced yet.",
    )
    costNote = serializers.CharField(source="cost_note", help_text="Why the cost is not computed, or a caveat.")
    computedCost = serializers.DecimalField(
        source="computed_cost", max_digits=18, decimal_places=8, coerce_to_string=False, allow_null=True
    )
    reportedCost = serializers.DecimalField(
        source="reported_cost", max_digits=18, decimal_places=8, coerce_to_string=False, allow_null=True
    )
    costReported = serializers.SerializerMethodField(help_text="False when the plugin never reported a cost.")
    priceModel = serializers.CharField(
        source="price_model", help_text="The prices used (price book entry or override)."
    )
    usage = UsageOfSessionSerializer(source="*")
    subagentCost = serializers.DecimalField(
        source="subagent_cost", max_digits=18, decimal_places=8, coerce_to_string=False, allow_null=True
    )
    durationMs = serializers.IntegerField(source="duration_ms", allow_null=True)
    isPublic = serializers.BooleanField(source="share_active", help_text="Whether a public link serves it now.")
    messageCount = serializers.IntegerField(source="message_count")
    endReason = serializers.CharField(source="end_reason", allow_null=True)
    evalReady = serializers.BooleanField(source="eval_ready")
    evalStatus = serializers.CharField(source="eval_status", allow_null=True)
    createdAt = EpochMillisField(source="created_at")
    updatedAt = EpochMillisField(source="updated_at")

    def get_cost(self, session) -> float:
        return 0.0 if session.cost is None else float(session.cost)

    def get_costKnown(self, session) -> bool:
        return session.cost is not None

    def get_costReported(self, session) -> bool:
        return session.reported_cost is not None


class PartSerializer(serializers.Serializer):
    type = serializers.CharField(help_text="text, tool-call, tool-result, thinking… as the plugin sent it.")
    content = serializers.JSONField(allow_null=True, help_text="Any JSON, as the plugin sent it.")


class MessageSerializer(serializers.Serializer):
    id = serializers.CharField(source="pk")
    externalId = serializers.CharField(source="external_id")
    role = serializers.ChoiceField(choices=Role.choices)
    textContent = serializers.CharField(source="text_content", allow_null=True)
    model = serializers.CharField(allow_null=True)
    promptTokens = serializers.IntegerField(source="prompt_tokens", allow_null=True)
    completionTokens = serializers.IntegerField(source="completion_tokens", allow_null=True)
    cacheReadTokens = serializers.IntegerField(source="cache_read_tokens", allow_null=True)
    cacheCreationTokens = serializers.IntegerField(source="cache_write_tokens", allow_null=True)
    cacheWrite5mTokens = serializers.IntegerField(source="cache_write_5m_tokens", allow_null=True)
    cacheWrite1hTokens = serializers.IntegerField(source="cache_write_1h_tokens", allow_null=True)
    reasoningTokens = serializers.IntegerField(source="reasoning_tokens", allow_null=True)
    cost = serializers.DecimalField(
        max_digits=18,
        decimal_places=8,
        coerce_to_string=False,
        allow_null=True,
        help_text="USD, computed by the server for this one request (tiered prices apply); null without tokens "
        "or a price.",
    )
    durationMs = serializers.IntegerField(source="duration_ms", allow_null=True)
    createdAt = EpochMillisField(source="created_at")
    parts = PartSerializer(many=True, help_text="In order.")


def session_filters(params: dict) -> SessionFilters:
    """The session filters of a validated query (SessionListQuerySerializer's, and the search API's)."""
    return SessionFilters(
        source=normalise_source(params.get("source")) or "",
        project=params.get("project", "").strip(),
        model=params.get("model", "").strip(),
        provider=params.get("provider", "").strip(),
    )


class SessionListQuerySerializer(serializers.Serializer):
    limit = limit_field(default=50, maximum=200)
    cursor = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=500,
        help_text="`nextCursor` of the previous page.",
        error_messages={"max_length": "cursor is not valid; pass the nextCursor of the previous page"},
    )
    source = text_filter("source", "Only sessions of this plugin, e.g. claude-code.", max_length=64)  # type: ignore[assignment]
    project = text_filter("project", "Only sessions of this project name.")
    model = text_filter("model", "Only sessions of this model.")
    provider = text_filter("provider", "Only sessions of this provider.")


class SessionListSerializer(serializers.Serializer):
    sessions = SessionSerializer(many=True, help_text="Most recently updated first.")
    nextCursor = serializers.CharField(
        allow_null=True, help_text="Pass as `cursor` for the next page; null at the end."
    )


def session_id_field() -> serializers.CharField:
    message = "Missing session ID"  # upstream's words
    return serializers.CharField(
        help_text="The session's `id`.",
        error_messages={"required": message, "blank": message},
    )


class SessionGetQuerySerializer(serializers.Serializer):
    id = session_id_field()
    messageLimit = limit_field(default=1000, maximum=5000, name="messageLimit")
    messageCursor = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=500,
        help_text="`nextMessageCursor` of the previous answer.",
        error_messages={"max_length": "messageCursor is not valid; pass the nextMessageCursor you were given"},
    )


class SessionDetailSerializer(serializers.Serializer):
    session = SessionSerializer()
    messages = MessageSerializer(many=True, help_text="Oldest first, at most `messageLimit` of them.")
    nextMessageCursor = serializers.CharField(
        allow_null=True, help_text="Set when the session has more messages: pass as `messageCursor`."
    )


# --- export ---------------------------------------------------------------------------------------


class ExportQuerySerializer(serializers.Serializer):
    id = session_id_field()
    format = serializers.ChoiceField(
        choices=["json", "markdown", "jsonl"],
        required=False,
        default="json",
        help_text="`markdown` answers a text/markdown file; `json` and `jsonl` answer JSON.",
        error_messages={"invalid_choice": "format must be one of json, markdown, jsonl"},
    )


class ExportSessionSerializer(serializers.Serializer):
    id = serializers.CharField()
    externalId = serializers.CharField()
    title = serializers.CharField(allow_null=True)
    model = serializers.CharField(allow_null=True)
    source = serializers.CharField()  # type: ignore[assignment]


class ExportMessageSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=Role.choices)
    content = serializers.CharField(help_text="The text parts joined by newlines, else textContent, else empty.")


class ExportJsonSerializer(serializers.Serializer):
    session = ExportSessionSerializer()
    messages = ExportMessageSerializer(many=True)


class ExportJsonlSerializer(serializers.Serializer):
    content = serializers.CharField(help_text='One `{"role", "content"}` JSON object per line.')
    filename = serializers.CharField()


# --- stats ----------------------------------------------------------------------------------------


class UsageSerializer(serializers.Serializer):
    tokens = serializers.IntegerField()
    cost = serializers.FloatField()
    sessions = serializers.IntegerField()


class StatsSerializer(serializers.Serializer):
    sessionCount = serializers.IntegerField()
    messageCount = serializers.IntegerField()
    totalTokens = serializers.IntegerField(help_text="promptTokens + completionTokens as reported (upstream's).")
    totalCost = serializers.FloatField(
        help_text="USD: the sessions' costs (computed by the server, else reported); unknown ones count as 0."
    )
    totalDurationMs = serializers.IntegerField()
    modelUsage = serializers.DictField(child=UsageSerializer(), help_text='By model ("unknown" when absent).')
    sourceUsage = serializers.DictField(child=UsageSerializer(), help_text="By plugin.")


# --- the sync API's bodies (documentation only) ---------------------------------------------------


class SyncModelUsageSerializer(serializers.Serializer):
    model = serializers.CharField(required=False, allow_null=True, max_length=255)
    provider = serializers.CharField(required=False, allow_null=True, max_length=255)
    subagent = serializers.BooleanField(required=False, help_text="A subagent's usage (shown apart).")
    inputTokens = serializers.IntegerField(required=False, min_value=0, help_text="Input without cache.")
    outputTokens = serializers.IntegerField(required=False, min_value=0, help_text="Output, reasoning included.")
    reasoningTokens = serializers.IntegerField(required=False, min_value=0)
    cacheReadTokens = serializers.IntegerField(required=False, min_value=0)
    cacheWriteTokens = serializers.IntegerField(required=False, min_value=0, help_text="Every cache write.")
    cacheWrite5mTokens = serializers.IntegerField(required=False, min_value=0)
    cacheWrite1hTokens = serializers.IntegerField(required=False, min_value=0)


class SyncSessionSerializer(serializers.Serializer):
    externalId = serializers.CharField(max_length=255, help_text="Required (or `sessionId`): the plugin's id.")
    title = serializers.CharField(required=False, allow_null=True)
    projectPath = serializers.CharField(required=False, allow_null=True)
    projectName = serializers.CharField(required=False, allow_null=True, max_length=255)
    model = serializers.CharField(required=False, allow_null=True, max_length=255)
    provider = serializers.CharField(required=False, allow_null=True, max_length=255)
    source = serializers.CharField(  # type: ignore[assignment]
        required=False, allow_null=True, max_length=64, help_text="Default opencode; cursor is stored as cursor-sync."
    )
    promptTokens = serializers.IntegerField(
        required=False, allow_null=True, min_value=0, help_text="Or inputTokens. 0 never overwrites a stored count."
    )
    completionTokens = serializers.IntegerField(
        required=False, allow_null=True, min_value=0, help_text="Or outputTokens."
    )
    cacheReadTokens = serializers.IntegerField(required=False, allow_null=True, min_value=0)
    cacheCreationTokens = serializers.IntegerField(
        required=False, allow_null=True, min_value=0, help_text="Every cache write (or cacheWriteTokens)."
    )
    cacheWrite5mTokens = serializers.IntegerField(
        required=False, allow_null=True, min_value=0, help_text="Of the cache writes: those cached for 5 minutes."
    )
    cacheWrite1hTokens = serializers.IntegerField(
        required=False, allow_null=True, min_value=0, help_text="Of the cache writes: those cached for 1 hour."
    )
    reasoningTokens = serializers.IntegerField(
        required=False, allow_null=True, min_value=0, help_text="Of completionTokens: reasoning."
    )
    modelUsage = SyncModelUsageSerializer(
        many=True,
        required=False,
        allow_null=True,
        help_text="Usage per model (and subagents apart); when present the server prices each row at its model's "
        "prices. Replaces the stored rows.",
    )
    cost = serializers.FloatField(
        required=False,
        allow_null=True,
        min_value=0,
        help_text="USD as the plugin priced it; kept as reportedCost, shown only when the server can't price the "
        "tokens. Overwrites when present.",
    )
    durationMs = serializers.IntegerField(required=False, allow_null=True, min_value=0)
    createdAt = serializers.IntegerField(
        required=False, allow_null=True, help_text="Epoch milliseconds; used only when the session is first created."
    )
    endReason = serializers.CharField(required=False, allow_null=True, max_length=64)


class SyncPartSerializer(serializers.Serializer):
    type = serializers.CharField(max_length=64)
    content = serializers.JSONField(required=False, allow_null=True)


class SyncMessageSerializer(serializers.Serializer):
    sessionExternalId = serializers.CharField(max_length=255, help_text="Required: the session's externalId.")
    externalId = serializers.CharField(max_length=255, help_text="Required: the plugin's message id.")
    role = serializers.ChoiceField(choices=Role.choices, required=False, allow_null=True, help_text="Default unknown.")
    textContent = serializers.CharField(required=False, allow_null=True)
    model = serializers.CharField(required=False, allow_null=True, max_length=255)
    promptTokens = serializers.IntegerField(required=False, allow_null=True, min_value=0)
    completionTokens = serializers.IntegerField(required=False, allow_null=True, min_value=0)
    cacheReadTokens = serializers.IntegerField(required=False, allow_null=True, min_value=0)
    cacheCreationTokens = serializers.IntegerField(required=False, allow_null=True, min_value=0)
    cacheWrite5mTokens = serializers.IntegerField(required=False, allow_null=True, min_value=0)
    cacheWrite1hTokens = serializers.IntegerField(required=False, allow_null=True, min_value=0)
    reasoningTokens = serializers.IntegerField(required=False, allow_null=True, min_value=0)
    durationMs = serializers.IntegerField(required=False, allow_null=True, min_value=0)
    source = serializers.CharField(required=False, allow_null=True, max_length=64)  # type: ignore[assignment]
    createdAt = serializers.IntegerField(required=False, allow_null=True, help_text="Or timestamp; epoch milliseconds.")
    parts = SyncPartSerializer(
        many=True, required=False, allow_null=True, help_text="When present (even empty), replaces the stored parts."
    )


class SyncBatchSerializer(serializers.Serializer):
    sessions = SyncSessionSerializer(many=True, required=False)
    messages = SyncMessageSerializer(many=True, required=False)


class SyncSessionResultSerializer(serializers.Serializer):
    ok = serializers.BooleanField()
    sessionId = serializers.CharField()


class SyncMessageResultSerializer(serializers.Serializer):
    ok = serializers.BooleanField()
    messageId = serializers.CharField()


class SyncBatchResultSerializer(serializers.Serializer):
    ok = serializers.BooleanField()
    sessions = serializers.IntegerField(help_text="Sessions written.")
    messages = serializers.IntegerField(help_text="Messages written.")
    errors = serializers.ListField(child=serializers.CharField(), help_text='e.g. "messages[3]: Missing externalId".')  # type: ignore[assignment]


class SessionIdsSerializer(serializers.Serializer):
    sessionIds = serializers.ListField(
        child=serializers.CharField(), help_text="externalIds of your sessions in the key's workspace."
    )


class HealthSerializer(serializers.Serializer):
    status = serializers.CharField()
    timestamp = serializers.IntegerField(help_text="Epoch milliseconds.")
