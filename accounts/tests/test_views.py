"""Browser pages for API keys and workspaces: owner, member and outsider cases, HTMX fragments, CSRF."""

import hashlib
import re
from datetime import timedelta

import pytest
from django.core import mail
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape

from accounts.models import ApiKey, Invitation, Membership, Role, Workspace
from accounts.selectors import CURRENT_WORKSPACE_SESSION_KEY
from accounts.services import api_key_create, invitation_create
from accounts.tests.factories import MembershipFactory, UserFactory, team_with

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}
NEW_KEY = re.compile(r'<code id="new-key">(osk_[A-Za-z0-9_-]+)</code>')


@pytest.fixture
def member(team_as_admin, other_user):
    """`other_user` as a plain member of `team_as_admin`."""
    return MembershipFactory(user=other_user, workspace=team_as_admin, role=Role.MEMBER)


def admin_membership(user, workspace) -> Membership:
    return Membership.objects.get(user=user, workspace=workspace)


def assert_redirects_to_login(response):
    assert response.status_code == 302
    assert response.url.startswith(reverse("account_login"))


# --- API keys -------------------------------------------------------------------------------


def test_api_keys_page_needs_login(client, db):
    assert_redirects_to_login(client.get(reverse("accounts:api-keys")))
    assert_redirects_to_login(client.post(reverse("accounts:api-keys"), {"name": "x"}))


def test_api_keys_page_lists_only_my_keys(logged_in, user, other_user, personal_workspace):
    api_key_create(user=user, workspace=personal_workspace, name="my-laptop-key")
    other_ws = Workspace.objects.get(created_by=other_user, is_personal=True)
    api_key_create(user=other_user, workspace=other_ws, name="someone-elses-key")
    response = logged_in.get(reverse("accounts:api-keys"))
    assert response.status_code == 200
    page = response.content.decode()
    assert "my-laptop-key" in page
    assert "someone-elses-key" not in page


def test_create_key_with_htmx_returns_fragment_and_shows_raw_key_once(logged_in, user, personal_workspace):
    response = logged_in.post(
        reverse("accounts:api-keys"),
        {"name": "work laptop", "workspace": personal_workspace.pk, "scope": "sync"},
        **HTMX,
    )
    assert response.status_code == 200
    page = response.content.decode()
    assert page.lstrip().startswith('<div id="keys-panel">')
    assert "<html" not in page
    raw = NEW_KEY.search(page).group(1)
    assert raw.startswith("osk_")
    assert len(raw) >= len("osk_") + 32
    assert re.fullmatch(r"osk_[A-Za-z0-9_-]{32,}", raw)

    key = ApiKey.objects.get(user=user, name="work laptop")
    assert key.workspace == personal_workspace
    assert key.scope == "sync"
    assert key.key_hash == hashlib.sha256(raw.encode()).hexdigest()
    # Only the hash and a short prefix are stored: the raw key is in no column of the row.
    row = ApiKey.objects.filter(pk=key.pk).values().get()
    assert all(raw not in str(value) for value in row.values())

    # Shown once: the next page load lists the key by prefix only.
    later = logged_in.get(reverse("accounts:api-keys")).content.decode()
    assert raw not in later
    assert key.prefix in later


def test_create_key_without_htmx_returns_full_page(logged_in, user, personal_workspace):
    response = logged_in.post(
        reverse("accounts:api-keys"), {"name": "ci", "workspace": personal_workspace.pk, "scope": "read"}
    )
    assert response.status_code == 200
    page = response.content.decode()
    assert "<html" in page and 'id="keys-panel"' in page
    raw = NEW_KEY.search(page).group(1)
    key = ApiKey.objects.get(user=user, name="ci")
    assert key.scope == "read"
    assert key.key_hash == hashlib.sha256(raw.encode()).hexdigest()


@pytest.mark.parametrize(("extra", "status"), [({}, 200), (HTMX, 422)])
def test_create_key_with_empty_name_shows_error(logged_in, user, personal_workspace, extra, status):
    response = logged_in.post(
        reverse("accounts:api-keys"),
        {"name": "", "workspace": personal_workspace.pk, "scope": "sync"},
        **extra,
    )
    assert response.status_code == status
    page = response.content.decode()
    assert 'id="keys-panel"' in page
    assert "This field is required." in page
    assert not NEW_KEY.search(page)
    assert not ApiKey.objects.filter(user=user).exists()


def test_create_key_with_blank_name_shows_error(logged_in, user, personal_workspace):
    response = logged_in.post(
        reverse("accounts:api-keys"), {"name": "   ", "workspace": personal_workspace.pk, "scope": "sync"}
    )
    assert response.status_code == 200
    assert 'role="alert"' in response.content.decode()
    assert not ApiKey.objects.filter(user=user).exists()


def test_cannot_create_key_for_workspace_i_am_not_in(logged_in, user, other_user):
    foreign = Workspace.objects.get(created_by=other_user, is_personal=True)
    response = logged_in.post(
        reverse("accounts:api-keys"), {"name": "sneaky", "workspace": foreign.pk, "scope": "sync"}, **HTMX
    )
    assert response.status_code == 422
    assert "Select a valid choice" in response.content.decode()
    assert not NEW_KEY.search(response.content.decode())
    assert not ApiKey.objects.filter(workspace=foreign).exists()
    assert not ApiKey.objects.filter(user=user).exists()


def test_revoke_key_with_htmx_returns_row(logged_in, user, personal_workspace):
    key, _ = api_key_create(user=user, workspace=personal_workspace, name="old laptop")
    response = logged_in.post(reverse("accounts:api-key-revoke", args=[key.pk]), **HTMX)
    assert response.status_code == 200
    page = response.content.decode()
    assert page.lstrip().startswith(f'<tr id="key-{key.pk}">')
    assert "revoked" in page
    key.refresh_from_db()
    assert key.revoked_at is not None


def test_revoke_key_without_htmx_redirects(logged_in, user, personal_workspace):
    key, _ = api_key_create(user=user, workspace=personal_workspace, name="old laptop")
    response = logged_in.post(reverse("accounts:api-key-revoke", args=[key.pk]))
    assert response.status_code == 302
    assert response.url == reverse("accounts:api-keys")
    key.refresh_from_db()
    assert key.revoked_at is not None


def test_revoking_someone_elses_key_is_404(logged_in, other_user):
    other_ws = Workspace.objects.get(created_by=other_user, is_personal=True)
    key, _ = api_key_create(user=other_user, workspace=other_ws, name="theirs")
    response = logged_in.post(reverse("accounts:api-key-revoke", args=[key.pk]), **HTMX)
    assert response.status_code == 404
    key.refresh_from_db()
    assert key.revoked_at is None


def test_revoke_needs_post(logged_in, user, personal_workspace):
    key, _ = api_key_create(user=user, workspace=personal_workspace, name="k")
    assert logged_in.get(reverse("accounts:api-key-revoke", args=[key.pk])).status_code == 405


# --- CSRF -----------------------------------------------------------------------------------


@pytest.fixture
def csrf_client(user):
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    return client


def test_csrf_is_enforced_on_key_creation(csrf_client, user, personal_workspace):
    response = csrf_client.post(
        reverse("accounts:api-keys"),
        {"name": "x", "workspace": personal_workspace.pk, "scope": "sync"},
        **HTMX,
    )
    assert response.status_code == 403
    assert not ApiKey.objects.filter(user=user).exists()


def test_csrf_is_enforced_on_key_revocation(csrf_client, user, personal_workspace):
    key, _ = api_key_create(user=user, workspace=personal_workspace, name="k")
    assert csrf_client.post(reverse("accounts:api-key-revoke", args=[key.pk])).status_code == 403
    key.refresh_from_db()
    assert key.revoked_at is None


def test_csrf_is_enforced_on_workspace_create(csrf_client, user):
    assert csrf_client.post(reverse("accounts:workspaces"), {"name": "Forged team"}).status_code == 403
    assert not Workspace.objects.filter(name="Forged team").exists()


def test_csrf_is_enforced_on_workspace_switch(csrf_client, team_as_admin):
    response = csrf_client.post(reverse("accounts:workspace-switch"), {"workspace": team_as_admin.pk})
    assert response.status_code == 403
    assert CURRENT_WORKSPACE_SESSION_KEY not in csrf_client.session


def test_csrf_is_enforced_on_member_removal(csrf_client, team_as_admin, member):
    response = csrf_client.post(reverse("accounts:member-remove", args=[team_as_admin.slug, member.pk]), **HTMX)
    assert response.status_code == 403
    assert Membership.objects.filter(pk=member.pk).exists()


def test_csrf_token_from_the_page_is_accepted(csrf_client, user, personal_workspace):
    page = csrf_client.get(reverse("accounts:api-keys"))
    token = page.cookies["csrftoken"].value
    response = csrf_client.post(
        reverse("accounts:api-keys"),
        {"name": "with token", "workspace": personal_workspace.pk, "scope": "sync"},
        HTTP_X_CSRFTOKEN=token,
        **HTMX,
    )
    assert response.status_code == 200
    assert ApiKey.objects.filter(user=user, name="with token").exists()


# --- workspaces -----------------------------------------------------------------------------


def test_workspace_pages_need_login(client, team_as_admin):
    assert_redirects_to_login(client.get(reverse("accounts:workspaces")))
    assert_redirects_to_login(client.get(reverse("accounts:workspace", args=[team_as_admin.slug])))


def test_workspace_list_shows_my_workspaces_only(logged_in, personal_workspace, team_as_admin, other_user):
    foreign = team_with(other_user, name="Secret skunkworks")
    response = logged_in.get(reverse("accounts:workspaces"))
    assert response.status_code == 200
    page = response.content.decode()
    assert escape(personal_workspace.name) in page
    assert team_as_admin.name in page
    assert foreign.name not in page


def test_create_team_workspace_makes_me_admin_and_switches(logged_in, user):
    response = logged_in.post(reverse("accounts:workspaces"), {"name": "Data team"})
    workspace = Workspace.objects.get(name="Data team")
    assert response.status_code == 302
    assert response.url == reverse("accounts:workspace", args=[workspace.slug])
    assert workspace.is_personal is False
    assert admin_membership(user, workspace).role == Role.ADMIN
    assert logged_in.session[CURRENT_WORKSPACE_SESSION_KEY] == workspace.pk
    # The switcher on the next page shows it as current.
    assert logged_in.get(reverse("home")).context["current_workspace"] == workspace


def test_create_workspace_with_empty_name_shows_error(logged_in, user):
    before = Workspace.objects.count()
    response = logged_in.post(reverse("accounts:workspaces"), {"name": ""})
    assert response.status_code == 200
    assert "This field is required." in response.content.decode()
    assert Workspace.objects.count() == before


def test_workspace_detail_for_member_and_outsider(client, team_as_admin, member, other_user):
    client.force_login(other_user)
    assert client.get(reverse("accounts:workspace", args=[team_as_admin.slug])).status_code == 200
    outsider = UserFactory()
    client.force_login(outsider)
    assert client.get(reverse("accounts:workspace", args=[team_as_admin.slug])).status_code == 404
    assert client.get(reverse("accounts:workspace", args=["no-such-workspace"])).status_code == 404


# --- invitations ----------------------------------------------------------------------------


def invite(actor, workspace, email, role=Role.MEMBER) -> tuple[Invitation, str]:
    """An invitation and its raw token."""
    return invitation_create(actor=actor, workspace=workspace, email=email, role=role, accept_url_builder=lambda t: t)


def test_admin_invites_by_email(logged_in, user, team_as_admin, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = logged_in.post(
            reverse("accounts:workspace-invite", args=[team_as_admin.slug]),
            {"email": "Newcomer@Example.com", "role": Role.REVIEWER},
            **HTMX,
        )
    assert response.status_code == 200
    page = response.content.decode()
    assert page.lstrip().startswith('<div id="members-panel">')
    assert "newcomer@example.com" in page  # listed as pending

    invitation = Invitation.objects.get(workspace=team_as_admin)
    assert invitation.email == "newcomer@example.com"
    assert invitation.role == Role.REVIEWER
    assert len(mail.outbox) == 1
    sent = mail.outbox[0]
    assert sent.to == ["newcomer@example.com"]
    link = re.search(r"http://testserver/invites/(\S+)/", sent.body)
    assert link is not None
    # Only the hash of the link token is stored.
    assert invitation.token_hash == hashlib.sha256(link.group(1).encode()).hexdigest()
    assert link.group(1) not in invitation.token_hash

    # The emailed link works for the invited address.
    newcomer = UserFactory(email="newcomer@example.com")
    logged_in.force_login(newcomer)
    response = logged_in.post(link.group(0).removeprefix("http://testserver"))
    assert response.status_code == 302
    assert admin_membership(newcomer, team_as_admin).role == Role.REVIEWER


def post_invite(client, workspace, email="x@example.com", role=Role.MEMBER):
    url = reverse("accounts:workspace-invite", args=[workspace.slug])
    return client.post(url, {"email": email, "role": role})


def test_member_cannot_invite(client, team_as_admin, member, other_user):
    client.force_login(other_user)
    response = post_invite(client, team_as_admin)
    assert response.status_code == 403
    assert not Invitation.objects.filter(workspace=team_as_admin).exists()


def test_outsider_cannot_invite(client, team_as_admin):
    client.force_login(UserFactory())
    response = post_invite(client, team_as_admin)
    assert response.status_code == 404


def test_inviting_into_personal_workspace_shows_error(logged_in, personal_workspace):
    response = post_invite(logged_in, personal_workspace)
    assert response.status_code == 200
    assert "team workspace" in response.content.decode()
    assert not Invitation.objects.exists()


def test_invitation_accepted_by_invited_user(client, user, team_as_admin):
    invitee = UserFactory(email="invitee@example.com")
    invitation, token = invite(user, team_as_admin, "invitee@example.com", Role.REVIEWER)
    client.force_login(invitee)
    url = reverse("accounts:invitation", args=[token])
    assert client.get(url).status_code == 200
    response = client.post(url)
    assert response.status_code == 302
    assert response.url == reverse("accounts:workspace", args=[team_as_admin.slug])
    assert admin_membership(invitee, team_as_admin).role == Role.REVIEWER
    assert client.session[CURRENT_WORKSPACE_SESSION_KEY] == team_as_admin.pk
    invitation.refresh_from_db()
    assert invitation.accepted_by == invitee and invitation.accepted_at is not None
    # A used link can't be used twice.
    client.force_login(UserFactory(email="someone@example.com"))
    assert "has expired, was revoked or was already used" in client.post(url).content.decode()


def test_invitation_page_for_anonymous_asks_to_log_in(client, user, team_as_admin):
    _, token = invite(user, team_as_admin, "invitee@example.com")
    response = client.get(reverse("accounts:invitation", args=[token]))
    assert response.status_code == 200
    assert reverse("account_login") in response.content.decode()
    assert client.post(reverse("accounts:invitation", args=[token])).status_code == 200
    assert not Membership.objects.filter(workspace=team_as_admin, user__email="invitee@example.com").exists()


def test_invitation_wrong_user_gets_error(client, user, team_as_admin, other_user):
    invitation, token = invite(user, team_as_admin, "invitee@example.com")
    client.force_login(other_user)
    response = client.post(reverse("accounts:invitation", args=[token]))
    assert response.status_code == 200
    assert "invitee@example.com" in response.content.decode()
    assert "sign in with that address" in response.content.decode()
    assert not Membership.objects.filter(workspace=team_as_admin, user=other_user).exists()
    invitation.refresh_from_db()
    assert invitation.accepted_at is None


@pytest.mark.parametrize(
    "change",
    [
        {"expires_at": timezone.now() - timedelta(minutes=1)},
        {"revoked_at": timezone.now()},
    ],
    ids=["expired", "revoked"],
)
def test_expired_or_revoked_invitation_cannot_be_accepted(client, user, team_as_admin, change):
    invitee = UserFactory(email="invitee@example.com")
    invitation, token = invite(user, team_as_admin, invitee.email)
    Invitation.objects.filter(pk=invitation.pk).update(**change)
    client.force_login(invitee)
    response = client.post(reverse("accounts:invitation", args=[token]))
    assert response.status_code == 200
    assert "has expired, was revoked or was already used" in response.content.decode()
    assert not Membership.objects.filter(workspace=team_as_admin, user=invitee).exists()


def test_unknown_invitation_token_is_404(logged_in):
    assert logged_in.get(reverse("accounts:invitation", args=["not-a-real-token"])).status_code == 404


def test_admin_revokes_invitation(logged_in, user, team_as_admin):
    invitation, _ = invite(user, team_as_admin, "invitee@example.com")
    response = logged_in.post(reverse("accounts:invitation-revoke", args=[team_as_admin.slug, invitation.pk]), **HTMX)
    assert response.status_code == 200
    assert 'id="members-panel"' in response.content.decode()
    invitation.refresh_from_db()
    assert invitation.revoked_at is not None


# --- members --------------------------------------------------------------------------------


def set_role(client, membership, role, *, htmx=True):
    url = reverse("accounts:member-role", args=[membership.workspace.slug, membership.pk])
    return client.post(url, {"role": role}, **(HTMX if htmx else {}))


def test_admin_changes_member_role_with_htmx(logged_in, team_as_admin, member):
    response = logged_in.post(
        reverse("accounts:member-role", args=[team_as_admin.slug, member.pk]), {"role": Role.REVIEWER}, **HTMX
    )
    assert response.status_code == 200
    page = response.content.decode()
    assert page.lstrip().startswith('<div id="members-panel">')
    assert "<html" not in page
    member.refresh_from_db()
    assert member.role == Role.REVIEWER


def test_admin_changes_member_role_without_htmx(logged_in, team_as_admin, member):
    response = set_role(logged_in, member, Role.ADMIN, htmx=False)
    assert response.status_code == 200
    assert "<html" in response.content.decode()
    member.refresh_from_db()
    assert member.role == Role.ADMIN


def test_unknown_role_is_rejected(logged_in, team_as_admin, member):
    response = logged_in.post(reverse("accounts:member-role", args=[team_as_admin.slug, member.pk]), {"role": "owner"})
    assert response.status_code == 404
    member.refresh_from_db()
    assert member.role == Role.MEMBER


def test_member_cannot_change_roles(client, user, team_as_admin, member, other_user):
    client.force_login(other_user)
    admin = admin_membership(user, team_as_admin)
    response = set_role(client, admin, Role.MEMBER)
    assert response.status_code == 403
    # Not even their own.
    response = set_role(client, member, Role.ADMIN)
    assert response.status_code == 403
    admin.refresh_from_db()
    member.refresh_from_db()
    assert (admin.role, member.role) == (Role.ADMIN, Role.MEMBER)


def test_member_cannot_remove_others(client, user, team_as_admin, member, other_user):
    third = MembershipFactory(workspace=team_as_admin, role=Role.MEMBER)
    client.force_login(other_user)
    for target in (admin_membership(user, team_as_admin), third):
        response = client.post(reverse("accounts:member-remove", args=[team_as_admin.slug, target.pk]), **HTMX)
        assert response.status_code == 403
        assert Membership.objects.filter(pk=target.pk).exists()


def test_member_can_leave(client, team_as_admin, member, other_user):
    client.force_login(other_user)
    client.post(reverse("accounts:workspace-switch"), {"workspace": team_as_admin.pk})
    response = client.post(reverse("accounts:member-remove", args=[team_as_admin.slug, member.pk]))
    assert response.status_code == 302
    assert response.url == reverse("accounts:workspaces")
    assert not Membership.objects.filter(pk=member.pk).exists()
    assert CURRENT_WORKSPACE_SESSION_KEY not in client.session
    assert client.get(reverse("accounts:workspace", args=[team_as_admin.slug])).status_code == 404


def test_member_leaving_with_htmx_gets_client_redirect(client, team_as_admin, member, other_user):
    client.force_login(other_user)
    response = client.post(reverse("accounts:member-remove", args=[team_as_admin.slug, member.pk]), **HTMX)
    assert response.status_code == 200
    assert response["HX-Redirect"] == reverse("accounts:workspaces")
    assert not Membership.objects.filter(pk=member.pk).exists()


def test_last_admin_cannot_be_demoted(logged_in, user, team_as_admin, member):
    admin = admin_membership(user, team_as_admin)
    response = set_role(logged_in, admin, Role.MEMBER)
    assert response.status_code == 200
    assert "at least one admin" in response.content.decode()
    admin.refresh_from_db()
    assert admin.role == Role.ADMIN


def test_last_admin_cannot_leave(logged_in, user, team_as_admin, member):
    admin = admin_membership(user, team_as_admin)
    response = logged_in.post(reverse("accounts:member-remove", args=[team_as_admin.slug, admin.pk]), **HTMX)
    assert response.status_code == 200
    assert "at least one admin" in response.content.decode()
    assert Membership.objects.filter(pk=admin.pk).exists()


def test_last_admin_error_without_htmx_is_flashed(logged_in, user, team_as_admin):
    admin = admin_membership(user, team_as_admin)
    response = logged_in.post(reverse("accounts:member-remove", args=[team_as_admin.slug, admin.pk]), follow=True)
    assert "at least one admin" in response.content.decode()
    assert Membership.objects.filter(pk=admin.pk).exists()


def test_admin_can_be_demoted_when_another_admin_exists(logged_in, user, team_as_admin, member):
    Membership.objects.filter(pk=member.pk).update(role=Role.ADMIN)
    admin = admin_membership(user, team_as_admin)
    response = set_role(logged_in, admin, Role.MEMBER)
    assert response.status_code == 200
    admin.refresh_from_db()
    assert admin.role == Role.MEMBER


def test_removing_member_revokes_their_keys_for_that_workspace(logged_in, team_as_admin, member, other_user):
    team_key, _ = api_key_create(user=other_user, workspace=team_as_admin, name="team key")
    own_ws = Workspace.objects.get(created_by=other_user, is_personal=True)
    own_key, _ = api_key_create(user=other_user, workspace=own_ws, name="own key")
    response = logged_in.post(reverse("accounts:member-remove", args=[team_as_admin.slug, member.pk]), **HTMX)
    assert response.status_code == 200
    assert 'id="members-panel"' in response.content.decode()
    assert not Membership.objects.filter(pk=member.pk).exists()
    team_key.refresh_from_db()
    own_key.refresh_from_db()
    assert team_key.revoked_at is not None
    assert own_key.revoked_at is None


def test_member_of_another_workspace_is_404(logged_in, team_as_admin, other_user):
    foreign = team_with(other_user, name="Elsewhere")
    target = admin_membership(other_user, foreign)
    response = logged_in.post(reverse("accounts:member-remove", args=[team_as_admin.slug, target.pk]))
    assert response.status_code == 404
    assert Membership.objects.filter(pk=target.pk).exists()


# --- workspace switcher ---------------------------------------------------------------------


def test_switch_to_my_workspace(logged_in, team_as_admin):
    response = logged_in.post(
        reverse("accounts:workspace-switch"), {"workspace": team_as_admin.pk, "next": reverse("accounts:workspaces")}
    )
    assert response.status_code == 302
    assert response.url == reverse("accounts:workspaces")
    assert logged_in.session[CURRENT_WORKSPACE_SESSION_KEY] == team_as_admin.pk


def test_switch_to_foreign_workspace_is_forbidden(logged_in, personal_workspace, other_user):
    foreign = team_with(other_user, name="Elsewhere")
    response = logged_in.post(reverse("accounts:workspace-switch"), {"workspace": foreign.pk})
    assert response.status_code == 403
    assert logged_in.session.get(CURRENT_WORKSPACE_SESSION_KEY) != foreign.pk
    assert logged_in.get(reverse("home")).context["current_workspace"] == personal_workspace


@pytest.mark.parametrize("workspace", ["", "abc", "²", "999999999", "99999999999999999999999"])
def test_switch_with_bad_workspace_is_forbidden(logged_in, workspace):
    assert logged_in.post(reverse("accounts:workspace-switch"), {"workspace": workspace}).status_code == 403


@pytest.mark.parametrize("next_url", ["https://evil.example/", "//evil.example/x", "javascript:alert(1)"])
def test_switch_rejects_off_site_next(logged_in, team_as_admin, next_url):
    response = logged_in.post(reverse("accounts:workspace-switch"), {"workspace": team_as_admin.pk, "next": next_url})
    assert response.status_code == 302
    assert response.url == reverse("home")
    assert logged_in.session[CURRENT_WORKSPACE_SESSION_KEY] == team_as_admin.pk
