"""Eval exports on a real Celery worker: embedded Valkey broker, worker process, test database,
the export file written to a temporary MEDIA_ROOT that the test reads back."""

import hashlib
import json
import shutil
import time
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.core.files.storage import default_storage

from evals import export_jobs, tasks
from evals.formats import Options
from evals.models import ExportJob, ExportStatus
from evals.selectors import filter_scope
from evals.tests.bulk import add_conversations
from sessions_app.models import Session
from sessions_app.selectors import SessionFilters
from tests import celery_worker

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

SESSIONS = 1000
START = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
MODULE = """import json
from pathlib import Path


def load_config(path: str) -> dict:
    with open(path) as fh:
        data = json.load(fh)
    if "version" not in data:
        raise ValueError(f"missing version in {path}")
    return data


def sync(client, payload, attempts=3):
    for attempt in range(attempts):
        try:
            return client.post("/sync/batch", json=payload, timeout=30)
        except ConnectionError:
            continue
    raise RuntimeError("sync failed")
"""  # a file the agent reads: tool results are most of a real session's text
ANSWER = (
    "The retry loop in `sync()` retries at once, so when the server is restarting all three attempts "
    "fail within milliseconds and the test sees `RuntimeError: sync failed`. Waiting between attempts "
    "fixes it; the test should also stub the clock so it stays fast.\n\n```python\n"
    "for attempt in range(attempts):\n    try:\n        return client.post(url, json=payload)\n"
    "    except ConnectionError:\n        time.sleep(2 ** attempt)\n```\n"
)


@pytest.fixture
def data_dir(tmp_path, settings):
    """The worker's OPENSYNC_DATA_DIR: its MEDIA_ROOT (data/media) is this test's too; removed after."""
    path = (tmp_path / "data").resolve()
    settings.MEDIA_ROOT = str(path / "media")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def broker_url(tmp_path):
    yield from celery_worker.broker(tmp_path)


@pytest.fixture
def worker(transactional_db, broker_url, data_dir):
    yield from celery_worker.worker(broker_url, {"OPENSYNC_DATA_DIR": str(data_dir)})


@pytest.fixture
def send_to_worker(monkeypatch, broker_url):
    yield from celery_worker.send_through_broker(monkeypatch, tasks, "export_job_run_task", broker_url)


def make_sessions(user, workspace, n: int) -> list[int]:
    """n eval-ready sessions, oldest first: a prompt, an assistant turn with text and a tool call,
    the tool's result, the final answer; every fourth session has a second exchange. Three bulk
    inserts, not a factory call per row."""
    sessions = Session.objects.bulk_create(
        Session(
            workspace=workspace,
            owner=user,
            external_id=f"ses-{i:04d}",
            title=f"Fix the flaky sync test {i}",
            source="claude-code",
            model="claude-sonnet-4-20250514",
            provider="anthropic",
            project_name="demo-app",
            prompt_tokens=1200 + i,
            completion_tokens=300,
            eval_ready=True,
            created_at=START + timedelta(minutes=i),
            updated_at=START + timedelta(minutes=i),
        )
        for i in range(n)
    )
    add_conversations(
        sessions,
        tool_output=lambda i: f"# module_{i}.py\n{MODULE}",
        answer=lambda i: f"Found it (module_{i}). {ANSWER}",
        second_every=4,
    )
    return [session.pk for session in sessions]


def wait_for(job: ExportJob, worker, timeout: float = 120) -> tuple[ExportJob, list[int], float]:
    """Poll the job row until it is done or failed; returns it, the `processed` values seen while
    it was building and how long it was seen building (seconds)."""
    seen: list[int] = []
    started = None
    deadline = time.monotonic() + timeout
    while job.status not in (ExportStatus.DONE, ExportStatus.FAILED) and time.monotonic() < deadline:
        assert worker.poll() is None, "the worker exited"
        time.sleep(0.02)
        job.refresh_from_db()
        if job.status == ExportStatus.RUNNING:
            started = started or time.monotonic()
            if not seen or seen[-1] != job.processed:
                seen.append(job.processed)
    assert job.status == ExportStatus.DONE, job.error or f"still {job.status} after {timeout} s"
    return job, seen, time.monotonic() - started if started else 0.0


def assert_progress(seen: list[int], building: float) -> None:
    """The `processed` counts seen while building rise, and if the build was long enough for a
    progress write (at most one per PROGRESS_EVERY seconds) to stay visible to the polling, an
    intermediate count was seen. Here the worker builds 1,000 sessions in 0.7-1.4 s, so this is
    checked on most runs; on a much faster machine only the final state is."""
    assert seen == sorted(seen), seen
    if building >= export_jobs.PROGRESS_EVERY + 0.25:
        assert any(0 < processed < SESSIONS for processed in seen), (seen, building)


def content_hash(records: list[dict]) -> str:
    """evals.export's hash of the records: canonical JSON, one per line."""
    digest = hashlib.sha256()
    for record in records:
        digest.update(json.dumps(record, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode() + b"\n")
    return digest.hexdigest()


def stored_file(job: ExportJob, data_dir: Path) -> Path:
    assert default_storage.exists(job.file.name)
    path = Path(default_storage.path(job.file.name))
    assert path.is_relative_to(data_dir / "media") and path.is_file()  # the worker wrote into our folder
    assert path.stat().st_size == job.size > 0
    return path


def test_exports_on_a_real_worker(user, personal_workspace, data_dir, worker, send_to_worker):
    ids = make_sessions(user, personal_workspace, SESSIONS)
    exchanges = SESSIONS + len(range(0, SESSIONS, 4))  # 1,250: one record per exchange in per-turn mode
    scope = filter_scope(SessionFilters())  # every eval-ready session of the workspace

    job = export_jobs.export_job_start(
        user=user, workspace=personal_workspace, format_name="deepeval", options=Options(), scope=scope
    )
    assert job.status == ExportStatus.PENDING and job.total == SESSIONS
    job, seen, building = wait_for(job, worker)
    assert job.processed == job.total == job.sessions == SESSIONS
    assert job.records == exchanges and job.skipped == 0
    assert job.session_ids == ids  # the dataset version: every session, oldest first
    assert len(job.content_hash) == 64 and job.finished_at is not None
    assert set(job.warnings) == {"missing_expected"} and job.warnings["missing_expected"]["count"] == SESSIONS
    assert_progress(seen, building)

    path = stored_file(job, data_dir)
    assert path.name == job.filename and job.filename.startswith("opensync-deepeval-")
    goldens = json.loads(path.read_text())
    assert isinstance(goldens, list) and len(goldens) == exchanges
    assert content_hash(goldens) == job.content_hash  # the hash covers exactly what the file holds
    first = goldens[0]
    assert first["name"] == "ses-0000#1" and first["input"] == "Why does test_sync_0 fail on CI?"
    assert first["actual_output"] == f"Found it (module_0). {ANSWER}".strip()
    assert first["tools_called"] == [
        {"name": "Read", "input_parameters": {"file_path": "src/app/module_0.py"}, "output": f"# module_0.py\n{MODULE}"}
    ]
    assert goldens[1]["name"] == "ses-0000#2" and goldens[1]["context"][0] == "user: Why does test_sync_0 fail on CI?"
    assert goldens[-1]["name"] == f"ses-{SESSIONS - 1:04d}#1"

    # A second job, in the filesystem format: a zip of one text file per session.
    zipped = export_jobs.export_job_start(
        user=user, workspace=personal_workspace, format_name="filesystem", options=Options(), scope=scope
    )
    zipped, seen, building = wait_for(zipped, worker)
    assert_progress(seen, building)
    assert zipped.sessions == SESSIONS and zipped.records == exchanges and zipped.session_ids == ids
    with zipfile.ZipFile(stored_file(zipped, data_dir)) as archive:
        names = archive.namelist()
        manifest = json.loads(archive.read("manifest.json"))
        text = archive.read("sessions/session-ses-0007.txt").decode()
    assert len(names) == SESSIONS + 2 and "README.txt" in names
    assert manifest["opensync_metadata"]["content_hash"] == zipped.content_hash
    assert manifest["opensync_metadata"]["total_test_cases"] == exchanges
    assert len(manifest["files"]) == SESSIONS
    assert "SESSION: ses-0007" in text and "[TOOL_CALL: Read]" in text and "[TOOL_RESULT: Read]" in text
    assert ExportJob.objects.filter(status=ExportStatus.DONE).count() == 2
