"""The lifecycle every background job shares: deletions (accounts.DeletionJob), eval exports
(evals.ExportJob) and re-pricings (sessions_app.RepricingJob).

A job is a row that a Celery task works through: pending -> running -> done or failed. The row
is the truth the pages poll (`templates/jobs/progress.html`: the polling and the bar); the task
only gets the row's id. What every kind shares lives here:

- `Job`, the abstract model: `status` (one `JobStatus`), `error`, `created_at`, `updated_at`
  (the last progress), `finished_at`, `is_active`, `percent` and `is_stale`;
  `Job.objects.active()` for the pending and running ones;
- the services: `job_enqueue` (on commit; if the broker is unreachable the job fails at once
  with a reason instead of waiting forever), `job_claim` (the conditional UPDATE that gives a
  job to one worker), `job_save_progress`, `job_finish`, `job_fail`, `job_retry` and
  `job_reopen` (back to pending without queueing, for a job run in-process). `job_finish` and
  `job_fail` count each outcome by kind for Prometheus (opensync.metrics).

A new kind (retention, rebuilds) plugs in like this:

1. a model inheriting `Job`, with its own fields; it sets `task` (the dotted path of its Celery
   task), `stale_after` (how long a running job may go without progress before its worker
   counts as lost), `queued_stale_after` if a queued job can go stale too, `resumable` (whether
   a lost job is claimed again and continues, or has to be failed), `progress_done()` /
   `progress_total()` for `percent` and `progress_url()` for the block its page polls. Its own
   labels for the statuses, if its page words them differently:
   `status = status_field(job_statuses("RetentionStatus", running="Pruning"))`;
2. an engine module with `<kind>_start` (create the row, `job_enqueue(job)`) and
   `<kind>_run(*, job_id)` (`job_claim`, work in batches calling `job_save_progress`, then
   `job_finish`, or `job_fail` with a reason the page can show);
3. a task in the app's tasks.py calling `<kind>_run(job_id=...)`, and the page's block including
   `jobs/progress.html#poll` (in its tag) and `jobs/progress.html#bar`.

The task is found by its dotted path when a job is queued, so an engine and the tasks module
that calls it never import each other.
"""

import logging
from collections.abc import Callable
from datetime import timedelta
from functools import partial
from typing import ClassVar, TypeVar

from django.apps import apps
from django.db import models, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.module_loading import import_string

from opensync import metrics

logger = logging.getLogger(__name__)


class JobStatus(models.TextChoices):
    PENDING = "pending", "Queued"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


ACTIVE_STATUSES = (JobStatus.PENDING, JobStatus.RUNNING)


def job_statuses(name: str, **labels: str) -> type[models.TextChoices]:
    """JobStatus with a kind's own display labels (by value, e.g. pending="Waiting to start"):
    the same values, so the kinds' statuses compare equal to JobStatus's."""
    members = [(s.name, (s.value, labels.get(s.value, s.label))) for s in JobStatus]
    return models.TextChoices(name, members)  # type: ignore[call-overload]  # Enum's functional API, which the stubs lack


def status_field(statuses: type[models.TextChoices] = JobStatus) -> models.CharField:
    return models.CharField(max_length=16, choices=statuses.choices, default=JobStatus.PENDING)


class JobQuerySet(models.QuerySet):
    def active(self):
        return self.filter(status__in=ACTIVE_STATUSES)


class Job(models.Model):
    status = status_field()
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(
        default=timezone.now, help_text="Last progress; an active job that stops moving lost its worker."
    )
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = JobQuerySet.as_manager()

    task: ClassVar[str]  # dotted path of the Celery task that runs a job given its id
    stale_after: ClassVar[timedelta]  # a running job without progress for this long lost its worker
    queued_stale_after: ClassVar[timedelta | None] = None  # None: a queued job waits as long as it takes
    resumable: ClassVar[bool] = True  # a lost running job may be claimed again and go on
    # Dotted path of the kind's own failure function (called as fail(job, error=...)) when it has
    # more to undo than job_fail; found by path like `task`, so the model needn't import its engine.
    fail_with: ClassVar[str | None] = None
    queue_down_error: ClassVar[str] = "The task queue is unavailable ({error}). Please try again later."
    # What the page of a lost job says when it is failed as stale (kinds that are not resumable):
    # `stale_error` for a running job, `queued_stale_error` for one no worker picked up.
    stale_error: ClassVar[str] = "The job stopped without finishing (its worker was interrupted). Start it again."
    queued_stale_error: ClassVar[str] = (
        "No worker picked the job up: check that the Celery worker runs, then start it again."
    )

    class Meta:
        abstract = True

    def progress_done(self) -> int:
        return 0

    def progress_total(self) -> int:
        return 0

    def progress_url(self) -> str:
        """Where the job's page block asks for its own progress (`jobs/progress.html#poll`)."""
        raise NotImplementedError

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_STATUSES

    @property
    def percent(self) -> int:
        if self.status == JobStatus.DONE:
            return 100
        total = self.progress_total()
        if not total:
            return 0
        return min(99, self.progress_done() * 100 // total)

    @property
    def is_stale(self) -> bool:
        """Active, and no progress for longer than its status allows."""
        limit = self.queued_stale_after if self.status == JobStatus.PENDING else self.stale_after
        return self.is_active and limit is not None and timezone.now() - self.updated_at > limit

    @property
    def stale_reason(self) -> str:
        return self.queued_stale_error if self.status == JobStatus.PENDING else self.stale_error

    @property
    def can_retry(self) -> bool:
        """Failed, or running without progress: running it again resumes it."""
        return self.status == JobStatus.FAILED or (self.status == JobStatus.RUNNING and self.is_stale)


J = TypeVar("J", bound=Job)


def job_fail(job: Job, *, error: str) -> None:
    """Record the failure and its reason (for the person who waits on the job's page)."""
    now = timezone.now()
    job.status, job.error, job.finished_at, job.updated_at = JobStatus.FAILED, error, now, now
    type(job).objects.filter(pk=job.pk).update(status=job.status, error=error, finished_at=now, updated_at=now)
    metrics.record_job_outcome(job._meta.model_name, "failed")


def job_enqueue(job: Job) -> None:
    """Queue the job's task once the transaction commits (the worker must see the row).

    When the broker is unreachable the job fails at once with the reason, through the kind's
    `fail_with` (a kind with more to undo, such as a disabled account to give back) or job_fail."""
    model = type(job)
    fail = import_string(model.fail_with) if model.fail_with else job_fail
    transaction.on_commit(partial(_send, model, job.pk, fail))


def _send(model: type[Job], job_id: int, fail: Callable[..., None]) -> None:
    try:
        import_string(model.task).delay(job_id)
    except Exception as exc:
        # Failing now, with the reason, beats a 500 after the commit and a job that waits forever.
        logger.exception("Could not queue %s %s", model._meta.verbose_name, job_id)
        job = model.objects.active().filter(pk=job_id).first()
        if job is not None:
            fail(job, error=model.queue_down_error.format(error=type(exc).__name__))


def job_claim(model: type[J], job_id: int, *, select_related: tuple[str, ...] = ()) -> J | None:
    """pending (or, for a resumable kind, running but stale) -> running, with a conditional
    UPDATE: of two workers handed the same job, one gets it and the other gets None."""
    now = timezone.now()
    claimable = Q(status=JobStatus.PENDING)
    if model.resumable:
        claimable |= Q(status=JobStatus.RUNNING, updated_at__lt=now - model.stale_after)
    if not model.objects.filter(claimable, pk=job_id).update(status=JobStatus.RUNNING, updated_at=now):
        return None
    return model.objects.select_related(*select_related).get(pk=job_id)


def job_save_progress(job: Job, **fields) -> int:
    """Write the given fields with a fresh `updated_at` (which keeps the job from going stale).
    Returns the rows written: 0 when the job was deleted meanwhile."""
    job.updated_at = timezone.now()
    return type(job).objects.filter(pk=job.pk).update(updated_at=job.updated_at, **fields)


def job_finish(job: Job, **fields) -> int:
    """Done, with the final figures in `fields`. Returns the rows written (0: deleted meanwhile)."""
    now = timezone.now()
    job.status, job.error, job.finished_at, job.updated_at = JobStatus.DONE, "", now, now
    written = (
        type(job)
        .objects.filter(pk=job.pk)
        .update(status=job.status, error="", finished_at=now, updated_at=now, **fields)
    )
    if written:  # a job deleted meanwhile finished nothing
        metrics.record_job_outcome(job._meta.model_name, "done")
    return written


def job_reopen(job: Job) -> None:
    """Back to pending (a failed or stuck job resumes where it stopped when it is claimed again),
    without queueing it: for a caller that runs it in its own process (`manage.py reprice`)."""
    job.status, job.error, job.finished_at, job.updated_at = JobStatus.PENDING, "", None, timezone.now()
    type(job).objects.filter(pk=job.pk).update(status=job.status, error="", finished_at=None, updated_at=job.updated_at)


def job_retry(job: Job) -> bool:
    """Queue a failed (or stuck) job again; it resumes where it stopped. Returns whether queued."""
    if not job.can_retry:
        return False
    with transaction.atomic():
        job_reopen(job)
        job_enqueue(job)
    return True


def job_kinds() -> list[type[Job]]:
    """Every concrete kind of job (found through the model registry, so a new kind is swept
    without being listed anywhere)."""
    return [m for m in apps.get_models() if issubclass(m, Job) and not m._meta.abstract]


def job_sweep_stale(*, batch: int = 500) -> dict[str, int]:
    """The periodic sweep (the `opensync.tasks.sweep_stale_jobs` beat task): every stale job of
    every kind is queued again when its kind is resumable (its task claims it and goes on), or
    failed with the kind's reason (`stale_reason`). Each change is conditional on the row not having moved
    since it was read, so a worker that just took the job keeps it and a second sweep is a no-op.
    Returns the counts per kind, {"<label>.requeued": n, "<label>.failed": n}."""
    counts: dict[str, int] = {}
    for model in job_kinds():
        label = model._meta.label_lower
        counts[f"{label}.requeued"] = counts[f"{label}.failed"] = 0
        for job in model.objects.active().order_by("updated_at")[:batch]:
            if not job.is_stale:
                continue
            if model.resumable:
                with transaction.atomic():
                    reopened = _unmoved(job).update(
                        status=JobStatus.PENDING, error="", finished_at=None, updated_at=timezone.now()
                    )
                    if reopened:
                        job_enqueue(job)
                        counts[f"{label}.requeued"] += 1
            elif job_fail_stale(job, error=job.stale_reason):
                counts[f"{label}.failed"] += 1
    return counts


def job_fail_stale(job: Job, *, error: str) -> bool:
    """Fail a lost job with the reason, only if nothing moved since it was read (a worker that
    just took it keeps it). Used by the sweep and by a page that finds its job stale."""
    now = timezone.now()
    if not _unmoved(job).update(status=JobStatus.FAILED, error=error, finished_at=now, updated_at=now):
        return False
    metrics.record_job_outcome(job._meta.model_name, "failed")  # counted as job_fail counts
    return True


def _unmoved(job: Job) -> models.QuerySet:
    """The job's row, only while it is as it was read (same status, no progress since)."""
    return type(job).objects.filter(pk=job.pk, status=job.status, updated_at=job.updated_at)
