"""The production shape, end to end: PostgreSQL+pgvector and Redis as their own processes on TCP
ports, `migrate`, then the Procfile's web, worker and beat started by honcho, and a team's day
through HTTP (sync, search, an export built by the worker and downloaded through web, a deletion).
It does exactly what the README's Production section says, step by step (tests/production.py)."""

import shutil
import time

import pytest

from tests.live import request
from tests.production import create_key, manage, procfile_running, separate_services

pytestmark = pytest.mark.slow


@pytest.fixture
def procfile():
    if not shutil.which("redis-server"):
        pytest.skip("redis-server is not installed (.ci/run installs it)")
    with separate_services() as env, procfile_running(env, "web", "worker", "beat") as (port, log):
        yield env, port, log


def wait_until(check, timeout: float = 120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(0.5)
    raise TimeoutError("condition not met in time")


def test_web_worker_and_beat_against_separate_postgres_and_redis(procfile):
    env, port, log = procfile
    key = create_key(env)

    batch = {
        "sessions": [{"externalId": "prod-1", "title": "Fix the flaky deploy"}],
        "messages": [
            {"sessionExternalId": "prod-1", "externalId": f"m{i}", "role": role, "textContent": text,
             "parts": [{"type": "text", "content": text}]}
            for i, (role, text) in enumerate([("user", "why does the deploy flake on migrations"),
                                              ("assistant", "the release phase races the web boot")])
        ],
    }  # fmt: skip
    status, body = request(port, "POST", "/sync/batch", batch, key=key)
    assert status == 200, body

    status, body = request(port, "GET", "/api/search?q=deploy", key=key)
    assert status == 200, body
    assert "prod-1" in str(body)

    manage(env, "from sessions_app.models import Session; Session.objects.update(eval_ready=True)")
    status, body = request(port, "POST", "/api/export/evals?format=chat", {}, key=key)
    assert status == 202, body
    job_url = "/" + body["statusUrl"].split("/", 3)[3]

    def export_done():
        status, job = request(port, "GET", job_url, key=key)
        assert status == 200 and job["status"] not in ("failed", "cancelled"), job
        return job if job["status"] == "done" else None

    job = wait_until(export_done)
    download = "/" + job["downloadUrl"].split("/", 3)[3]
    status, _ = request(port, "GET", download, key=key)
    assert status == 200

    manage(env, (
        "from accounts.models import User, DeletionKind; from accounts.deletion import deletion_job_start\n"
        "deletion_job_start(user=User.objects.get(email='ops@example.com'), kind=DeletionKind.DATA)"
    ))  # fmt: skip
    count = "from sessions_app.models import Session; from accounts.models import DeletionJob\n"
    count += "print(Session.objects.count(), DeletionJob.objects.get().status)"
    assert wait_until(lambda: manage(env, count) == "0 done" or None)
    log.seek(0)
    assert "beat: Starting" in log.read()  # beat ran beside web and worker (its schedule is built elsewhere)
