"""The viewer's review controls: who may use them, each control over HTMX and without JS, and
errors shown in the panel."""

import pytest
from django.test import Client

from accounts.tests.factories import team_with
from evals.models import ReviewEvent
from sessions_app.models import Session
from sessions_app.tests.factories import SessionFactory

pytestmark = pytest.mark.django_db
HX = {"HTTP_HX_REQUEST": "true"}


def url(session) -> str:
    return f"/sessions/{session.pk}/review/"


@pytest.fixture
def team_session(user, other_user):
    """other_user's session in a team where `user` is a plain member."""
    return SessionFactory(owner=other_user, workspace=team_with(other_user, member=user))


def test_the_owner_sees_the_panel_and_each_control_saves_in_place(logged_in, user):
    session = SessionFactory(owner=user)
    assert 'id="review-panel"' in logged_in.get(f"/sessions/{session.pk}/").content.decode()
    body = logged_in.post(url(session), {"eval_ready": "1"}, **HX).content.decode()
    assert (
        body.lstrip().startswith('<details id="review-panel" class="card review-panel" open>')
        and "✓ Eval-ready" in body
        and "Saved." in body
    )
    body = logged_in.post(url(session), {"eval_status": "golden"}, **HX).content.decode()
    assert '<option value="golden" selected>' in body
    body = logged_in.post(url(session), {"add_tag": "Auth, flaky tests"}, **HX).content.decode()
    assert "Remove the tag auth" in body and "Remove the tag flaky tests" in body
    body = logged_in.post(url(session), {"remove_tag": "auth"}, **HX).content.decode()
    assert "Remove the tag auth" not in body and '<option value="auth">' in body  # still in the vocabulary
    logged_in.post(url(session), {"eval_notes": "Good fix"}, **HX)
    body = logged_in.post(url(session), {"expected_output": "Use a lock."}, **HX).content.decode()
    assert ">Use a lock.</textarea>" in body and "History" in body
    stored = Session.objects.get(pk=session.pk)
    assert (stored.eval_ready, stored.eval_status, stored.eval_tags, stored.eval_notes, stored.expected_output) == (
        True,
        "golden",
        ["flaky tests"],
        "Good fix",
        "Use a lock.",
    )
    assert ReviewEvent.objects.filter(session=session).count() == 6
    assert "No change." in logged_in.post(url(session), {"eval_status": "golden"}, **HX).content.decode()


def test_an_error_shows_in_the_panel_and_stores_nothing(logged_in, user):
    session = SessionFactory(owner=user)
    body = logged_in.post(url(session), {"eval_status": "great"}, **HX).content.decode()
    assert "Unknown status" in body and 'class="small form-error"' in body
    assert Session.objects.get(pk=session.pk).eval_status is None


def test_a_member_cannot_review_a_colleagues_session_but_a_reviewer_can(client, team):
    session = SessionFactory(owner=team.owner, workspace=team.workspace)
    client.force_login(team.member)
    page = client.get(f"/sessions/{session.pk}/").content.decode()
    assert "review-panel" not in page
    assert client.post(url(session), {"eval_ready": "1"}, **HX).status_code == 403  # visible, not theirs
    client.force_login(team.reviewer)
    assert client.post(url(session), {"eval_ready": "1"}, **HX).status_code == 200
    assert Session.objects.get(pk=session.pk).reviewed_by == team.reviewer


def test_outsiders_get_404_and_anonymous_users_log_in(client, other_user):
    session = SessionFactory(owner=other_user)
    assert client.post(url(session), {"eval_ready": "1"})["Location"].startswith("/accounts/login/")
    from accounts.tests.factories import UserFactory

    client.force_login(UserFactory())
    assert client.post(url(session), {"eval_ready": "1"}, **HX).status_code == 404


def test_without_javascript_it_redirects_to_the_viewer_with_a_message(logged_in, user):
    session = SessionFactory(owner=user)
    response = logged_in.post(url(session), {"eval_ready": "1"})
    assert response.status_code == 302 and response["Location"] == f"/sessions/{session.pk}/#review-panel"
    assert "Review saved." in logged_in.get(response["Location"]).content.decode()
    assert logged_in.get(url(session))["Location"] == f"/sessions/{session.pk}/#review-panel"


def test_csrf_is_enforced(user):
    session = SessionFactory(owner=user)
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    assert client.post(url(session), {"eval_ready": "1"}, **HX).status_code == 403
