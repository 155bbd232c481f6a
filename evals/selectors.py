"""Reads of the evals app."""

from dataclasses import asdict
from datetime import date

from django.db.models import Count, Sum, TextField
from django.db.models.functions import Cast, Length
from django.shortcuts import get_object_or_404

from accounts.models import Role
from accounts.selectors import role_in
from opensync.jobs import JobStatus
from sessions_app.models import EvalStatus, Message, Part, Session, Source
from sessions_app.selectors import REVIEW, SessionFilters, filter_sessions, viewer_can

from .models import EvalTag, ExportJob, MessageLabel, ReviewEvent

HISTORY = 10  # review events the panel shows


def reviewable_sessions(user, workspace, filters: SessionFilters):
    """The workspace's sessions `user` may review, filtered, in the session list's default order:
    all of them for reviewers and admins, their own for members."""
    sessions = filter_sessions(Session.objects.filter(workspace=workspace), filters)
    if role_in(user, workspace) not in (Role.REVIEWER, Role.ADMIN):
        sessions = sessions.filter(owner=user)
    return sessions.order_by("-updated_at", "-id")


def queue_position(user, workspace, filters: SessionFilters, position: int) -> tuple[Session | None, int, int]:
    """(the session at `position` (0-based, clamped), its position, how many match) in the queue."""
    sessions = reviewable_sessions(user, workspace, filters)
    total = sessions.count()
    if total == 0:
        return None, 0, 0
    position = max(0, min(position, total - 1))
    session = sessions.select_related("owner", "workspace", "reviewed_by")[position]
    return session, position, total


def attach_labels(messages) -> None:
    """Set `message.verdict` and `message.corrected_answer` (None when unlabelled) on each
    message, from the reviewers' MessageLabels, in one query."""
    labels = {label.message_id: label for label in MessageLabel.objects.filter(message__in=[m.pk for m in messages])}
    for message in messages:
        label = labels.get(message.pk)
        message.verdict = label.verdict if label else None
        message.corrected_answer = label.corrected_answer if label else None


def review_context(user, session, *, error: str | None = None, saved: str | None = None, force: bool = False) -> dict:
    """What the viewer's review panel needs (two queries, and only for those who may review;
    `force` when the caller already knows they may)."""
    if not (force or viewer_can(user, session, REVIEW)):
        return {"can_review": False}
    return {
        "can_review": True,
        "statuses": EvalStatus.choices,
        "tag_vocabulary": list(
            EvalTag.objects.filter(workspace_id=session.workspace_id).values_list("name", flat=True)[:500]
        ),
        "history": list(ReviewEvent.objects.filter(session=session).select_related("actor")[:HISTORY]),
        "review_error": error,
        "review_saved": saved,
    }


def eval_sessions(workspace, filters: SessionFilters, *, tags=(), reviewer: int | None = None):
    """The workspace's eval-ready sessions matching the Evals page's filters, newest first."""
    sessions = filter_sessions(Session.objects.filter(workspace=workspace, eval_ready=True), filters)
    if tags:
        sessions = sessions.filter(eval_tags__overlap=list(tags))
    if reviewer:
        sessions = sessions.filter(reviewed_by_id=reviewer)
    return sessions.order_by("-updated_at", "-id")


def eval_counts(sessions) -> dict:
    """How many of `sessions` per status and per agent (two GROUP BYs)."""

    by_status = dict(
        sessions.order_by().values_list("eval_status").annotate(n=Count("id")).values_list("eval_status", "n")
    )
    by_source = dict(sessions.order_by().values_list("source").annotate(n=Count("id")).values_list("source", "n"))
    labels = dict(Source.choices)
    return {
        "total": sum(by_status.values()),
        "status": [(value, label, by_status.get(value, 0)) for value, label in EvalStatus.choices]
        + [("unset", "No status", by_status.get(None, 0))],
        "source": sorted(((s, labels.get(s, s), n) for s, n in by_source.items()), key=lambda row: -row[2]),
    }


# --- exports ---------------------------------------------------------------------------------------

SCOPE_FILTER, SCOPE_SELECTION = "filter", "selection"


def filter_scope(filters: SessionFilters, *, tags=(), reviewer: int | None = None, min_tokens: int = 0) -> dict:
    """An export scope (JSON) for the eval-ready sessions matching these filters."""
    data = {k: v for k, v in asdict(filters).items() if v not in ("", None) and k not in ("sort", "direction")}
    for key in ("date_from", "date_to"):
        if key in data:
            data[key] = data[key].isoformat()
    if tags:
        data["tags"] = list(tags)
    if reviewer:
        data["reviewer"] = reviewer
    if min_tokens:
        data["min_tokens"] = min_tokens
    return {"kind": SCOPE_FILTER, "filters": data}


def selection_scope(ids) -> dict:
    return {"kind": SCOPE_SELECTION, "ids": sorted({int(pk) for pk in ids})}


def scope_sessions(workspace, scope: dict):
    """The workspace's sessions in an export scope, oldest first (a reproducible order). A
    selection may hold any of the workspace's sessions; a filter only eval-ready ones."""
    sessions = Session.objects.filter(workspace=workspace)
    if scope.get("kind") == SCOPE_SELECTION:
        return sessions.filter(pk__in=scope.get("ids") or []).order_by("created_at", "id")
    data = dict(scope.get("filters") or {})
    tags, reviewer, min_tokens = data.pop("tags", ()), data.pop("reviewer", None), data.pop("min_tokens", 0)
    for key in ("date_from", "date_to"):
        if data.get(key):
            data[key] = date.fromisoformat(data[key])
    sessions = eval_sessions(workspace, SessionFilters(**data), tags=tags, reviewer=reviewer)
    if min_tokens:
        sessions = sessions.filter(total_tokens__gte=min_tokens)
    return sessions.order_by("created_at", "id")


def exports_for_workspace(workspace):
    return ExportJob.objects.filter(workspace=workspace).select_related("created_by")


def get_export_for_user(user, export_id) -> ExportJob:
    """An export of a workspace the user belongs to; 404 otherwise."""
    return get_object_or_404(
        ExportJob.objects.select_related("created_by", "workspace"),
        pk=export_id,
        workspace__memberships__user=user,
    )


def previous_export(job: ExportJob) -> ExportJob | None:
    """The workspace's last finished export with the same format and options before `job` (to
    compare with)."""
    return (
        ExportJob.objects.filter(
            workspace_id=job.workspace_id,
            format=job.format,
            options=job.options,
            status=JobStatus.DONE,
            created_at__lt=job.created_at,
        )
        .exclude(pk=job.pk)
        .only("id", "session_ids", "content_hash", "created_at", "records")
        .first()
    )


def export_size(session_ids: list[int], *, max_messages: int) -> tuple[int, int | None]:
    """(messages, characters of their text and parts) of these sessions: what an export's time
    follows. The characters are counted only up to `max_messages` messages (else None), so this
    check costs a bounded read whatever the selection."""
    messages = Message.objects.filter(session_id__in=session_ids)
    count = messages.count()
    if count > max_messages:
        return count, None
    text = messages.aggregate(n=Sum(Length("text_content")))["n"] or 0
    parts = Part.objects.filter(message__session_id__in=session_ids)
    content = parts.aggregate(n=Sum(Length(Cast("content", TextField()))))["n"] or 0
    return count, text + content
