"""The eval export API: upstream's `GET /api/export/evals` (a dataset file, built while you wait;
upstream's only works with a browser's JWT, ours with an API key), and the same export as a
background job (`POST`), with its status and download.

Sessions are chosen exactly as the web UI's export chooses them (evals.selectors.filter_scope:
the workspace's eval-ready sessions matching the filters), and the file is the same one
(evals.export_jobs.export_build).
"""

import re
import tempfile
from dataclasses import replace

from django.conf import settings
from django.db.models import QuerySet
from django.urls import reverse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import exceptions
from rest_framework.response import Response

from opensync.api import BAD_REQUEST, UNAUTHORIZED, ReadApi, error, first_error
from opensync.jobs import JobStatus
from sessions_app.models import Session
from sessions_app.selectors import SessionFilters
from sessions_app.wire import normalise_source

from ..export import Report, resolve
from ..export_jobs import MAX_ACTIVE_EXPORTS, ExportError, export_build, export_job_check_stale, export_job_start
from ..formats import FORMATS, PER_TURN, Format, Options
from ..models import ExportJob
from ..responses import EXPORT_HEADERS, export_response, job_file_response
from ..selectors import export_size, filter_scope, scope_sessions
from . import serializers

EVALS = ["Evals"]
NO_EVAL_READY = "No eval-ready sessions found"  # upstream's words
NO_MATCH = "No sessions match the specified filters"  # upstream's words
SPOOL_BYTES = 8 * 1024 * 1024  # an export bigger than this is built in a temporary file on disk

MAX_SYNC_SESSIONS = 10_000  # about 10 s of building; more goes through POST (a job)
BUSY = error(f'`{{"error": "{MAX_ACTIVE_EXPORTS} exports are already building in this workspace; …"}}`')
NO_SESSIONS = error(
    f'`{{"error": "{NO_EVAL_READY}"}}` when the workspace has no eval-ready session, '
    f'`{{"error": "{NO_MATCH}"}}` when none matches the filters.'
)
JOB_NOT_FOUND = error('`{"error": "Export not found"}`: no such export job in the key\'s workspace.')
NOT_READY = error('`{"error": "The export is not ready (status: running)."}` until the job is done, or why it failed.')
FILE_REMOVED = error(
    '`{"error": "The export\'s file was removed on 2026-01-31, 7 days after it was built; start a new export."}`: '
    "files are kept for OPENSYNC_EXPORT_FILE_DAYS; the job's status stays."
)
PARAMS_DESCRIPTION = (
    "Parameters are upstream's (`format`, `tool`, `model`, `date_from`, `date_to`, `tags`, `min_tokens`, `status`, "
    "`include_metadata`, `anonymize`, `turn_mode`) plus `project`, `include_system`, `redact`, `min_length`, "
    "`code_blocks_only` and `replay`. The scope is the workspace's **eval-ready** sessions matching every filter "
    "given, oldest first. A flag that defaults to true is true unless it is the literal `false`, as upstream."
)


# --- the request ----------------------------------------------------------------------------------


def _validated(data: dict) -> dict:
    """The validated parameters; blank values count as absent (as upstream's `if (param)`)."""
    data = {key: value for key, value in data.items() if value != "" and value is not None}
    query = serializers.EvalExportQuerySerializer(data=data)
    if not query.is_valid():
        raise exceptions.ValidationError(first_error(query.errors))
    return query.validated_data


def _format_and_options(params: dict) -> tuple[Format, Options]:
    options = Options(
        turn_mode=params["turn_mode"],
        include_tools=params["include_metadata"],
        include_system=params["include_system"],
        anonymize_paths=params["anonymize"],
        redact_secrets=params["redact"],
        min_length=params["min_length"],
        code_blocks_only=params["code_blocks_only"],
        replay=params["replay"],
    )
    try:
        fmt, options = resolve(params["format"], options)
    except ValueError as exc:
        raise exceptions.ValidationError(str(exc)) from exc
    if not fmt.turn_modes:
        options = replace(options, turn_mode=PER_TURN)  # whole sessions: no turn mode, as the web UI stores it
    return fmt, options


def _scope(params: dict) -> tuple[dict, str]:
    """(the export scope, a description of it) from the filters."""
    filters = SessionFilters(
        source=normalise_source(params.get("tool")) or "",
        model=params.get("model", "").strip(),
        project=params.get("project", "").strip(),
        date_from=params.get("date_from"),
        date_to=params.get("date_to"),
        eval=params.get("status", ""),
    )
    scope = filter_scope(filters, tags=params["tags"], min_tokens=params["min_tokens"])
    described = [
        f"{key}: {', '.join(value) if isinstance(value, list) else value}" for key, value in scope["filters"].items()
    ]
    label = "Eval-ready sessions" + (f" ({'; '.join(described)})" if described else "")
    return scope, label


def _require_eval_ready(workspace_id: int) -> None:
    if not Session.objects.filter(workspace_id=workspace_id, eval_ready=True).exists():
        raise exceptions.NotFound(NO_EVAL_READY)


def _exposed(response):
    """Browsers' fetch() may read the export headers cross-origin (the API answers with CORS headers)."""
    response["Access-Control-Expose-Headers"] = ", ".join(("Content-Disposition", *EXPORT_HEADERS))
    return response


# What each format's file is, as a schema of its media type: DeepEval's is a JSON array of
# records, the JSONL and YAML ones text, the zip bytes.
FILE_SCHEMAS = {
    "application/json": {"type": "array", "items": {"type": "object", "additionalProperties": True}},
    "application/x-ndjson": {"type": "string", "description": "One JSON record per line."},
    "application/yaml": {"type": "string"},
    "application/zip": {"type": "string", "format": "binary"},
}


def _file_schema(description: str) -> dict:
    return {
        (200, content_type): OpenApiResponse(
            FILE_SCHEMAS.get(content_type, OpenApiTypes.BINARY), description=description
        )
        for content_type in sorted({f.content_type for f in FORMATS.values()})
    }


def _job_url(request, name: str, job: ExportJob) -> str:
    """An absolute URL of the job's status or download, under the prefix the request used."""
    namespace = request.resolver_match.namespace if request.resolver_match else ""
    return request.build_absolute_uri(reverse(f"{namespace}:{name}" if namespace else name, args=[job.pk]))


def _use_the_job(request) -> str:
    return (
        f"POST the same parameters to {request.path} to build it in the background: it answers 202 with a "
        "statusUrl (/api/export/jobs/<id>) to poll until the status is done, then the file is at its downloadUrl."
    )


def _refuse_if_too_big(request, session_ids: list[int]) -> None:
    """A GET is built while the client waits, and the server ends a request after 120 s: past the
    bounds on what the build's time follows (the sessions' messages, and their characters), the
    answer is a 400 naming the background job instead of a request killed halfway."""
    max_messages, max_mb = settings.OPENSYNC_EXPORT_SYNC_MAX_MESSAGES, settings.OPENSYNC_EXPORT_SYNC_MAX_MB
    messages, chars = export_size(session_ids, max_messages=max_messages)
    if chars is None:
        held = f"{messages:,} messages; GET builds at most {max_messages:,}"
    elif chars > max_mb * 1_000_000:
        held = f"{chars / 1_000_000:,.0f} MB of messages; GET builds at most {max_mb:,} MB"
    else:
        return
    raise exceptions.ValidationError(f"The matching sessions hold {held} while you wait. " + _use_the_job(request))


# --- GET/POST /api/export/evals --------------------------------------------------------------------


class EvalExportApi(ReadApi):
    """The export of the key's workspace's eval-ready sessions: now (GET) or as a job (POST)."""

    throttle_scope = "export"  # both build a dataset: their own, smaller budget

    @extend_schema(
        operation_id="exportEvals",
        tags=EVALS,
        summary="Export an eval dataset (the file)",
        description="Builds the export while you wait and answers the file itself, not a JSON wrapper: `deepeval` a "
        "JSON array (`application/json`), `openai`/`openai-evals-api`/`promptfoo`/`chat` JSONL "
        "(`application/x-ndjson`), `promptfoo-yaml` "
        "YAML, `filesystem` a zip (`manifest.json`, `README.txt`, `sessions/session-<externalId>.txt`). "
        "`Content-Disposition: attachment` names it `opensync-<format>-<YYYY-MM-DD>.<ext>`. Headers: "
        "`X-Export-Sessions` (sessions in scope, skipped ones included), `X-Export-TestCases` (records), "
        "`X-Export-Skipped` and `X-Export-Content-Hash` (SHA-256 of the records). Any key may export. For large "
        "exports use `POST`, which builds the file in the background: `GET` answers `400` naming it when the "
        "sessions hold more than `OPENSYNC_EXPORT_SYNC_MAX_MESSAGES` messages or `OPENSYNC_EXPORT_SYNC_MAX_MB` "
        "megabytes of text (60,000 and 60 by default, ~20 s of building). " + PARAMS_DESCRIPTION,
        parameters=[serializers.EvalExportQuerySerializer],
        responses={
            **_file_schema("The export file; its type depends on `format`."),
            400: BAD_REQUEST,
            401: UNAUTHORIZED,
            404: NO_SESSIONS,
        },
    )
    def get(self, request):
        params = _validated(request.query_params.dict())
        fmt, options = _format_and_options(params)
        workspace = request.auth.workspace
        _require_eval_ready(workspace.pk)
        scope, _ = _scope(params)
        session_ids = list(scope_sessions(workspace, scope).values_list("pk", flat=True))
        if not session_ids:
            raise exceptions.NotFound(NO_MATCH)
        if len(session_ids) > MAX_SYNC_SESSIONS:
            raise exceptions.ValidationError(
                f"{len(session_ids):,} sessions match; GET builds at most {MAX_SYNC_SESSIONS:,} while you wait. "
                + _use_the_job(request)
            )
        _refuse_if_too_big(request, session_ids)
        out = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)  # noqa: SIM115 (the FileResponse closes it)
        try:
            report: Report = export_build(workspace, fmt, options, session_ids, out)
            out.seek(0)
        except BaseException:
            out.close()
            raise
        response = export_response(
            out,
            content_type=fmt.content_type,
            filename=fmt.filename(options, timezone.now().date().isoformat()),
            sessions=report.sessions,
            records=report.records,
            skipped=report.skipped,
            content_hash=report.content_hash,
        )
        return _exposed(response)

    @extend_schema(
        operation_id="exportEvalsStart",
        tags=EVALS,
        summary="Start an eval dataset export in the background",
        description="The same parameters as `GET`, as query parameters and/or a JSON body (the body wins; in a "
        "body, `tags` may be a list and flags JSON booleans). Answers `202` with the job and a `Location` header: "
        "poll `statusUrl` until `status` is `done`, then fetch `downloadUrl`. The job only reads sessions, so a "
        "`read` key may start one too. " + PARAMS_DESCRIPTION,
        parameters=[serializers.EvalExportQuerySerializer],
        request=serializers.EvalExportQuerySerializer,
        responses={
            202: serializers.ExportJobCreatedSerializer,
            400: BAD_REQUEST,
            401: UNAUTHORIZED,
            404: NO_SESSIONS,
            429: BUSY,
        },
    )
    def post(self, request):
        body = request.data
        if not isinstance(body, dict):
            raise exceptions.ValidationError("The body must be a JSON object")
        params = _validated({**request.query_params.dict(), **body})
        fmt, options = _format_and_options(params)
        key = request.auth
        _require_eval_ready(key.workspace_id)
        scope, label = _scope(params)
        try:
            job = export_job_start(
                user=key.user,
                workspace=key.workspace,
                format_name=fmt.name,
                options=options,
                scope=scope,
                scope_label=label,
                via="api",
            )
        except ExportError as exc:
            if str(exc).startswith("No sessions"):
                raise exceptions.NotFound(NO_MATCH) from exc
            if "already building" in str(exc):
                raise Busy(str(exc)) from exc
            raise exceptions.ValidationError(str(exc)) from exc
        status_url = _job_url(request, "api-export-job", job)
        response = Response(
            {
                "id": str(job.pk),
                "status": job.status,
                "format": job.format,
                "total": job.total,
                "statusUrl": status_url,
                "downloadUrl": None,
            },
            status=202,
        )
        response["Location"] = status_url
        return response


# --- the jobs ---------------------------------------------------------------------------------------


class Conflict(exceptions.APIException):
    status_code = 409
    default_detail = "Conflict"
    default_code = "conflict"


class Gone(exceptions.APIException):
    status_code = 410
    default_detail = "Gone"
    default_code = "gone"


class Busy(exceptions.APIException):
    status_code = 429
    default_detail = "Too many exports are building."
    default_code = "busy"


_JOB_ID = re.compile(r"[0-9]{1,18}")


def job_for_key(key, job_id: str) -> ExportJob:
    """An export job of the key's workspace; another workspace's or a malformed id are the same 404."""
    jobs: QuerySet[ExportJob] = ExportJob.objects.filter(workspace_id=key.workspace_id)
    job = jobs.filter(pk=int(job_id)).first() if _JOB_ID.fullmatch(job_id) else None
    if job is None:
        raise exceptions.NotFound("Export not found")
    return job


class ExportJobApi(ReadApi):
    @extend_schema(
        operation_id="exportJob",
        tags=EVALS,
        summary="An export job's status",
        description="Progress while it runs (`processed` of `total`, `percent`); once `done`, the dataset version "
        "it built: counts, validation warnings, `contentHash`, the sessions that went in (`sessionIds`), the file "
        "name and size and `downloadUrl`. A `failed` job says why in `error`. The file is removed "
        "OPENSYNC_EXPORT_FILE_DAYS after the build (`fileExpiredAt`, `downloadUrl` null); the job stays. Exports "
        "started in the web UI are here too.",
        responses={200: serializers.ExportJobSerializer, 401: UNAUTHORIZED, 404: JOB_NOT_FOUND},
    )
    def get(self, request, job_id: str):
        job = export_job_check_stale(job_for_key(request.auth, job_id))
        context = {"download_url": lambda j: _job_url(request, "api-export-job-download", j)}
        return Response(serializers.ExportJobSerializer(job, context=context).data)


class ExportJobDownloadApi(ReadApi):
    @extend_schema(
        operation_id="exportJobDownload",
        tags=EVALS,
        summary="Download a finished export",
        description="The file, as `GET /api/export/evals` answers it (same headers). `409` until the job is done, "
        "`410` once the file was removed (OPENSYNC_EXPORT_FILE_DAYS after the build). "
        "A server that keeps files in S3-compatible storage answers `302` to a signed URL of the file instead, "
        "valid for a few minutes (`OPENSYNC_S3_SIGNED_URL_SECONDS`), which serves it with the same name and type.",
        responses={
            **_file_schema("The export file; its type depends on the job's format."),
            302: OpenApiResponse(description="With S3 storage: `Location` is a short-lived signed URL of the file."),
            401: UNAUTHORIZED,
            404: JOB_NOT_FOUND,
            409: NOT_READY,
            410: FILE_REMOVED,
        },
    )
    def get(self, request, job_id: str):
        job = job_for_key(request.auth, job_id)
        if job.status == JobStatus.FAILED:
            raise Conflict(f"The export failed: {job.error or 'unknown error'}")
        if job.status != JobStatus.DONE:
            raise Conflict(f"The export is not ready (status: {job.status}).")
        if job.file_expired_at:
            raise Gone(
                f"The export's file was removed on {job.file_expired_at.date().isoformat()}, "
                f"{job.file_kept_days} days after it was built; start a new export."
            )
        if not job.file:
            raise exceptions.NotFound("The export's file is gone")
        try:
            return _exposed(job_file_response(job))
        except FileNotFoundError as exc:
            raise exceptions.NotFound("The export's file is gone") from exc
