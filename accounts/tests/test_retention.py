"""Retention per workspace: the admin setting on the workspace page and the nightly job."""

import threading
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.urls import reverse
from django.utils import timezone

from accounts import retention
from accounts.models import Workspace
from evals.models import MessageLabel
from evals.tests.factories import MessageLabelFactory
from search.models import DIMENSIONS, Bookmark, MessageChunkEmbedding, SessionEmbedding
from search.tests.factories import BookmarkFactory
from sessions_app import rollups
from sessions_app.models import Message, Part, Session, UsageRollup
from sessions_app.tests.factories import MessageFactory, PartFactory, SessionFactory

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}


def aged_session(workspace, owner, *, days):
    """A session last active `days` ago, with messages, parts, embeddings, a label and bookmarks."""
    session = SessionFactory(owner=owner, workspace=workspace, message_count=2)
    messages = [MessageFactory(session=session, role=role) for role in ("user", "assistant")]
    for message in messages:
        PartFactory.create_batch(2, message=message)
    MessageChunkEmbedding.objects.create(
        workspace=workspace,
        session=session,
        message=messages[0],
        chunk_index=0,
        text_hash="x",
        embedding=[0.1] * DIMENSIONS,
    )
    SessionEmbedding.objects.create(workspace=workspace, session=session, text_hash="x", embedding=[0.1] * DIMENSIONS)
    MessageLabelFactory(message=messages[1])
    BookmarkFactory(session=session)
    BookmarkFactory(session=session, message=messages[0])
    Session.objects.filter(pk=session.pk).update(updated_at=timezone.now() - timedelta(days=days))
    return session


def dependants(session_ids):
    return {
        "messages": Message.objects.filter(session_id__in=session_ids).count(),
        "parts": Part.objects.filter(message__session_id__in=session_ids).count(),
        "chunk_embeddings": MessageChunkEmbedding.objects.filter(session_id__in=session_ids).count(),
        "session_embeddings": SessionEmbedding.objects.filter(session_id__in=session_ids).count(),
        "labels": MessageLabel.objects.filter(session_id__in=session_ids).count(),
        "bookmarks": Bookmark.objects.filter(session_id__in=session_ids).count(),
    }


def set_retention(workspace, days):
    Workspace.objects.filter(pk=workspace.pk).update(retention_days=days)
    workspace.refresh_from_db()


# --- the job ---------------------------------------------------------------------------------


def test_old_sessions_go_with_all_their_dependants_new_ones_stay(team):
    ws = team.workspace
    old = [aged_session(ws, team.member, days=40), aged_session(ws, team.admin, days=31)]
    new = aged_session(ws, team.member, days=29)
    set_retention(ws, 30)

    assert retention.retention_run() == {ws.pk: 2}

    old_ids = [s.pk for s in old]
    assert not Session.objects.filter(pk__in=old_ids).exists()
    assert set(dependants(old_ids).values()) == {0}
    assert Session.objects.filter(pk=new.pk).exists()
    assert all(dependants([new.pk]).values())  # every kind of dependant of the kept one is still there
    # the rollups lost exactly the deleted sessions' share
    assert rollups.stored(ws.pk) == rollups.from_scratch(ws.pk)
    assert rollups.check(ws.pk) == 0
    assert sum(UsageRollup.objects.filter(workspace=ws).values_list("sessions", flat=True)) == 1
    ws.refresh_from_db()
    assert ws.retention_last_removed == 2
    assert ws.retention_last_run_at is not None


def test_other_workspaces_and_workspaces_with_retention_off_are_untouched(team, user):
    set_retention(team.workspace, 30)
    personal = Workspace.objects.get(created_by=user, is_personal=True)
    elsewhere = aged_session(personal, user, days=400)

    assert retention.retention_run() == {team.workspace.pk: 0}

    assert Session.objects.filter(pk=elsewhere.pk).exists()
    personal.refresh_from_db()
    assert personal.retention_last_run_at is None  # off: not even recorded as run


def test_off_by_default_nothing_happens(team):
    old = aged_session(team.workspace, team.member, days=3000)
    assert team.workspace.retention_days is None
    assert retention.retention_run() == {}
    assert Session.objects.filter(pk=old.pk).exists()


def test_second_run_deletes_nothing_more_and_records_zero(team, monkeypatch):
    monkeypatch.setattr(retention, "RETENTION_BATCH_SIZE", 2)  # several batches
    ws = team.workspace
    for days in (50, 60, 70, 80, 90):
        aged_session(ws, team.member, days=days)
    set_retention(ws, 30)

    assert retention.retention_run() == {ws.pk: 5}
    assert retention.retention_run() == {ws.pk: 0}
    ws.refresh_from_db()
    assert ws.retention_last_removed == 0


@pytest.mark.django_db(transaction=True)
def test_a_workspace_locked_by_a_concurrent_claim_is_skipped_not_counted_twice(team):
    ws = team.workspace
    aged_session(ws, team.member, days=90)
    set_retention(ws, 30)
    locked, release = threading.Event(), threading.Event()

    def other_claim():
        # a second run claiming the workspace holds its row in its own connection meanwhile
        try:
            with transaction.atomic():
                Workspace.objects.select_for_update().get(pk=ws.pk)
                locked.set()
                release.wait(10)
        finally:
            connection.close()

    thread = threading.Thread(target=other_claim)
    thread.start()
    assert locked.wait(10)
    assert retention.retention_run() == {}  # skipped without waiting
    release.set()
    thread.join(10)
    assert retention.retention_run() == {ws.pk: 1}
    assert not Session.objects.filter(workspace=ws).exists()


def test_a_workspace_claimed_by_a_running_job_is_skipped_a_stale_claim_is_taken_over(team):
    ws = team.workspace
    old = aged_session(ws, team.member, days=90)
    set_retention(ws, 30)
    Workspace.objects.filter(pk=ws.pk).update(retention_running_since=timezone.now() - timedelta(minutes=5))
    assert retention.retention_run() == {}
    assert Session.objects.filter(pk=old.pk).exists()

    Workspace.objects.filter(pk=ws.pk).update(retention_running_since=timezone.now() - timedelta(hours=3))
    assert retention.retention_run() == {ws.pk: 1}
    ws.refresh_from_db()
    assert ws.retention_running_since is None


def test_a_failed_run_releases_its_claim_and_keeps_finished_batches(team, monkeypatch):
    monkeypatch.setattr(retention, "RETENTION_BATCH_SIZE", 1)
    ws = team.workspace
    first, second = aged_session(ws, team.member, days=90), aged_session(ws, team.member, days=80)
    set_retention(ws, 30)
    real_delete, calls = retention.sessions_delete, []

    def failing_second_batch(*, session_ids):
        calls.append(session_ids)
        if len(calls) == 2:
            raise RuntimeError("database went away")
        return real_delete(session_ids=session_ids)

    monkeypatch.setattr(retention, "sessions_delete", failing_second_batch)
    with pytest.raises(RuntimeError):
        retention.retention_run()
    assert not Session.objects.filter(pk=first.pk).exists()  # its batch was committed
    ws.refresh_from_db()
    assert ws.retention_running_since is None
    assert ws.retention_last_run_at is None

    monkeypatch.setattr(retention, "sessions_delete", real_delete)
    assert retention.retention_run() == {ws.pk: 1}
    assert not Session.objects.filter(pk=second.pk).exists()


def test_the_celery_task_runs_the_job(team, settings):
    from accounts.tasks import retention_run  # noqa: PLC0415 - the task module, imported where it is run

    old = aged_session(team.workspace, team.member, days=90)
    set_retention(team.workspace, 30)
    retention_run.apply()
    assert not Session.objects.filter(pk=old.pk).exists()
    assert "retention-run" in settings.CELERY_BEAT_SCHEDULE_RETENTION


# --- the setting -----------------------------------------------------------------------------


def post_retention(client, workspace, data, **extra):
    return client.post(reverse("accounts:workspace-retention", args=[workspace.slug]), data, **extra)


def test_admin_turns_retention_on_with_confirmation(team, client):
    client.force_login(team.admin)
    response = post_retention(client, team.workspace, {"retention_days": "30", "confirm": "on"}, **HTMX)
    assert response.status_code == 200
    assert "Retention saved." in response.content.decode()
    team.workspace.refresh_from_db()
    assert team.workspace.retention_days == 30


def test_turning_on_without_confirmation_is_a_form_error(team, client):
    client.force_login(team.admin)
    response = post_retention(client, team.workspace, {"retention_days": "30"}, **HTMX)
    assert response.status_code == 422
    assert "deleted for good" in response.content.decode()
    team.workspace.refresh_from_db()
    assert team.workspace.retention_days is None


@pytest.mark.parametrize("days", ["0", "-3", "3651", "soon"])
def test_bad_days_are_a_form_error(team, client, days):
    client.force_login(team.admin)
    response = post_retention(client, team.workspace, {"retention_days": days, "confirm": "on"}, **HTMX)
    assert response.status_code == 422
    assert 'class="form-error"' in response.content.decode()
    team.workspace.refresh_from_db()
    assert team.workspace.retention_days is None


def test_turning_off_or_lengthening_needs_no_confirmation(team, client):
    set_retention(team.workspace, 30)
    client.force_login(team.admin)
    assert post_retention(client, team.workspace, {"retention_days": "60"}, **HTMX).status_code == 200
    team.workspace.refresh_from_db()
    assert team.workspace.retention_days == 60
    assert post_retention(client, team.workspace, {"retention_days": ""}, **HTMX).status_code == 200
    team.workspace.refresh_from_db()
    assert team.workspace.retention_days is None


@pytest.mark.parametrize("persona", ["member", "reviewer", "outsider"])
def test_only_admins_change_it(team, client, persona):
    client.force_login(getattr(team, persona))
    response = post_retention(client, team.workspace, {"retention_days": "30", "confirm": "on"})
    assert response.status_code == 404
    team.workspace.refresh_from_db()
    assert team.workspace.retention_days is None


def test_page_shows_setting_and_last_run_read_only_to_members(team, client):
    aged_session(team.workspace, team.member, days=90)
    set_retention(team.workspace, 30)
    retention.retention_run()
    client.force_login(team.member)
    page = client.get(reverse("accounts:workspace", args=[team.workspace.slug])).content.decode()
    assert "no activity for 30 days are deleted every night" in page
    assert "removed 1 session." in page
    assert "Save retention" not in page  # read-only

    client.force_login(team.admin)
    page = client.get(reverse("accounts:workspace", args=[team.workspace.slug])).content.decode()
    assert "Save retention" in page
    assert "irreversibly" in page
