from celery import shared_task

from . import deletion, retention, services


# Big accounts take a while; past the soft limit the job is marked failed and asking again resumes it.
@shared_task(ignore_result=True, soft_time_limit=55 * 60, time_limit=60 * 60)
def deletion_job_run_task(job_id: int) -> None:
    """Delete a user's data (or account) in batches; quietly does nothing if the job is gone or taken.

    A failure is recorded on the job (status "failed"); running it again resumes where it stopped.
    """
    deletion.deletion_job_run(job_id=job_id)


@shared_task(ignore_result=True)
def retention_run() -> None:
    """Nightly: delete the sessions past each workspace's retention (see accounts/retention.py)."""
    retention.retention_run()


@shared_task(ignore_result=True, soft_time_limit=55 * 60, time_limit=60 * 60)
def api_request_log_prune() -> int:
    """Nightly: delete API request log rows past OPENSYNC_API_REQUEST_LOG_DAYS; returns how many.

    Stopped by the time limit, it keeps the batches it finished; the next night goes on.
    """
    return services.api_request_logs_prune()
