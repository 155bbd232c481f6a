"""Writes for users, workspaces, memberships, invitations and API keys (deleting data and
accounts: accounts.deletion)."""

import hashlib
import logging
import secrets
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import cast

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.http import HttpRequest
from django.utils import timezone
from django.utils.text import slugify

from sessions_app.models import Source

from . import selectors
from .models import (
    ApiKey,
    ApiKeyScope,
    ApiRequestLog,
    Invitation,
    Membership,
    Role,
    User,
    Workspace,
    hash_api_key,
)

logger = logging.getLogger(__name__)

API_KEY_PREFIX = "osk_"
INVITATION_TTL = timedelta(days=7)


def _unique_slug(base: str) -> str:
    root = (slugify(base) or "workspace")[:48]
    slug = root
    while Workspace.objects.filter(slug=slug).exists():
        slug = f"{root}-{secrets.token_hex(3)}"
    return slug


@transaction.atomic
def workspace_ensure_personal(*, user: User) -> Workspace:
    """Every user has one personal workspace where they are admin. Idempotent."""
    existing = Workspace.objects.filter(created_by=user, is_personal=True).first()
    if existing:
        Membership.objects.get_or_create(user=user, workspace=existing, defaults={"role": Role.ADMIN})
        return existing
    label = user.get_short_name()
    try:
        with transaction.atomic():
            workspace = Workspace.objects.create(
                name=f"{label}'s workspace", slug=_unique_slug(label), is_personal=True, created_by=user
            )
    except IntegrityError:  # a concurrent call created it first
        workspace = Workspace.objects.get(created_by=user, is_personal=True)
    Membership.objects.get_or_create(user=user, workspace=workspace, defaults={"role": Role.ADMIN})
    return workspace


def current_workspace(request: HttpRequest) -> Workspace:
    """The workspace the user picked in the switcher, else their personal one (made again if it
    is missing, so a page always has a workspace to show)."""
    user = cast(User, request.user)  # asked for by login-required views and the signed-in layout only
    workspace_id = request.session.get(selectors.CURRENT_WORKSPACE_SESSION_KEY)
    # Asked for by the view and the layout's switcher: look it up once per request.
    cached = getattr(request, "_current_workspace", None)
    if cached is not None and cached[0] == (user.pk, workspace_id):
        return cached[1]
    workspace = selectors.workspaces_for_user(user).filter(pk=workspace_id).first() if workspace_id else None
    if workspace is None:
        workspace = workspace_ensure_personal(user=user)
    request._current_workspace = ((user.pk, workspace_id), workspace)  # type: ignore[attr-defined]  # per-request memo
    return workspace


@transaction.atomic
def workspace_create_team(*, user: User, name: str) -> Workspace:
    name = name.strip()
    if not name:
        raise ValidationError({"name": "A workspace needs a name."})
    workspace = Workspace.objects.create(name=name, slug=_unique_slug(name), is_personal=False, created_by=user)
    Membership.objects.create(user=user, workspace=workspace, role=Role.ADMIN)
    return workspace


def _require_admin(actor: User, workspace: Workspace) -> None:
    if not Membership.objects.filter(user=actor, workspace=workspace, role=Role.ADMIN).exists():
        raise PermissionDenied("Only workspace admins can do this.")


def _other_admins_exist(membership: Membership) -> bool:
    """Another *active* admin: a deactivated one (or one whose account is being deleted) can't
    administer the workspace, so they don't count."""
    others = Membership.objects.filter(workspace=membership.workspace, role=Role.ADMIN, user__is_active=True)
    return others.exclude(pk=membership.pk).exists()


def lock_admin_rows_of(user: User) -> None:
    """Lock the admin memberships of every team workspace where `user` is admin: the same rows
    membership_set_role / membership_remove lock, so a last-admin check can't race them."""
    workspaces = Membership.objects.filter(user=user, role=Role.ADMIN, workspace__is_personal=False).values(
        "workspace_id"
    )
    list(Membership.objects.select_for_update().filter(workspace_id__in=workspaces, role=Role.ADMIN))


@transaction.atomic
def membership_set_role(*, actor: User, membership: Membership, role: str) -> Membership:
    _require_admin(actor, membership.workspace)
    if role not in Role.values:
        raise ValidationError({"role": f"Unknown role {role!r}."})
    # Lock the workspace's admin rows so two admins demoting each other can't leave none.
    list(Membership.objects.select_for_update().filter(workspace=membership.workspace, role=Role.ADMIN))
    if membership.role == Role.ADMIN and role != Role.ADMIN and not _other_admins_exist(membership):
        raise ValidationError({"role": "A workspace needs at least one admin."})
    if membership.workspace.is_personal and membership.user_id == membership.workspace.created_by_id:
        raise ValidationError({"role": "The owner of a personal workspace stays its admin."})
    membership.role = role
    membership.save(update_fields=["role"])
    return membership


@transaction.atomic
def membership_remove(*, actor: User, membership: Membership) -> None:
    """Admins remove members; anyone may leave. The last admin can't leave or be removed."""
    if actor.pk != membership.user_id:
        _require_admin(actor, membership.workspace)
    workspace = membership.workspace
    if workspace.is_personal and membership.user_id == workspace.created_by_id:
        raise ValidationError("You can't leave your personal workspace.")
    list(Membership.objects.select_for_update().filter(workspace=workspace, role=Role.ADMIN))
    if membership.role == Role.ADMIN and not _other_admins_exist(membership):
        raise ValidationError("A workspace needs at least one admin; make someone else admin first.")
    # Their keys for this workspace stop working with the membership.
    ApiKey.objects.active().filter(user_id=membership.user_id, workspace=workspace).update(revoked_at=timezone.now())
    membership.delete()


def _token_hash(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


@transaction.atomic
def invitation_create(
    *, actor: User, workspace: Workspace, email: str, role: str, accept_url_builder
) -> tuple[Invitation, str]:
    """Invite `email` to a team workspace; returns the invitation and its one-time link."""
    _require_admin(actor, workspace)
    if workspace.is_personal:
        raise ValidationError({"email": "Personal workspaces can't have members; create a team workspace."})
    email = User.objects.normalize_email(email).lower()
    if role not in Role.values:
        raise ValidationError({"role": f"Unknown role {role!r}."})
    if Membership.objects.filter(workspace=workspace, user__email__iexact=email).exists():
        raise ValidationError({"email": f"{email} is already a member."})
    # A new invitation replaces any pending one for the same address.
    Invitation.objects.pending().filter(workspace=workspace, email__iexact=email).update(revoked_at=timezone.now())
    raw = secrets.token_urlsafe(32)
    invitation = Invitation.objects.create(
        workspace=workspace,
        email=email,
        role=role,
        token_hash=_token_hash(raw),
        invited_by=actor,
        expires_at=timezone.now() + INVITATION_TTL,
    )
    link = accept_url_builder(raw)
    transaction.on_commit(
        lambda: send_mail(
            subject=f"You're invited to {workspace.name} on OpenSync",
            message=(
                f'{actor.get_full_name()} invited you to the workspace "{workspace.name}" as {role}.\n\n'
                f"Accept the invitation (valid for 7 days):\n{link}\n"
            ),
            from_email=settings.DEFAULT_FROM_EMAIL,
            recipient_list=[email],
            fail_silently=True,
        )
    )
    return invitation, link


def invitation_for_token(raw: str) -> Invitation | None:
    return Invitation.objects.select_related("workspace").filter(token_hash=_token_hash(raw)).first()


@transaction.atomic
def invitation_accept(*, user: User, invitation: Invitation) -> Membership:
    invitation = Invitation.objects.select_for_update().get(pk=invitation.pk)
    if not invitation.is_pending:
        raise ValidationError("This invitation has expired, was revoked or was already used.")
    if invitation.email.lower() != user.email.lower():
        raise ValidationError(
            f"This invitation was sent to {invitation.email}; sign in with that address to accept it."
        )
    membership, created = Membership.objects.get_or_create(
        user=user, workspace=invitation.workspace, defaults={"role": invitation.role}
    )
    invitation.accepted_at = timezone.now()
    invitation.accepted_by = user
    invitation.save(update_fields=["accepted_at", "accepted_by"])
    return membership


def invitation_revoke(*, actor: User, invitation: Invitation) -> None:
    _require_admin(actor, invitation.workspace)
    Invitation.objects.filter(pk=invitation.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())


def generate_api_key() -> str:
    # 32 random bytes -> 43 URL-safe characters after the prefix.
    return API_KEY_PREFIX + secrets.token_urlsafe(32)


@transaction.atomic
def api_key_create(*, user: User, workspace: Workspace, name: str, scope: str = ApiKeyScope.SYNC) -> tuple[ApiKey, str]:
    """Create a key; the raw key is returned once and never stored."""
    name = (name or "").strip()
    if not name:
        raise ValidationError({"name": "Give the key a name, e.g. the machine it runs on."})
    if len(name) > 100:
        raise ValidationError({"name": "Keep the name under 100 characters."})
    if scope not in ApiKeyScope.values:
        raise ValidationError({"scope": f"Scope must be one of {', '.join(ApiKeyScope.values)}."})
    if not Membership.objects.filter(user=user, workspace=workspace).exists():
        raise PermissionDenied("You are not a member of that workspace.")
    raw = generate_api_key()
    key = ApiKey.objects.create(
        user=user, workspace=workspace, name=name, scope=scope, prefix=raw[:12], key_hash=hash_api_key(raw)
    )
    return key, raw


def api_key_revoke(*, actor: User, api_key: ApiKey) -> ApiKey:
    if api_key.user_id != actor.pk and not actor.is_staff:
        raise PermissionDenied("You can only revoke your own keys.")
    if api_key.revoked_at is None:
        api_key.revoked_at = timezone.now()
        api_key.save(update_fields=["revoked_at"])
    return api_key


def user_deactivate(*, user: User) -> None:
    """Deactivated users can't log in and their keys stop working (auth checks is_active)."""
    user.is_active = False
    user.save(update_fields=["is_active"])


# --- Settings: profile and agents -----------------------------------------------------------


@transaction.atomic
def user_update_profile(*, user: User, name: str) -> User:
    name = " ".join((name or "").split())  # no leading/trailing or repeated whitespace
    if len(name) > 150:
        raise ValidationError({"name": "Keep the name under 150 characters."})
    user.name = name
    user.save(update_fields=["name"])
    return user


@transaction.atomic
def user_set_shown_sources(*, user: User, shown: Iterable[str]) -> User:
    """Settings → Agents: store the sources *not* shown; unknown values are ignored."""
    shown = set(shown)
    user.hidden_sources = [value for value in Source.values if value not in shown]
    user.save(update_fields=["hidden_sources"])
    return user


LAST_USED_RESOLUTION = timedelta(minutes=1)


def touch_api_key(api_key: ApiKey) -> None:
    """Record last use, at most once a minute per key (keeps hot keys from row-lock churn)."""
    now = timezone.now()
    if api_key.last_used_at and now - api_key.last_used_at < LAST_USED_RESOLUTION:
        return
    ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
    api_key.last_used_at = now


# Rows per DELETE: each batch is one short statement, so a years-long backlog never holds one
# long transaction (or its locks) on a table every API request writes to.
API_REQUEST_LOG_PRUNE_BATCH = 5000


def api_request_logs_prune(*, now: datetime | None = None) -> int:
    """Delete API request log rows older than OPENSYNC_API_REQUEST_LOG_DAYS; returns how many went.

    Oldest first, in batches through the created_at index. Running again deletes nothing more,
    and two runs at once only split the work (a row deleted by one is not counted by the other).
    """
    cutoff = (now or timezone.now()) - timedelta(days=settings.OPENSYNC_API_REQUEST_LOG_DAYS)
    expired = ApiRequestLog.objects.filter(created_at__lt=cutoff)
    removed = 0
    while True:
        batch = expired.order_by("created_at").values("pk")[:API_REQUEST_LOG_PRUNE_BATCH]
        deleted, _ = ApiRequestLog.objects.filter(pk__in=batch).delete()
        if not deleted:
            break
        removed += deleted
    logger.info("api request log prune: removed %s rows older than %s", removed, cutoff.isoformat())
    return removed
