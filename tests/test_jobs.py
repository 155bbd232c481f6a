"""The job core (opensync.jobs) on its own: the claim, the stale rule, the broker-down fallback,
retry and the shared figures. It is exercised through the real kinds (re-pricing, exports,
deletions); their own tests cover what each kind does with it."""

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from accounts.models import DeletionJob, DeletionStatus
from evals.models import ExportJob, ExportStatus
from opensync.jobs import JobStatus, job_claim, job_enqueue, job_fail, job_finish, job_retry, job_save_progress
from sessions_app import tasks as sessions_tasks
from sessions_app.models import RepricingJob

pytestmark = pytest.mark.django_db


def ago(**kwargs):
    return timezone.now() - timedelta(**kwargs)


def test_the_kinds_share_the_status_values_and_keep_their_own_labels():
    assert DeletionStatus.values == ExportStatus.values == JobStatus.values == ["pending", "running", "done", "failed"]
    assert DeletionStatus.PENDING == ExportStatus.PENDING == JobStatus.PENDING
    labels = [DeletionJob(status=s).get_status_display() for s in JobStatus.values]
    assert labels == ["Waiting to start", "Deleting", "Done", "Failed"]
    assert [ExportJob(status=s).get_status_display() for s in JobStatus.values] == [
        "Queued",
        "Building",
        "Ready",
        "Failed",
    ]
    assert [RepricingJob(status=s).get_status_display() for s in JobStatus.values] == [
        "Queued",
        "Running",
        "Done",
        "Failed",
    ]


def test_active_and_percent():
    done = RepricingJob.objects.create(status=JobStatus.DONE, total=0)
    running = RepricingJob.objects.create(status=JobStatus.RUNNING, total=3, processed=1)
    pending = RepricingJob.objects.create()
    RepricingJob.objects.create(status=JobStatus.FAILED)
    assert set(RepricingJob.objects.active()) == {running, pending}
    assert (done.percent, running.percent, pending.percent) == (100, 33, 0)
    assert RepricingJob(status=JobStatus.RUNNING, total=10, processed=10).percent == 99  # 100 only once done
    job = DeletionJob(counts={"sessions": 5, "messages": 50}, totals={"sessions": 4, "messages": 96})
    assert job.percent == 54  # (4 + 50) of 100: counts past a total don't count twice


def test_the_claim_goes_to_one_worker():
    job = RepricingJob.objects.create()
    claimed = job_claim(RepricingJob, job.pk)
    assert claimed.status == JobStatus.RUNNING
    assert job_claim(RepricingJob, job.pk) is None  # running, and moving
    assert job_claim(RepricingJob, 0) is None  # gone


@pytest.mark.django_db(transaction=True)
def test_of_two_workers_claiming_at_once_one_gets_the_job():
    job = RepricingJob.objects.create()
    start, results = threading.Barrier(2), []

    def claim():
        try:
            start.wait()
            results.append(job_claim(RepricingJob, job.pk))
        finally:
            connection.close()

    threads = [threading.Thread(target=claim) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(result is None for result in results) == [False, True]


def test_a_stale_running_job_is_claimed_again_only_when_resumable(user, personal_workspace):
    repricing = RepricingJob.objects.create(status=JobStatus.RUNNING)
    RepricingJob.objects.filter(pk=repricing.pk).update(updated_at=ago(minutes=9))
    assert job_claim(RepricingJob, repricing.pk) is None
    RepricingJob.objects.filter(pk=repricing.pk).update(updated_at=ago(minutes=11))
    assert job_claim(RepricingJob, repricing.pk).status == JobStatus.RUNNING

    export = ExportJob.objects.create(workspace=personal_workspace, created_by=user, status=JobStatus.RUNNING)
    ExportJob.objects.filter(pk=export.pk).update(updated_at=ago(hours=2))
    assert job_claim(ExportJob, export.pk) is None  # a build can't resume: it is failed instead


@pytest.mark.parametrize(
    ("model", "status", "minutes", "stale"),
    [
        (RepricingJob, JobStatus.RUNNING, 9, False),
        (RepricingJob, JobStatus.RUNNING, 11, True),
        (RepricingJob, JobStatus.PENDING, 600, False),  # a queued re-pricing waits as long as it takes
        (ExportJob, JobStatus.PENDING, 60, False),
        (ExportJob, JobStatus.PENDING, 66, True),
        (ExportJob, JobStatus.RUNNING, 11, True),
        (DeletionJob, JobStatus.PENDING, 16, True),
        (DeletionJob, JobStatus.RUNNING, 14, False),
        (DeletionJob, JobStatus.FAILED, 600, False),  # only active jobs go stale
    ],
)
def test_the_stale_rule(model, status, minutes, stale):
    assert model(status=status, updated_at=ago(minutes=minutes)).is_stale is stale


def test_an_unreachable_broker_fails_the_job_with_the_kinds_reason(monkeypatch, django_capture_on_commit_callbacks):
    def down(*args, **kwargs):
        raise ConnectionError("broker down")

    monkeypatch.setattr(sessions_tasks.repricing_job_run_task, "delay", down)
    job = RepricingJob.objects.create()
    with django_capture_on_commit_callbacks(execute=True):
        job_enqueue(job)
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED and job.finished_at is not None
    assert job.error == "The task queue is unavailable (ConnectionError): run `manage.py reprice` instead."


def test_the_task_is_queued_only_after_commit(monkeypatch, django_capture_on_commit_callbacks):
    sent = []
    monkeypatch.setattr(sessions_tasks.repricing_job_run_task, "delay", sent.append)
    job = RepricingJob.objects.create()
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        job_enqueue(job)
    assert sent == [] and len(callbacks) == 1
    callbacks[0]()
    assert sent == [job.pk]


def test_progress_finish_fail_and_retry(monkeypatch, django_capture_on_commit_callbacks):
    monkeypatch.setattr(sessions_tasks.repricing_job_run_task, "delay", lambda job_id: None)
    job = job_claim(RepricingJob, RepricingJob.objects.create().pk)
    RepricingJob.objects.filter(pk=job.pk).update(updated_at=ago(minutes=5))
    job_save_progress(job, processed=4)
    job.refresh_from_db()
    assert job.processed == 4 and job.updated_at > ago(minutes=1)
    assert not job_retry(job)  # running and moving: nothing to retry

    job_fail(job, error="stopped")
    job.refresh_from_db()
    assert (job.status, job.error) == (JobStatus.FAILED, "stopped") and job.finished_at is not None
    with django_capture_on_commit_callbacks(execute=True):
        assert job_retry(job)
    job.refresh_from_db()
    assert (job.status, job.error, job.finished_at) == (JobStatus.PENDING, "", None)

    assert job_finish(job, total=4) == 1
    job.refresh_from_db()
    assert (job.status, job.total, job.percent) == (JobStatus.DONE, 4, 100)
    RepricingJob.objects.filter(pk=job.pk).delete()
    assert job_finish(job) == 0  # deleted meanwhile: the caller learns it


def test_the_progress_partial():
    html = render_to_string(
        "jobs/progress.html#bar", {"job": RepricingJob(total=4, processed=1), "label": "Re-pricing"}
    )
    assert 'aria-label="Re-pricing"' in html and 'aria-valuenow="25"' in html and 'width="25%"' in html


def test_an_active_job_polls_its_own_progress_url_and_a_finished_one_stops():
    job = RepricingJob.objects.create(total=4)
    html = render_to_string("jobs/progress.html#poll", {"job": job})
    url = reverse("sessions:repricing-job", args=[job.pk])
    assert html == f'hx-get="{url}" hx-trigger="every 1s" hx-swap="outerHTML"'
    job.status = JobStatus.DONE
    assert render_to_string("jobs/progress.html#poll", {"job": job}) == ""
