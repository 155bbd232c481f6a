"""The export modal, its preview, the build's progress, past exports, downloads and deletion."""

import contextlib
import json
import re

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction
from django.urls import reverse

from accounts.models import Role
from accounts.tests.factories import MembershipFactory
from evals.models import ExportJob, ExportStatus
from evals.services import session_review
from evals.tests.factories import ExportJobFactory
from sessions_app.tests.factories import MessageFactory, SessionFactory

pytestmark = pytest.mark.django_db
HX = {"HTTP_HX_REQUEST": "true"}


def ready(owner, title, *, answer="Done: fixed.", expected=None, status="golden", **fields):
    session = SessionFactory(owner=owner, title=title, **fields)
    MessageFactory(session=session, role="user", text_content=f"Please fix {title}")
    MessageFactory(session=session, role="assistant", text_content=answer)
    session_review(session=session, actor=owner, eval_ready=True, eval_status=status, expected_output=expected)
    return session


def build(client, data, *, django_capture_on_commit_callbacks, htmx=True):
    body = {"format": "deepeval", "turn_mode": "per_turn", "scope": "filter", "include_tools": "on", **data}
    with django_capture_on_commit_callbacks(execute=True):
        return client.post(reverse("evals:export"), body, **(HX if htmx else {}))


def test_the_modal_previews_the_filtered_sessions(logged_in, user):
    ready(user, "alpha", source="claude-code")
    ready(user, "beta", source="opencode")
    page = logged_in.get(reverse("evals:evals"))
    assert b'id="export-open"' in page.content
    response = logged_in.get(reverse("evals:export") + "?source=claude-code", **HX)
    text = response.content.decode()
    assert response.status_code == 200 and "<dialog" in text and "<html" not in text
    assert "<strong>1</strong> session" in text and "Please fix alpha" in text and "Please fix beta" not in text
    assert 'value="source=claude-code"' in text  # the filters travel with the form
    full = logged_in.get(reverse("evals:export"))  # without JavaScript: a page with the dialog open
    assert b"<html" in full.content and b"<dialog" in full.content and b" open>" in full.content


def test_ticked_sessions_make_a_selection_scope(logged_in, user):
    a, b = ready(user, "alpha"), ready(user, "beta")
    response = logged_in.get(reverse("evals:export") + f"?ids={a.pk}", **HX)
    text = response.content.decode()
    assert 'value="selection" checked' in text and "1 ticked session" in text
    assert "Please fix alpha" in text and "Please fix beta" not in text and b.pk


def test_the_preview_follows_the_format_and_warns(logged_in, user):
    ready(user, "alpha")
    no_answer = SessionFactory(owner=user, title="silent")
    MessageFactory(session=no_answer, role="user", text_content="hello?")
    session_review(session=no_answer, actor=user, eval_ready=True)
    url = reverse("evals:export-preview")
    text = logged_in.get(
        url, {"format": "promptfoo", "turn_mode": "per_turn", "scope": "filter"}, **HX
    ).content.decode()
    assert (
        "&quot;providerOutput&quot;" not in text and "&quot;recorded_output&quot;" in text
    )  # replay unticked in this request
    assert 'id="export-format-options" hx-swap-oob="true"' in text and 'name="replay"' in text
    assert "no assistant answer" in text and "no expected output" in text
    chat = logged_in.get(url, {"format": "chat", "scope": "filter"}, **HX).content.decode()
    assert "Whole sessions" in chat and "&quot;messages&quot;" in chat and 'name="replay"' not in chat
    bad = logged_in.get(url, {"format": "openai", "turn_mode": "multi_turn", "scope": "filter"}, **HX)
    assert "has no such turn mode" in bad.content.decode()
    bad = logged_in.get(url, {"format": "deepeval", "min_length": "-3", "scope": "filter"}, **HX)
    assert "Fix the choices" in bad.content.decode()


def test_building_shows_progress_then_the_download_and_whats_next(logged_in, user, django_capture_on_commit_callbacks):
    ready(user, "alpha", expected="The fix.")
    response = build(logged_in, {}, django_capture_on_commit_callbacks=django_capture_on_commit_callbacks)
    assert response.status_code == 200
    job = ExportJob.objects.get()
    assert job.status == ExportStatus.DONE and job.created_by == user and job.records == 1
    page = logged_in.get(reverse("evals:export-job", args=[job.pk]), **HX).content.decode()
    assert "hx-trigger" not in page  # done: polling stops
    assert "deepeval test run test_opensync.py" in page and job.filename in page
    download = logged_in.get(reverse("evals:export-download", args=[job.pk]))
    assert download["Content-Disposition"].startswith("attachment") and job.filename in download["Content-Disposition"]
    rows = json.loads(b"".join(download.streaming_content))
    assert rows[0]["input"] == "Please fix alpha" and rows[0]["expected_output"] == "The fix."
    listing = logged_in.get(reverse("evals:exports")).content.decode()
    assert f"#{job.pk} deepeval" in listing and "Ready" in listing


def test_a_pending_job_polls(logged_in, user):
    job = ExportJobFactory(workspace=ready(user, "alpha").workspace, created_by=user, format="deepeval", total=4)
    page = logged_in.get(reverse("evals:export-job", args=[job.pk]), **HX).content.decode()
    assert 'hx-trigger="every 1s"' in page and "0 of 4 sessions" in page
    full = logged_in.get(reverse("evals:export-job", args=[job.pk])).content.decode()
    assert 'http-equiv="refresh"' in full  # without JavaScript the page refreshes itself
    assert logged_in.get(reverse("evals:export-download", args=[job.pk])).status_code == 404


def test_without_javascript_building_redirects_to_the_job(logged_in, user, django_capture_on_commit_callbacks):
    ready(user, "alpha")
    response = build(logged_in, {}, django_capture_on_commit_callbacks=django_capture_on_commit_callbacks, htmx=False)
    job = ExportJob.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse("evals:export-job", args=[job.pk])


def test_bad_requests_are_form_errors(logged_in, user, other_user, django_capture_on_commit_callbacks):
    ready(user, "alpha")
    theirs = ready(other_user, "theirs")  # another workspace
    response = build(
        logged_in,
        {"scope": "selection", "ids": [theirs.pk]},
        django_capture_on_commit_callbacks=django_capture_on_commit_callbacks,
    )
    assert response.status_code == 422 and "No sessions match" in response.content.decode()
    response = build(
        logged_in, {"scope": "selection"}, django_capture_on_commit_callbacks=django_capture_on_commit_callbacks
    )
    assert response.status_code == 422 and "Tick at least one session" in response.content.decode()
    response = build(
        logged_in, {"format": "nope"}, django_capture_on_commit_callbacks=django_capture_on_commit_callbacks
    )
    assert response.status_code == 422 and not ExportJob.objects.exists()


def test_outsiders_get_404_and_members_can_download(client, user, other_user, django_capture_on_commit_callbacks):
    session = ready(user, "alpha")
    client.force_login(user)
    build(client, {}, django_capture_on_commit_callbacks=django_capture_on_commit_callbacks)
    job = ExportJob.objects.get()
    client.force_login(other_user)
    for name in ("evals:export-job", "evals:export-download", "evals:export-delete"):
        assert client.get(reverse(name, args=[job.pk])).status_code == 404
    assert client.post(reverse("evals:export-delete", args=[job.pk])).status_code == 404
    assert f"#{job.pk}" not in client.get(reverse("evals:exports")).content.decode()
    MembershipFactory(user=other_user, workspace=session.workspace, role=Role.MEMBER)
    assert client.get(reverse("evals:export-download", args=[job.pk])).status_code == 200
    # a member who didn't build it can't delete it
    client.post(reverse("evals:export-delete", args=[job.pk]))
    assert ExportJob.objects.filter(pk=job.pk).exists()


def test_delete_asks_then_removes_the_file(logged_in, user, django_capture_on_commit_callbacks):
    ready(user, "alpha")
    build(logged_in, {"format": "filesystem"}, django_capture_on_commit_callbacks=django_capture_on_commit_callbacks)
    job = ExportJob.objects.get()
    name = job.file.name
    assert default_storage.exists(name) and name.endswith(".zip")
    confirm = logged_in.get(reverse("evals:export-delete", args=[job.pk]), **HX).content.decode()
    assert "<dialog" in confirm and "Delete export" in confirm
    with django_capture_on_commit_callbacks(execute=True):  # the file goes once the delete commits
        response = logged_in.post(reverse("evals:export-delete", args=[job.pk]))
    assert response.status_code == 302 and not ExportJob.objects.exists() and not default_storage.exists(name)


def test_a_deletion_that_rolls_back_keeps_the_file(user, django_capture_on_commit_callbacks):
    ready(user, "alpha")
    job = ExportJobFactory(created_by=user, status=ExportStatus.DONE)
    job.file.save("kept.json", ContentFile(b"[]"))
    pk, name = job.pk, job.file.name
    with django_capture_on_commit_callbacks(execute=True), contextlib.suppress(RuntimeError), transaction.atomic():
        job.delete()
        raise RuntimeError("a later step of the deletion failed")
    assert ExportJob.objects.get(pk=pk).file.name == name and default_storage.exists(name)


def test_csrf_is_enforced(user):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    assert client.post(reverse("evals:export"), {"format": "deepeval"}).status_code == 403


def test_the_dataset_version_compares_with_the_previous_export(logged_in, user, django_capture_on_commit_callbacks):
    ready(user, "alpha")
    build(logged_in, {}, django_capture_on_commit_callbacks=django_capture_on_commit_callbacks)
    build(logged_in, {}, django_capture_on_commit_callbacks=django_capture_on_commit_callbacks)
    ready(user, "beta")
    build(logged_in, {}, django_capture_on_commit_callbacks=django_capture_on_commit_callbacks)
    first, second, third = ExportJob.objects.order_by("pk")
    assert first.content_hash == second.content_hash != third.content_hash
    page = logged_in.get(reverse("evals:export-job", args=[second.pk])).content.decode()
    assert re.search(r"same content · 0 sessions added, 0 removed", page)
    page = logged_in.get(reverse("evals:export-job", args=[third.pk])).content.decode()
    assert "content changed · 1 session added, 0 removed" in page


@pytest.mark.parametrize(
    "status, minutes, reason",
    [("pending", 66, "No worker picked the build up"), ("running", 11, "The build stopped without finishing")],
)
def test_a_stuck_job_fails_with_the_reason_and_stops_polling(logged_in, user, status, minutes, reason):
    from datetime import timedelta

    from django.utils import timezone

    workspace = ready(user, "alpha").workspace
    job = ExportJobFactory(workspace=workspace, created_by=user, format="deepeval", total=4, status=status)
    page = logged_in.get(reverse("evals:export-job", args=[job.pk]), **HX).content.decode()
    assert 'hx-trigger="every 1s"' in page  # still fresh
    ExportJob.objects.filter(pk=job.pk).update(updated_at=timezone.now() - timedelta(minutes=minutes - 2))
    assert "hx-trigger" in logged_in.get(reverse("evals:export-job", args=[job.pk]), **HX).content.decode()
    ExportJob.objects.filter(pk=job.pk).update(updated_at=timezone.now() - timedelta(minutes=minutes))
    page = logged_in.get(reverse("evals:export-job", args=[job.pk]), **HX).content.decode()
    assert "hx-trigger" not in page and reason in page
    job.refresh_from_db()
    assert job.status == ExportStatus.FAILED and job.finished_at is not None


def test_the_modal_takes_the_bulk_forms_fields(logged_in, user):
    """ "Export…" sends the whole bulk form (hx-include="#eval-bulk"): only the ticked ids count."""
    a = ready(user, "alpha")
    query = f"?source=claude-code&action=status&status=&tag=&next=/evals/&csrfmiddlewaretoken=x&ids={a.pk}"
    text = logged_in.get(reverse("evals:export") + query, **HX).content.decode()
    assert 'value="selection" checked' in text and 'value="source=claude-code"' in text
    assert "csrfmiddlewaretoken=x" not in text and "action=status" not in text
