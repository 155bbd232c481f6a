"""The message and part admins are read-only: an edit or deletion of one row would leave the
message's search_text and the session's message_count stale. Sessions are still deleted whole."""

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.urls import reverse

from accounts.models import User
from sessions_app.models import Message, Part, Session

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client):
    client.force_login(User.objects.create_superuser(email="root@example.com"))
    return client


@pytest.fixture
def message(user, personal_workspace):
    session = Session.objects.create(workspace=personal_workspace, owner=user, external_id="s-1", message_count=1)
    message = Message.objects.create(session=session, external_id="m-1", role="user", text_content="hello")
    Part.objects.create(message=message, type="text", content={"text": "hello"}, order=0)
    return message


@pytest.mark.parametrize("model", ["message", "part"])
def test_message_and_part_admins_are_read_only(admin_client, message, model):
    obj = message if model == "message" else message.parts.get()
    assert admin_client.get(reverse(f"admin:sessions_app_{model}_add")).status_code == 403
    assert admin_client.get(reverse(f"admin:sessions_app_{model}_delete", args=[obj.pk])).status_code == 403
    page = admin_client.get(reverse(f"admin:sessions_app_{model}_change", args=[obj.pk]))
    assert page.status_code == 200
    assert page.context["has_change_permission"] is False
    post = admin_client.post(reverse(f"admin:sessions_app_{model}_change", args=[obj.pk]), {"type": "x"})
    assert post.status_code == 403
    changelist = admin_client.get(reverse(f"admin:sessions_app_{model}_changelist")).content.decode()
    assert 'value="delete_selected"' not in changelist


def test_message_text_is_not_editable(admin_client, message):
    admin_client.post(
        reverse("admin:sessions_app_message_change", args=[message.pk]),
        {"session": message.session_id, "external_id": "m-1", "role": "user", "text_content": "changed"},
    )
    message.refresh_from_db()
    assert message.text_content == "hello"


def test_deleting_a_session_in_the_admin_takes_its_messages(admin_client, message):
    session = message.session
    url = reverse("admin:sessions_app_session_delete", args=[session.pk])
    assert admin_client.get(url).context["perms_lacking"] == set()
    assert admin_client.post(url, {"post": "yes"}).status_code == 302
    assert not Session.objects.filter(pk=session.pk).exists()
    assert not Message.objects.filter(pk=message.pk).exists()


def test_deleting_sessions_with_the_admin_action(admin_client, message):
    data = {"action": "delete_selected", ACTION_CHECKBOX_NAME: [str(message.session_id)], "post": "yes"}
    assert admin_client.post(reverse("admin:sessions_app_session_changelist"), data).status_code == 302
    assert not Message.objects.exists()
