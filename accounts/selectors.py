"""Reads for accounts and workspaces. Every lookup is scoped to what the user may see."""

from datetime import timedelta

from django.conf import settings
from django.db.models import Exists, OuterRef, QuerySet
from django.http import Http404, HttpRequest
from django.utils import timezone

from .models import ApiKey, Invitation, Membership, Role, User, Workspace, hash_api_key

CURRENT_WORKSPACE_SESSION_KEY = "current_workspace_id"
LAST_USED_RESOLUTION = timedelta(minutes=1)


def workspaces_for_user(user: User) -> QuerySet[Workspace]:
    return Workspace.objects.filter(memberships__user=user).order_by("-is_personal", "name")


def get_workspace_for_user(user: User, slug: str) -> tuple[Workspace, Membership]:
    """The workspace and the user's membership in it; 404 for anyone who isn't a member."""
    membership = Membership.objects.select_related("workspace").filter(user=user, workspace__slug=slug).first()
    if membership is None:
        raise Http404("No such workspace")
    return membership.workspace, membership


def get_membership_for_admin(user: User, workspace: Workspace, membership_id: int) -> Membership:
    membership = (
        Membership.objects.select_related("user", "workspace").filter(pk=membership_id, workspace=workspace).first()
    )
    if membership is None:
        raise Http404("No such member")
    return membership


def members_of(workspace: Workspace) -> QuerySet[Membership]:
    return Membership.objects.filter(workspace=workspace).select_related("user").order_by("user__email")


def pending_invitations(workspace: Workspace) -> QuerySet[Invitation]:
    return Invitation.objects.pending().filter(workspace=workspace).select_related("invited_by")


def current_workspace(request: HttpRequest) -> Workspace:
    """The workspace the user picked in the switcher, else their personal one."""
    from .services import workspace_ensure_personal

    user = request.user
    workspace_id = request.session.get(CURRENT_WORKSPACE_SESSION_KEY)
    if workspace_id:
        workspace = workspaces_for_user(user).filter(pk=workspace_id).first()
        if workspace:
            return workspace
    return workspace_ensure_personal(user=user)


def role_in(user: User, workspace: Workspace) -> str | None:
    return Membership.objects.filter(user=user, workspace=workspace).values_list("role", flat=True).first()


def is_workspace_admin(user: User, workspace: Workspace) -> bool:
    return role_in(user, workspace) == Role.ADMIN


def plugin_base_url(request: HttpRequest) -> str:
    """The server URL to give the plugins: OPENSYNC_PUBLIC_URL, else the URL this page came from."""
    return settings.OPENSYNC_PUBLIC_URL or request.build_absolute_uri("/").rstrip("/")


def api_keys_for_user(user: User) -> QuerySet[ApiKey]:
    return ApiKey.objects.filter(user=user).select_related("workspace").order_by("revoked_at", "-created_at")


def get_api_key_for_user(user: User, key_id: int) -> ApiKey:
    key = ApiKey.objects.filter(user=user, pk=key_id).select_related("workspace").first()
    if key is None:
        raise Http404("No such API key")
    return key


def api_key_for_raw(raw_key: str) -> ApiKey | None:
    """The key for a bearer token, with its user and workspace, in one query.

    The key works only while its user is active and still a member of the key's workspace.
    """
    membership = Membership.objects.filter(user=OuterRef("user_id"), workspace=OuterRef("workspace_id"))
    return (
        ApiKey.objects.select_related("user", "workspace")
        .filter(key_hash=hash_api_key(raw_key), user__is_active=True)
        .filter(Exists(membership))
        .first()
    )


def touch_api_key(api_key: ApiKey) -> None:
    """Record last use, at most once a minute per key (keeps hot keys from row-lock churn)."""
    now = timezone.now()
    if api_key.last_used_at and now - api_key.last_used_at < LAST_USED_RESOLUTION:
        return
    ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
    api_key.last_used_at = now
