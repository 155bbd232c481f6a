"""`manage.py create_api_key`: scripted key provisioning that prints only the key."""

import io
import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from accounts.models import ApiKey, Membership, Role, User, Workspace, hash_api_key
from accounts.tests.factories import team_with
from sessions_app.models import Session

pytestmark = pytest.mark.django_db


def create_key(*args) -> str:
    out = io.StringIO()
    call_command("create_api_key", *args, stdout=out)
    lines = out.getvalue().splitlines()
    assert len(lines) == 1, out.getvalue()
    assert lines[0].startswith("osk_")
    return lines[0]


def key_for(raw: str) -> ApiKey:
    return ApiKey.objects.select_related("user", "workspace").get(key_hash=hash_api_key(raw))


def test_creates_user_and_personal_workspace_when_missing():
    raw = create_key("--email", "CI-Bot@Example.com")
    user = User.objects.get(email="ci-bot@example.com")
    personal = Workspace.objects.get(created_by=user, is_personal=True)
    assert Membership.objects.get(user=user, workspace=personal).role == Role.ADMIN
    key = key_for(raw)
    assert (key.user, key.workspace, key.scope, key.name) == (user, personal, "sync", "cli")
    # Created for scripts: no password to guess, log in through a reset.
    assert not user.has_usable_password()


def test_works_for_existing_user(user, personal_workspace):
    raw = create_key("--email", user.email.upper(), "--name", "build box")
    assert User.objects.filter(email__iexact=user.email).count() == 1
    key = key_for(raw)
    assert (key.user, key.workspace, key.name) == (user, personal_workspace, "build box")


def test_each_call_makes_a_new_key(user):
    first = create_key("--email", user.email)
    second = create_key("--email", user.email)
    assert first != second
    assert ApiKey.objects.filter(user=user).count() == 2


def test_workspace_option_binds_key_and_adds_member(user, other_user):
    team = team_with(other_user, name="Platform team")
    raw = create_key("--email", user.email, "--workspace", team.slug)
    assert key_for(raw).workspace == team
    assert Membership.objects.get(user=user, workspace=team).role == Role.MEMBER


def test_workspace_option_keeps_existing_role(user, other_user):
    team = team_with(other_user, name="Platform team")
    raw = create_key("--email", other_user.email, "--workspace", team.slug)
    assert key_for(raw).workspace == team
    assert Membership.objects.get(user=other_user, workspace=team).role == Role.ADMIN


def test_read_scope(user):
    key = key_for(create_key("--email", user.email, "--scope", "read"))
    assert key.scope == "read"
    assert key.can_write is False


def test_unknown_scope_is_refused(user):
    with pytest.raises(CommandError):
        call_command("create_api_key", "--email", user.email, "--scope", "admin", stdout=io.StringIO())
    assert not ApiKey.objects.filter(user=user).exists()


def test_unknown_workspace_raises_and_creates_nothing():
    with pytest.raises(CommandError, match="no-such-team"):
        create_key("--email", "ghost@example.com", "--workspace", "no-such-team")
    assert not User.objects.filter(email="ghost@example.com").exists()
    assert not ApiKey.objects.exists()


def test_invalid_email_raises():
    with pytest.raises(CommandError, match="Invalid email"):
        call_command("create_api_key", "--email", "not-an-email", stdout=io.StringIO())
    assert not User.objects.exists()


def test_email_is_required():
    with pytest.raises(CommandError):
        call_command("create_api_key", stdout=io.StringIO())


def sync_session(client, raw, external_id):
    return client.post(
        "/sync/session",
        data=json.dumps({"externalId": external_id, "title": "From the CLI key"}),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {raw}",
    )


def test_printed_key_authenticates_against_sync_api(client):
    raw = create_key("--email", "plugin@example.com")
    response = sync_session(client, raw, "s-cli")
    assert response.status_code == 200, response.content
    session = Session.objects.get(external_id="s-cli")
    key = key_for(raw)
    assert (session.owner, session.workspace) == (key.user, key.workspace)


def test_printed_workspace_key_syncs_into_that_workspace(client, other_user):
    team = team_with(other_user, name="Platform team")
    raw = create_key("--email", "plugin@example.com", "--workspace", team.slug)
    assert sync_session(client, raw, "s-team").status_code == 200
    assert Session.objects.get(external_id="s-team").workspace == team


def test_printed_read_key_cannot_sync(client):
    raw = create_key("--email", "reader@example.com", "--scope", "read")
    response = sync_session(client, raw, "s-read")
    assert response.status_code == 403
    assert not Session.objects.filter(external_id="s-read").exists()
