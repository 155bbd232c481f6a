"""Browser pages for sessions: the home list and the session viewer."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from accounts.models import Membership, Role, Workspace
from accounts.services import workspace_create_team
from accounts.tests.factories import UserFactory
from sessions_app.models import Message, Part, Session

pytestmark = pytest.mark.django_db

XSS = "<script>alert(1)</script>"


@pytest.fixture
def logged_in(client, user):
    client.force_login(user)
    return client


@pytest.fixture
def team(user, other_user):
    """A team workspace owned by `other_user` where `user` is a member."""
    workspace = workspace_create_team(user=other_user, name="Platform team")
    Membership.objects.create(user=user, workspace=workspace, role=Role.MEMBER)
    return workspace


def make_session(workspace, owner, external_id, **fields) -> Session:
    return Session.objects.create(workspace=workspace, owner=owner, external_id=external_id, **fields)


def make_message(session, external_id, role, text) -> Message:
    return Message.objects.create(session=session, external_id=external_id, role=role, text_content=text)


def assert_redirects_to_login(response):
    assert response.status_code == 302
    assert response.url.startswith(reverse("account_login"))


# --- home -----------------------------------------------------------------------------------


def test_home_needs_login(client, db):
    assert_redirects_to_login(client.get(reverse("home")))


def test_home_lists_sessions_of_current_workspace_only(logged_in, user, other_user, personal_workspace, team):
    make_session(personal_workspace, user, "s-mine", title="Refactor the parser")
    make_session(team, other_user, "s-team", title="Team deploy session")
    foreign = Workspace.objects.get(created_by=other_user, is_personal=True)
    make_session(foreign, other_user, "s-foreign", title="Private experiment")

    page = logged_in.get(reverse("home")).content.decode()
    assert "Refactor the parser" in page
    assert "Team deploy session" not in page  # another workspace of mine, not the current one
    assert "Private experiment" not in page

    logged_in.post(reverse("accounts:workspace-switch"), {"workspace": team.pk})
    page = logged_in.get(reverse("home")).content.decode()
    assert "Team deploy session" in page
    assert "Refactor the parser" not in page
    assert "Private experiment" not in page


def test_home_links_to_session_detail(logged_in, user, personal_workspace):
    session = make_session(personal_workspace, user, "s-1", title="Linked")
    page = logged_in.get(reverse("home")).content.decode()
    assert f'href="{reverse("sessions:detail", args=[session.pk])}"' in page


def test_home_falls_back_to_external_id_without_title(logged_in, user, personal_workspace):
    make_session(personal_workspace, user, "ses_untitled_42")
    assert "ses_untitled_42" in logged_in.get(reverse("home")).content.decode()


def test_home_empty_state_shows_plugin_setup(logged_in, other_user):
    foreign = Workspace.objects.get(created_by=other_user, is_personal=True)
    make_session(foreign, other_user, "s-foreign", title="Not mine")
    response = logged_in.get(reverse("home"))
    assert response.status_code == 200
    page = response.content.decode()
    assert "No sessions yet" in page
    assert "CLAUDE_SYNC_CONVEX_URL=http://testserver" in page
    assert "CLAUDE_SYNC_API_KEY" in page
    assert f'href="{reverse("accounts:api-keys")}"' in page
    assert "Not mine" not in page


def test_home_escapes_session_titles(logged_in, user, personal_workspace):
    make_session(personal_workspace, user, "s-xss", title=XSS)
    page = logged_in.get(reverse("home")).content.decode()
    assert "<script>alert(1)" not in page
    assert "&lt;script&gt;alert(1)" in page


# --- session detail -------------------------------------------------------------------------


def test_session_detail_needs_login(client, user, personal_workspace):
    session = make_session(personal_workspace, user, "s-1")
    assert_redirects_to_login(client.get(reverse("sessions:detail", args=[session.pk])))


def test_session_detail_for_owner(logged_in, user, personal_workspace):
    session = make_session(personal_workspace, user, "s-1", title="Owner view", model="claude-sonnet-4")
    make_message(session, "m-1", "user", "Please fix the tests")
    make_message(session, "m-2", "assistant", "Fixed them")
    response = logged_in.get(reverse("sessions:detail", args=[session.pk]))
    assert response.status_code == 200
    page = response.content.decode()
    assert "Owner view" in page and "claude-sonnet-4" in page
    assert page.index("Please fix the tests") < page.index("Fixed them")


def test_session_detail_for_workspace_member(logged_in, other_user, team):
    session = make_session(team, other_user, "s-team", title="Shared with the team")
    response = logged_in.get(reverse("sessions:detail", args=[session.pk]))
    assert response.status_code == 200
    assert "Shared with the team" in response.content.decode()


def test_session_detail_for_outsider_is_404(client, user, personal_workspace):
    session = make_session(personal_workspace, user, "s-1")
    client.force_login(UserFactory())
    assert client.get(reverse("sessions:detail", args=[session.pk])).status_code == 404


def test_session_detail_for_former_member_is_404(logged_in, user, other_user, team):
    session = make_session(team, other_user, "s-team")
    Membership.objects.filter(user=user, workspace=team).delete()
    assert logged_in.get(reverse("sessions:detail", args=[session.pk])).status_code == 404


def test_missing_session_is_404(logged_in):
    assert logged_in.get(reverse("sessions:detail", args=[999999999])).status_code == 404


def test_session_detail_escapes_message_text(logged_in, user, personal_workspace):
    session = make_session(personal_workspace, user, "s-xss", title=XSS)
    message = Message.objects.create(session=session, external_id="m-1", role="user", text_content=XSS)
    Part.objects.create(message=message, type="tool-call", content={"cmd": XSS}, order=0)
    page = logged_in.get(reverse("sessions:detail", args=[session.pk])).content.decode()
    assert "<script>alert(1)" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_session_detail_shows_non_text_parts(logged_in, user, personal_workspace):
    session = make_session(personal_workspace, user, "s-1")
    message = make_message(session, "m-1", "assistant", "Running")
    Part.objects.create(message=message, type="tool-call", content={"tool": "pytest-runner"}, order=0)
    page = logged_in.get(reverse("sessions:detail", args=[session.pk])).content.decode()
    assert "tool-call" in page and "pytest-runner" in page


def count_queries(client, url) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get(url).status_code == 200
    return len(queries)


def add_messages(session, count):
    start = session.messages.count()
    for i in range(start, start + count):
        message = make_message(session, f"m-{i}", "user", f"t{i}")
        Part.objects.create(message=message, type="tool-call", content={"i": i}, order=0)


def test_session_detail_query_count_does_not_grow_with_messages(logged_in, user, personal_workspace):
    session = make_session(personal_workspace, user, "s-1")
    url = reverse("sessions:detail", args=[session.pk])
    add_messages(session, 1)
    baseline = count_queries(logged_in, url)
    add_messages(session, 20)
    assert count_queries(logged_in, url) == baseline


def test_home_query_count_does_not_grow_with_sessions(logged_in, user, other_user, team):
    logged_in.post(reverse("accounts:workspace-switch"), {"workspace": team.pk})
    make_session(team, user, "s-0")
    baseline = count_queries(logged_in, reverse("home"))
    for i in range(1, 20):
        make_session(team, other_user if i % 2 else user, f"s-{i}")
    assert count_queries(logged_in, reverse("home")) == baseline


def test_session_messages_are_not_shown_as_notices(logged_in, user, personal_workspace):
    """The thread and Django's notices must not share a template name (regression)."""
    session = Session.objects.create(workspace=personal_workspace, owner=user, external_id="s")
    Message.objects.create(session=session, external_id="m", role="user", text_content="only in the thread")
    html = logged_in.get(reverse("sessions:detail", args=[session.pk])).content.decode()
    assert html.count("only in the thread") == 1
    assert 'class="flash"' not in html
