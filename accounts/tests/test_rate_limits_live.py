"""The limits are shared by every web process: a real gunicorn with two workers counting in the
embedded Valkey (as `make run` serves), and the Lua counter itself under concurrent callers."""

import http.client
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from http.cookies import SimpleCookie
from urllib.parse import urlencode

import pytest
from django.db import connection
from django.test import override_settings

from accounts.api.throttling import hit
from accounts.services import api_key_create
from accounts.tests.factories import UserFactory
from tests import celery_worker
from tests.live import start_gunicorn, stop

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

LIMIT = 10


@pytest.fixture(scope="module")
def broker_url(tmp_path_factory):
    yield from celery_worker.broker(tmp_path_factory.mktemp("valkey"))


@pytest.fixture(scope="module")
def access_log(tmp_path_factory):
    return tmp_path_factory.mktemp("gunicorn") / "access.log"


@pytest.fixture(scope="module")
def live(django_db_setup, django_db_blocker, broker_url, access_log):
    """gunicorn, two workers, the cache on the Valkey (from CELERY_BROKER_URL, as in production);
    the access log names the worker (pid) that answered each request. One for the module."""
    with django_db_blocker.unblock():
        settings_dict = connection.settings_dict
    proc, port = start_gunicorn(
        settings_dict,
        workers=2,
        extra_env={
            "CELERY_BROKER_URL": broker_url,
            "OPENSYNC_RATE_LIMIT_READ": f"{LIMIT}/m",
            # the login test may take several rounds from one IP: only the account's limit is tested
            "OPENSYNC_LOGIN_ATTEMPTS_PER_IP": "1000/m",
            "OPENSYNC_LOGIN_FAILURES_PER_IP": "1000/m",
            "STATICFILES_STORAGE": "django.contrib.staticfiles.storage.StaticFilesStorage",  # the login page
            "GUNICORN_CMD_ARGS": f"--access-logfile {access_log} --access-logformat '%(p)s %(s)s %(U)s'",
        },
    )
    yield port
    stop(proc)


def call(port: int, method: str, path: str, headers: dict, body: bytes | None = None):
    """One request on a fresh connection: (status, headers, body)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, response.headers, response.read().decode()
    finally:
        conn.close()


def workers_that_answered(access_log, path: str, after: int = 0) -> set[str]:
    """The workers (pids) that answered `path`, in the access log's lines from `after` on."""
    lines = [line.split() for line in access_log.read_text().splitlines()[after:]]
    return {pid for pid, _, logged_path in lines if logged_path == path}


def on_both_workers(access_log, path: str, experiment, attempts: int = 5) -> None:
    """Run `experiment` (it asserts its own outcome) until its requests reached both workers. On a
    busy machine one worker can take every request of a round, which proves nothing about sharing;
    each round must start afresh (a new key, a new account)."""
    answered = set()
    for _ in range(attempts):
        logged = len(access_log.read_text().splitlines())
        experiment()
        answered = workers_that_answered(access_log, path, after=logged)
        if len(answered) == 2:
            return
    pytest.fail(f"{attempts} rounds of {path} were all answered by one worker: {answered}")


def test_two_workers_share_one_budget(live, user, personal_workspace, access_log):
    def experiment():
        _, key = api_key_create(user=user, workspace=personal_workspace, name="budget", scope="sync")
        auth = {"Authorization": f"Bearer {key}"}
        with ThreadPoolExecutor(4) as pool:  # concurrent, so both workers take requests
            answers = list(pool.map(lambda _: call(live, "GET", "/api/sessions", auth), range(2 * LIMIT)))
        statuses = sorted(status for status, _, _ in answers)
        assert statuses == [200] * LIMIT + [429] * LIMIT
        for status, headers, body in answers:
            if status == 429:
                assert 1 <= int(headers["Retry-After"]) <= 60
                assert body.startswith('{"error":"Too many read requests: this API key may make 10 per minute')

    on_both_workers(access_log, "/api/sessions", experiment)


def test_two_workers_share_the_login_limits(live, access_log):
    """Five failed logins for an account, wherever they land, lock it (not five per worker)."""
    _, headers, page = call(live, "GET", "/accounts/login/", {})
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)[1]
    cookie = SimpleCookie(headers["Set-Cookie"])["csrftoken"].value
    form_headers = {"Cookie": f"csrftoken={cookie}", "Content-Type": "application/x-www-form-urlencoded"}

    def experiment():
        user = UserFactory()

        def attempt(password: str):
            form = urlencode({"csrfmiddlewaretoken": token, "login": user.email, "password": password}).encode()
            return call(live, "POST", "/accounts/login/", form_headers, form)

        with ThreadPoolExecutor(3) as pool:
            pages = [page for _, _, page in pool.map(lambda _: attempt("guess"), range(6))]
        assert sorted("Too many failed login attempts" in page for page in pages) == [False] * 5 + [True]
        assert attempt("correct horse battery")[0] == 200  # locked: the form again, not a redirect

    on_both_workers(access_log, "/accounts/login/", experiment)


def test_the_counter_is_atomic_under_concurrent_callers(broker_url):
    cache = {
        "BACKEND": "accounts.cache.FailOpenRedisCache",
        "LOCATION": broker_url.replace("redis+socket://", "unix://"),
    }
    counts, remaining, lock = [], [], threading.Lock()

    def hammer():
        for _ in range(25):
            answer = hit("ratelimit:test:1", 60)
            with lock:
                counts.append(answer[0])
                remaining.append(answer[1])

    with override_settings(CACHES={"default": cache}):
        threads = [threading.Thread(target=hammer) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert sorted(counts) == list(range(1, 201))  # every caller saw its own count: none lost
    assert all(50 < seconds <= 60 for seconds in remaining)  # one window, opened by the first
