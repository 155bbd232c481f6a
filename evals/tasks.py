from celery import shared_task

from . import export_jobs


@shared_task(ignore_result=True, soft_time_limit=55 * 60, time_limit=60 * 60)
def export_job_run_task(job_id: int) -> None:
    """Build an eval export; does nothing if the job is gone or already taken. A failure is
    recorded on the job with its reason."""
    export_jobs.export_job_run(job_id=job_id)


@shared_task(ignore_result=True, soft_time_limit=55 * 60, time_limit=60 * 60)
def export_files_prune() -> int:
    """Nightly: remove the files of exports past OPENSYNC_EXPORT_FILE_DAYS; the jobs stay (see
    export_jobs.export_files_prune)."""
    return export_jobs.export_files_prune()
