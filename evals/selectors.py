"""Reads of the evals app."""

from accounts.models import Role
from accounts.selectors import role_in
from sessions_app.models import Session
from sessions_app.selectors import SessionFilters, filter_sessions

from .models import MessageLabel


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
