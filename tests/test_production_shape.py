"""The production shape, end to end: PostgreSQL+pgvector as its own server behind PgBouncer in
transaction pooling, Redis and an S3-compatible server as their own processes on TCP ports,
`migrate`, then the Procfile's web, worker and beat started by honcho, and a team's day through
HTTP (sync, search in both modes, an export built by the worker and downloaded from the bucket
through web's signed redirect, a deletion, a stuck job swept by beat). It does exactly what the
README's Production section says, step by step (tests/production.py)."""

import http.client
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import boto3
import pytest
from django.conf import settings

from search.tests.fake_embeddings_server import FakeEmbeddingsServer
from tests.live import BASE_DIR, request
from tests.production import create_key, manage, procfile_running, separate_services

pytestmark = pytest.mark.slow


@pytest.fixture
def procfile():
    for tool in ("redis-server", "pgbouncer"):
        if not shutil.which(tool) and not Path(f"/usr/sbin/{tool}").exists():
            missing = f"{tool} is not installed (.ci/run installs it)"
            pytest.fail(missing) if os.environ.get("OPENSYNC_REQUIRE_SERVICES") else pytest.skip(missing)
    embeddings = FakeEmbeddingsServer().start()  # the one thing not run here: an embeddings API
    try:
        with separate_services(pgbouncer=True, s3=True) as env:
            env |= {
                "OPENSYNC_EMBEDDINGS_PROVIDER": "openai", "OPENSYNC_EMBEDDINGS_BASE_URL": embeddings.url,
                "OPENSYNC_EMBEDDINGS_API_KEY": "test-key", "OPENSYNC_EMBEDDINGS_DEBOUNCE_SECONDS": "0",
                "OPENSYNC_SWEEP_STALE_JOBS_MINUTES": "1",
            }  # fmt: skip
            with procfile_running(env, "web", "worker", "beat") as (port, log):
                yield env, port, log
    finally:
        embeddings.stop()


def wait_until(check, timeout: float = 120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(0.5)
    raise TimeoutError("condition not met in time")


def get_raw(port: int, path: str, key: str) -> http.client.HTTPResponse:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", path, headers={"Authorization": f"Bearer {key}"})
    response = conn.getresponse()
    response.read()
    conn.close()
    return response


def bucket_names(env: dict) -> list[str]:
    s3 = boto3.client(
        "s3", endpoint_url=env["OPENSYNC_S3_ENDPOINT_URL"], region_name="us-east-1",
        aws_access_key_id="testing", aws_secret_access_key="testing",
    )  # fmt: skip
    return [item["Key"] for item in s3.list_objects_v2(Bucket="opensync").get("Contents", [])]


def test_web_worker_and_beat_against_separate_services(procfile):
    env, port, log = procfile
    key = create_key(env)
    # Another team's build that a dead worker left "running" 11 minutes ago: beat's sweep fails it.
    stuck = manage(env, (
        "from datetime import timedelta; from django.utils import timezone\n"
        "from accounts.models import User; from accounts.services import workspace_ensure_personal\n"
        "from evals.models import ExportJob\n"
        "u = User.objects.create_user(email='other@example.com', password='x')\n"
        "j = ExportJob.objects.create(workspace=workspace_ensure_personal(user=u), created_by=u, status='running')\n"
        "ExportJob.objects.filter(pk=j.pk).update(updated_at=timezone.now() - timedelta(minutes=11)); print(j.pk)"
    ))  # fmt: skip

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

    def semantic_hit():  # the worker embedded it (through PgBouncer, under a lease row)
        status, body = request(port, "GET", "/api/search?q=release%20races%20boot&type=semantic", key=key)
        assert status == 200, body
        return body["type"] == "semantic" and "prod-1" in str(body)

    wait_until(semantic_hit)
    counts = "from search.models import EmbeddingLease, MessageChunkEmbedding as C\n"
    counts += "print(C.objects.count(), EmbeddingLease.objects.count())"
    assert manage(env, counts) == "2 0"

    manage(env, "from sessions_app.models import Session; Session.objects.update(eval_ready=True)")
    status, body = request(port, "POST", "/api/export/evals?format=chat", {}, key=key)
    assert status == 202, body
    job_url = "/" + body["statusUrl"].split("/", 3)[3]

    def export_done():
        status, job = request(port, "GET", job_url, key=key)
        assert status == 200 and job["status"] not in ("failed", "cancelled"), job
        return job if job["status"] == "done" else None

    job = export_done() or wait_until(export_done)
    [stored] = bucket_names(env)
    assert stored.startswith("exports/")
    download = get_raw(port, "/" + job["downloadUrl"].split("/", 3)[3], key)
    assert download.status == 302
    signed = download.getheader("Location")
    assert signed.startswith(env["OPENSYNC_S3_ENDPOINT_URL"]) and "X-Amz-Signature=" in signed
    # no API key: the signature is the grant (S310: the URL is the local S3 endpoint, checked above)
    with urllib.request.urlopen(signed) as from_bucket:  # noqa: S310
        assert "attachment" in from_bucket.headers["Content-Disposition"]
        assert "release phase races" in from_bucket.read().decode()

    manage(env, (
        "from accounts.models import User, DeletionKind; from accounts.deletion import deletion_job_start\n"
        "deletion_job_start(user=User.objects.get(email='ops@example.com'), kind=DeletionKind.DATA)"
    ))  # fmt: skip
    count = "from sessions_app.models import Session; from accounts.models import DeletionJob\n"
    count += "print(Session.objects.count(), DeletionJob.objects.get().status)"
    assert wait_until(lambda: manage(env, count) == "0 done" or None)
    assert bucket_names(env) == []  # the export's object went with the data

    swept = f"from evals.models import ExportJob; print(ExportJob.objects.get(pk={stuck}).status)"
    assert wait_until(lambda: manage(env, swept) == "failed" or None, timeout=150)

    # Every scheduled task is one the running worker knows (beat only sends names).
    inspect = subprocess.run(
        [str(Path(sys.executable).parent / "celery"), "-A", "opensync", "inspect", "registered", "--json"],
        cwd=BASE_DIR, env={k: v for k, v in env.items() if k != "MIGRATE_DATABASE_URL"},
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    [registered] = json.loads(inspect.stdout.strip().splitlines()[-1]).values()
    names = {line.split()[0] for line in registered}
    assert {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()} <= names
    log.seek(0)
    assert "beat: Starting" in log.read()
