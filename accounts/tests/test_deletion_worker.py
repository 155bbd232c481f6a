"""Deleting my data on a real Celery worker: embedded Valkey broker, worker process, test database."""

import time

import pytest
from django.urls import reverse

from accounts import tasks
from accounts.models import ApiRequestLog, DeletionJob, DeletionStatus
from accounts.services import api_key_create
from sessions_app.models import Message, Part, Session
from sessions_app.tests.factories import MessageFactory, PartFactory, SessionFactory
from tests import celery_worker

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def broker_url(tmp_path):
    yield from celery_worker.broker(tmp_path)


@pytest.fixture
def worker(transactional_db, broker_url):
    yield from celery_worker.worker(broker_url)


@pytest.fixture
def send_to_worker(monkeypatch, broker_url):
    """The test settings run tasks eagerly; this sends the task through the broker instead."""
    yield from celery_worker.send_through_broker(monkeypatch, tasks, "deletion_job_run_task", broker_url)


def test_delete_my_data_on_a_real_worker(client, user, other_user, personal_workspace, worker, send_to_worker):
    for owner in (user, other_user):
        for _ in range(3):
            message = MessageFactory(session=SessionFactory(owner=owner))
            PartFactory.create_batch(2, message=message)
    key, _ = api_key_create(user=user, workspace=personal_workspace, name="laptop")
    ApiRequestLog.objects.create(
        api_key=key,
        user=user,
        workspace=personal_workspace,
        method="POST",
        endpoint="/x",
        status_code=200,
        latency_ms=1,
    )
    client.force_login(user)
    assert client.post(reverse("accounts:delete-data")).status_code == 302

    job = DeletionJob.objects.get(user=user)
    deadline = time.monotonic() + 90
    while job.status not in (DeletionStatus.DONE, DeletionStatus.FAILED) and time.monotonic() < deadline:
        assert worker.poll() is None, "the worker exited"
        time.sleep(0.2)
        job.refresh_from_db()
    assert job.status == DeletionStatus.DONE, job.error
    assert job.counts == {"sessions": 3, "messages": 3, "parts": 6, "request_logs": 1}
    assert not Session.objects.filter(owner=user).exists()
    assert not ApiRequestLog.objects.filter(user=user).exists()
    assert Session.objects.filter(owner=other_user).count() == 3
    assert Message.objects.filter(session__owner=other_user).count() == 3
    assert Part.objects.filter(message__session__owner=other_user).count() == 6
