"""The nightly prune of the API request log (services.api_request_logs_prune)."""

import os
import subprocess
import sys
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts import services
from accounts.models import ApiRequestLog, Workspace
from accounts.selectors import USAGE_DAYS
from accounts.services import api_key_create
from accounts.tests.factories import ApiRequestLogFactory

pytestmark = pytest.mark.django_db


def log_request(api_key, *, days_ago):
    return ApiRequestLogFactory(api_key=api_key, created_at=timezone.now() - timedelta(days=days_ago))


@pytest.fixture
def key(user, personal_workspace):
    return api_key_create(user=user, workspace=personal_workspace, name="k", scope="sync")[0]


def test_rows_past_the_window_go_newer_ones_stay_in_every_workspace(key, other_user):
    elsewhere = Workspace.objects.get(created_by=other_user, is_personal=True)
    theirs = api_key_create(user=other_user, workspace=elsewhere, name="k", scope="sync")[0]
    old = [log_request(key, days_ago=91), log_request(key, days_ago=400), log_request(theirs, days_ago=95)]
    kept = [log_request(key, days_ago=89), log_request(key, days_ago=0), log_request(theirs, days_ago=30)]

    assert services.api_request_logs_prune() == 3  # the default window: 90 days

    assert not ApiRequestLog.objects.filter(pk__in=[row.pk for row in old]).exists()
    assert set(ApiRequestLog.objects.values_list("pk", flat=True)) == {row.pk for row in kept}


def test_the_window_follows_the_setting(key, settings):
    settings.OPENSYNC_API_REQUEST_LOG_DAYS = 30
    log_request(key, days_ago=31)
    kept = log_request(key, days_ago=29)
    assert services.api_request_logs_prune() == 1
    assert list(ApiRequestLog.objects.values_list("pk", flat=True)) == [kept.pk]


def test_batches_take_every_row_and_a_second_run_removes_nothing(key, monkeypatch):
    monkeypatch.setattr(services, "API_REQUEST_LOG_PRUNE_BATCH", 2)
    for days in (100, 101, 102, 103, 104):
        log_request(key, days_ago=days)
    kept = log_request(key, days_ago=1)

    with CaptureQueriesContext(connection) as queries:
        assert services.api_request_logs_prune() == 5
    deletes = [q["sql"] for q in queries if q["sql"].startswith("DELETE")]
    assert len(deletes) == 4  # 2 + 2 + 1, then one that finds nothing: each its own statement
    assert list(ApiRequestLog.objects.values_list("pk", flat=True)) == [kept.pk]

    assert services.api_request_logs_prune() == 0


def test_each_batch_is_read_through_the_created_at_index(key):
    cutoff = timezone.now() - timedelta(days=90)
    batch = ApiRequestLog.objects.filter(created_at__lt=cutoff).order_by("created_at").values("pk")[:5000]
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")  # a tiny test table would be read whole anyway
        assert "apilog_created_idx" in batch.explain()


def test_the_window_never_drops_below_what_the_usage_page_shows():
    env = {
        **os.environ,
        # settings read the environment at import: a fresh process, with no database to start
        "DATABASE_URL": "postgres://u:p@db.example:5432/opensync",
        "SECRET_KEY": "x" * 50,
        "DJANGO_SETTINGS_MODULE": "opensync.settings",
        "OPENSYNC_API_REQUEST_LOG_DAYS": str(USAGE_DAYS - 1),
    }
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"], env=env, capture_output=True, text=True
    )
    assert result.returncode != 0
    assert f"OPENSYNC_API_REQUEST_LOG_DAYS={USAGE_DAYS - 1} must be at least {USAGE_DAYS}" in result.stderr


def test_the_celery_task_runs_nightly(key, settings):
    from accounts.tasks import api_request_log_prune  # noqa: PLC0415 - the task module, imported where it is run

    log_request(key, days_ago=100)
    assert api_request_log_prune.apply().get() == 1
    assert not ApiRequestLog.objects.exists()
    entry = settings.CELERY_BEAT_SCHEDULE["api-request-log-prune"]
    assert entry["task"] == "accounts.tasks.api_request_log_prune"
    assert entry["schedule"].hour == {settings.OPENSYNC_RETENTION_HOUR}
