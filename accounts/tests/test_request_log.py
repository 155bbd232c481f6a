import time

import pytest
from django.test import override_settings

from accounts import request_log
from accounts.models import ApiRequestLog


def _sync(client, key, n):
    for i in range(n):
        response = client.post(
            "/sync/session",
            data={"externalId": f"s{i}"},
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {key}",
        )
        assert response.status_code == 200


@pytest.mark.django_db(transaction=True)
@override_settings(OPENSYNC_API_REQUEST_LOG_FLUSH_SECONDS=1)
def test_rows_are_buffered_and_written_in_batches_by_the_flusher(client, sync_key):
    _sync(client, sync_key, 3)
    assert ApiRequestLog.objects.count() == 0  # not written inline
    deadline = time.monotonic() + 10
    while ApiRequestLog.objects.count() < 3 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert list(ApiRequestLog.objects.values_list("endpoint", "status_code")) == [("/sync/session", 200)] * 3


@pytest.mark.django_db(transaction=True)
@override_settings(OPENSYNC_API_REQUEST_LOG_FLUSH_SECONDS=3600)
def test_flush_writes_what_is_buffered(client, sync_key):
    _sync(client, sync_key, 2)
    assert ApiRequestLog.objects.count() == 0
    request_log.flush()
    assert ApiRequestLog.objects.count() == 2


@pytest.mark.django_db
@override_settings(OPENSYNC_API_REQUEST_LOG=False)
def test_log_can_be_switched_off(client, sync_key):
    _sync(client, sync_key, 1)
    request_log.flush()
    assert ApiRequestLog.objects.count() == 0
