"""Login limits (settings ACCOUNT_RATE_LIMITS): strict per account, generous per client IP, so an
attack on one account neither gets far nor locks other people behind the same IP out."""

import os
import subprocess
import sys

import pytest
from django.core.cache import cache

from accounts.tests.factories import UserFactory
from tests.live import BASE_DIR

pytestmark = pytest.mark.django_db

PASSWORD = "correct horse battery"
TOO_MANY = "Too many failed login attempts"


@pytest.fixture(autouse=True)
def fresh_counters():
    cache.clear()
    yield
    cache.clear()


def log_in(client, email: str, password: str = PASSWORD, **headers):
    return client.post("/accounts/login/", {"login": email, "password": password}, **headers)


def test_an_attacked_account_locks_but_others_behind_the_same_ip_still_log_in(client):
    victim, colleague = UserFactory(), UserFactory()
    answers = [log_in(client, victim.email, "guess") for _ in range(25)]
    assert all(a.status_code == 200 for a in answers)  # the form again, with an error; never a 500
    assert TOO_MANY in answers[-1].content.decode()
    # the attacked account is locked, even with its password...
    assert TOO_MANY in log_in(client, victim.email).content.decode()
    # ...but a colleague behind the same IP logs in.
    response = log_in(client, colleague.email)
    assert response.status_code == 302


def test_an_account_locks_after_five_failures(client):
    user = UserFactory()
    for _ in range(5):
        response = log_in(client, user.email, "guess")
        assert TOO_MANY not in response.content.decode()
    assert TOO_MANY in log_in(client, user.email, "guess").content.decode()


def test_guessing_across_many_accounts_is_limited_per_ip(client):
    """30 failures a minute per IP whatever the accounts; another client IP is not affected."""
    emails = [f"nobody{n}@example.com" for n in range(31)]
    answers = [log_in(client, email, "guess").content.decode() for email in emails]
    assert not any(TOO_MANY in answer for answer in answers[:30])
    assert TOO_MANY in answers[30]
    user = UserFactory()
    assert TOO_MANY in log_in(client, user.email).content.decode()
    assert log_in(client, user.email, REMOTE_ADDR="10.0.0.2").status_code == 302


def test_behind_a_proxy_the_client_ip_comes_from_x_forwarded_for(client, settings):
    settings.ALLAUTH_TRUSTED_PROXY_COUNT = 1
    for n in range(31):
        log_in(client, f"nobody{n}@example.com", "guess", HTTP_X_FORWARDED_FOR="203.0.113.7")
    user = UserFactory()
    assert TOO_MANY in log_in(client, user.email, HTTP_X_FORWARDED_FOR="203.0.113.7").content.decode()
    # the same proxy (REMOTE_ADDR), another client: its own budget
    assert log_in(client, user.email, HTTP_X_FORWARDED_FOR="198.51.100.9").status_code == 302


def test_limits_and_the_proxy_come_from_the_environment():
    """Settings read the environment once, so this runs in a fresh process."""
    script = (
        "from django.conf import settings;"
        "print(settings.ACCOUNT_RATE_LIMITS['login'], settings.ACCOUNT_RATE_LIMITS['login_failed'],"
        "settings.ALLAUTH_TRUSTED_PROXY_COUNT, settings.ALLAUTH_TRUSTED_CLIENT_IP_HEADER,"
        "settings.OPENSYNC_API_RATE_LIMITS['sync'], settings.OPENSYNC_API_RATE_LIMITS['export'],"
        "settings.CACHES['default']['BACKEND'], settings.CACHES['default'].get('LOCATION'))"
    )
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "opensync.settings",
        "DATABASE_URL": "postgresql://nobody@localhost/none",
        "SECRET_KEY": "x",
        "CELERY_BROKER_URL": "redis+socket:///srv/valkey.sock",
        "OPENSYNC_LOGIN_ATTEMPTS_PER_IP": "off",
        "OPENSYNC_LOGIN_FAILURES_PER_ACCOUNT": "3/10m",
        "OPENSYNC_LOGIN_FAILURES_PER_IP": "100/h",
        "TRUSTED_PROXY_COUNT": "2",
        "TRUSTED_CLIENT_IP_HEADER": "X-Real-IP",
        "OPENSYNC_RATE_LIMIT_SYNC": "10/30s",
        "OPENSYNC_RATE_LIMIT_EXPORT": "off",
    }
    env.pop("CACHE_URL", None)

    def run(**changes):
        return subprocess.run(
            [sys.executable, "-c", script], cwd=BASE_DIR, env={**env, **changes}, capture_output=True, text=True
        )

    result = run()
    assert result.returncode == 0, result.stderr
    login, *rest = result.stdout.split(" ")
    assert login == ""  # no per-IP limit on login attempts at all
    assert " ".join(rest).split() == [
        "3/600s/key,100/3600s/ip",
        "2",
        "X-Real-IP",
        "(10,", "30)",
        "None",
        "accounts.cache.FailOpenRedisCache",
        "unix:///srv/valkey.sock",
    ]  # fmt: skip
    assert run(CACHE_URL="redis://cache:6379/2").stdout.split()[-1] == "redis://cache:6379/2"
    assert run(CELERY_BROKER_URL="amqp://rabbit//").stdout.split()[-2] == (
        "django.core.cache.backends.locmem.LocMemCache"
    )
    for name, value in (("OPENSYNC_RATE_LIMIT_SEARCH", "lots"), ("CACHE_URL", "memcached://x")):
        result = run(**{name: value})
        assert result.returncode != 0 and name in result.stderr
