"""Per-API-key rate limits (accounts.api.throttling), in process: each scope's budget, the 429
answer, what isn't counted, and failing open when Redis is down. The shared budget across
gunicorn workers is in test_rate_limits_live.py."""

import logging
import time

import pytest
from django.core.cache import cache
from django.test import override_settings

from accounts import cache as shared_cache
from accounts.services import api_key_create
from opensync.settings.env import redis_py_url

pytestmark = pytest.mark.django_db

LIMIT = 3
REQUESTS = {
    "sync": ("post", "/sync/session", {"externalId": "s1"}),
    "read": ("get", "/api/sessions", None),
    "search": ("get", "/api/search?q=hello", None),
    "export": ("get", "/api/export/evals", None),
}


@pytest.fixture(autouse=True)
def fresh_counters():
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def limits(settings):
    """Every budget LIMIT requests a minute."""
    settings.OPENSYNC_API_RATE_LIMITS = dict.fromkeys(REQUESTS, (LIMIT, 60))
    return settings.OPENSYNC_API_RATE_LIMITS


def send(client, key: str, scope: str):
    method, path, body = REQUESTS[scope]
    kwargs = {"HTTP_AUTHORIZATION": f"Bearer {key}"}
    if body is not None:
        kwargs.update(data=body, content_type="application/json")
    return getattr(client, method)(path, **kwargs)


@pytest.mark.parametrize("scope", REQUESTS)
def test_each_budget_allows_its_limit_then_answers_429(client, sync_key, limits, scope):
    statuses = [send(client, sync_key, scope).status_code for _ in range(LIMIT)]
    assert 429 not in statuses
    response = send(client, sync_key, scope)
    assert response.status_code == 429
    assert response["Content-Type"] == "application/json"
    assert 1 <= int(response["Retry-After"]) <= 60
    error = response.json()["error"]
    assert error.startswith(f"Too many {scope} requests: this API key may make {LIMIT} per minute")
    assert f"OPENSYNC_RATE_LIMIT_{scope.upper()}" in error and "Expected available in" in error
    assert response["Access-Control-Allow-Origin"] == "*"  # still an API answer (CORS)
    assert "Retry-After" in response["Access-Control-Expose-Headers"]  # a browser script may read it
    # the other budgets are untouched
    for other in REQUESTS:
        if other != scope:
            assert send(client, sync_key, other).status_code != 429, other


def test_budgets_are_per_key(client, user, personal_workspace, sync_key, limits):
    _, other_key = api_key_create(user=user, workspace=personal_workspace, name="laptop", scope="sync")
    for _ in range(LIMIT):
        send(client, sync_key, "sync")
    assert send(client, sync_key, "sync").status_code == 429
    assert send(client, other_key, "sync").status_code == 200


def test_the_read_api_and_the_session_list_share_the_read_budget(client, sync_key, limits):
    auth = {"HTTP_AUTHORIZATION": f"Bearer {sync_key}"}
    assert client.get("/sync/sessions/list", **auth).status_code == 200
    assert client.get("/api/stats", **auth).status_code == 200
    assert client.get("/api/v1/sessions", **auth).status_code == 200
    assert client.get("/sync/sessions/list", **auth).status_code == 429


def test_the_export_budget_covers_starting_a_job(client, sync_key, limits):
    auth = {"HTTP_AUTHORIZATION": f"Bearer {sync_key}"}
    for _ in range(LIMIT):
        response = client.post("/api/export/evals", {}, content_type="application/json", **auth)
        assert response.status_code == 404  # nothing eval-ready: no job, but a build was asked for
    response = client.post("/api/export/evals", {}, content_type="application/json", **auth)
    assert response.status_code == 429 and "Too many export requests" in response.json()["error"]


def test_refused_keys_and_the_health_check_are_not_counted(client, user, personal_workspace, sync_key, limits):
    _, read_key = api_key_create(user=user, workspace=personal_workspace, name="ro", scope="read")
    for _ in range(LIMIT + 2):
        assert client.get("/health").status_code == 200
        assert client.post("/sync/session", {"externalId": "x"}, content_type="application/json").status_code == 401
        assert send(client, read_key, "sync").status_code == 403  # a read key writing
    assert send(client, read_key, "read").status_code == 200
    assert send(client, sync_key, "sync").status_code == 200


def test_waiting_retry_after_gets_through_however_often_the_client_was_refused(client, sync_key, settings):
    settings.OPENSYNC_API_RATE_LIMITS = {"sync": (LIMIT, 2)}  # a 2-second window
    for _ in range(LIMIT):
        send(client, sync_key, "sync")
    assert send(client, sync_key, "sync")["Retry-After"] == "2"
    time.sleep(1.2)
    refused = send(client, sync_key, "sync")  # refused requests don't push the window back
    assert refused.status_code == 429 and refused["Retry-After"] == "1"
    time.sleep(int(refused["Retry-After"]))
    assert send(client, sync_key, "sync").status_code == 200


def test_a_budget_turned_off_is_unlimited(client, sync_key, limits, settings):
    settings.OPENSYNC_API_RATE_LIMITS = {**limits, "sync": None}
    assert all(send(client, sync_key, "sync").status_code == 200 for _ in range(LIMIT * 3))


# --- Redis down: fail open ------------------------------------------------------------------------


@pytest.fixture
def redis_down(tmp_path, monkeypatch):
    """The production cache backend, pointed at a Redis that isn't there."""
    dead = {
        "BACKEND": "accounts.cache.FailOpenRedisCache",
        "LOCATION": f"unix://{tmp_path}/no-valkey.sock",
        "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
    }
    monkeypatch.setattr(shared_cache, "_last_warning", -1e9)
    with override_settings(CACHES={"default": dead}):
        yield


def test_the_api_keeps_working_when_redis_is_down(client, sync_key, limits, redis_down, caplog):
    with caplog.at_level(logging.WARNING, logger="accounts.cache"):
        statuses = [send(client, sync_key, "sync").status_code for _ in range(LIMIT + 2)]
    assert statuses == [200] * (LIMIT + 2)
    warnings = [r.getMessage() for r in caplog.records if r.name == "accounts.cache"]
    assert len(warnings) == 1  # logged, but once a minute, not once a request
    assert "Redis (the shared cache) is unavailable, API rate limits are not enforced" in warnings[0]


def test_logging_in_works_when_redis_is_down(client, user, redis_down):
    response = client.post("/accounts/login/", {"login": user.email, "password": "correct horse battery"})
    assert response.status_code == 302


# --- configuration --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("broker", "expected"),
    [
        ("redis+socket:///data/valkey/valkey.sock", "unix:///data/valkey/valkey.sock"),
        ("socket:///run/redis.sock", "unix:///run/redis.sock"),
        ("redis://:secret@redis:6379/0", "redis://:secret@redis:6379/0"),
        ("rediss://redis:6380/1", "rediss://redis:6380/1"),
    ],
)
def test_the_cache_url_is_the_brokers_as_redis_py_spells_it(broker, expected):
    assert redis_py_url(broker) == expected


def test_the_schema_documents_429_with_retry_after_on_every_keyed_operation(client):
    schema = client.get("/api/schema?format=json").json()
    keyed = [
        (path, method, operation)
        for path, operations in schema["paths"].items()
        for method, operation in operations.items()
        if "401" in operation["responses"]
    ]
    assert len(keyed) >= 15
    for path, method, operation in keyed:
        response = operation["responses"].get("429")
        assert response is not None, (method, path)
        assert "Retry-After" in response["headers"], (method, path)
        assert response["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}
    budget = schema["paths"]["/sync/batch"]["post"]["responses"]["429"]["description"]
    assert "`sync` budget (OPENSYNC_RATE_LIMIT_SYNC)" in budget
    busy = schema["paths"]["/api/export/evals"]["post"]["responses"]["429"]["description"]
    assert "already building" in busy and "`export` budget" in busy  # both reasons for a 429
    assert "429" not in schema["paths"]["/health"]["get"]["responses"]
