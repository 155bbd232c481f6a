"""Export files in S3-compatible object storage, over the real S3 protocol: moto's server, started
here on 127.0.0.1 (never the internet), with STORAGES["default"] as OPENSYNC_STORAGE=s3 builds it.
The job's file goes to the bucket; the web and API downloads check access, then answer 302 to a
signed URL that serves the file under its name; deleting the job deletes the object."""

import json
import urllib.request
import uuid
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest
from django.urls import reverse
from moto.server import ThreadedMotoServer
from storages.backends.s3 import S3Storage

from accounts.models import Workspace
from accounts.services import api_key_create
from evals.export_jobs import export_job_run, export_job_start
from evals.formats import Options
from evals.models import ExportJob
from evals.selectors import filter_scope
from evals.services import session_review
from opensync.settings.storage import default_storage_from_env
from sessions_app.selectors import SessionFilters
from sessions_app.tests.factories import MessageFactory, SessionFactory

pytestmark = pytest.mark.django_db

SIGNED_URL_SECONDS = 120
PREFIX = "opensync-media"


@pytest.fixture(scope="module")
def s3_endpoint():
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def bucket(s3_endpoint, settings, monkeypatch):
    """A new bucket, and the default storage pointed at it. Overriding STORAGES resets Django's
    `default_storage` (the setting_changed handler), and ExportJob.file, declared without a storage,
    holds that lazy object, so the model follows: no storage callable needed."""
    name = f"opensync-test-{uuid.uuid4().hex[:12]}"
    env = {
        "OPENSYNC_STORAGE": "s3",
        "OPENSYNC_S3_BUCKET": name,
        "OPENSYNC_S3_ENDPOINT_URL": s3_endpoint,
        "OPENSYNC_S3_REGION": "us-east-1",
        "OPENSYNC_S3_ACCESS_KEY_ID": "testing",
        "OPENSYNC_S3_SECRET_ACCESS_KEY": "testing",
        "OPENSYNC_S3_PREFIX": f"/{PREFIX}/",
        "OPENSYNC_S3_SIGNED_URL_SECONDS": str(SIGNED_URL_SECONDS),
        "OPENSYNC_S3_ADDRESSING_STYLE": "path",
    }
    for variable, value in env.items():
        monkeypatch.setenv(variable, value)
    client = boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    client.create_bucket(Bucket=name)
    settings.STORAGES = {**settings.STORAGES, "default": default_storage_from_env()}
    assert isinstance(ExportJob._meta.get_field("file").storage, S3Storage)
    return client, name


def keys(bucket) -> list[str]:
    client, name = bucket
    return [item["Key"] for item in client.list_objects_v2(Bucket=name).get("Contents", [])]


def built_export(user) -> ExportJob:
    """An eval-ready session of the user's, exported by the job as a worker runs it."""
    session = SessionFactory(owner=user, title="alpha")
    MessageFactory(session=session, role="user", text_content="Please fix alpha")
    MessageFactory(session=session, role="assistant", text_content="Done: fixed.")
    session_review(session=session, actor=user, eval_ready=True, eval_status="golden", expected_output="The fix.")
    job = export_job_start(
        user=user,
        workspace=session.workspace,
        format_name="deepeval",
        options=Options(),
        scope=filter_scope(SessionFilters()),
    )
    return export_job_run(job_id=job.pk)


def fetch(url: str):
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - the local S3 server's http:// URL
        return response.status, response.headers, response.read()


def assert_signed_for_the_file(response, job: ExportJob, s3_endpoint: str, name: str, content: bytes) -> None:
    """A 302 to a URL on the S3 endpoint, signed with our key for SIGNED_URL_SECONDS, that gets
    the object's bytes with our file name and type. moto serves a signed URL whatever its age or
    signature (checked with moto 5.2: an expired link and a tampered one both answer 200), so the
    expiry is checked in the signed parameters here; refusing a late link is S3's part."""
    assert response.status_code == 302
    url = response["Location"]
    assert url.startswith(f"{s3_endpoint}/{name}/{PREFIX}/exports/")
    query = parse_qs(urlsplit(url).query)
    assert query["X-Amz-Credential"][0].startswith("testing/") and query["X-Amz-Signature"]
    assert query["X-Amz-Expires"] == [str(SIGNED_URL_SECONDS)]
    signed_at = datetime.strptime(query["X-Amz-Date"][0], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    assert abs((datetime.now(UTC) - signed_at).total_seconds()) < 60
    assert response["X-Export-Content-Hash"] == job.content_hash and response["X-Export-TestCases"] == "1"
    status, headers, body = fetch(url)
    assert status == 200 and body == content
    assert headers["Content-Disposition"] == f'attachment; filename="{job.filename}"'
    assert headers["Content-Type"] == "application/json"


def test_an_export_is_stored_in_the_bucket_and_downloaded_through_a_signed_url(
    client, user, personal_workspace, bucket, s3_endpoint, django_capture_on_commit_callbacks
):
    job = built_export(user)
    assert job.status == "done", job.error
    assert job.file.name == f"exports/{personal_workspace.pk}/{job.pk}/{job.filename}"
    assert keys(bucket) == [f"{PREFIX}/{job.file.name}"]
    s3, name = bucket
    content = s3.get_object(Bucket=name, Key=f"{PREFIX}/{job.file.name}")["Body"].read()
    assert job.size == job.file.size == len(content) > 0
    assert json.loads(content)[0]["expected_output"] == "The fix."

    client.force_login(user)
    web = client.get(reverse("evals:export-download", args=[job.pk]))
    assert_signed_for_the_file(web, job, s3_endpoint, name, content)

    _, raw = api_key_create(user=user, workspace=personal_workspace, name="evals", scope="read")
    auth = {"HTTP_AUTHORIZATION": f"Bearer {raw}"}
    status = client.get(f"/api/export/jobs/{job.pk}", **auth).json()
    assert status["downloadUrl"] == f"http://testserver/api/export/jobs/{job.pk}/download"  # ours, as before
    api = client.get(status["downloadUrl"], **auth)
    assert_signed_for_the_file(api, job, s3_endpoint, name, content)

    with django_capture_on_commit_callbacks(execute=True):  # the object goes once the delete commits
        assert client.post(reverse("evals:export-delete", args=[job.pk])).status_code == 302
    assert not ExportJob.objects.exists() and keys(bucket) == []


def test_a_file_gone_from_the_bucket_is_404(client, user, personal_workspace, bucket):
    job = built_export(user)
    s3, name = bucket
    s3.delete_object(Bucket=name, Key=f"{PREFIX}/{job.file.name}")
    client.force_login(user)
    assert client.get(reverse("evals:export-download", args=[job.pk])).status_code == 404
    _, raw = api_key_create(user=user, workspace=personal_workspace, name="evals", scope="read")
    api = client.get(f"/api/export/jobs/{job.pk}/download", HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert api.status_code == 404 and api.json() == {"error": "The export's file is gone"}


def test_another_users_export_is_404_before_s3_is_asked(client, user, other_user, bucket, monkeypatch):
    job = built_export(user)

    def no_s3(*args, **kwargs):
        raise AssertionError("S3 was asked about an export the user can't see")

    monkeypatch.setattr(S3Storage, "exists", no_s3)
    monkeypatch.setattr(S3Storage, "url", no_s3)
    monkeypatch.setattr(S3Storage, "_open", no_s3)
    client.force_login(other_user)
    assert client.get(reverse("evals:export-download", args=[job.pk])).status_code == 404
    workspace = Workspace.objects.get(created_by=other_user, is_personal=True)
    _, raw = api_key_create(user=other_user, workspace=workspace, name="evals", scope="read")
    api = client.get(f"/api/export/jobs/{job.pk}/download", HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert api.status_code == 404
    assert keys(bucket) == [f"{PREFIX}/{job.file.name}"]


def test_a_bucket_that_refuses_the_file_fails_the_job_with_the_reason(user, bucket, settings):
    options = {**settings.STORAGES["default"]["OPTIONS"], "bucket_name": "opensync-no-such-bucket"}
    settings.STORAGES = {**settings.STORAGES, "default": {**settings.STORAGES["default"], "OPTIONS": options}}
    job = built_export(user)
    assert job.status == "failed" and not job.file
    assert job.error == "The file could not be stored (the server's disk or storage failed). Please try again later."
