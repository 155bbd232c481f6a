"""Operations: readiness (/health/ready), Prometheus metrics (/metrics) and structured request
logs (opensync.readiness, opensync.metrics, opensync.logs; README "Operations")."""

import http.client
import json
import logging
import sys

import pytest
import redis
from django.db import OperationalError
from django.db.migrations import Migration
from django.db.migrations.executor import MigrationExecutor
from django.test import Client
from prometheus_client import REGISTRY

from opensync import jobs, logs, metrics, readiness
from tests import celery_worker
from tests.live import start_gunicorn, stop

TOKEN = "metrics-token-for-tests"
DEAD_BROKER = "redis://127.0.0.1:9/0"  # the discard port: nothing answers Redis there


@pytest.fixture(scope="module")
def broker_url(tmp_path_factory):
    yield from celery_worker.broker(tmp_path_factory.mktemp("valkey"))


@pytest.fixture
def broker(settings, broker_url):
    """The Celery broker setting pointed at a running Valkey."""
    settings.CELERY_BROKER_URL = broker_url
    return broker_url


@pytest.fixture
def migrations_unseen(monkeypatch):
    """As if this process had not yet seen the migrations complete (the cache is per process)."""
    monkeypatch.setattr(readiness, "_migrations_applied", False)


def ready(client):
    response = client.get("/health/ready")
    return response.status_code, response.json()


# --- readiness -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_ready_when_database_broker_and_migrations_are(client, broker, migrations_unseen):
    status, body = ready(client)
    assert status == 200
    assert body == {"status": "ok", "checks": {"database": "ok", "broker": "ok", "migrations": "ok"}, "failed": []}


@pytest.mark.django_db
def test_not_ready_when_the_broker_is_unreachable(client, settings, migrations_unseen):
    settings.CELERY_BROKER_URL = DEAD_BROKER
    status, body = ready(client)
    assert status == 503
    assert body["status"] == "unavailable" and body["failed"] == ["broker"]
    assert body["checks"]["broker"].startswith("unreachable: ") and body["checks"]["database"] == "ok"


@pytest.mark.django_db
def test_a_broker_that_is_not_redis_is_not_checked(client, settings):
    settings.CELERY_BROKER_URL = "memory://"
    status, body = ready(client)
    assert status == 200 and body["checks"]["broker"].startswith("ok")


@pytest.mark.django_db
def test_not_ready_when_the_database_is_unreachable(client, broker, monkeypatch, migrations_unseen):
    class DeadConnection:
        def cursor(self):
            raise OperationalError("connection refused")

    monkeypatch.setattr(readiness, "connection", DeadConnection())
    status, body = ready(client)
    assert status == 503 and body["failed"] == ["database", "migrations"]
    assert body["checks"] == {
        "database": "unreachable: OperationalError",
        "broker": "ok",
        "migrations": "unknown: database unreachable",
    }


@pytest.mark.django_db
def test_not_ready_while_a_migration_is_unapplied(client, broker, monkeypatch, migrations_unseen):
    pending = Migration("0999_later", "sessions_app")
    monkeypatch.setattr(MigrationExecutor, "migration_plan", lambda self, targets: [(pending, False)])
    status, body = ready(client)
    assert status == 503 and body["failed"] == ["migrations"]
    assert body["checks"]["migrations"] == "1 unapplied, first sessions_app.0999_later"


@pytest.mark.django_db
def test_migrations_seen_applied_are_not_read_again(client, broker, monkeypatch, migrations_unseen):
    assert ready(client)[0] == 200
    # a later plan is not consulted: the graph is loaded once per process, not per probe
    monkeypatch.setattr(MigrationExecutor, "migration_plan", lambda self, targets: pytest.fail("read again"))
    assert ready(client)[0] == 200


def test_health_stays_cheap(client):
    # no database mark: a query would raise
    assert client.get("/health").status_code == 200


# --- metrics ---------------------------------------------------------------------------------


def scrape(client, token=TOKEN):
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}
    return client.get("/metrics", **headers)


def sample(name: str, **labels) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_metrics_are_a_404_without_a_token_set(client, settings):
    settings.OPENSYNC_METRICS_TOKEN = ""
    assert scrape(client).status_code == 404
    assert scrape(client, token=None).status_code == 404


@pytest.mark.parametrize("token", [None, "wrong", TOKEN + "x"])
def test_metrics_need_the_token(client, settings, token):
    settings.OPENSYNC_METRICS_TOKEN = TOKEN
    response = scrape(client, token=token)
    assert response.status_code == 401 and response["WWW-Authenticate"] == 'Bearer realm="metrics"'


@pytest.mark.django_db
def test_metrics_count_what_the_sync_api_writes_by_source(sync_client, settings, broker):
    settings.OPENSYNC_METRICS_TOKEN = TOKEN
    before = sample("opensync_ingest_messages_total", source="claude-code")
    sessions_before = sample("opensync_ingest_sessions_total", source="claude-code")
    other_before = sample("opensync_ingest_messages_total", source="other")
    body = {
        "sessions": [{"externalId": "s1", "source": "claude-code"}],
        "messages": [
            {"sessionExternalId": "s1", "externalId": f"m{i}", "role": "user", "textContent": "hi"} for i in range(3)
        ]
        + [{"sessionExternalId": "s1", "externalId": "x", "role": "user", "source": "made-up-tool"}],
    }
    response = sync_client.post("/sync/batch", json.dumps(body), content_type="application/json")
    assert response.status_code == 200, response.content
    assert sample("opensync_ingest_messages_total", source="claude-code") == before + 3
    assert sample("opensync_ingest_sessions_total", source="claude-code") == sessions_before + 1
    # a source nobody knows is one series, whatever its name
    assert sample("opensync_ingest_messages_total", source="other") == other_before + 1

    page = scrape(sync_client).content.decode()
    assert f'opensync_ingest_messages_total{{source="claude-code"}} {before + 3}' in page
    # django-prometheus: latencies and responses by view and status
    assert (
        'django_http_responses_total_by_status_view_method_total{method="POST",status="200",view="sync-batch"}' in page
    )
    assert 'django_http_requests_latency_seconds_by_view_method_count{method="POST",view="sync-batch"}' in page


def test_metrics_read_the_queue_depth_from_redis(client, settings, broker):
    settings.OPENSYNC_METRICS_TOKEN = TOKEN
    queue = redis.Redis.from_url(metrics.redis_url(broker))
    queue.delete("celery")
    queue.rpush("celery", "a", "b")
    try:
        assert 'opensync_queue_depth{queue="celery"} 2.0' in scrape(client).content.decode()
    finally:
        queue.delete("celery")


def test_metrics_answer_without_the_queue_depth_when_redis_is_down(client, settings):
    settings.OPENSYNC_METRICS_TOKEN = TOKEN
    settings.CELERY_BROKER_URL = DEAD_BROKER
    response = scrape(client)
    assert response.status_code == 200
    page = response.content.decode()
    assert "opensync_queue_depth" in page and 'opensync_queue_depth{queue="celery"}' not in page


@pytest.mark.django_db
def test_job_outcomes_are_counted_by_kind(team):
    from evals.models import ExportJob  # any kind of job will do

    job = ExportJob.objects.create(workspace=team.workspace, created_by=team.owner)
    done = sample("opensync_job_outcomes_total", kind="exportjob", outcome="done")
    failed = sample("opensync_job_outcomes_total", kind="exportjob", outcome="failed")
    jobs.job_finish(job)
    jobs.job_fail(job, error="disk full")
    assert sample("opensync_job_outcomes_total", kind="exportjob", outcome="done") == done + 1
    assert sample("opensync_job_outcomes_total", kind="exportjob", outcome="failed") == failed + 1


@pytest.mark.slow
def test_gunicorn_workers_metrics_are_summed(transactional_db, sync_key, broker_url):
    """Several gunicorn workers each count on their own; /metrics shows their sum (the
    multiprocess folder opensync.gunicorn_worker sets up)."""
    from django.db import connection

    proc, port = start_gunicorn(
        connection.settings_dict,
        workers=2,
        extra_env={"OPENSYNC_METRICS_TOKEN": TOKEN, "CELERY_BROKER_URL": broker_url, "OPENSYNC_RATE_LIMIT_SYNC": "off"},
    )
    try:

        def call(method, path, body=None, key=sync_key):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            try:
                conn.request(method, path, body=body, headers={"Authorization": f"Bearer {key}"})
                response = conn.getresponse()
                return response.status, response.read().decode()
            finally:
                conn.close()

        for i in range(20):  # new connections: gunicorn's workers take turns
            message = {"sessionExternalId": "s", "externalId": f"m{i}", "role": "user", "source": "codex-cli"}
            assert call("POST", "/sync/batch", json.dumps({"messages": [message]}))[0] == 200
        status, page = call("GET", "/metrics", key=TOKEN)
        assert status == 200
        assert 'opensync_ingest_messages_total{source="codex-cli"} 20.0' in page
    finally:
        stop(proc)


# --- request ids and structured logs ---------------------------------------------------------


def test_every_response_carries_a_request_id(client):
    generated = client.get("/health")["X-Request-ID"]
    assert len(generated) == 32
    assert client.get("/health", HTTP_X_REQUEST_ID="lb-1234.abc")["X-Request-ID"] == "lb-1234.abc"
    for insane in ["a" * 129, "two words", "x\u00e9", ""]:
        assert client.get("/health", HTTP_X_REQUEST_ID=insane)["X-Request-ID"] not in (insane, generated)


@pytest.mark.django_db
def test_json_logs_one_line_per_request_with_workspace_and_key_prefix(settings, sync_key, caplog):
    settings.OPENSYNC_LOG_FORMAT = "json"
    client = Client()  # its middleware is built after the setting changed
    caplog.set_level(logging.INFO, logger="opensync.request")
    response = client.get("/sync/sessions/list", HTTP_AUTHORIZATION=f"Bearer {sync_key}", HTTP_X_REQUEST_ID="r-1")
    assert response.status_code == 200
    [record] = [r for r in caplog.records if r.name == "opensync.request"]
    line = json.loads(logs.JsonFormatter().format(record))
    from accounts.models import ApiKey  # the key the fixture made

    key = ApiKey.objects.get()
    assert line["request_id"] == "r-1" and line["method"] == "GET" and line["path"] == "/sync/sessions/list"
    assert line["status"] == 200 and line["duration_ms"] >= 0 and line["level"] == "INFO"
    assert line["workspace_id"] == key.workspace_id and line["key_prefix"] == key.prefix
    assert sync_key not in json.dumps(line) and key.prefix and sync_key.startswith(key.prefix)


def test_text_logs_write_no_request_line(settings, caplog):
    settings.OPENSYNC_LOG_FORMAT = "text"
    caplog.set_level(logging.INFO, logger="opensync.request")
    Client().get("/health")
    assert not [r for r in caplog.records if r.name == "opensync.request"]


def test_the_json_formatter_keeps_tracebacks_on_one_line():
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.getLogger("x").makeRecord("x", logging.ERROR, __file__, 1, "failed %s", ("y",), None)
        record.exc_info = sys.exc_info()
    line = logs.JsonFormatter().format(record)
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["message"] == "failed y" and "ValueError: boom" in entry["exc_info"]
