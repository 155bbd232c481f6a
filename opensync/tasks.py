"""Scheduled jobs (settings.CELERY_BEAT_SCHEDULE). Each is idempotent: a run that repeats, or
overlaps another, changes nothing the first did not."""

from celery import shared_task  # type: ignore[import-untyped]  # celery ships no type stubs

from .jobs import job_sweep_stale


@shared_task
def sweep_stale_jobs() -> dict[str, int]:
    return job_sweep_stale()
