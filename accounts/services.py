"""Writes for users, workspaces, memberships, invitations, API keys and account deletion."""

import hashlib
import logging
import secrets
from collections.abc import Iterable
from datetime import timedelta

from django.apps import apps
from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.mail import send_mail
from django.db import IntegrityError, models, transaction
from django.db.models import Count, Exists, OuterRef, Q, Sum
from django.utils import timezone
from django.utils.text import slugify

from . import selectors
from .models import (
    ApiKey,
    ApiKeyScope,
    ApiRequestLog,
    DeletionJob,
    DeletionKind,
    DeletionStatus,
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


def _lock_admin_rows_of(user: User) -> None:
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
    from sessions_app.models import Source

    shown = set(shown)
    user.hidden_sources = [value for value in Source.values if value not in shown]
    user.save(update_fields=["hidden_sources"])
    return user


# --- Settings: deleting data and accounts ---------------------------------------------------

DELETION_BATCH_SIZE = 100  # sessions per transaction (their messages and parts go with them)
REQUEST_LOG_BATCH_SIZE = 5000  # log rows have no dependents: bigger batches are cheap
# A running job whose progress didn't move for this long lost its worker; asking again resumes it.
DELETION_STALE_AFTER = timedelta(minutes=15)


def _workspaces_deleted_with(user: User):
    """The personal workspace and the team workspaces nobody else is in."""
    other_member = Membership.objects.filter(workspace=OuterRef("pk")).exclude(user=user)
    solo_teams = Workspace.objects.filter(is_personal=False, memberships__user=user).filter(~Exists(other_member))
    return Workspace.objects.filter(Q(is_personal=True, created_by=user) | Q(pk__in=solo_teams.values("pk")))


def _sessions_to_delete(job: DeletionJob):
    from sessions_app.models import Session

    sessions = Session.objects.filter(owner=job.user)
    if job.kind == DeletionKind.ACCOUNT:
        # A workspace that goes away takes everything in it (e.g. sessions of people who left).
        sessions = sessions | Session.objects.filter(workspace__in=_workspaces_deleted_with(job.user).values("pk"))
    return sessions


def _related_to_user_querysets(user: User):
    """Rows of the search and evals apps that belong to the user (saved searches, bookmarks, ...).

    Rows that only name the user (on_delete=SET_NULL, such as who made a review change on a
    team's session) stay: they are the team's record, and lose the name with the account."""
    for label in ("search", "evals"):
        for model in apps.get_app_config(label).get_models():
            for field in model._meta.concrete_fields:
                if (
                    field.is_relation
                    and field.many_to_one
                    and field.related_model is User
                    and field.remote_field.on_delete is models.CASCADE
                ):
                    yield model._default_manager.filter(**{field.name: user})


def deletion_job_start(*, user: User, kind: str) -> tuple[DeletionJob, bool]:
    """Start deleting the user's data (or account) in the background. Returns (job, created).

    While a job is pending or running, asking again returns that job instead of a second one.
    An account deletion first checks nobody is left without an admin, then disables the user at
    once (login and API keys stop working) before the data goes.
    """
    if kind not in DeletionKind.values:
        raise ValidationError(f"Unknown deletion kind {kind!r}.")
    with transaction.atomic():
        # Serialise requests of one user (double submits, two tabs): the unique constraint would
        # reject the second insert, but the lock lets it return the running job instead.
        User.objects.select_for_update().filter(pk=user.pk).first()
        existing = DeletionJob.objects.active().filter(user=user).first()
        if existing:
            if timezone.now() - existing.updated_at > DELETION_STALE_AFTER:
                _enqueue_deletion(existing)
            return existing, False
        if kind == DeletionKind.ACCOUNT:
            _lock_admin_rows_of(user)
            blockers = list(selectors.account_deletion_blockers(user).values_list("name", flat=True))
            if blockers:
                raise ValidationError(
                    f"You are the only admin of {', '.join(blockers)}, which other people still use. "
                    "Make someone else admin there, or leave the workspace, then try again."
                )
        job = DeletionJob.objects.create(user=user, email=user.email, kind=kind, token=secrets.token_urlsafe(32))
        if kind == DeletionKind.ACCOUNT:
            user.is_active = False
            user.save(update_fields=["is_active"])
        _enqueue_deletion(job)
    return job, True


def _enqueue_deletion(job: DeletionJob) -> None:
    transaction.on_commit(lambda: _send_deletion(job.pk))


def _send_deletion(job_id: int) -> None:
    """Hand the job to Celery. If the broker is unreachable the job fails at once with a reason
    (and a disabled account is given back when nothing was deleted), instead of a 500 after the
    commit and a job that waits forever."""
    from . import tasks

    try:
        tasks.deletion_job_run_task.delay(job_id)
    except Exception as exc:
        logger.exception("Could not queue deletion job %s", job_id)
        job = DeletionJob.objects.filter(pk=job_id).first()
        if job is not None:
            _fail(job, f"The task queue is unavailable ({type(exc).__name__}). Please try again later.")


def deletion_job_retry(*, job: DeletionJob) -> bool:
    """Admin: run a failed (or stuck) job again from where it stopped. Returns whether it was queued."""
    stuck = job.status == DeletionStatus.RUNNING and timezone.now() - job.updated_at > DELETION_STALE_AFTER
    if job.status not in (DeletionStatus.FAILED, DeletionStatus.PENDING) and not stuck:
        return False
    with transaction.atomic():
        DeletionJob.objects.filter(pk=job.pk).update(
            status=DeletionStatus.PENDING, error="", finished_at=None, updated_at=timezone.now()
        )
        _enqueue_deletion(job)
    return True


def _claim_deletion_job(job_id: int) -> DeletionJob | None:
    """Pending (or stale running) -> running, with a conditional UPDATE: one worker per job."""
    now = timezone.now()
    claimable = DeletionJob.objects.filter(pk=job_id, status=DeletionStatus.PENDING) | DeletionJob.objects.filter(
        pk=job_id, status=DeletionStatus.RUNNING, updated_at__lt=now - DELETION_STALE_AFTER
    )
    if not claimable.update(status=DeletionStatus.RUNNING, updated_at=now):
        return None
    return DeletionJob.objects.select_related("user").get(pk=job_id)


def _save_progress(job: DeletionJob, **fields) -> None:
    job.updated_at = timezone.now()
    DeletionJob.objects.filter(pk=job.pk).update(counts=job.counts, updated_at=job.updated_at, **fields)


def _add_counts(job: DeletionJob, **counts: int) -> None:
    for key, value in counts.items():
        job.counts[key] = job.counts.get(key, 0) + value


def deletion_job_run(*, job_id: int) -> DeletionJob | None:
    """Run a claimed job to the end. Safe to run again after a crash: it deletes what is left."""
    job = _claim_deletion_job(job_id)
    if job is None:
        return None  # gone, finished, or another worker has it
    try:
        if job.user is None:
            raise RuntimeError("The user no longer exists.")
        if job.kind == DeletionKind.ACCOUNT and selectors.account_deletion_blockers(job.user).exists():
            raise ValidationError("Another member must be made admin first.")
        _set_totals(job)
        _delete_sessions(job)
        _delete_request_logs(job)
        with transaction.atomic():
            if job.kind == DeletionKind.ACCOUNT:
                # Checked again under the admin-row locks: someone may have left meanwhile.
                _lock_admin_rows_of(job.user)
                if selectors.account_deletion_blockers(job.user).exists():
                    raise ValidationError("Another member must be made admin first.")
            for queryset in _related_to_user_querysets(job.user):
                queryset.delete()
            if job.kind == DeletionKind.ACCOUNT:
                _delete_account_rows(job)
            job.status = DeletionStatus.DONE
            job.finished_at = timezone.now()
            _save_progress(job, status=job.status, finished_at=job.finished_at)
    except Exception as exc:
        logger.exception("Deletion job %s failed", job.pk)
        _fail(job, " ".join(exc.messages) if isinstance(exc, ValidationError) else f"{type(exc).__name__}: {exc}")
    return job


def _fail(job: DeletionJob, error: str) -> None:
    # A failed batch was rolled back: keep the counts of the committed ones.
    job.counts = DeletionJob.objects.values_list("counts", flat=True).get(pk=job.pk)
    job.status = DeletionStatus.FAILED
    job.error = error
    job.finished_at = timezone.now()
    _save_progress(job, status=job.status, error=job.error, finished_at=job.finished_at)
    if job.kind == DeletionKind.ACCOUNT and job.user_id is not None and not any(job.counts.values()):
        # Nothing was deleted: give the account back rather than leave it locked. Otherwise it
        # stays disabled until an admin runs the job again (DeletionJob admin, "Run again").
        User.objects.filter(pk=job.user_id).update(is_active=True)


def _set_totals(job: DeletionJob) -> None:
    remaining = _sessions_to_delete(job).aggregate(sessions=Count("pk"), messages=Sum("message_count"))
    totals = {
        "sessions": job.counts.get("sessions", 0) + remaining["sessions"],
        "messages": job.counts.get("messages", 0) + (remaining["messages"] or 0),
        "request_logs": job.counts.get("request_logs", 0) + ApiRequestLog.objects.filter(user=job.user).count(),
    }
    if job.kind == DeletionKind.ACCOUNT:
        totals["api_keys"] = job.counts.get("api_keys", 0) + ApiKey.objects.filter(user=job.user).count()
    job.totals = totals
    _save_progress(job, totals=totals)


def _delete_sessions(job: DeletionJob) -> None:
    from sessions_app.services import sessions_delete

    while True:
        with transaction.atomic():
            batch = list(_sessions_to_delete(job).order_by("pk").values_list("pk", flat=True)[:DELETION_BATCH_SIZE])
            if not batch:
                return
            _add_counts(job, **sessions_delete(session_ids=batch))
            _save_progress(job)


def _delete_request_logs(job: DeletionJob) -> None:
    while True:
        with transaction.atomic():
            batch = ApiRequestLog.objects.filter(user=job.user).order_by("pk").values("pk")[:REQUEST_LOG_BATCH_SIZE]
            deleted, _ = ApiRequestLog.objects.filter(pk__in=batch).delete()
            if not deleted:
                return
            _add_counts(job, request_logs=deleted)
            _save_progress(job)


def _delete_account_rows(job: DeletionJob) -> None:
    user = job.user
    deleted: dict[str, int] = {}
    for queryset in (
        ApiKey.objects.filter(user=user),
        # sent by them, and sent to them (their email address stays nowhere)
        Invitation.objects.filter(Q(invited_by=user) | Q(accepted_by=user) | Q(email__iexact=user.email)),
        _workspaces_deleted_with(user),  # with their memberships, invitations and keys
        Membership.objects.filter(user=user),
    ):
        for label, count in queryset.delete()[1].items():
            deleted[label] = deleted.get(label, 0) + count
    _add_counts(
        job,
        api_keys=deleted.get(ApiKey._meta.label, 0),
        invitations=deleted.get(Invitation._meta.label, 0),
        workspaces=deleted.get(Workspace._meta.label, 0),
        memberships=deleted.get(Membership._meta.label, 0),
    )
    # Whatever else points at the user (allauth email addresses, social accounts, admin log)
    # goes by CASCADE; this job keeps only the email snapshot (user -> NULL).
    user.delete()
    job.user = None
