"""The Django admin: every page loads, the actions work, and API key hashes stay out of reach."""

from datetime import timedelta

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.urls import reverse
from django.utils import timezone

from accounts.models import ApiKey, ApiRequestLog, Invitation, Membership, Role, User, Workspace, hash_api_key
from accounts.services import api_key_create, invitation_create
from accounts.tests.factories import MembershipFactory, UserFactory, team_with
from sessions_app.models import Message, Part, Session

pytestmark = pytest.mark.django_db

STRONG_PHRASE = "a-Long-unusual-passphrase-42"


@pytest.fixture
def admin_user(db):
    return User.objects.create_superuser(email="root@example.com")


@pytest.fixture
def admin_client(client, admin_user):
    client.force_login(admin_user)
    return client


@pytest.fixture
def objects(user, other_user, personal_workspace):
    """One row of every model the admin shows."""
    team = team_with(user, name="Platform team")
    membership = MembershipFactory(user=other_user, workspace=team, role=Role.MEMBER)
    invitation, _ = invitation_create(
        actor=user,
        workspace=team,
        email="invitee@example.com",
        role=Role.REVIEWER,
        accept_url_builder=lambda t: t,
    )
    api_key, _ = api_key_create(user=user, workspace=personal_workspace, name="laptop")
    log = ApiRequestLog.objects.create(
        api_key=api_key,
        user=user,
        workspace=personal_workspace,
        method="POST",
        endpoint="/sync/session",
        status_code=200,
        latency_ms=12,
    )
    session = Session.objects.create(
        workspace=personal_workspace,
        owner=user,
        external_id="s-1",
        title="Fix the build",
        is_public=True,
        share_slug="shared-slug-1",
    )
    message = Message.objects.create(session=session, external_id="m-1", role="user", text_content="hello")
    part = Part.objects.create(message=message, type="tool-call", content={"name": "bash"}, order=0)
    return {
        "user": user,
        "workspace": team,
        "membership": membership,
        "invitation": invitation,
        "apikey": api_key,
        "apirequestlog": log,
        "session": session,
        "message": message,
        "part": part,
    }


MODELS = [
    ("accounts", "user"),
    ("accounts", "workspace"),
    ("accounts", "membership"),
    ("accounts", "invitation"),
    ("accounts", "apikey"),
    ("accounts", "apirequestlog"),
    ("sessions_app", "session"),
    ("sessions_app", "message"),
    ("sessions_app", "part"),
]


def run_action(client, app, model, action, pks):
    data = {"action": action, ACTION_CHECKBOX_NAME: [str(pk) for pk in pks]}
    return client.post(reverse(f"admin:{app}_{model}_changelist"), data)


# --- every page -----------------------------------------------------------------------------


def test_admin_index_loads(admin_client, objects):
    assert admin_client.get(reverse("admin:index")).status_code == 200


@pytest.mark.parametrize(("app", "model"), MODELS)
def test_changelist_loads(admin_client, objects, app, model):
    response = admin_client.get(reverse(f"admin:{app}_{model}_changelist"))
    assert response.status_code == 200
    assert response.context["cl"].result_count >= 1


@pytest.mark.parametrize(("app", "model"), MODELS)
def test_changelist_search_loads(admin_client, objects, app, model):
    response = admin_client.get(reverse(f"admin:{app}_{model}_changelist"), {"q": "example"})
    assert response.status_code == 200


@pytest.mark.parametrize(("app", "model"), MODELS)
def test_change_page_loads(admin_client, objects, app, model):
    obj = objects[model]
    response = admin_client.get(reverse(f"admin:{app}_{model}_change", args=[obj.pk]))
    assert response.status_code == 200


def test_message_change_page_shows_parts_read_only(admin_client, objects):
    response = admin_client.get(reverse("admin:sessions_app_message_change", args=[objects["message"].pk]))
    assert response.status_code == 200
    assert "tool-call" in response.content.decode()
    assert 'name="parts-0-type"' not in response.content.decode()


def test_workspace_change_page_has_membership_inline(admin_client, objects):
    response = admin_client.get(reverse("admin:accounts_workspace_change", args=[objects["workspace"].pk]))
    assert 'name="memberships-TOTAL_FORMS"' in response.content.decode()


def test_staff_without_superuser_cannot_open_admin_pages(client, user, objects):
    user.is_staff = True
    user.save(update_fields=["is_staff"])
    client.force_login(user)
    response = client.get(reverse("admin:accounts_apikey_changelist"))
    assert response.status_code == 403


# --- actions --------------------------------------------------------------------------------


def test_revoke_api_keys_action(admin_client, objects, personal_workspace):
    key = objects["apikey"]
    untouched, _ = api_key_create(user=objects["user"], workspace=personal_workspace, name="b")
    response = run_action(admin_client, "accounts", "apikey", "revoke_keys", [key.pk])
    assert response.status_code == 302
    key.refresh_from_db()
    untouched.refresh_from_db()
    assert key.revoked_at is not None
    assert untouched.revoked_at is None


def test_revoke_api_keys_action_keeps_first_revocation_time(admin_client, objects):
    key = objects["apikey"]
    earlier = timezone.now() - timedelta(days=3)
    ApiKey.objects.filter(pk=key.pk).update(revoked_at=earlier)
    run_action(admin_client, "accounts", "apikey", "revoke_keys", [key.pk])
    key.refresh_from_db()
    assert key.revoked_at == earlier


def test_deactivate_users_action(admin_client, admin_user, objects, other_user):
    selected = [other_user.pk, admin_user.pk]
    response = run_action(admin_client, "accounts", "user", "deactivate_users", selected)
    assert response.status_code == 302
    other_user.refresh_from_db()
    admin_user.refresh_from_db()
    assert other_user.is_active is False
    # The admin never locks themselves out by selecting their own row.
    assert admin_user.is_active is True


def test_deactivated_users_keys_stop_working(admin_client, objects, other_user):
    other_ws = Workspace.objects.get(created_by=other_user, is_personal=True)
    _, raw = api_key_create(user=other_user, workspace=other_ws, name="theirs")
    run_action(admin_client, "accounts", "user", "deactivate_users", [other_user.pk])
    admin_client.logout()
    response = admin_client.post(
        "/sync/session",
        data={"externalId": "s-x"},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {raw}",
    )
    assert response.status_code == 401


def test_make_sessions_private_action(admin_client, objects, user, personal_workspace):
    session = objects["session"]
    other = Session.objects.create(
        workspace=personal_workspace, owner=user, external_id="s-2", is_public=True, share_slug="keep-me"
    )
    response = run_action(admin_client, "sessions_app", "session", "make_private", [session.pk])
    assert response.status_code == 302
    session.refresh_from_db()
    other.refresh_from_db()
    assert (session.is_public, session.share_slug) == (False, None)
    assert (other.is_public, other.share_slug) == (True, "keep-me")


def test_revoke_invitations_action(admin_client, objects):
    invitation = objects["invitation"]
    run_action(admin_client, "accounts", "invitation", "revoke_invitations", [invitation.pk])
    invitation.refresh_from_db()
    assert invitation.revoked_at is not None


# --- API keys: no add, no hash edits --------------------------------------------------------


def test_api_key_add_is_forbidden(admin_client, objects, user, personal_workspace):
    url = reverse("admin:accounts_apikey_add")
    assert admin_client.get(url).status_code == 403
    response = admin_client.post(
        url,
        {
            "name": "chosen",
            "scope": "sync",
            "user": user.pk,
            "workspace": personal_workspace.pk,
            "key_hash": "0" * 64,
        },
    )
    assert response.status_code == 403
    assert not ApiKey.objects.filter(key_hash="0" * 64).exists()


def test_api_key_changelist_has_no_add_button(admin_client, objects):
    response = admin_client.get(reverse("admin:accounts_apikey_changelist"))
    assert reverse("admin:accounts_apikey_add") not in response.content.decode()


def test_api_key_hash_is_not_editable(admin_client, objects):
    key = objects["apikey"]
    original_hash = key.key_hash
    url = reverse("admin:accounts_apikey_change", args=[key.pk])
    page = admin_client.get(url).content.decode()
    assert 'name="key_hash"' not in page
    assert 'name="user"' not in page and 'name="workspace"' not in page

    response = admin_client.post(
        url,
        {
            "name": "renamed",
            "scope": "read",
            "revoked_at_0": "",
            "revoked_at_1": "",
            "key_hash": hash_api_key("osk_chosen_by_admin"),
            "_save": "Save",
        },
    )
    assert response.status_code == 302, response.content
    key.refresh_from_db()
    assert key.name == "renamed" and key.scope == "read"
    assert key.key_hash == original_hash


def test_invitation_add_is_forbidden(admin_client, objects):
    assert admin_client.get(reverse("admin:accounts_invitation_add")).status_code == 403


def test_request_log_is_view_only(admin_client, objects):
    log = objects["apirequestlog"]
    url = reverse("admin:accounts_apirequestlog_change", args=[log.pk])
    response = admin_client.post(url, {"endpoint": "/tampered", "status_code": 500})
    assert response.status_code == 403
    log.refresh_from_db()
    assert log.endpoint == "/sync/session"


# --- users ----------------------------------------------------------------------------------


def test_user_add_form_creates_user_with_personal_workspace(admin_client):
    response = admin_client.post(
        reverse("admin:accounts_user_add"),
        {
            "email": "New.Person@Example.com",
            "name": "New Person",
            "usable_password": "true",
            "password1": STRONG_PHRASE,
            "password2": STRONG_PHRASE,
            "_save": "Save",
        },
    )
    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else ""
    created = User.objects.get(email="new.person@example.com")
    assert created.check_password(STRONG_PHRASE)
    assert created.name == "New Person"
    workspace = Workspace.objects.get(created_by=created, is_personal=True)
    assert Membership.objects.get(user=created, workspace=workspace).role == Role.ADMIN


def test_user_add_form_without_password_gives_unusable_password(admin_client):
    response = admin_client.post(
        reverse("admin:accounts_user_add"),
        {"email": "nopass@example.com", "usable_password": "false", "_save": "Save"},
    )
    assert response.status_code == 302
    created = User.objects.get(email="nopass@example.com")
    assert not created.has_usable_password()
    assert Workspace.objects.filter(created_by=created, is_personal=True).exists()


def test_user_add_form_rejects_duplicate_email_in_any_case(admin_client, user):
    response = admin_client.post(
        reverse("admin:accounts_user_add"),
        {"email": user.email.upper(), "usable_password": "false", "_save": "Save"},
    )
    assert response.status_code == 200
    assert "already exists" in response.content.decode()
    assert User.objects.filter(email__iexact=user.email).count() == 1


def test_user_change_form_saves(admin_client, objects):
    target = UserFactory()
    url = reverse("admin:accounts_user_change", args=[target.pk])
    personal = Workspace.objects.get(created_by=target, is_personal=True)
    membership = Membership.objects.get(user=target, workspace=personal)
    response = admin_client.post(
        url,
        {
            "email": target.email,
            "name": "Renamed",
            "is_active": "on",
            "last_login_0": "",
            "last_login_1": "",
            "memberships-TOTAL_FORMS": "1",
            "memberships-INITIAL_FORMS": "1",
            "memberships-MIN_NUM_FORMS": "0",
            "memberships-MAX_NUM_FORMS": "1000",
            "memberships-0-id": membership.pk,
            "memberships-0-user": target.pk,
            "memberships-0-workspace": personal.pk,
            "memberships-0-role": Role.ADMIN,
            "memberships-0-created_at_0": membership.created_at.strftime("%Y-%m-%d"),
            "memberships-0-created_at_1": membership.created_at.strftime("%H:%M:%S"),
            "_save": "Save",
        },
    )
    assert response.status_code == 302, response.content
    target.refresh_from_db()
    assert target.name == "Renamed"
    assert target.is_active and not target.is_staff


def test_invitation_status_column(admin_client, objects):
    yesterday = timezone.now() - timedelta(days=1)
    Invitation.objects.filter(pk=objects["invitation"].pk).update(expires_at=yesterday)
    response = admin_client.get(reverse("admin:accounts_invitation_changelist"))
    assert "expired" in response.content.decode()


def test_session_page_links_to_its_messages(admin_client, objects, user, personal_workspace):
    session = objects["session"]
    other = Session.objects.create(workspace=personal_workspace, owner=user, external_id="s-other")
    Message.objects.create(session=other, external_id="m-other", role="user", text_content="elsewhere")
    page = admin_client.get(reverse("admin:sessions_app_session_change", args=[session.pk])).content.decode()
    link = reverse("admin:sessions_app_message_changelist") + f"?session__id__exact={session.pk}"
    assert f'href="{link}"' in page
    response = admin_client.get(link)
    assert response.status_code == 200
    assert list(response.context["cl"].result_list) == [objects["message"]]
