"""The scheduled jobs (opensync/tasks.py, settings.CELERY_BEAT_SCHEDULE), called in-process."""

from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from evals.models import ExportJob
from opensync.jobs import JobStatus, job_kinds
from opensync.tasks import sweep_stale_jobs
from sessions_app import tasks as sessions_tasks
from sessions_app.models import RepricingJob

pytestmark = pytest.mark.django_db


def ago(**kwargs):
    return timezone.now() - timedelta(**kwargs)


def test_every_concrete_job_kind_is_swept():
    labels = {m._meta.label for m in job_kinds()}
    assert {"accounts.DeletionJob", "evals.ExportJob", "sessions_app.RepricingJob"} <= labels


def test_the_sweep_is_on_the_schedule():
    tasks = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert "opensync.tasks.sweep_stale_jobs" in tasks


def test_a_stale_resumable_job_is_requeued_and_a_stale_build_failed_once(
    user, personal_workspace, monkeypatch, django_capture_on_commit_callbacks
):
    sent = []
    monkeypatch.setattr(sessions_tasks.repricing_job_run_task, "delay", sent.append)
    lost = RepricingJob.objects.create(status=JobStatus.RUNNING)
    moving = RepricingJob.objects.create(status=JobStatus.RUNNING)
    RepricingJob.objects.filter(pk=lost.pk).update(updated_at=ago(minutes=11))
    build = ExportJob.objects.create(workspace=personal_workspace, created_by=user, status=JobStatus.RUNNING)
    ExportJob.objects.filter(pk=build.pk).update(updated_at=ago(minutes=11))

    with django_capture_on_commit_callbacks(execute=True):
        counts = sweep_stale_jobs()
    assert counts["sessions_app.repricingjob.requeued"] == 1 and counts["evals.exportjob.failed"] == 1
    assert sent == [lost.pk]
    lost.refresh_from_db(), moving.refresh_from_db(), build.refresh_from_db()
    assert lost.status == JobStatus.PENDING and moving.status == JobStatus.RUNNING
    assert build.status == JobStatus.FAILED and "interrupted" in build.error and build.finished_at

    with django_capture_on_commit_callbacks(execute=True):
        again = sweep_stale_jobs()  # idempotent: nothing is stale any more
    assert sum(again.values()) == 0 and sent == [lost.pk]
