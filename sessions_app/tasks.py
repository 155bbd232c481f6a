from celery import shared_task

from . import rollups, services


@shared_task(ignore_result=True, soft_time_limit=55 * 60, time_limit=60 * 60)
def repricing_job_run_task(job_id: int) -> None:
    """Re-price the sessions of a price change; does nothing if the job is gone or taken. A job
    stopped by the time limit is marked failed and resumes where it stopped when run again."""
    services.repricing_job_run(job_id=job_id)


@shared_task(ignore_result=True, soft_time_limit=25 * 60, time_limit=30 * 60)
def rollups_rebuild_task(workspace_id: int) -> None:
    """Recompute a workspace's daily rollups (after its time zone changed)."""
    rollups.rebuild(workspace_id)


@shared_task(ignore_result=True, soft_time_limit=25 * 60, time_limit=30 * 60)
def expired_shares_prune() -> int:
    """Nightly: turn off the public links whose expiry passed (services.sessions_unshare_expired)."""
    return services.sessions_unshare_expired()
