"""The eval export API: upstream's GET /api/export/evals (the file, with an API key), its
filters, options and errors, and the background job (POST, status, download)."""

import io
import json
import zipfile
from datetime import UTC, datetime, timedelta

import pytest
import yaml
from django.utils import timezone

from accounts.models import Workspace
from accounts.services import api_key_create
from accounts.tests.factories import team_with
from evals.models import ExportJob, ExportStatus
from evals.tests.factories import ExportJobFactory
from sessions_app.tests.factories import MessageFactory, PartFactory, SessionFactory

pytestmark = pytest.mark.django_db

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
SECRET = "sk-proj-abcdefghijklmnopqrstuvwx"
URL = "/api/export/evals"
NEW_FORMATS = "openai-evals-api, promptfoo-yaml, chat, deepeval-conversational"


def eval_session(owner, external_id: str, *, created_at=T0, answer=True, tokens=(100, 50), **fields):
    """An eval-ready session: a prompt (with a home path and a secret), a tool call and its
    result, and the final answer (unless `answer=False`)."""
    fields = {"eval_ready": True, "eval_status": "golden", "eval_tags": ["bug-fix"], **fields}
    session = SessionFactory(
        owner=owner,
        external_id=external_id,
        created_at=created_at,
        prompt_tokens=tokens[0],
        completion_tokens=tokens[1],
        **fields,
    )
    at = iter(created_at + timedelta(seconds=i) for i in range(10))
    MessageFactory(
        session=session, role="user", text_content=f"Fix /home/alice/app.py, key {SECRET}", created_at=next(at)
    )
    if answer:
        call = MessageFactory(session=session, role="assistant", text_content="", created_at=next(at))
        PartFactory(message=call, type="text", content="Reading it.", order=0)
        PartFactory(
            message=call,
            type="tool-call",
            content={"id": "call_1", "name": "read_file", "args": {"path": "/home/alice/app.py"}},
            order=1,
        )
        result = MessageFactory(session=session, role="tool", text_content="", created_at=next(at))
        PartFactory(message=result, type="tool-result", content={"tool_call_id": "call_1", "output": "x = 1"}, order=0)
        MessageFactory(session=session, role="assistant", text_content="Fixed: x is 2 now.", created_at=next(at))
    return session


@pytest.fixture
def api(client, user, personal_workspace):
    """A client with a read-only key: exports only read, so any key may make them."""
    _, raw = api_key_create(user=user, workspace=personal_workspace, name="evals", scope="read")
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {raw}"
    return client


@pytest.fixture
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


@pytest.fixture
def sessions(user):
    return [
        eval_session(user, "ses_first_0001", created_at=T0),
        eval_session(user, "ses_second_002", created_at=T0 + timedelta(days=1)),
    ]


def body(response) -> bytes:
    """The file (a streaming response can be read once: kept on the response)."""
    if not hasattr(response, "_body"):
        response._body = response.getvalue()
    return response._body


def records(response) -> list:
    """The records of an export file, whatever its format (zip: the members' names)."""
    content_type = response["Content-Type"]
    data = body(response)
    if content_type == "application/json":
        return json.loads(data)
    if content_type == "application/x-ndjson":
        return [json.loads(line) for line in data.decode().splitlines()]
    if content_type == "application/yaml":
        return yaml.safe_load(data)
    assert content_type == "application/zip"
    return zipfile.ZipFile(io.BytesIO(data)).namelist()


def exported(api, **params) -> set[str]:
    response = api.get(URL, {"format": "deepeval", **params})
    assert response.status_code == 200, response.content
    return {record["additional_metadata"]["session_id"] for record in records(response)}


def error_of(response, status: int) -> str:
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    return response.json()["error"]


# --- GET: formats and headers ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "content_type", "name"),
    [
        ("deepeval", "application/json", "deepeval.json"),
        ("deepeval-conversational", "application/json", "deepeval-conversational.json"),
        ("openai", "application/x-ndjson", "openai.jsonl"),
        ("openai-evals-api", "application/x-ndjson", "openai-evals-api.jsonl"),
        ("promptfoo", "application/x-ndjson", "promptfoo.jsonl"),
        ("promptfoo-yaml", "application/yaml", "promptfoo-yaml.yaml"),
        ("chat", "application/x-ndjson", "chat.jsonl"),
        ("filesystem", "application/zip", "filesystem.zip"),
    ],
)
def test_each_format_is_the_file_itself(api, sessions, fmt, content_type, name):
    response = api.get(URL, {"format": fmt})
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == content_type
    today = timezone.now().date().isoformat()
    assert response["Content-Disposition"] == f'attachment; filename="opensync-{name.replace(".", f"-{today}.")}"'
    assert int(response["Content-Length"]) == len(body(response))
    rows = records(response)
    assert isinstance(rows, list) and rows
    if fmt == "filesystem":
        assert set(rows) == {
            "manifest.json",
            "README.txt",
            "sessions/session-ses_first_0001.txt",
            "sessions/session-ses_second_002.txt",
        }
        manifest = json.loads(zipfile.ZipFile(io.BytesIO(body(response))).read("manifest.json"))
        assert manifest["opensync_metadata"]["total_sessions"] == 2
    else:
        assert all(isinstance(row, dict) for row in rows)
    if fmt == "deepeval-conversational":
        assert all(row["scenario"] and row["turns"] for row in rows)
    if fmt == "deepeval":
        assert {row["input"] for row in rows} == {"Fix /home/user/app.py, key [REDACTED]"}


def test_headers_count_sessions_records_and_skipped(api, user, sessions):
    eval_session(user, "ses_no_answer", created_at=T0 + timedelta(hours=1), answer=False)
    response = api.get(URL)  # deepeval, per turn: one record per answered exchange
    assert response.status_code == 200
    assert response["X-Export-Sessions"] == "3"  # skipped sessions included, as upstream
    assert response["X-Export-TestCases"] == "2"
    assert response["X-Export-Skipped"] == "1"
    assert len(response["X-Export-Content-Hash"]) == 64
    assert "X-Export-TestCases" in response["Access-Control-Expose-Headers"]
    assert response["Access-Control-Allow-Origin"] == "*"
    assert [row["additional_metadata"]["session_id"] for row in records(response)] == [
        "ses_first_0001",
        "ses_second_002",
    ]  # oldest first
    same = api.get(URL)
    assert same["X-Export-Content-Hash"] == response["X-Export-Content-Hash"]


def test_v1_alias_and_a_sync_key(client, sync_key, sessions):
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {sync_key}"
    response = client.get("/api/v1/export/evals?format=openai")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/x-ndjson"
    assert len(records(response)) == 2


def test_without_a_key(client, sessions):
    assert error_of(client.get(URL), 401) == "Missing Authorization header"
    client.defaults["HTTP_AUTHORIZATION"] = "Bearer osk_nope"
    assert error_of(client.get(URL), 401) == "Invalid API key"
    assert error_of(client.post(URL), 401) == "Invalid API key"


# --- GET: filters ------------------------------------------------------------------------------------


def test_filters(api, user):
    eval_session(user, "a", source="claude-code", model="m1", created_at=T0, eval_tags=["x"], tokens=(10, 0))
    eval_session(
        user, "b", source="opencode", model="m2", created_at=T0 + timedelta(days=1, hours=11, minutes=59),
        eval_tags=["y", "z"], eval_status="incorrect", tokens=(500, 500), project_name="other",
    )  # fmt: skip
    eval_session(user, "c", source="cursor-sync", model="m1", created_at=T0 + timedelta(days=2), eval_tags=[])
    SessionFactory(owner=user, external_id="not-ready", eval_ready=False)
    assert exported(api) == {"a", "b", "c"}
    assert exported(api, tool="opencode") == {"b"}
    assert exported(api, tool="cursor") == {"c"}  # the plugin's name for cursor-sync, as the read API
    assert exported(api, model="m1") == {"a", "c"}
    assert exported(api, project="other") == {"b"}
    # whole days, both ends included: b is at 23:59 on the 2nd
    assert exported(api, date_from="2025-03-02") == {"b", "c"}
    assert exported(api, date_to="2025-03-02") == {"a", "b"}
    assert exported(api, date_from="2025-03-02", date_to="2025-03-02") == {"b"}
    assert exported(api, tags="x,z") == {"a", "b"}  # any of them
    assert exported(api, tags=" Y ") == {"b"}  # tags are normalised like reviewers'
    assert exported(api, min_tokens=1000) == {"b"}
    assert exported(api, min_tokens=0) == {"a", "b", "c"}
    assert exported(api, status="incorrect") == {"b"}
    assert exported(api, status="golden", tool="claude-code") == {"a"}
    assert exported(api, date_from="", tags="", min_tokens="") == {"a", "b", "c"}  # blank = absent


def test_other_workspaces_never_appear(api, user, other_user, sessions):
    eval_session(other_user, "theirs")
    team = team_with(user)
    eval_session(user, "in_team", workspace=team)
    for fmt in ("deepeval", "filesystem"):
        response = api.get(URL, {"format": fmt})
        assert b"theirs" not in body(response) and b"in_team" not in body(response)
    assert exported(api) == {"ses_first_0001", "ses_second_002"}


def test_not_found_messages(api, user, other_user):
    eval_session(other_user, "theirs")
    SessionFactory(owner=user, eval_ready=False)
    assert error_of(api.get(URL), 404) == "No eval-ready sessions found"
    eval_session(user, "mine", model="m1")
    assert error_of(api.get(URL, {"model": "m2"}), 404) == "No sessions match the specified filters"
    assert error_of(api.get(URL, {"status": "correct"}), 404) == "No sessions match the specified filters"


# --- GET: options ------------------------------------------------------------------------------------


def test_include_metadata_false_drops_tool_calls(api, sessions):
    default = records(api.get(URL))
    assert all(row["tools_called"] for row in default)
    assert default[0]["tools_called"][0]["name"] == "read_file"
    for value in ("false", "FALSE"):
        assert all(row["tools_called"] == [] for row in records(api.get(URL, {"include_metadata": value})))
    assert all(
        row["tools_called"] for row in records(api.get(URL, {"include_metadata": "no"}))
    )  # upstream: !== "false"


def test_anonymize_and_redact_are_on_by_default(api, sessions):
    default = body(api.get(URL, {"format": "chat"})).decode()
    assert "/home/alice" not in default and "/home/user/app.py" in default
    assert SECRET not in default and "[REDACTED]" in default
    raw = body(api.get(URL, {"format": "chat", "anonymize": "false", "redact": "false"})).decode()
    assert "/home/alice/app.py" in raw and SECRET in raw


def test_turn_modes_system_and_replay(api, user):
    session = eval_session(user, "s1")
    MessageFactory(session=session, role="user", text_content="And a test?", created_at=T0 + timedelta(minutes=1))
    MessageFactory(
        session=session,
        role="assistant",
        text_content="```py\nassert x == 2\n```",
        created_at=T0 + timedelta(minutes=2),
    )
    assert len(records(api.get(URL))) == 2
    assert len(records(api.get(URL, {"turn_mode": "final_only"}))) == 1
    assert len(records(api.get(URL, {"turn_mode": "full"}))) == 1
    assert len(records(api.get(URL, {"code_blocks_only": "true"}))) == 1
    assert len(records(api.get(URL, {"min_length": 15}))) == 1  # "And a test?" is shorter
    multi = api.get(URL, {"turn_mode": "multi_turn"})
    assert multi["Content-Disposition"].startswith('attachment; filename="opensync-deepeval-conversational-')
    promptfoo = records(api.get(URL, {"format": "promptfoo"}))
    assert all("providerOutput" in row for row in promptfoo)
    assert not any("providerOutput" in row for row in records(api.get(URL, {"format": "promptfoo", "replay": "false"})))


def test_bad_parameters_are_400(api, sessions):
    bad_format = f"Invalid format. Use: deepeval, openai, promptfoo, filesystem, {NEW_FORMATS}"
    assert error_of(api.get(URL, {"format": "csv"}), 400) == bad_format
    assert error_of(api.get(URL, {"date_from": "2025-13-01"}), 400) == "date_from must be a date as YYYY-MM-DD"
    assert error_of(api.get(URL, {"date_to": "yesterday"}), 400) == "date_to must be a date as YYYY-MM-DD"
    assert error_of(api.get(URL, {"status": "great"}), 400).startswith("status must be one of golden")
    assert error_of(api.get(URL, {"min_tokens": -1}), 400) == "min_tokens must not be negative"
    assert error_of(api.get(URL, {"min_tokens": "many"}), 400) == "min_tokens must be a whole number"
    assert error_of(api.get(URL, {"min_length": -5}), 400) == "min_length must not be negative"
    assert error_of(api.get(URL, {"code_blocks_only": "maybe"}), 400) == "code_blocks_only must be true or false"
    assert error_of(api.get(URL, {"turn_mode": "sideways"}), 400).startswith("turn_mode must be one of per_turn")
    message = error_of(api.get(URL, {"format": "openai", "turn_mode": "multi_turn"}), 400)
    assert message == "OpenAI Evals registry (JSONL, input + ideal) has no turn mode 'multi_turn'. " + (
        "Use one of: per_turn, final_only, full."
    )


def test_a_bad_format_is_checked_before_the_sessions(api):
    assert error_of(api.get(URL, {"format": "csv"}), 400).startswith("Invalid format.")


# --- POST, the job, its download ------------------------------------------------------------------


def start(api, captured, data=None, query: str = "", **kwargs):
    with captured(execute=True):
        return api.post(f"{URL}{query}", data or {}, content_type="application/json", **kwargs)


def test_post_builds_the_same_export_in_the_background(api, user, sessions, media, django_capture_on_commit_callbacks):
    response = start(api, django_capture_on_commit_callbacks, {"format": "deepeval", "include_metadata": False})
    assert response.status_code == 202, response.content
    created = response.json()
    job = ExportJob.objects.get()
    assert created == {
        "id": str(job.pk),
        "status": "pending",
        "format": "deepeval",
        "total": 2,
        "statusUrl": f"http://testserver/api/export/jobs/{job.pk}",
        "downloadUrl": None,
    }
    assert response["Location"] == created["statusUrl"]
    assert job.via == "api" and job.created_by == user and job.options["include_tools"] is False

    status = api.get(created["statusUrl"]).json()
    assert status["status"] == "done" and status["percent"] == 100
    assert (status["total"], status["processed"], status["sessions"], status["records"], status["skipped"]) == (
        2, 2, 2, 2, 0,
    )  # fmt: skip
    assert status["sessionIds"] == [str(s.pk) for s in sessions]
    assert status["options"]["includeTools"] is False and status["options"]["anonymizePaths"] is True
    assert status["scope"] == {"kind": "filter", "filters": {}} and status["scopeLabel"] == "Eval-ready sessions"
    assert status["warnings"] == ["2 sessions have no expected output (e.g. ses_first_0001, ses_second_002)"]
    assert status["warningDetails"] == {
        "missing_expected": {"count": 2, "examples": ["ses_first_0001", "ses_second_002"]}
    }
    assert status["downloadUrl"] == f"http://testserver/api/export/jobs/{job.pk}/download"
    assert status["error"] is None and status["finishedAt"] >= status["createdAt"]

    download = api.get(status["downloadUrl"])
    assert download.status_code == 200
    assert download["Content-Type"] == "application/json"
    assert download["Content-Disposition"] == f'attachment; filename="{status["filename"]}"'
    assert download["X-Export-TestCases"] == "2" and download["X-Export-Sessions"] == "2"
    assert download["X-Export-Content-Hash"] == status["contentHash"]
    assert int(download["Content-Length"]) == status["size"]
    now = api.get(URL, {"include_metadata": "false"})
    assert records(download) == records(now)
    assert now["X-Export-Content-Hash"] == status["contentHash"]


def test_post_zip_and_filters_from_query_and_body(api, user, sessions, media, django_capture_on_commit_callbacks):
    eval_session(user, "tagged", eval_tags=["keep"], created_at=T0 + timedelta(days=5))
    response = start(
        api,
        django_capture_on_commit_callbacks,
        {"format": "filesystem", "tags": ["Keep"], "anonymize": False},
        query="?format=openai&model=claude-sonnet-4-20250514",
    )
    assert response.status_code == 202, response.content
    assert response.json()["format"] == "filesystem" and response.json()["total"] == 1  # the body wins
    job = ExportJob.objects.get()
    assert job.scope == {"kind": "filter", "filters": {"model": "claude-sonnet-4-20250514", "tags": ["keep"]}}
    assert job.scope_label == "Eval-ready sessions (model: claude-sonnet-4-20250514; tags: keep)"
    download = api.get(response.json()["statusUrl"] + "/download")
    assert download["Content-Type"] == "application/zip"
    names = records(download)
    assert "sessions/session-tagged.txt" in names and "manifest.json" in names and "README.txt" in names
    text = zipfile.ZipFile(io.BytesIO(body(download))).read("sessions/session-tagged.txt").decode()
    assert "/home/alice" in text


def test_post_v1_links_stay_under_v1(api, sessions, media, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post("/api/v1/export/evals?format=chat", content_type="application/json")
    assert response.status_code == 202, response.content
    job_id = response.json()["id"]
    assert response["Location"] == f"http://testserver/api/v1/export/jobs/{job_id}"
    status = api.get(response["Location"]).json()
    assert status["downloadUrl"] == f"http://testserver/api/v1/export/jobs/{job_id}/download"
    assert api.get(status["downloadUrl"])["Content-Type"] == "application/x-ndjson"


def test_post_errors(api, user, media, django_capture_on_commit_callbacks):
    bad_format = f"Invalid format. Use: deepeval, openai, promptfoo, filesystem, {NEW_FORMATS}"
    assert error_of(start(api, django_capture_on_commit_callbacks, {"format": "csv"}), 400) == bad_format
    assert error_of(start(api, django_capture_on_commit_callbacks), 404) == "No eval-ready sessions found"
    eval_session(user, "mine")
    no_match = start(api, django_capture_on_commit_callbacks, {"tool": "pi"})
    assert error_of(no_match, 404) == "No sessions match the specified filters"
    assert error_of(start(api, django_capture_on_commit_callbacks, {"min_tokens": -1}), 400) == (
        "min_tokens must not be negative"
    )
    turn = start(api, django_capture_on_commit_callbacks, {"format": "promptfoo", "turn_mode": "multi_turn"})
    assert "has no turn mode 'multi_turn'" in error_of(turn, 400)
    assert error_of(start(api, django_capture_on_commit_callbacks, ["deepeval"]), 400) == (
        "The body must be a JSON object"
    )
    malformed = api.post(URL, "{nope", content_type="application/json")
    assert error_of(malformed, 400).startswith("Malformed JSON body")
    assert not ExportJob.objects.exists()


def test_download_before_done_is_409(api, user, sessions, media, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):  # the task is never sent
        response = api.generic("POST", URL)  # no body at all, as `curl -X POST`
    job_id = response.json()["id"]
    status = api.get(f"/api/export/jobs/{job_id}").json()
    assert status["status"] == "pending" and status["downloadUrl"] is None and status["percent"] == 0
    download = f"/api/export/jobs/{job_id}/download"
    assert error_of(api.get(download), 409) == "The export is not ready (status: pending)."
    ExportJob.objects.filter(pk=job_id).update(status=ExportStatus.RUNNING, processed=1)
    assert api.get(f"/api/export/jobs/{job_id}").json()["percent"] == 50
    assert error_of(api.get(download), 409) == "The export is not ready (status: running)."
    ExportJob.objects.filter(pk=job_id).update(status=ExportStatus.FAILED, error="Disk full")
    assert api.get(f"/api/export/jobs/{job_id}").json()["error"] == "Disk full"
    assert error_of(api.get(download), 409) == "The export failed: Disk full"


def test_jobs_of_other_workspaces_are_404(
    api, client, user, other_user, sessions, media, django_capture_on_commit_callbacks
):
    job_id = start(api, django_capture_on_commit_callbacks).json()["id"]
    team = team_with(user)
    theirs = Workspace.objects.get(created_by=other_user, is_personal=True)
    for owner, workspace in ((other_user, theirs), (user, team)):
        _, raw = api_key_create(user=owner, workspace=workspace, name="other", scope="sync")
        headers = {"HTTP_AUTHORIZATION": f"Bearer {raw}"}
        assert error_of(client.get(f"/api/export/jobs/{job_id}", **headers), 404) == "Export not found"
        assert error_of(client.get(f"/api/export/jobs/{job_id}/download", **headers), 404) == "Export not found"
    for bad in ("abc", "0", "99999999", "1e3", "9" * 30):
        assert error_of(api.get(f"/api/export/jobs/{bad}"), 404) == "Export not found"
        assert error_of(api.get(f"/api/export/jobs/{bad}/download"), 404) == "Export not found"
    assert api.get(f"/api/export/jobs/{job_id}/").status_code == 200  # a trailing slash, like every API path


def test_web_exports_are_visible_too(
    api, user, personal_workspace, sessions, media, django_capture_on_commit_callbacks
):
    from evals.export_jobs import export_job_start
    from evals.formats import Options
    from evals.selectors import selection_scope

    with django_capture_on_commit_callbacks(execute=True):
        job = export_job_start(
            user=user,
            workspace=personal_workspace,
            format_name="openai",
            options=Options(),
            scope=selection_scope([sessions[0].pk]),
            scope_label="1 ticked session",
        )
    status = api.get(f"/api/export/jobs/{job.pk}").json()
    assert status["via"] == "web" and status["scope"] == {"kind": "selection", "ids": [sessions[0].pk]}
    assert status["scopeLabel"] == "1 ticked session" and status["records"] == 1


# --- the schema --------------------------------------------------------------------------------------


def test_schema_documents_the_answers(api, client, sessions, media, django_capture_on_commit_callbacks):
    schema = json.loads(client.get("/api/schema?format=json").content)
    paths = schema["paths"]
    assert {"/api/export/evals", "/api/export/jobs/{job_id}", "/api/export/jobs/{job_id}/download"} <= set(paths)
    assert "/api/v1/export/evals" not in paths
    get = paths["/api/export/evals"]["get"]
    assert get["tags"] == ["Evals"]
    assert set(get["responses"]["200"]["content"]) == {
        "application/json", "application/x-ndjson", "application/yaml", "application/zip",
    }  # fmt: skip
    assert {"400", "401", "404"} <= set(get["responses"])
    names = {p["name"] for p in get["parameters"]}
    assert {"format", "tool", "model", "date_from", "date_to", "tags", "min_tokens", "status", "include_metadata",
            "anonymize", "turn_mode", "include_system", "redact", "min_length", "code_blocks_only", "replay",
            "project"} <= names  # fmt: skip
    post = paths["/api/export/evals"]["post"]
    assert set(post["responses"]) >= {"202", "400", "401", "404"}
    assert "read" in post["description"]
    assert set(paths["/api/export/jobs/{job_id}/download"]["get"]["responses"]) >= {"200", "401", "404", "409"}

    components = schema["components"]["schemas"]
    created = start(api, django_capture_on_commit_callbacks).json()
    assert set(created) == set(components["ExportJobCreated"]["properties"])
    status = api.get(created["statusUrl"]).json()
    assert set(status) == set(components["ExportJob"]["properties"])
    assert set(status["options"]) == set(components["ExportOptions"]["properties"])


def test_a_big_get_points_to_post(api, sessions, monkeypatch):
    from evals.api import views

    monkeypatch.setattr(views, "MAX_SYNC_SESSIONS", 1)
    assert "POST the same parameters" in error_of(api.get(URL), 400)


def test_too_many_building_exports_get_429(api, user, personal_workspace, sessions):
    for _ in range(3):
        ExportJobFactory(workspace=personal_workspace, created_by=user, format="deepeval", status="running")
    assert "already building" in error_of(api.post(URL, {}, content_type="application/json"), 429)
    ExportJob.objects.update(status="done")
    assert api.post(URL, {}, content_type="application/json").status_code == 202


def test_an_export_deleted_while_building_stays_deleted(user, personal_workspace, sessions, media, monkeypatch):
    from evals import export_jobs
    from evals.models import ExportJob
    from evals.selectors import selection_scope

    job = ExportJobFactory(
        workspace=personal_workspace, created_by=user, format="deepeval", scope=selection_scope([sessions[0].pk])
    )
    build = export_jobs.export_build

    def build_then_delete(*args, **kwargs):
        report = build(*args, **kwargs)
        ExportJob.objects.filter(pk=job.pk).delete()  # someone deletes it meanwhile
        return report

    monkeypatch.setattr(export_jobs, "export_build", build_then_delete)
    assert export_jobs.export_job_run(job_id=job.pk) is None
    assert not ExportJob.objects.exists()
    assert not any(path.is_file() for path in media.rglob("*"))  # its file went too
