"""Settings → Data & account: deleting a user's data, or their whole account, in the background.

A DeletionJob (opensync.jobs) is run by accounts.tasks in batches; each batch commits with its
counts, so a job that stops resumes where it was.
"""

import logging
import secrets

from django.apps import apps
from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.db.models import Count, Exists, OuterRef, Q, Sum

from opensync.jobs import job_claim, job_enqueue, job_fail, job_finish, job_retry, job_save_progress
from sessions_app.models import Session
from sessions_app.services import sessions_delete

from . import selectors
from .models import ApiKey, ApiRequestLog, DeletionJob, DeletionKind, Invitation, Membership, User, Workspace
from .services import lock_admin_rows_of

logger = logging.getLogger(__name__)

DELETION_BATCH_SIZE = 100  # sessions per transaction (their messages and parts go with them)
REQUEST_LOG_BATCH_SIZE = 5000  # log rows have no dependents: bigger batches are cheap


def _workspaces_deleted_with(user: User):
    """The personal workspace and the team workspaces nobody else is in."""
    other_member = Membership.objects.filter(workspace=OuterRef("pk")).exclude(user=user)
    solo_teams = Workspace.objects.filter(is_personal=False, memberships__user=user).filter(~Exists(other_member))
    return Workspace.objects.filter(Q(is_personal=True, created_by=user) | Q(pk__in=solo_teams.values("pk")))


def _user_of(job: DeletionJob) -> User:
    if job.user is None:
        raise RuntimeError("The user no longer exists.")
    return job.user


def _sessions_to_delete(job: DeletionJob):
    user = _user_of(job)
    sessions = Session.objects.filter(owner=user)
    if job.kind == DeletionKind.ACCOUNT:
        # A workspace that goes away takes everything in it (e.g. sessions of people who left).
        sessions = sessions | Session.objects.filter(workspace__in=_workspaces_deleted_with(user).values("pk"))
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
                    and field.remote_field is not None
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
            if existing.is_stale:
                job_enqueue(existing)
            return existing, False
        if kind == DeletionKind.ACCOUNT:
            lock_admin_rows_of(user)
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
        job_enqueue(job)
    return job, True


def deletion_job_retry(*, job: DeletionJob) -> bool:
    """Admin: run a failed (or stuck) job again from where it stopped. Returns whether it was queued."""
    return job_retry(job)


def _save_progress(job: DeletionJob, **fields) -> None:
    job_save_progress(job, counts=job.counts, **fields)


def _add_counts(job: DeletionJob, **counts: int) -> None:
    for key, value in counts.items():
        job.counts[key] = job.counts.get(key, 0) + value


def deletion_job_run(*, job_id: int) -> DeletionJob | None:
    """Run a claimed job to the end. Safe to run again after a crash: it deletes what is left."""
    job = job_claim(DeletionJob, job_id, select_related=("user",))
    if job is None:
        return None  # gone, finished, or another worker has it
    try:
        user = _user_of(job)  # a job whose user is gone fails with that reason
        if job.kind == DeletionKind.ACCOUNT and selectors.account_deletion_blockers(user).exists():
            raise ValidationError("Another member must be made admin first.")
        _set_totals(job)
        _delete_sessions(job)
        _delete_request_logs(job)
        with transaction.atomic():
            if job.kind == DeletionKind.ACCOUNT:
                # Checked again under the admin-row locks: someone may have left meanwhile.
                lock_admin_rows_of(user)
                if selectors.account_deletion_blockers(user).exists():
                    raise ValidationError("Another member must be made admin first.")
            for queryset in _related_to_user_querysets(user):
                queryset.delete()
            if job.kind == DeletionKind.ACCOUNT:
                _delete_account_rows(job)
            job_finish(job, counts=job.counts)
    except Exception as exc:
        logger.exception("Deletion job %s failed", job.pk)
        deletion_job_fail(
            job, error=" ".join(exc.messages) if isinstance(exc, ValidationError) else f"{type(exc).__name__}: {exc}"
        )
    return job


def deletion_job_fail(job: DeletionJob, *, error: str) -> None:
    # A failed batch was rolled back: keep the counts of the committed ones.
    job.counts = DeletionJob.objects.values_list("counts", flat=True).get(pk=job.pk)
    job_fail(job, error=error)
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
    user = _user_of(job)
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
