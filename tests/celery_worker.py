"""Helpers for tests that run Celery tasks on a real worker: the embedded Valkey broker, a
`celery worker --pool solo` process against the test database, and a stand-in for a task that
sends it through the broker (the test settings run tasks eagerly).

Used as fixtures by the worker tests, e.g.:

    @pytest.fixture
    def broker_url(tmp_path):
        yield from celery_worker.broker(tmp_path)

    @pytest.fixture
    def worker(transactional_db, broker_url):
        yield from celery_worker.worker(broker_url)

    @pytest.fixture
    def send_to_worker(monkeypatch, broker_url):
        yield from celery_worker.send_through_broker(monkeypatch, tasks, "export_job_run_task", broker_url)
"""

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from celery import Celery

from tests.live import BASE_DIR, database_url, stop


def broker(data_dir: Path) -> Iterator[str]:
    """The embedded Valkey on a unix socket in `data_dir`; yields its broker URL, stops it after."""
    from opensync.settings import embedded

    server = embedded.start_valkey(data_dir)
    try:
        yield embedded.broker_url(data_dir)
    finally:
        server.stop()


def worker(broker_url: str, extra_env: dict | None = None) -> Iterator[subprocess.Popen]:
    """A Celery worker process (production settings, one task at a time) on the test database;
    yields the process, stops it after. `extra_env` adds or overrides environment variables
    (e.g. OPENSYNC_DATA_DIR for where it writes media files); embeddings are off unless it turns a
    provider on, and a None value removes the variable."""
    from django.db import connection

    env = {k: v for k, v in os.environ.items() if k not in {"CELERY_TASK_ALWAYS_EAGER", "PYTEST_CURRENT_TEST"}}
    env.update(
        DJANGO_SETTINGS_MODULE="opensync.settings",
        DATABASE_URL=database_url(connection.settings_dict),
        SECRET_KEY="test-secret-key-for-celery-worker",
        CELERY_BROKER_URL=broker_url,
        DB_CONN_MAX_AGE="0",
        LOG_LEVEL="WARNING",
        OPENSYNC_EMBEDDINGS_PROVIDER="none",
    )
    env.update(extra_env or {})  # after: it may override any of these
    env = {name: value for name, value in env.items() if value is not None}
    proc = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "opensync", "worker", "--pool", "solo", "--loglevel", "WARNING",
         "--without-gossip", "--without-mingle", "--without-heartbeat"],
        cwd=BASE_DIR, env=env, start_new_session=True,
    )  # fmt: skip
    try:
        yield proc
    finally:
        stop(proc)


def send_through_broker(monkeypatch, module, attribute: str, broker_url: str) -> Iterator[None]:
    """Replace the task `module.attribute` with one whose `.delay(*args)` sends it through the
    broker to the worker, by name, for the duration of the test."""
    sender = Celery("test-sender", broker=broker_url)
    name = getattr(module, attribute).name

    class Remote:
        @staticmethod
        def delay(*args):
            sender.send_task(name, args=list(args))

    monkeypatch.setattr(module, attribute, Remote)
    try:
        yield
    finally:
        sender.close()
