"""The dashboard's query strings and form fields: "²" (which `str.isdigit()` accepts and `int()`
refuses) and NUL (which PostgreSQL refuses) are read as bad input, never a 500."""

import pytest

from accounts.services import workspace_create_team

from .factories import MessageFactory, SessionFactory

pytestmark = pytest.mark.django_db

NUL_ERROR = "Text must not contain a NUL character"


@pytest.fixture
def session(user):
    session = SessionFactory(owner=user, title="Fix the parser", eval_ready=True)
    MessageFactory(session=session, text_content="parser fixed", search_text="parser fixed")
    return session


@pytest.mark.parametrize("page", ["/search/", "/context/"])
def test_superscript_offset_is_the_first_page(logged_in, session, page):
    response = logged_in.get(page, {"q": "parser", "offset": "²"})
    assert response.status_code == 200 and "Fix the parser" in response.content.decode()


@pytest.mark.parametrize("page", ["/search/", "/context/"])
def test_nul_in_the_search_box_is_an_error_on_the_page(logged_in, session, page):
    response = logged_in.get(page, {"q": "pars\x00er"})
    assert response.status_code == 200
    html = response.content.decode()
    assert "The search can&#x27;t be run: " + NUL_ERROR in html and "Fix the parser" not in html


def test_nul_in_a_saved_search_is_a_form_error(logged_in, session):
    response = logged_in.post("/context/saved/", {"q": "a\x00", "mode": "fulltext"})
    assert response.status_code < 500


def test_superscript_message_id_opens_the_session_at_the_start(logged_in, session):
    response = logged_in.get(f"/sessions/{session.pk}/", {"at": "²"})
    assert response.status_code == 200 and "parser fixed" in response.content.decode()


def test_superscript_ids_in_bulk_actions_are_skipped(logged_in, session):
    response = logged_in.post("/sessions/bulk/", {"ids": ["²", str(session.pk)], "action": "eval_ready"})
    assert response.status_code < 400
    response = logged_in.post("/evals/bulk/", {"ids": ["²"], "action": "status", "status": "golden"})
    assert response.status_code < 500


def test_superscript_queue_position_is_the_first(logged_in, session):
    response = logged_in.get("/evals/queue/", {"pos": "²"})
    assert response.status_code == 200 and "Fix the parser" in response.content.decode()


@pytest.mark.parametrize("field", ["add_tag", "eval_notes", "expected_output"])
def test_nul_in_a_review_is_refused_with_a_message(logged_in, session, field):
    response = logged_in.post(f"/sessions/{session.pk}/review/", {field: "a\x00b"}, HTTP_HX_REQUEST="true")
    assert response.status_code < 500
    assert NUL_ERROR in response.content.decode()
    session.refresh_from_db()
    assert session.eval_tags == [] and not session.eval_notes


def test_superscript_owner_in_a_team_filter_is_ignored(logged_in, user, session):
    team = workspace_create_team(user=user, name="Team")
    logged_in.post("/workspaces/switch/", {"workspace": team.pk})
    assert logged_in.get("/sessions/", {"owner": "²"}).status_code == 200
