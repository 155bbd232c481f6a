"""Shapes of the eval export API: its parameters (upstream's names, plus ours) and its answers.

Parameters come as query parameters on GET, and as query parameters and/or a JSON body on POST
(the body wins), so every field takes both strings and JSON values.
"""

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from opensync.api import EpochMillisField, text_filter
from opensync.jobs import JobStatus
from sessions_app.models import EvalStatus

from ..export import warning_lines
from ..formats import ALIASES, FORMATS, PER_TURN, TURN_MODES
from ..models import ExportStatus
from ..services import ReviewError, normalise_tags

# Upstream's four first, as its error message lists them.
UPSTREAM_FORMATS = ("deepeval", "openai", "promptfoo", "filesystem")
FORMAT_NAMES = [*UPSTREAM_FORMATS, *(name for name in FORMATS if name not in UPSTREAM_FORMATS), *ALIASES]
INVALID_FORMAT = f"Invalid format. Use: {', '.join(FORMAT_NAMES)}"
MAX_MIN_LENGTH = 100_000
# (not an enum in the schema: its name would collide with the eval status filter's)
JOB_STATUSES = f"{', '.join(ExportStatus.values)}."


@extend_schema_field({"type": "boolean"})
class UnlessFalseField(serializers.Field):
    """Upstream's flags: anything but the literal `false` (any case) is true; JSON booleans as is."""

    def to_internal_value(self, data):
        if isinstance(data, bool):
            return data
        return str(data).strip().lower() != "false"

    def to_representation(self, value):
        return bool(value)


def unless_false(help_text: str) -> UnlessFalseField:
    return UnlessFalseField(required=False, default=True, help_text=f"{help_text} Default true; `false` turns it off.")


def flag(name: str, help_text: str) -> serializers.BooleanField:
    return serializers.BooleanField(
        required=False,
        default=False,
        help_text=f"{help_text} Default false.",
        error_messages={"invalid": f"{name} must be true or false"},
    )


@extend_schema_field({"type": "string", "example": "bug-fix,regression"})
class TagsField(serializers.Field):
    """Comma-separated tags (a JSON list in a body), normalised as reviewers' tags are."""

    def to_internal_value(self, data):
        if not isinstance(data, str | list):
            raise serializers.ValidationError("tags must be comma-separated text or a list of strings")
        try:
            return normalise_tags(data)
        except ReviewError as exc:
            raise serializers.ValidationError(f"tags: {exc}") from exc

    def to_representation(self, value):
        return ",".join(value)


def date_field(name: str, help_text: str) -> serializers.DateField:
    return serializers.DateField(
        required=False,
        allow_null=True,
        input_formats=["%Y-%m-%d"],
        help_text=help_text,
        error_messages={"invalid": f"{name} must be a date as YYYY-MM-DD", "datetime": f"{name} must be a date"},
    )


class EvalExportQuerySerializer(serializers.Serializer):
    """The parameters of GET and POST /api/export/evals."""

    format = serializers.ChoiceField(
        choices=FORMAT_NAMES,
        required=False,
        default="deepeval",
        help_text="deepeval (JSON array of goldens; `deepeval-conversational` = deepeval with turn_mode=multi_turn), "
        "openai (registry JSONL), openai-evals-api (JSONL item rows), promptfoo (JSONL), promptfoo-yaml, chat "
        "(fine-tuning JSONL), filesystem (zip of text files).",
        error_messages={"invalid_choice": INVALID_FORMAT},
    )
    tool = text_filter("tool", "Only sessions of this plugin (the session's source), e.g. claude-code.", max_length=64)
    model = text_filter("model", "Only sessions of this model (exact).")
    project = text_filter("project", "Only sessions of this project name (exact).")
    date_from = date_field("date_from", "Only sessions created on or after this day (UTC).")
    date_to = date_field("date_to", "Only sessions created on or before this day (UTC), the whole day included.")
    tags = TagsField(required=False, default=list, help_text="Comma-separated: sessions with any of these tags.")
    min_tokens = serializers.IntegerField(
        required=False,
        default=0,
        min_value=0,
        help_text="Only sessions with at least this many tokens (prompt + completion).",
        error_messages={"invalid": "min_tokens must be a whole number", "min_value": "min_tokens must not be negative"},
    )
    status = serializers.ChoiceField(
        choices=EvalStatus.values,
        required=False,
        allow_blank=True,
        default="",
        help_text="Only sessions with this eval status.",
        error_messages={"invalid_choice": f"status must be one of {', '.join(EvalStatus.values)}"},
    )
    include_metadata = unless_false("Include tool calls (DeepEval `tools_called`, tool activity in chat text).")
    anonymize = unless_false("Replace home directories in paths (/Users/<name>, /home/<name>, C:\\Users\\<name>).")
    redact = unless_false("Redact secrets (API keys, tokens, private keys).")
    replay = unless_false("Promptfoo: the recorded answer as `providerOutput`.")
    include_system = flag("include_system", "Include system prompts.")
    code_blocks_only = flag("code_blocks_only", "Only exchanges whose prompt or answer has a fenced code block.")
    min_length = serializers.IntegerField(
        required=False,
        default=0,
        min_value=0,
        max_value=MAX_MIN_LENGTH,
        help_text="Leave out exchanges whose prompt or answer is shorter than this many characters.",
        error_messages={
            "invalid": "min_length must be a whole number",
            "min_value": "min_length must not be negative",
            "max_value": f"min_length must be at most {MAX_MIN_LENGTH:,}",
        },
    )
    turn_mode = serializers.ChoiceField(
        choices=list(TURN_MODES),
        required=False,
        default=PER_TURN,
        help_text="per_turn (a record per exchange), final_only (the last exchange), full (a record per session), "
        "multi_turn (DeepEval conversational goldens). Formats of whole sessions (chat, filesystem) ignore it.",
        error_messages={"invalid_choice": f"turn_mode must be one of {', '.join(TURN_MODES)}"},
    )


# --- answers --------------------------------------------------------------------------------------


class ExportJobCreatedSerializer(serializers.Serializer):
    id = serializers.CharField(help_text="The export job's id.")
    status = serializers.CharField(help_text=JOB_STATUSES)
    format = serializers.CharField()
    total = serializers.IntegerField(help_text="Sessions in scope when the job was queued.")
    statusUrl = serializers.CharField(help_text="Poll this for progress (also the Location header).")
    downloadUrl = serializers.CharField(allow_null=True, help_text="Null until the job is done.")


class ExportOptionsSerializer(serializers.Serializer):
    turnMode = serializers.CharField()
    includeTools = serializers.BooleanField()
    includeSystem = serializers.BooleanField()
    anonymizePaths = serializers.BooleanField()
    redactSecrets = serializers.BooleanField()
    minLength = serializers.IntegerField()
    codeBlocksOnly = serializers.BooleanField()
    replay = serializers.BooleanField()


class ExportWarningSerializer(serializers.Serializer):
    count = serializers.IntegerField()
    examples = serializers.ListField(child=serializers.CharField(), help_text="Some of the sessions' externalIds.")


class ExportJobSerializer(serializers.Serializer):
    """An export job: its request, progress and, once done, the dataset version it built."""

    id = serializers.CharField(source="pk")
    status = serializers.CharField(help_text=JOB_STATUSES)
    format = serializers.CharField()
    options = serializers.SerializerMethodField()
    scope = serializers.JSONField(
        help_text='`{"kind": "filter", "filters": {...}}` (the filters asked for) or `{"kind": "selection", "ids": '
        "[...]}` (sessions ticked in the web UI)."
    )
    scopeLabel = serializers.CharField(source="scope_label")
    via = serializers.CharField(help_text="web or api: where the export was asked for.")
    total = serializers.IntegerField(help_text="Sessions in scope.")
    processed = serializers.IntegerField(help_text="Sessions read so far.")
    percent = serializers.IntegerField(help_text="0-100.")
    sessions = serializers.IntegerField(help_text="Sessions with at least one record.")
    records = serializers.IntegerField(help_text="Records (test cases) written.")
    skipped = serializers.IntegerField(help_text="Sessions with no record.")
    warnings = serializers.SerializerMethodField(help_text="The validation warnings, as sentences.")
    warningDetails = serializers.DictField(
        source="warnings", child=ExportWarningSerializer(), help_text="The same by code: count and example sessions."
    )
    error = serializers.SerializerMethodField(help_text="Why the export failed; null otherwise.")
    contentHash = serializers.SerializerMethodField(
        help_text="SHA-256 of the records (canonical JSON, in order): equal for two exports of the same data."
    )
    sessionIds = serializers.SerializerMethodField(help_text="The sessions with at least one record (ids).")
    filename = serializers.SerializerMethodField()
    size = serializers.IntegerField(help_text="Bytes of the file; 0 until done.")
    createdAt = EpochMillisField(source="created_at")
    finishedAt = EpochMillisField(
        source="finished_at", allow_null=True, help_text="Epoch milliseconds; null while it runs."
    )
    downloadUrl = serializers.SerializerMethodField(
        help_text="Set once the job is done; null again once its file was removed (see fileExpiredAt)."
    )
    fileExpiredAt = EpochMillisField(
        source="file_expired_at",
        allow_null=True,
        help_text="Epoch milliseconds when the file was removed (OPENSYNC_EXPORT_FILE_DAYS after the build); "
        "null while it is kept. The job and its dataset version stay.",
    )

    @extend_schema_field(ExportOptionsSerializer)
    def get_options(self, job) -> dict:
        o = job.options or {}
        return {
            "turnMode": o.get("turn_mode", PER_TURN),
            "includeTools": o.get("include_tools", True),
            "includeSystem": o.get("include_system", False),
            "anonymizePaths": o.get("anonymize_paths", False),
            "redactSecrets": o.get("redact_secrets", True),
            "minLength": o.get("min_length", 0),
            "codeBlocksOnly": o.get("code_blocks_only", False),
            "replay": o.get("replay", True),
        }

    def get_warnings(self, job) -> list[str]:
        return warning_lines(job.warnings or {})

    def get_error(self, job) -> str | None:
        return job.error or None

    def get_contentHash(self, job) -> str | None:
        return job.content_hash or None

    def get_sessionIds(self, job) -> list[str]:
        return [str(pk) for pk in job.session_ids]

    def get_filename(self, job) -> str | None:
        return job.filename or None

    def get_downloadUrl(self, job) -> str | None:
        if job.status != JobStatus.DONE or job.file_expired_at:
            return None
        return self.context["download_url"](job)
