"""The nightly prune of old export files (export_jobs.export_files_prune): the file goes, the job
stays, and its page, download and API say the file was removed."""

from datetime import timedelta

import pytest
from celery.exceptions import SoftTimeLimitExceeded
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.urls import reverse
from django.utils import timezone

from accounts.services import api_key_create
from evals import export_jobs
from evals.models import ExportJob, ExportStatus
from evals.tests.factories import ExportJobFactory

pytestmark = pytest.mark.django_db


def built(owner, *, days_ago: float, status=ExportStatus.DONE) -> ExportJob:
    """An export finished `days_ago` days ago, with its file in storage."""
    job = ExportJobFactory(
        created_by=owner,
        status=status,
        finished_at=timezone.now() - timedelta(days=days_ago),
        sessions=2,
        records=3,
        content_hash="ab" * 32,
        session_ids=[11, 12],
        filename="deepeval.json",
    )
    job.file.save("deepeval.json", ContentFile(b"[]"), save=False)
    ExportJob.objects.filter(pk=job.pk).update(file=job.file.name, size=2)
    job.refresh_from_db()
    return job


def test_old_files_go_the_jobs_stay_newer_and_unfinished_ones_are_untouched(user, other_user):
    old = [built(user, days_ago=8), built(other_user, days_ago=30)]
    names = [job.file.name for job in old]
    kept = [built(user, days_ago=6), built(user, days_ago=20, status=ExportStatus.FAILED), ExportJobFactory()]

    assert export_jobs.export_files_prune() == 2  # the default: 7 days

    for job, name in zip(old, names, strict=True):
        assert not default_storage.exists(name)
        job.refresh_from_db()
        assert not job.file and job.file_expired_at is not None and job.file_kept_days in (8, 30)
        assert (job.status, job.records, job.content_hash, job.session_ids) == ("done", 3, "ab" * 32, [11, 12])
    for job in kept:
        name = job.file.name
        job.refresh_from_db()
        assert job.file.name == name and job.file_expired_at is None
        assert not name or default_storage.exists(name)


def test_the_age_follows_the_setting(user, settings):
    settings.OPENSYNC_EXPORT_FILE_DAYS = 30
    built(user, days_ago=29)
    old = built(user, days_ago=31)
    assert export_jobs.export_files_prune() == 1
    assert list(ExportJob.objects.filter(file="").values_list("pk", flat=True)) == [old.pk]


def test_batches_take_every_file_and_a_second_run_removes_nothing(user, monkeypatch):
    monkeypatch.setattr(export_jobs, "EXPORT_FILE_PRUNE_BATCH", 2)
    jobs = [built(user, days_ago=10 + n) for n in range(5)]
    assert export_jobs.export_files_prune() == 5
    assert not any(default_storage.exists(job.file.name) for job in jobs)
    assert ExportJob.objects.filter(file_expired_at__isnull=False).count() == 5
    assert export_jobs.export_files_prune() == 0


def test_a_file_already_missing_is_no_error(user):
    job = built(user, days_ago=10)
    default_storage.delete(job.file.name)
    assert export_jobs.export_files_prune() == 1
    job.refresh_from_db()
    assert not job.file and job.file_expired_at is not None


def test_a_file_the_storage_fails_to_delete_is_left_for_the_next_run(user, monkeypatch):
    failing, other = built(user, days_ago=10), built(user, days_ago=11)
    backend = ExportJob._meta.get_field("file").storage.__class__  # whichever backend is configured
    real_delete = backend.delete

    def flaky(storage, name):
        if name == failing.file.name:
            raise OSError("storage unavailable")
        real_delete(storage, name)

    with monkeypatch.context() as patched:
        patched.setattr(backend, "delete", flaky)
        assert export_jobs.export_files_prune() == 1
    failing.refresh_from_db(), other.refresh_from_db()
    assert failing.file and failing.file_expired_at is None and default_storage.exists(failing.file.name)
    assert not other.file

    assert export_jobs.export_files_prune() == 1
    assert not default_storage.exists(failing.file.name)


def test_the_task_time_running_out_stops_the_run(user, monkeypatch):
    job = built(user, days_ago=10)
    backend = ExportJob._meta.get_field("file").storage.__class__

    def out_of_time(storage, name):
        raise SoftTimeLimitExceeded()

    monkeypatch.setattr(backend, "delete", out_of_time)
    with pytest.raises(SoftTimeLimitExceeded):
        export_jobs.export_files_prune()
    job.refresh_from_db()
    assert job.file and job.file_expired_at is None  # the next run takes it


def test_the_page_and_the_download_say_the_file_was_removed(logged_in, user):
    job = built(user, days_ago=8)
    export_jobs.export_files_prune()

    page = logged_in.get(reverse("evals:export-job", args=[job.pk]))
    html = page.content.decode()
    assert page.status_code == 200
    assert "The file was removed on" in html and "after 8 days" in html and "Build it again" in html
    assert reverse("evals:export-download", args=[job.pk]) not in html
    assert "ab" * 8 in html  # the dataset version stays

    download = logged_in.get(reverse("evals:export-download", args=[job.pk]))
    assert download.status_code == 410 and "The file was removed on" in download.content.decode()

    listing = logged_in.get(reverse("evals:exports")).content.decode()
    assert "File removed" in listing and reverse("evals:export-download", args=[job.pk]) not in listing


def test_the_api_says_the_file_was_removed(client, user, personal_workspace):
    _, raw = api_key_create(user=user, workspace=personal_workspace, name="evals", scope="read")
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {raw}"
    job, fresh = built(user, days_ago=8), built(user, days_ago=1)
    export_jobs.export_files_prune()
    job.refresh_from_db()

    status = client.get(f"/api/export/jobs/{job.pk}").json()
    assert status["status"] == "done" and status["downloadUrl"] is None
    assert status["fileExpiredAt"] == int(job.file_expired_at.timestamp() * 1000)
    assert status["contentHash"] == "ab" * 32 and status["sessionIds"] == ["11", "12"]
    download = client.get(f"/api/export/jobs/{job.pk}/download")
    assert download.status_code == 410 and download["Content-Type"].startswith("application/json")
    assert download.json()["error"] == (
        f"The export's file was removed on {job.file_expired_at.date().isoformat()}, 8 days after it was built; "
        "start a new export."
    )

    kept = client.get(f"/api/export/jobs/{fresh.pk}").json()
    assert kept["fileExpiredAt"] is None and kept["downloadUrl"].endswith(f"/api/export/jobs/{fresh.pk}/download")
    assert client.get(kept["downloadUrl"]).status_code == 200


def test_the_celery_task_runs_nightly(user, settings):
    from evals.tasks import export_files_prune  # noqa: PLC0415 - the task module, imported where it is run

    job = built(user, days_ago=10)
    assert export_files_prune.apply().get() == 1
    assert not default_storage.exists(job.file.name)
    entry = settings.CELERY_BEAT_SCHEDULE["export-files-prune"]
    assert entry["task"] == "evals.tasks.export_files_prune"
    assert entry["schedule"].hour == {settings.OPENSYNC_RETENTION_HOUR}
