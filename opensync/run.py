"""`make run`: everything in one process tree, stopped cleanly by Ctrl-C.

1. embedded PostgreSQL (+pgvector) and Valkey under the data folder, unless DATABASE_URL /
   CELERY_BROKER_URL point elsewhere;
2. migrate, collect static files, create the first admin once and print its credentials;
3. gunicorn on OPENSYNC_HOST:PORT (127.0.0.1:8000) and a Celery worker, each in its own process
   group so that stopping them also stops their workers;
4. on Ctrl-C / SIGTERM (or if either child dies): stop the children, then Valkey, then
   PostgreSQL, and exit. Nothing is left running.
"""

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

STOP_TIMEOUT = 20


def log(message: str) -> None:
    # The terminal (or a `| tee`) may be gone by the time we shut down: never let a failed write
    # abort the clean-up.
    try:
        print(f"[opensync] {message}", flush=True)
    except OSError:
        # Point stdout at /dev/null so the interpreter's final flush can't fail either (that
        # would turn a clean exit into status 120).
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def _port_free(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host.strip("[]"), port))
        except OSError:
            return False
    return True


def _first_admin(data_dir: Path) -> None:
    from accounts.models import User  # the models load only once Django is set up, after the servers start

    if User.objects.filter(is_superuser=True).exists():
        return
    email = os.environ.get("OPENSYNC_ADMIN_EMAIL", "admin@localhost")
    password = os.environ.get("OPENSYNC_ADMIN_PASSWORD") or secrets.token_urlsafe(12)
    User.objects.create_superuser(email=email, password=password)
    note = data_dir / "admin-credentials.txt"
    data_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(note, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(f"email: {email}\npassword: {password}\n")
    log("Created the first admin account (change the password after logging in):")
    log(f"    email:    {email}")
    log(f"    password: {password}")
    log(f"    (also saved in {note})")


def _stop(children: dict[str, subprocess.Popen]) -> None:
    for name, proc in children.items():
        if proc.poll() is None:
            log(f"stopping {name}")
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    for proc in children.values():
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
    for name, proc in children.items():
        try:  # the group may still hold workers even when the leader has exited
            os.killpg(proc.pid, signal.SIGKILL)
            log(f"killed what was left of {name}")
        except (ProcessLookupError, PermissionError):
            pass


def _shutdown(children, valkey, postgres, data_dir) -> None:
    """Each step runs even if an earlier one failed: a half-done shutdown leaves orphans."""
    from opensync.settings import embedded  # importing the settings starts the embedded PostgreSQL: only when run

    steps = [("children", lambda: _stop(children))]
    if valkey is not None:
        steps.append(("Valkey", valkey.stop))
    if postgres is not None:
        # stops it unless another live process (a `manage.py shell`, say) still holds it
        steps.append(("PostgreSQL", lambda: embedded.release_postgres(data_dir, postgres)))
    for name, step in steps:
        try:
            step()
        except Exception as exc:
            log(f"stopping {name} failed: {exc!r}")
        else:
            log(f"{name} stopped")
    log("bye")


def main() -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "opensync.settings")
    base_dir = Path(__file__).resolve().parent.parent
    data_dir = Path(os.environ.get("OPENSYNC_DATA_DIR") or base_dir / "data").expanduser().resolve()
    os.environ["OPENSYNC_DATA_DIR"] = str(data_dir)
    host = os.environ.get("OPENSYNC_HOST", "127.0.0.1")
    port = int(os.environ.get("PORT", "8000"))
    if not _port_free(host, port):
        log(f"{host}:{port} is already in use. Stop what uses it, or start with PORT=<another port>.")
        return 1

    stopping = False

    def request_stop(signum, frame):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)

    # Importing the settings package already starts (or attaches to) the embedded PostgreSQL and
    # creates its database; hold_postgres() below only hands us that same server to stop later.
    started = time.monotonic()
    from opensync.settings import embedded  # (see above: it starts the server)

    postgres = valkey = None
    children: dict[str, subprocess.Popen] = {}
    try:
        if not os.environ.get("DATABASE_URL"):
            postgres = embedded.hold_postgres(data_dir)
            log(f"PostgreSQL ready ({time.monotonic() - started:.1f}s), data in {embedded.postgres_dir(data_dir)}")
        if not os.environ.get("CELERY_BROKER_URL"):
            started = time.monotonic()
            try:
                valkey = embedded.start_valkey(data_dir)
            except Exception as exc:
                log(f"Valkey did not start ({exc}). Is another `make run` using {data_dir}?")
                return 1
            log(f"Valkey ready ({time.monotonic() - started:.1f}s) on {embedded.valkey_socket(data_dir)}")

        import django
        from django.core.management import call_command

        django.setup()
        call_command("migrate", interactive=False, verbosity=0)
        log("database migrated")
        # Sessions stored before the cost engine: price them once (instant when there are none).
        call_command("reprice", pending=True, verbosity=0, stdout=open(os.devnull, "w"))  # noqa: SIM115
        call_command("collectstatic", interactive=False, verbosity=0)
        _first_admin(data_dir)
        from django.db import connections

        connections.close_all()

        env = dict(os.environ)
        if not env.get("PROMETHEUS_MULTIPROC_DIR"):
            # web and worker count into one folder, emptied here, so /metrics sums them all
            # (the worker's job outcomes too): opensync.metrics
            metrics_dir = data_dir / "prometheus"
            shutil.rmtree(metrics_dir, ignore_errors=True)
            metrics_dir.mkdir(parents=True)
            env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
        workers = os.environ.get("WEB_CONCURRENCY", "3")
        children["web"] = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "opensync.wsgi:application", "--bind", f"{host}:{port}",
             "--worker-class", "opensync.gunicorn_worker.JsonErrorWorker",
             "--workers", workers, "--timeout", "120", "--graceful-timeout", "10", "--access-logfile", "-"],
            env=env, start_new_session=True,
        )  # fmt: skip
        children["worker"] = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "opensync", "worker", "--loglevel", "INFO",
             "--concurrency", os.environ.get("CELERY_CONCURRENCY", "2"),
             # One machine, one worker: an embedded beat (-B) runs the schedule without a third
             # process to watch; its state file lives in the data folder. A multi-host deployment
             # runs one separate `celery beat` instead (the Procfile's beat line).
             "-B", "--schedule", str(data_dir / "celerybeat-schedule")],
            env=env, start_new_session=True,
        )  # fmt: skip
        log(f"OpenSync is starting at http://{host}:{port}  (Ctrl-C stops everything)")
        while not stopping:
            for name, proc in children.items():
                if proc.poll() is not None:
                    log(f"{name} exited with code {proc.returncode}; shutting down")
                    stopping = True
                    break
            time.sleep(0.3)
        return 0 if all(p.poll() is None for p in children.values()) else 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        _shutdown(children, valkey, postgres, data_dir)


if __name__ == "__main__":
    sys.exit(main())
