"""Settings → Data & account: deleting all my data or my account, in batches, with progress."""

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone

from accounts import deletion, services
from accounts.deletion import deletion_job_start
from accounts.models import (
    ApiKey,
    ApiRequestLog,
    DeletionJob,
    DeletionKind,
    DeletionStatus,
    Invitation,
    Membership,
    Role,
    User,
    Workspace,
)
from accounts.services import api_key_create, invitation_create
from accounts.tests.factories import ApiRequestLogFactory, UserFactory, team_with
from sessions_app.models import Message, Part, Session
from sessions_app.tests.factories import MessageFactory, PartFactory, SessionFactory

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}


def session_tree(owner, workspace=None, *, messages=2, parts=2, title="Session"):
    kwargs = {"workspace": workspace} if workspace else {}
    session = SessionFactory(owner=owner, title=title, message_count=messages, **kwargs)
    for _ in range(messages):
        message = MessageFactory(session=session)
        PartFactory.create_batch(parts, message=message)
    return session


def log_request(api_key, n=1):
    ApiRequestLogFactory.create_batch(n, api_key=api_key)


def rows_of(user_id) -> dict:
    return {
        "sessions": Session.objects.filter(owner_id=user_id).count(),
        "messages": Message.objects.filter(session__owner_id=user_id).count(),
        "parts": Part.objects.filter(message__session__owner_id=user_id).count(),
        "request_logs": ApiRequestLog.objects.filter(user_id=user_id).count(),
    }


@pytest.fixture
def world(user, other_user, personal_workspace):
    """My data in my personal and a shared team workspace, and someone else's data next to it."""
    team = team_with(other_user, name="Their team", member=user)  # other_user is its admin
    session_tree(user, title="mine-personal")
    session_tree(user, team, title="mine-in-team")
    session_tree(user, messages=0, title="mine-empty")
    my_key, _ = api_key_create(user=user, workspace=personal_workspace, name="laptop")
    log_request(my_key, 3)

    other_ws = Workspace.objects.get(created_by=other_user, is_personal=True)
    session_tree(other_user, title="theirs-personal")
    session_tree(other_user, team, title="theirs-in-team")
    their_key, _ = api_key_create(user=other_user, workspace=other_ws, name="theirs")
    log_request(their_key, 4)
    return {"team": team, "my_key": my_key, "their_key": their_key, "before_other": rows_of(other_user.pk)}


# --- pages and confirmations ------------------------------------------------------------------


def test_data_page_offers_both_deletions(logged_in):
    page = logged_in.get(reverse("accounts:data")).content.decode()
    assert f'hx-get="{reverse("accounts:delete-data")}" hx-target="#modal"' in page
    assert f'hx-get="{reverse("accounts:delete-account")}" hx-target="#modal"' in page
    assert 'id="deletion-progress"' in page
    assert 'hx-trigger="every 1s"' not in page


@pytest.mark.parametrize("name", ["delete-data", "delete-account"])
def test_confirmation_is_a_dialog_for_htmx_and_a_page_without_js(logged_in, name):
    fragment = logged_in.get(reverse(f"accounts:{name}"), **HTMX).content.decode()
    assert fragment.lstrip().startswith("<dialog")
    assert "<html" not in fragment
    assert "data-close-dialog" in fragment
    assert 'name="csrfmiddlewaretoken"' in fragment

    page = logged_in.get(reverse(f"accounts:{name}")).content.decode()
    assert "<html" in page and "<dialog" not in page
    assert f'action="{reverse(f"accounts:{name}")}"' in page
    assert f'href="{reverse("accounts:data")}"' in page  # Cancel is a link without JS


def test_delete_account_confirmation_asks_for_the_email(logged_in, user):
    page = logged_in.get(reverse("accounts:delete-account")).content.decode()
    assert '<label for="id_email">' in page and 'id="id_email"' in page
    assert user.email in page


# --- delete all my data -----------------------------------------------------------------------


def test_delete_my_data_removes_everything_of_mine_and_nothing_else(
    logged_in, user, other_user, world, django_capture_on_commit_callbacks
):
    assert rows_of(user.pk) == {"sessions": 3, "messages": 4, "parts": 8, "request_logs": 3}
    with django_capture_on_commit_callbacks(execute=True):
        response = logged_in.post(reverse("accounts:delete-data"))
    assert response.status_code == 302 and response.url == reverse("accounts:data")

    assert rows_of(user.pk) == {"sessions": 0, "messages": 0, "parts": 0, "request_logs": 0}
    assert rows_of(other_user.pk) == world["before_other"]
    assert Session.objects.filter(title="theirs-in-team").exists()
    # The account, its workspaces, memberships and keys stay.
    user.refresh_from_db()
    assert user.is_active
    assert ApiKey.objects.filter(pk=world["my_key"].pk, revoked_at__isnull=True).exists()
    assert Membership.objects.filter(user=user, workspace=world["team"]).exists()

    job = DeletionJob.objects.get(user=user)
    assert job.kind == DeletionKind.DATA and job.status == DeletionStatus.DONE
    assert job.counts == {"sessions": 3, "messages": 4, "parts": 8, "request_logs": 3}
    assert job.totals == {"sessions": 3, "messages": 4, "request_logs": 3}
    assert job.percent == 100 and job.finished_at is not None and job.email == user.email

    page = logged_in.get(reverse("accounts:data")).content.decode()
    assert "Done" in page and 'hx-trigger="every 1s"' not in page


def test_delete_my_data_with_htmx_swaps_progress_out_of_band(logged_in, user, world):
    # on_commit callbacks don't run here: the job stays pending, as right after the request.
    response = logged_in.post(reverse("accounts:delete-data"), **HTMX)
    assert response.status_code == 200
    page = response.content.decode()
    assert "<html" not in page and "<dialog" not in page
    job = DeletionJob.objects.get(user=user)
    assert 'id="deletion-progress"' in page and 'hx-swap-oob="true"' in page
    assert f'hx-get="{reverse("accounts:deletion-progress", args=[job.token])}" hx-trigger="every 1s"' in page


def test_a_second_request_shows_the_running_job_instead_of_starting_another(logged_in, user, world):
    logged_in.post(reverse("accounts:delete-data"))
    job = DeletionJob.objects.get(user=user)
    assert job.status == DeletionStatus.PENDING
    response = logged_in.post(reverse("accounts:delete-data"))
    assert response.status_code == 302
    assert DeletionJob.objects.filter(user=user).count() == 1
    page = logged_in.get(reverse("accounts:data")).content.decode()
    assert "already running" in page
    assert 'hx-trigger="every 1s"' in page
    assert '<noscript><meta http-equiv="refresh" content="2"></noscript>' in page
    # Account deletion is refused while the data deletion runs.
    response = logged_in.post(reverse("accounts:delete-account"), {"email": user.email})
    assert response.status_code == 200 and "being deleted right now" in response.content.decode()
    assert DeletionJob.objects.filter(user=user).count() == 1
    user.refresh_from_db()
    assert user.is_active


def test_the_database_allows_one_active_job_per_user(user):
    from django.db import IntegrityError, transaction

    DeletionJob.objects.create(user=user, email=user.email, kind="data", token="a")
    with pytest.raises(IntegrityError), transaction.atomic():
        DeletionJob.objects.create(user=user, email=user.email, kind="data", token="b")
    DeletionJob.objects.filter(token="a").update(status=DeletionStatus.DONE)
    DeletionJob.objects.create(user=user, email=user.email, kind="data", token="c")


def test_deletion_runs_in_batches(user, personal_workspace, monkeypatch, django_capture_on_commit_callbacks):
    monkeypatch.setattr(deletion, "DELETION_BATCH_SIZE", 2)
    monkeypatch.setattr(deletion, "REQUEST_LOG_BATCH_SIZE", 3)
    for n in range(5):
        session_tree(user, messages=1, parts=1, title=f"s{n}")
    key, _ = api_key_create(user=user, workspace=personal_workspace, name="k")
    log_request(key, 7)
    progress = []
    original = deletion._save_progress

    def spy(job, **fields):
        progress.append(dict(job.counts))
        original(job, **fields)

    monkeypatch.setattr(deletion, "_save_progress", spy)
    with django_capture_on_commit_callbacks(execute=True):
        job, created = deletion_job_start(user=user, kind=DeletionKind.DATA)
    assert created
    job.refresh_from_db()
    assert job.status == DeletionStatus.DONE
    assert job.counts == {"sessions": 5, "messages": 5, "parts": 5, "request_logs": 7}
    session_steps = [c["sessions"] for c in progress if "sessions" in c and "request_logs" not in c]
    assert session_steps == [2, 4, 5]
    assert [c["request_logs"] for c in progress if "request_logs" in c][:3] == [3, 6, 7]


def test_a_job_is_claimed_once(user):
    job, _ = deletion_job_start(user=user, kind=DeletionKind.DATA)
    DeletionJob.objects.filter(pk=job.pk).update(status=DeletionStatus.RUNNING)
    assert deletion.deletion_job_run(job_id=job.pk) is None  # another worker has it
    assert deletion.deletion_job_run(job_id=0) is None  # gone
    # A running job that stopped moving lost its worker: it can be resumed.
    DeletionJob.objects.filter(pk=job.pk).update(updated_at=timezone.now() - timedelta(hours=1))
    assert deletion.deletion_job_run(job_id=job.pk).status == DeletionStatus.DONE


def test_a_failing_job_is_marked_failed_and_can_be_resumed(user, monkeypatch, django_capture_on_commit_callbacks):
    session_tree(user)

    def boom(job):
        raise RuntimeError("database went away at /secret/path")

    monkeypatch.setattr(deletion, "_delete_request_logs", boom)
    with django_capture_on_commit_callbacks(execute=True):
        job, _ = deletion_job_start(user=user, kind=DeletionKind.DATA)
    job.refresh_from_db()
    assert job.status == DeletionStatus.FAILED and "went away" in job.error
    assert job.counts["sessions"] == 1

    monkeypatch.undo()
    with django_capture_on_commit_callbacks(execute=True):
        again, created = deletion_job_start(user=user, kind=DeletionKind.DATA)
    assert created
    again.refresh_from_db()
    assert again.status == DeletionStatus.DONE


# --- public progress page -------------------------------------------------------------------


def test_progress_page_is_public_and_shows_only_status_and_counts(client, user, world, monkeypatch):
    monkeypatch.setattr(deletion, "_delete_request_logs", lambda job: (_ for _ in ()).throw(RuntimeError("/secret")))
    job, _ = deletion_job_start(user=user, kind=DeletionKind.DATA)
    deletion.deletion_job_run(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == DeletionStatus.FAILED

    response = client.get(reverse("accounts:deletion-progress", args=[job.token]))
    assert response.status_code == 200
    page = response.content.decode()
    assert "Failed" in page and "Sessions" in page
    for secret in (user.email, "mine-personal", "/secret", world["my_key"].prefix, "Their team"):
        assert secret not in page
    assert '<meta name="robots" content="noindex">' in page


def test_progress_fragment_polls_while_running_and_stops_when_done(client, user):
    job, _ = deletion_job_start(user=user, kind=DeletionKind.DATA)
    url = reverse("accounts:deletion-progress", args=[job.token])
    fragment = client.get(url, **HTMX).content.decode()
    assert "<html" not in fragment
    assert fragment.lstrip().startswith('<section id="deletion-progress"')
    assert 'hx-trigger="every 1s"' in fragment
    assert "<noscript><meta" in client.get(url).content.decode()

    deletion.deletion_job_run(job_id=job.pk)
    fragment = client.get(url, **HTMX).content.decode()
    assert "hx-trigger" not in fragment and "Done" in fragment
    assert "<noscript><meta" not in client.get(url).content.decode()


def test_unknown_progress_token_is_404(client, db):
    assert client.get(reverse("accounts:deletion-progress", args=["nope"])).status_code == 404


# --- delete account -------------------------------------------------------------------------


@pytest.mark.parametrize("email", ["", "someone@example.com", "user"])
@pytest.mark.parametrize(("extra", "status"), [({}, 200), (HTMX, 422)])
def test_delete_account_requires_my_exact_email(logged_in, user, email, extra, status):
    response = logged_in.post(reverse("accounts:delete-account"), {"email": email}, **extra)
    assert response.status_code == status
    page = response.content.decode()
    assert 'class="form-error" role="alert"' in page
    assert ("<html" in page) == (not extra)
    if extra:
        assert page.lstrip().startswith("<dialog")
    user.refresh_from_db()
    assert user.is_active and not DeletionJob.objects.exists()


def test_delete_account_removes_the_user_and_everything_they_own(
    logged_in, user, other_user, world, personal_workspace, django_capture_on_commit_callbacks
):
    solo = team_with(user, name="Just me")
    session_tree(user, solo, title="mine-solo")
    shared = team_with(user, name="Shared", admin=other_user)  # user is admin, but not the last one
    invitation_create(actor=user, workspace=shared, email="x@example.com", role=Role.MEMBER, accept_url_builder=str)
    user_pk, email = user.pk, user.email

    with django_capture_on_commit_callbacks(execute=True):
        response = logged_in.post(reverse("accounts:delete-account"), {"email": email.upper()})
    job = DeletionJob.objects.get(email=email)
    assert response.status_code == 302
    assert response.url == reverse("accounts:deletion-progress", args=[job.token])

    assert not User.objects.filter(pk=user_pk).exists()
    assert rows_of(user_pk) == {"sessions": 0, "messages": 0, "parts": 0, "request_logs": 0}
    assert not ApiKey.objects.filter(user_id=user_pk).exists()
    assert not Membership.objects.filter(user_id=user_pk).exists()
    assert not Invitation.objects.filter(email="x@example.com").exists()
    assert not Workspace.objects.filter(pk__in=[personal_workspace.pk, solo.pk]).exists()
    # Workspaces other people use stay, with their data.
    assert Workspace.objects.filter(pk__in=[shared.pk, world["team"].pk]).count() == 2
    assert rows_of(other_user.pk) == world["before_other"]

    assert job.user is None and job.kind == DeletionKind.ACCOUNT and job.status == DeletionStatus.DONE
    assert job.counts == {
        "sessions": 4,
        "messages": 6,
        "parts": 12,
        "request_logs": 3,
        "api_keys": 1,
        "invitations": 1,
        "workspaces": 2,
        "memberships": 4,  # personal, solo, shared and the other team
    }
    # Logged out: the settings pages ask to log in; the progress page still answers.
    assert logged_in.get(reverse("accounts:settings")).status_code == 302
    page = logged_in.get(response.url).content.decode()
    assert "Done" in page and email not in page


def test_delete_account_disables_the_user_at_once(logged_in, user, sync_key):
    response = logged_in.post(reverse("accounts:delete-account"), {"email": user.email}, **HTMX)
    job = DeletionJob.objects.get(email=user.email)
    assert response.status_code == 200
    assert response["HX-Redirect"] == reverse("accounts:deletion-progress", args=[job.token])
    assert job.status == DeletionStatus.PENDING  # the task runs after commit
    user.refresh_from_db()
    assert not user.is_active
    assert logged_in.get(reverse("accounts:settings")).status_code == 302
    from django.test import Client

    api = Client(HTTP_AUTHORIZATION=f"Bearer {sync_key}")
    assert api.post("/sync/session", {"externalId": "x"}, content_type="application/json").status_code == 401


def test_last_admin_of_a_used_team_cannot_delete_the_account(logged_in, user, other_user):
    team = team_with(user, name="Platform team", member=other_user)
    page = logged_in.get(reverse("accounts:data")).content.decode()
    assert "only admin of" in page and "Platform team" in page

    response = logged_in.post(reverse("accounts:delete-account"), {"email": user.email})
    assert response.status_code == 200
    page = response.content.decode()
    assert 'class="form-error" role="alert"' in page and "Make someone else admin" in page
    user.refresh_from_db()
    assert user.is_active and not DeletionJob.objects.exists()

    # Promoting the other member lifts the block.
    Membership.objects.filter(user=other_user, workspace=team).update(role=Role.ADMIN)
    response = logged_in.post(reverse("accounts:delete-account"), {"email": user.email})
    assert response.status_code == 302


def test_account_job_that_became_blocked_gives_the_account_back(user, other_user):
    job, _ = deletion_job_start(user=user, kind=DeletionKind.ACCOUNT)
    team_with(user, name="Late team", member=other_user)
    deletion.deletion_job_run(job_id=job.pk)
    job.refresh_from_db()
    user.refresh_from_db()
    assert job.status == DeletionStatus.FAILED and "admin" in job.error
    assert user.is_active


def test_deletion_job_admin_is_read_only(client, user):
    admin = User.objects.create_superuser(email="root@example.com")
    client.force_login(admin)
    job, _ = deletion_job_start(user=user, kind=DeletionKind.DATA)
    assert client.get(reverse("admin:accounts_deletionjob_changelist")).status_code == 200
    page = client.get(reverse("admin:accounts_deletionjob_change", args=[job.pk])).content.decode()
    assert job.token not in page and 'name="_save"' not in page
    assert client.get(reverse("admin:accounts_deletionjob_add")).status_code == 403


def test_other_users_jobs_are_not_shown_on_my_data_page(logged_in, other_user):
    deletion_job_start(user=other_user, kind=DeletionKind.DATA)
    page = logged_in.get(reverse("accounts:data")).content.decode()
    assert 'hx-trigger="every 1s"' not in page


def test_account_deletion_leaves_bystanders_alone(user):
    bystander = UserFactory()
    session_tree(bystander)
    job, _ = deletion_job_start(user=user, kind=DeletionKind.ACCOUNT)
    deletion.deletion_job_run(job_id=job.pk)
    assert rows_of(bystander.pk)["sessions"] == 1 and User.objects.filter(pk=bystander.pk).exists()


def test_a_failed_batch_is_not_counted(user, monkeypatch):
    session_tree(user)
    session_tree(user)
    monkeypatch.setattr(deletion, "DELETION_BATCH_SIZE", 1)
    calls = []
    original = deletion._save_progress

    def fail_on_second_batch(job, **fields):
        calls.append(1)
        if len(calls) == 3:  # totals, first batch, then the second batch fails before commit
            raise RuntimeError("boom")
        original(job, **fields)

    monkeypatch.setattr(deletion, "_save_progress", fail_on_second_batch)
    job, _ = deletion_job_start(user=user, kind=DeletionKind.DATA)
    deletion.deletion_job_run(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == DeletionStatus.FAILED
    assert job.counts == {"sessions": 1, "messages": 2, "parts": 4}
    assert Session.objects.filter(owner=user).count() == 1


# Links to a user that deliberately survive the user: they keep other people's rows (a team
# workspace someone created, an invitation someone sent) or the job's own record.
USER_LINKS_KEPT = {
    "accounts.Workspace.created_by",
    "accounts.Invitation.invited_by",
    "accounts.Invitation.accepted_by",
    "accounts.DeletionJob.user",
    # who reviewed a team's session: the review stays the team's, without the name
    "sessions_app.Session.reviewed_by",
    "evals.ReviewEvent.actor",
    "evals.MessageLabel.labeled_by",
    # who set a price or started a re-pricing: the workspace's prices stay, without the name
    "sessions_app.PriceOverride.created_by",
    "sessions_app.RepricingJob.created_by",
}


def test_every_link_to_a_session_or_user_cascades():
    """Guard for future models: deleting data and accounts relies on CASCADE (no PROTECT, no orphans)."""
    from django.apps import apps
    from django.db.models import CASCADE

    for app_label in ("accounts", "sessions_app", "search", "evals"):
        for model in apps.get_app_config(app_label).get_models():
            for field in model._meta.concrete_fields:
                if not field.many_to_one and not field.one_to_one:
                    continue
                name = f"{model._meta.label}.{field.name}"
                must_cascade = field.related_model is Session or (
                    field.related_model is User and name not in USER_LINKS_KEPT
                )
                if must_cascade:
                    assert field.remote_field.on_delete is CASCADE, name


# --- review fixes: races, stuck jobs, leftovers --------------------------------------------------


def test_the_other_admin_cannot_leave_while_my_account_is_being_deleted(team):
    """The last-admin guard counts active admins only, so a pending account deletion (the user
    is disabled at once) can't leave a team without an admin."""
    job, _ = deletion_job_start(user=team.owner, kind=DeletionKind.ACCOUNT)  # allowed: team.admin is admin
    leaving = Membership.objects.get(user=team.admin, workspace=team.workspace)
    with pytest.raises(ValidationError):
        services.membership_remove(actor=team.admin, membership=leaving)
    deletion.deletion_job_run(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == DeletionStatus.DONE
    assert list(team.workspace.memberships.filter(role=Role.ADMIN).values_list("user", flat=True)) == [team.admin.pk]


def test_job_fails_if_the_team_lost_its_other_admin_meanwhile(team):
    job, _ = deletion_job_start(user=team.owner, kind=DeletionKind.ACCOUNT)
    Membership.objects.filter(user=team.admin, workspace=team.workspace).delete()  # e.g. removed in the admin site
    deletion.deletion_job_run(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == DeletionStatus.FAILED and "admin" in job.error
    assert team.workspace.memberships.filter(user=team.owner, role=Role.ADMIN).exists()  # the team keeps an admin


def test_unreachable_broker_fails_the_job_with_a_reason(user, monkeypatch, django_capture_on_commit_callbacks):
    from accounts import tasks

    def down(*args, **kwargs):
        raise ConnectionError("broker down")

    monkeypatch.setattr(tasks.deletion_job_run_task, "delay", down)
    with django_capture_on_commit_callbacks(execute=True):
        job, _ = deletion_job_start(user=user, kind=DeletionKind.ACCOUNT)
    job.refresh_from_db()
    user.refresh_from_db()
    assert job.status == DeletionStatus.FAILED and "task queue is unavailable" in job.error
    assert user.is_active  # nothing was deleted: the account is given back


def test_admin_runs_a_failed_job_again(client, user, monkeypatch, django_capture_on_commit_callbacks):
    session_tree(user)
    monkeypatch.setattr(deletion, "_delete_request_logs", lambda job: (_ for _ in ()).throw(RuntimeError("x")))
    with django_capture_on_commit_callbacks(execute=True):
        job, _ = deletion_job_start(user=user, kind=DeletionKind.ACCOUNT)
    job.refresh_from_db()
    assert job.status == DeletionStatus.FAILED
    user.refresh_from_db()
    assert not user.is_active  # something was deleted: stays disabled until the job finishes
    monkeypatch.undo()

    admin = User.objects.create_superuser(email="root@example.com")
    client.force_login(admin)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("admin:accounts_deletionjob_changelist"),
            {"action": "run_again", "_selected_action": [job.pk]},
            follow=True,
        )
    assert "Queued 1 job(s) again" in response.content.decode()
    job.refresh_from_db()
    assert job.status == DeletionStatus.DONE and not User.objects.filter(pk=user.pk).exists()


def test_account_deletion_removes_invitations_addressed_to_me(user, other_user, django_capture_on_commit_callbacks):
    team = team_with(other_user, name="Their team")
    Invitation.objects.create(
        workspace=team,
        email=user.email.upper(),
        role=Role.MEMBER,
        invited_by=other_user,
        token_hash="x" * 64,
        expires_at=timezone.now() + timedelta(days=7),
    )
    with django_capture_on_commit_callbacks(execute=True):
        deletion_job_start(user=user, kind=DeletionKind.ACCOUNT)
    assert not Invitation.objects.filter(email__iexact=user.email).exists()
