"""Writes of the review: one entry point, `session_review`, used by every review control.

Callers check the permission first (sessions_app.selectors.get_session_for_user with
action=REVIEW: the owner, a reviewer or an admin of the workspace).
"""

import logging
import re
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import asdict
from datetime import timedelta

from django.core.files import File
from django.db import transaction
from django.utils import timezone

from accounts.models import Workspace
from sessions_app import rollups
from sessions_app.inputs import unstorable_message
from sessions_app.message_text import message_text
from sessions_app.models import EvalStatus, Message, Part, Session
from sessions_app.rendering import TEXT_TYPES

from .exchanges import Conversation, PartRow, conversations
from .export import Report, resolve, write
from .formats import Format, Options
from .language import detect_language
from .models import EvalTag, ExportJob, ExportStatus, MessageLabel, ReviewEvent, Verdict
from .selectors import scope_sessions

logger = logging.getLogger(__name__)

REVIEW_FIELDS = ("eval_ready", "eval_status", "eval_tags", "eval_notes", "expected_output")
# Every review column on sessions_app.Session: this module is the only writer of them.
REVIEW_COLUMNS = (*REVIEW_FIELDS, "reviewed_at", "reviewed_by")
MAX_TAGS = 20
MAX_TAG_CHARS = 50
MAX_NOTES_CHARS = 20_000
MAX_EXPECTED_CHARS = 200_000
LANGUAGE_SAMPLE = 2_000  # messages read to detect a session's language


class ReviewError(ValueError):
    """A change that can't be stored; the message is for the person who made it."""


def normalise_tags(tags) -> list[str]:
    """Lower case, inner whitespace collapsed, duplicates dropped (first order kept)."""
    if isinstance(tags, str):
        tags = tags.split(",")
    out: list[str] = []
    for tag in tags or []:
        tag = re.sub(r"\s+", " ", str(tag)).strip().lower()
        if not tag:
            continue
        if problem := unstorable_message(tag):
            raise ReviewError(f"A tag can't be stored: {problem}")
        if len(tag) > MAX_TAG_CHARS:
            raise ReviewError(f"A tag can have at most {MAX_TAG_CHARS} characters: “{tag[:60]}…”.")
        if tag not in out:
            out.append(tag)
    if len(out) > MAX_TAGS:
        raise ReviewError(f"A session can have at most {MAX_TAGS} tags.")
    return out


def _long_text(value, *, what: str, limit: int) -> str:
    """Free text from a form: Windows line ends made Unix ones, at most `limit` characters."""
    value = (value or "").replace("\r\n", "\n")
    if problem := unstorable_message(value):
        raise ReviewError(f"{what} can't be stored: {problem}")
    if len(value) > limit:
        raise ReviewError(f"{what} can have at most {limit:,} characters.")
    return value


def _clean(field: str, value):
    if field == "eval_ready":
        if not isinstance(value, bool):
            raise ReviewError("Eval-ready must be true or false.")
        return value
    if field == "eval_status":
        value = value or None
        if value is not None and value not in EvalStatus.values:
            raise ReviewError(f"Unknown status “{value}”; use one of {', '.join(EvalStatus.values)}.")
        return value
    if field == "eval_tags":
        return normalise_tags(value)
    if field == "eval_notes":
        return _long_text(value, what="Notes", limit=MAX_NOTES_CHARS)
    if field == "expected_output":
        value = _long_text(value, what="The expected output", limit=MAX_EXPECTED_CHARS)
        return value if value.strip() else None
    raise ReviewError(f"“{field}” is not a review field.")


def session_language(session_id: int) -> str | None:
    """The language of the fenced code in the text of the session's first LANGUAGE_SAMPLE
    messages (sessions_app.message_text: text content and text parts), in two queries."""
    messages = list(
        Message.objects.filter(session_id=session_id)
        .order_by("created_at", "order")
        .values_list("id", "text_content")[:LANGUAGE_SAMPLE]
    )
    parts: dict[int, list[PartRow]] = defaultdict(list)
    rows = (
        Part.objects.filter(message_id__in=[pk for pk, _ in messages], type__in=TEXT_TYPES)
        .order_by("message_id", "order")
        .values_list("message_id", "type", "content")
    )
    for message_id, kind, content in rows.iterator(chunk_size=500):
        parts[message_id].append(PartRow(kind, content))
    return detect_language(message_text(text, parts.get(pk, ())) for pk, text in messages)


@transaction.atomic
def session_review(*, session: Session, actor, add_tags=(), remove_tags=(), **changes) -> list[ReviewEvent]:
    """Apply review changes to `session` and record each real change (who, old, new, when).

    `add_tags` / `remove_tags` edit the stored tags (under the lock, so two reviewers adding tags
    at once both keep theirs); `eval_tags=` replaces them.

    Idempotent: values equal to the stored ones change nothing and record nothing, so a retried
    request is harmless. The row is locked, so two reviewers' changes never overwrite each other
    with stale values. Marking a session eval-ready detects its language if it isn't known.
    """
    clean = {field: _clean(field, value) for field, value in changes.items()}
    add, remove = normalise_tags(add_tags), set(normalise_tags(remove_tags))
    locked = Session.objects.select_for_update().get(pk=session.pk)
    if add or remove:
        base = clean.get("eval_tags", locked.eval_tags)
        clean["eval_tags"] = normalise_tags([tag for tag in [*base, *add] if tag not in remove])
    events = []
    for field, value in clean.items():
        old = getattr(locked, field)
        if old == value:
            continue
        setattr(locked, field, value)
        events.append(ReviewEvent(session_id=locked.pk, actor=actor, field=field, old=old, new=value))
    if not events:
        return []
    locked.reviewed_at, locked.reviewed_by = timezone.now(), actor
    fields = [event.field for event in events] + ["reviewed_at", "reviewed_by"]
    if clean.get("eval_ready") and locked.detected_language is None:
        locked.detected_language = session_language(locked.pk)
        fields.append("detected_language")
    if "eval_status" in fields:  # Analytics counts the statuses in the rollups
        with rollups.tracking([locked.pk]):
            locked.save(update_fields=fields)
    else:
        locked.save(update_fields=fields)
    ReviewEvent.objects.bulk_create(events)
    if "eval_tags" in clean:
        EvalTag.objects.bulk_create(
            [EvalTag(workspace_id=locked.workspace_id, name=name) for name in clean["eval_tags"]],
            ignore_conflicts=True,
        )
    for name in fields:  # the caller's object shows the new state
        setattr(session, name, getattr(locked, name))
    return events


@transaction.atomic
def sessions_mark_eval_ready(*, session_ids: list[int], actor) -> int:
    """The session list's bulk action: mark many sessions eval-ready at once, recording the change
    for those not already eval-ready. Returns how many changed."""
    changed = list(
        Session.objects.select_for_update()
        .filter(pk__in=session_ids, eval_ready=False)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    Session.objects.filter(pk__in=changed).update(eval_ready=True, reviewed_at=timezone.now(), reviewed_by=actor)
    ReviewEvent.objects.bulk_create(
        [ReviewEvent(session_id=pk, actor=actor, field="eval_ready", old=False, new=True) for pk in changed]
    )
    return len(changed)


@transaction.atomic
def message_label(*, message: Message, actor, **changes) -> list[ReviewEvent]:
    """Label an assistant turn (`verdict`: good, bad or "" for none) and/or set its corrected
    answer ("" removes it). Idempotent; each real change is recorded in the session's history."""
    if message.role != "assistant":
        raise ReviewError("Only assistant turns can be labelled.")
    clean = {}
    for field, value in changes.items():
        if field == "verdict":
            value = value or None
            if value is not None and value not in Verdict.values:
                raise ReviewError(f"Unknown label “{value}”; use good or bad.")
        elif field == "corrected_answer":
            value = _long_text(value, what="A corrected answer", limit=MAX_EXPECTED_CHARS)
            value = value if value.strip() else None
        else:
            raise ReviewError(f"“{field}” is not a label field.")
        clean[field] = value
    Session.objects.select_for_update().filter(pk=message.session_id).first()  # one reviewer at a time
    label = MessageLabel.objects.filter(message=message).first() or MessageLabel(
        session_id=message.session_id, message=message
    )
    events = []
    for field, value in clean.items():
        old = getattr(label, field)
        if old != value:
            setattr(label, field, value)
            events.append(
                ReviewEvent(
                    session_id=message.session_id,
                    actor=actor,
                    field=f"message_{field}",
                    old={"message": message.pk, "value": old},
                    new={"message": message.pk, "value": value},
                )
            )
    if events:
        label.labeled_by = actor
        label.save()
        ReviewEvent.objects.bulk_create(events)
    return events


# --- exports ---------------------------------------------------------------------------------------

EXPORT_CHUNK = 200  # sessions loaded per round trip (three queries per chunk)
PROGRESS_EVERY = 0.5  # seconds between progress writes


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
        transaction.on_commit(lambda: _send_export(job.pk))
    return job


def _send_export(job_id: int) -> None:
    """Hand the job to Celery; if the broker is unreachable the job fails at once with the reason."""
    from . import tasks

    try:
        tasks.export_job_run_task.delay(job_id)
    except Exception as exc:
        logger.exception("Could not queue export job %s", job_id)
        ExportJob.objects.filter(pk=job_id, status=ExportStatus.PENDING).update(
            status=ExportStatus.FAILED,
            error=f"The task queue is unavailable ({type(exc).__name__}). Please try again later.",
            finished_at=timezone.now(),
            updated_at=timezone.now(),
        )


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


EXPORT_STALE_AFTER = timedelta(minutes=10)  # a running build writes progress every PROGRESS_EVERY
# A queued job may wait behind other long tasks (the task's time limit is an hour).
EXPORT_QUEUED_STALE_AFTER = timedelta(minutes=65)
MAX_ACTIVE_EXPORTS = 3  # per workspace


def export_job_check_stale(job: ExportJob) -> ExportJob:
    """A job that no worker picked up, or whose worker died mid-build, fails with the reason once
    it has made no progress for EXPORT_STALE_AFTER (so its page stops polling and says why)."""
    limit = EXPORT_QUEUED_STALE_AFTER if job.status == ExportStatus.PENDING else EXPORT_STALE_AFTER
    if not job.is_active or timezone.now() - job.updated_at <= limit:
        return job
    if job.status == ExportStatus.PENDING:
        reason = "No worker picked the build up within an hour: check that the Celery worker runs, then build again."
    else:
        reason = "The build stopped without finishing (its worker was interrupted). Build it again."
    now = timezone.now()
    ExportJob.objects.filter(pk=job.pk, status=job.status, updated_at=job.updated_at).update(
        status=ExportStatus.FAILED, error=reason, finished_at=now, updated_at=now
    )
    job.refresh_from_db()
    return job


def _claim_export(job_id: int) -> ExportJob | None:
    """pending -> running with a conditional UPDATE: one worker per job."""
    if not ExportJob.objects.filter(pk=job_id, status=ExportStatus.PENDING).update(
        status=ExportStatus.RUNNING, updated_at=timezone.now()
    ):
        return None
    return ExportJob.objects.select_related("workspace").get(pk=job_id)


def export_job_run(*, job_id: int) -> ExportJob | None:
    """Build a queued export: the file goes to Django's storage, the job records the dataset
    version (session ids, content hash), counts and warnings. A failure is recorded with its reason."""
    job = _claim_export(job_id)
    if job is None:
        return None  # gone, or another worker has it
    try:
        fmt, options = resolve(job.format, Options(**job.options))
        session_ids = list(scope_sessions(job.workspace, job.scope).values_list("pk", flat=True))
        job.total = len(session_ids)
        ExportJob.objects.filter(pk=job.pk).update(total=job.total, updated_at=timezone.now())
        last = [time.monotonic()]

        def progress(report: Report) -> None:
            now = time.monotonic()
            if now - last[0] >= PROGRESS_EVERY:
                last[0] = now
                ExportJob.objects.filter(pk=job.pk).update(processed=report.sessions, updated_at=timezone.now())

        with tempfile.TemporaryFile() as out:
            report = export_build(job.workspace, fmt, options, session_ids, out, progress=progress)
            out.seek(0)
            filename = fmt.filename(options, timezone.now().date().isoformat())
            job.file.save(filename, File(out, name=filename), save=False)
            job.size = job.file.size
        now = timezone.now()
        finished = ExportJob.objects.filter(pk=job.pk).update(
            file=job.file.name,
            size=job.size,
            filename=filename,
            status=ExportStatus.DONE,
            error="",
            processed=report.sessions,
            sessions=len(report.session_ids),
            records=report.records,
            skipped=report.skipped,
            warnings=report.warnings,
            content_hash=report.content_hash,
            session_ids=report.session_ids,
            finished_at=now,
            updated_at=now,
        )
        if not finished:  # deleted while it was building: no row, so no file either
            job.file.delete(save=False)
            return None
    except Exception as exc:
        logger.exception("Export job %s failed", job.pk)
        if isinstance(exc, ExportError | ValueError):
            reason = str(exc)
        elif isinstance(exc, OSError):
            reason = "The file could not be stored (the server's disk or storage failed). Please try again later."
        else:
            reason = f"The build failed ({type(exc).__name__}); the server log has the details."
        ExportJob.objects.filter(pk=job.pk).update(
            status=ExportStatus.FAILED, error=reason, finished_at=timezone.now(), updated_at=timezone.now()
        )
        if job.file:
            job.file.delete(save=False)
        return ExportJob.objects.filter(pk=job.pk).first()
    job.refresh_from_db()
    return job


def export_job_delete(*, job: ExportJob) -> None:
    """Delete an export; its file goes with it (evals.signals)."""
    job.delete()
