"""Reads for sessions. Access rules live here, once:

* view: any member of the session's workspace;
* edit / delete / share: the owner, or an admin of the workspace;
* review: the owner, or a reviewer or admin of the workspace.
Anything the user may not see is a 404, never a 403, so ids leak nothing.
"""

from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404

from accounts.models import Membership, Role

from .models import Message, Session

VIEW, EDIT, REVIEW = "view", "edit", "review"


def sessions_for_workspace(workspace) -> QuerySet[Session]:
    return Session.objects.filter(workspace=workspace).select_related("owner").order_by("-updated_at", "-id")


def get_session_for_user(user, session_id, *, action: str = VIEW) -> Session:
    session = (
        Session.objects.select_related("owner", "workspace").filter(pk=session_id).first()
        if str(session_id).isdigit()
        else None
    )
    role = None
    if session is not None:
        role = (
            Membership.objects.filter(user=user, workspace_id=session.workspace_id)
            .values_list("role", flat=True)
            .first()
        )
    if role is None:
        raise Http404("No such session")
    if not can(user, session, role, action):
        raise PermissionDenied("You can't change this session.")
    return session


def can(user, session: Session, role: str, action: str) -> bool:
    if action == VIEW or session.owner_id == user.pk or role == Role.ADMIN:
        return True
    return action == REVIEW and role == Role.REVIEWER


def messages_of(session: Session) -> QuerySet[Message]:
    return session.messages.prefetch_related("parts").order_by("created_at", "order")
