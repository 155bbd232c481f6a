"""Eval dataset exports: building the file (`export_build`, also the API's synchronous export)
and the ExportJob that builds it in the background (opensync.jobs, run by evals.tasks)."""

import logging
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict
from datetime import datetime, timedelta

from celery.exceptions import SoftTimeLimitExceeded  # type: ignore[import-untyped]
from django.conf import settings
from django.core.files import File
from django.db import transaction
from django.utils import timezone

from accounts.models import Workspace
from opensync.jobs import JobStatus, job_claim, job_enqueue, job_fail, job_fail_stale, job_finish, job_save_progress
from sessions_app.models import Session

from .exchanges import Conversation, conversations
from .export import Report, resolve, write
from .formats import Format, Options
from .models import ExportJob
from .selectors import scope_sessions

logger = logging.getLogger(__name__)

EXPORT_CHUNK = 200  # sessions loaded per round trip (three queries per chunk)
PROGRESS_EVERY = 0.5  # seconds between progress writes
MAX_ACTIVE_EXPORTS = 3  # per workspace


# What evals.exchanges reads of a session (not its search vector and the rest).
EXPORT_SESSION_FIELDS = (
    "id", "workspace_id", "external_id", "title", "source", "model", "project_name", "eval_tags", "eval_status",
    "eval_notes", "expected_output", "detected_language", "created_at", "prompt_tokens", "completion_tokens",
)  # fmt: skip


class ExportError(ValueError):
    """An export that can't be made; the message is for the person who asked."""


def export_options(options: Options) -> dict:
    return asdict(options)


def export_job_start(
    *, user, workspace, format_name: str, options: Options, scope: dict, scope_label: str = "", via: str = "web"
) -> ExportJob:
    """Check the request and queue a build. Raises ExportError for an unknown format, a turn mode
    the format can't use, or a scope with no session."""
    try:
        fmt, options = resolve(format_name, options)
    except ValueError as exc:
        raise ExportError(str(exc)) from exc
    total = scope_sessions(workspace, scope).count()
    if not total:
        raise ExportError("No sessions match the specified filters.")
    with transaction.atomic():
        # one check per workspace at a time (two requests racing past the limit)
        Workspace.objects.select_for_update().filter(pk=workspace.pk).first()
        active = [export_job_check_stale(job) for job in ExportJob.objects.filter(workspace=workspace).active()]
        if sum(job.is_active for job in active) >= MAX_ACTIVE_EXPORTS:
            raise ExportError(
                f"{MAX_ACTIVE_EXPORTS} exports are already building in this workspace; wait for one to finish."
            )
        job = ExportJob.objects.create(
            workspace=workspace,
            created_by=user,
            via=via,
            format=fmt.name,
            options=export_options(options),
            scope=scope,
            scope_label=scope_label[:500],
            total=total,
        )
        job_enqueue(job)
    return job


def export_conversations(workspace, session_ids: list[int]) -> Iterator[tuple[int, Conversation]]:
    """(pk, conversation) of each session, in the given order, EXPORT_CHUNK sessions at a time."""
    for start in range(0, len(session_ids), EXPORT_CHUNK):
        chunk = session_ids[start : start + EXPORT_CHUNK]
        by_pk = Session.objects.filter(workspace=workspace, pk__in=chunk).only(*EXPORT_SESSION_FIELDS).in_bulk()
        sessions = [by_pk[pk] for pk in chunk if pk in by_pk]  # deleted meanwhile: left out
        yield from zip((s.pk for s in sessions), conversations(sessions), strict=True)


def export_build(workspace, fmt: Format, options: Options, session_ids: list[int], out, *, progress=None) -> Report:
    """Write the export of these sessions to `out` (a seekable binary file)."""
    today = timezone.now()
    return write(
        fmt,
        options,
        export_conversations(workspace, session_ids),
        out,
        filename=fmt.filename(options, today.date().isoformat()),
        date=today.isoformat().replace("+00:00", "Z"),
        progress=progress,
    )


def export_job_check_stale(job: ExportJob) -> ExportJob:
    """A job that no worker picked up, or whose worker died mid-build, fails with the reason once
    it has made no progress for its stale time (ExportJob.stale_after / queued_stale_after), so
    its page stops polling and says why."""
    if not job.is_stale:
        return job
    job_fail_stale(job, error=job.stale_reason)
    job.refresh_from_db()
    return job


def _storage_failed(exc: Exception) -> bool:
    """Local disk fails with OSError; S3 with boto3's and botocore's own exceptions (told by their
    module: importing them would cost boto3's import where S3 isn't used)."""
    return isinstance(exc, OSError) or type(exc).__module__.partition(".")[0] in {"boto3", "botocore", "s3transfer"}


def export_job_run(*, job_id: int) -> ExportJob | None:
    """Build a queued export: the file goes to Django's storage, the job records the dataset
    version (session ids, content hash), counts and warnings. A failure is recorded with its reason."""
    job = job_claim(ExportJob, job_id, select_related=("workspace",))
    if job is None:
        return None  # gone, or another worker has it
    try:
        fmt, options = resolve(job.format, Options(**job.options))
        session_ids = list(scope_sessions(job.workspace, job.scope).values_list("pk", flat=True))
        job.total = len(session_ids)
        job_save_progress(job, total=job.total)
        last = [time.monotonic()]

        def progress(report: Report) -> None:
            now = time.monotonic()
            if now - last[0] >= PROGRESS_EVERY:
                last[0] = now
                job_save_progress(job, processed=report.sessions)

        with tempfile.TemporaryFile() as out:
            report = export_build(job.workspace, fmt, options, session_ids, out, progress=progress)
            out.seek(0)
            filename = fmt.filename(options, timezone.now().date().isoformat())
            job.file.save(filename, File(out, name=filename), save=False)
            job.size = job.file.size
        finished = job_finish(
            job,
            file=job.file.name,
            size=job.size,
            filename=filename,
            processed=report.sessions,
            sessions=len(report.session_ids),
            records=report.records,
            skipped=report.skipped,
            warnings=report.warnings,
            content_hash=report.content_hash,
            session_ids=report.session_ids,
        )
        if not finished:  # deleted while it was building: no row, so no file either
            job.file.delete(save=False)
            return None
    except Exception as exc:
        logger.exception("Export job %s failed", job.pk)
        if isinstance(exc, ExportError | ValueError):
            reason = str(exc)
        elif _storage_failed(exc):
            reason = "The file could not be stored (the server's disk or storage failed). Please try again later."
        else:
            reason = f"The build failed ({type(exc).__name__}); the server log has the details."
        job_fail(job, error=reason)
        if job.file:
            job.file.delete(save=False)
        return ExportJob.objects.filter(pk=job.pk).first()
    job.refresh_from_db()
    return job


def export_job_delete(*, job: ExportJob) -> None:
    """Delete an export; its file goes with it (evals.signals)."""
    job.delete()


# Jobs per batch: each file is one call to the storage (a request, for S3), and the batch's rows
# are then marked in one short UPDATE, so a stop mid-run loses little work.
EXPORT_FILE_PRUNE_BATCH = 500


def export_files_prune(*, now: datetime | None = None) -> int:
    """Remove the files of exports finished more than OPENSYNC_EXPORT_FILE_DAYS ago; returns how many.

    Only through the storage API, so any backend works. The job stays (its dataset version,
    counts and session ids) with `file` cleared and `file_expired_at` set. The file goes first:
    a stop in between leaves a row pointing at a missing file, which the next run clears (deleting
    a missing file is not an error), never a file no row points at. A file the storage fails to
    delete is logged and left for the next run. Running again removes nothing more.
    """
    now = now or timezone.now()
    cutoff = now - timedelta(days=settings.OPENSYNC_EXPORT_FILE_DAYS)
    # one row per export ever built, not per session or message: a scan is cheap, no index
    expired = ExportJob.objects.filter(status=JobStatus.DONE, finished_at__lt=cutoff).exclude(file="")
    removed, last_pk = 0, 0
    while True:
        jobs = list(expired.filter(pk__gt=last_pk).order_by("pk").only("pk", "file")[:EXPORT_FILE_PRUNE_BATCH])
        if not jobs:
            break
        last_pk = jobs[-1].pk
        gone = []
        for job in jobs:
            try:
                job.file.delete(save=False)
            except SoftTimeLimitExceeded:
                raise  # the task's time is up: the rows of the files deleted so far wait for the next run
            except Exception:
                logger.exception("export files prune: could not delete the file of export %s", job.pk)
            else:
                gone.append(job.pk)
        # checked again per row: a job deleted meanwhile, or cleared by a concurrent run, isn't counted
        removed += expired.filter(pk__in=gone).update(file="", file_expired_at=now)
    logger.info("export files prune: removed %s files of exports finished before %s", removed, cutoff.isoformat())
    return removed
