"""The /context page: search, pick sessions and messages, budget and format, copy and download,
saved searches and bookmarks; permissions, HTMX fragments and the no-JavaScript fallbacks."""

import json
from datetime import UTC, datetime, timedelta

import pytest
from django.test import Client

from accounts.tests.factories import team_with
from search.models import Bookmark, SavedSearch
from search.selection import MAX_PICKS
from search.tests.factories import BookmarkFactory, SavedSearchFactory
from sessions_app.services import sessions_delete
from sessions_app.tests.factories import MessageFactory, SessionFactory

pytestmark = pytest.mark.django_db
HX = {"HTTP_HX_REQUEST": "true"}
T0 = datetime(2025, 6, 1, 10, 0, tzinfo=UTC)


@pytest.fixture
def convo(user):
    session = SessionFactory(owner=user, title="Fix the flaky login test", message_count=3)
    messages = [
        MessageFactory(session=session, role=role, text_content=text, created_at=T0 + timedelta(minutes=i))
        for i, (role, text) in enumerate(
            [("user", "login test fails on CI"), ("assistant", "It races the session save."), ("user", "thanks")]
        )
    ]
    return session, messages


def pick(client, session, message=None, action="add", **extra):
    data = {"action": action, "session": session.pk, **extra}
    if message is not None:
        data["message"] = message.pk
    return client.post("/context/pick/", data, **HX)


def output(client) -> str:
    return client.get("/context/panel/", **HX).content.decode()


def test_anonymous_goes_to_login(client, db):
    for path in ("/context/", "/context/panel/", "/context/download/"):
        assert client.get(path)["Location"].startswith("/accounts/login/")
    assert client.post("/context/pick/", {"action": "clear"})["Location"].startswith("/accounts/login/")


def test_page_lists_latest_sessions_and_the_empty_context(logged_in, convo):
    page = logged_in.get("/context/").content.decode()
    assert "Fix the flaky login test" in page and "Your latest sessions" in page
    assert "Nothing picked yet" in page and 'aria-current="page">Context' in page


def test_page_with_no_sessions_says_so(logged_in):
    assert "No sessions yet" in logged_in.get("/context/").content.decode()


def test_search_results_are_a_fragment_with_pick_and_bookmark_buttons(logged_in, user, sync_client):
    sync_client.post(
        "/sync/session", json.dumps({"externalId": "e1", "title": "Refused"}), content_type="application/json"
    )
    sync_client.post(
        "/sync/message",
        json.dumps({"sessionExternalId": "e1", "externalId": "m1", "role": "user", "textContent": "ECONNREFUSED"}),
        content_type="application/json",
    )
    fragment = logged_in.get("/context/?q=ECONNREFUSED&mode=fulltext", **HX).content.decode()
    assert fragment.startswith('\n    <div id="context-results">') or fragment.lstrip().startswith(
        '<div id="context-results">'
    )
    assert "<mark>ECONNREFUSED</mark>" in fragment
    assert "+ Session" in fragment and "+ Message" in fragment and "☆ Bookmark message" in fragment
    assert "Save this search" in fragment
    assert "<html" not in fragment


def test_picking_a_session_builds_the_context(logged_in, convo):
    session, _ = convo
    response = pick(logged_in, session, target="button")
    assert response.status_code == 200 and response["HX-Trigger"] == "context-changed"
    assert "✓ Session in context" in response.content.decode()
    text = output(logged_in)
    assert "--- Session: Fix the flaky login test ---" in text and "[ASSISTANT]\nIt races the session save." in text
    assert "of 8000 tokens" in text
    # it survives a reload and a new search
    assert "✓ Session in context" in logged_in.get("/context/").content.decode()


def test_single_messages_and_removing_them(logged_in, convo):
    session, messages = convo
    pick(logged_in, session, messages[1])
    text = output(logged_in)
    assert "It races the session save." in text and "login test fails on CI" not in text.split("context-text")[1]
    assert "picked messages only" in text
    body = pick(logged_in, session, messages[1], action="remove").content.decode()
    assert 'id="context-output"' in body and "Nothing picked yet" in body


def test_removing_a_session_and_clearing(logged_in, user, convo):
    session, _ = convo
    other = SessionFactory(owner=user, title="Another")
    pick(logged_in, session)
    pick(logged_in, other)
    body = pick(logged_in, session, action="remove").content.decode()
    assert "Another" in body and "Fix the flaky login test" not in body
    body = logged_in.post("/context/pick/", {"action": "clear"}, **HX).content.decode()
    assert "Nothing picked yet" in body


def test_budget_and_format_are_kept_and_bad_values_are_form_errors(logged_in, convo):
    session, _ = convo
    pick(logged_in, session)
    body = logged_in.post("/context/panel/", {"budget": 120, "format": "xml"}, **HX).content.decode()
    assert "of 120 tokens" in body and "&lt;session id=" in body
    body = logged_in.post("/context/panel/", {"budget": 5, "format": "xml"}, **HX).content.decode()
    assert "Token budget: Ensure this value is greater than or equal to 100." in body
    assert "of 120 tokens" in body  # the last good setting
    download = logged_in.get("/context/download/")
    assert download["Content-Type"] == "application/xml; charset=utf-8"
    assert download["Content-Disposition"].startswith('attachment; filename="context-')
    assert download.content.decode().startswith("<context>\n<session id=")
    logged_in.post("/context/panel/", {"budget": 4000, "format": "markdown"}, **HX)
    assert logged_in.get("/context/download/").content.decode().startswith("# Context from past coding sessions")


def test_a_get_of_the_panel_changes_no_setting(logged_in, convo):
    """GET /context/panel/ used to store ?budget= and ?format=: a link or a prefetch could change them."""
    session, _ = convo
    pick(logged_in, session)
    logged_in.post("/context/panel/", {"budget": 3000, "format": "markdown"}, **HX)
    body = logged_in.get("/context/panel/?budget=120&format=xml", **HX).content.decode()
    assert "of 3000 tokens" in body and "&lt;session id=" not in body
    assert logged_in.get("/context/download/")["Content-Type"] == "text/markdown; charset=utf-8"
    assert logged_in.get("/context/panel/?budget=120&format=xml")["Location"] == "/context/"
    assert "of 3000 tokens" in logged_in.get("/context/").content.decode()


def test_a_bad_budget_without_javascript_says_why(logged_in, convo):
    response = logged_in.post("/context/panel/", {"budget": 5, "format": "text"}, follow=True)
    assert "Token budget: Ensure this value is greater than or equal to 100." in response.content.decode()


def test_a_small_budget_trims_and_says_so(logged_in, user):
    session = SessionFactory(owner=user, title="Long")
    for i in range(20):
        MessageFactory(session=session, text_content="lorem ipsum " * 100, created_at=T0 + timedelta(minutes=i))
    pick(logged_in, session)
    body = logged_in.post("/context/panel/", {"budget": 600, "format": "text"}, **HX).content.decode()
    assert "Trimmed to fit" in body and "of 600 tokens" in body


def test_others_sessions_and_mismatched_messages_are_404(logged_in, other_user, user, convo):
    session, messages = convo
    theirs = SessionFactory(owner=other_user)
    assert pick(logged_in, theirs).status_code == 404
    mine_too = SessionFactory(owner=user)
    assert pick(logged_in, mine_too, messages[0]).status_code == 404  # a message of another session
    assert logged_in.post("/context/bookmark/", {"session": theirs.pk, "on": "1"}, **HX).status_code == 404
    assert output(logged_in).count("Nothing picked yet") == 1


def test_bad_pick_requests_are_400(logged_in):
    assert logged_in.post("/context/pick/", {"action": "explode"}, **HX).status_code == 400
    assert logged_in.post("/context/pick/", {"action": "add"}, **HX).status_code == 400
    assert logged_in.post("/context/pick/", {"action": "add", "session": "x"}, **HX).status_code == 400


def test_the_number_of_sessions_is_capped(logged_in, user):
    sessions = SessionFactory.create_batch(MAX_PICKS + 1, owner=user)
    for session in sessions[:MAX_PICKS]:
        assert pick(logged_in, session).status_code == 200
    response = pick(logged_in, sessions[-1])
    assert response.status_code == 400 and f"at most {MAX_PICKS} sessions" in response.content.decode()


def test_the_context_is_per_workspace(logged_in, user, convo):
    session, _ = convo
    pick(logged_in, session)
    team = team_with(user)
    logged_in.post("/workspaces/switch/", {"workspace": team.pk})
    assert "Nothing picked yet" in output(logged_in)
    assert pick(logged_in, session).status_code == 404  # not a session of this workspace


def test_without_javascript_every_action_redirects_back(logged_in, convo):
    session, messages = convo
    response = logged_in.post("/context/pick/", {"action": "add", "session": session.pk, "next": "/context/?q=login"})
    assert response.status_code == 302 and response["Location"] == "/context/?q=login"
    response = logged_in.post(
        "/context/pick/", {"action": "add", "session": session.pk, "next": "https://evil.example/"}
    )
    assert response["Location"] == "/context/"
    assert logged_in.post("/context/panel/", {"budget": 2000, "format": "markdown"})["Location"] == "/context/"
    assert "of 2000 tokens" in logged_in.get("/context/").content.decode()
    response = logged_in.post("/context/saved/", {"q": "login", "mode": "hybrid"})
    assert response["Location"] == "/context/?q=login&mode=hybrid"


def test_csrf_is_enforced(user, convo):
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    assert client.post("/context/pick/", {"action": "clear"}, **HX).status_code == 403
    assert client.post("/context/bookmark/", {"session": convo[0].pk, "on": "1"}, **HX).status_code == 403


# --- saved searches and bookmarks ----------------------------------------------------------------------


def test_saved_searches_are_idempotent_per_user_and_deletable(logged_in, user, other_user, personal_workspace):
    for _ in range(2):
        body = logged_in.post("/context/saved/", {"q": "ECONNREFUSED", "mode": "fulltext"}, **HX).content.decode()
    assert SavedSearch.objects.filter(user=user).count() == 1
    assert 'href="/context/?q=ECONNREFUSED&amp;mode=fulltext"' in body
    assert "★ Saved search" in logged_in.get("/context/?q=ECONNREFUSED&mode=fulltext").content.decode()
    assert logged_in.post("/context/saved/", {"q": "", "mode": "fulltext"}, **HX).status_code == 400
    theirs = SavedSearchFactory(user=other_user, workspace=personal_workspace, name="x", query="x")
    assert logged_in.post(f"/context/saved/{theirs.pk}/delete/", **HX).status_code == 404
    saved = SavedSearch.objects.get(user=user)
    body = logged_in.post(f"/context/saved/{saved.pk}/delete/", **HX).content.decode()
    assert not SavedSearch.objects.filter(pk=saved.pk).exists() and "ECONNREFUSED" not in body


def test_bookmarks_toggle_list_and_go_with_their_session(logged_in, user, convo):
    session, messages = convo
    for _ in range(2):  # a retried click keeps one
        response = logged_in.post(
            "/context/bookmark/", {"session": session.pk, "message": messages[1].pk, "on": "1"}, **HX
        )
    assert response["HX-Trigger"] == "bookmarks-changed" and "★ Bookmarked message" in response.content.decode()
    logged_in.post("/context/bookmark/", {"session": session.pk, "on": "1"}, **HX)
    assert Bookmark.objects.filter(user=user).count() == 2
    listed = logged_in.get("/context/bookmarks/", **HX).content.decode()
    assert listed.count("Remove bookmark") == 2 and "It races the session save." in listed
    body = logged_in.post(
        "/context/bookmark/", {"session": session.pk, "on": "", "target": "list"}, **HX
    ).content.decode()
    assert body.count("Remove bookmark") == 1
    sessions_delete(session_ids=[session.pk])
    assert not Bookmark.objects.exists()


def test_bookmarks_of_another_workspace_are_not_listed(logged_in, user, other_user):
    team = team_with(other_user)
    theirs = SessionFactory(owner=other_user, workspace=team, title="Team session")
    BookmarkFactory(user=user, session=theirs)
    assert "Team session" not in logged_in.get("/context/").content.decode()


def test_delete_my_data_takes_saved_searches_and_bookmarks(user, other_user, convo, personal_workspace):
    from accounts.deletion import deletion_job_run
    from accounts.models import DeletionJob, DeletionKind, DeletionStatus

    session, messages = convo
    SavedSearchFactory(user=user, workspace=personal_workspace, name="mine", query="mine")
    BookmarkFactory(user=user, session=session, message=messages[0])
    theirs = SavedSearchFactory(user=other_user, workspace=personal_workspace, name="x", query="x")
    job = DeletionJob.objects.create(user=user, kind=DeletionKind.DATA)
    assert deletion_job_run(job_id=job.pk).status == DeletionStatus.DONE
    assert list(SavedSearch.objects.all()) == [theirs] and not Bookmark.objects.exists()


def test_the_viewer_adds_to_the_context_and_bookmarks(logged_in, user, convo):
    session, messages = convo
    page = logged_in.get(f"/sessions/{session.pk}/").content.decode()
    assert page.count("+ Message") == 3 and "+ Session" in page and page.count("☆ Bookmark") == 4
    pick(logged_in, session, messages[1], target="button")
    logged_in.post("/context/bookmark/", {"session": session.pk, "message": messages[2].pk, "on": "1"}, **HX)
    page = logged_in.get(f"/sessions/{session.pk}/").content.decode()
    assert page.count("✓ Message in context") == 1 and page.count("+ Message") == 2
    assert page.count("★ Bookmarked message") == 1
    assert "It races the session save." in output(logged_in)


def test_removing_from_the_panel_resets_the_add_buttons_elsewhere_on_the_page(logged_in, user, convo):
    session, messages = convo
    pick(logged_in, session)
    pick(logged_in, session, messages[1])
    body = pick(logged_in, session, action="remove").content.decode()
    # the panel, plus out-of-band "+ Session" / "+ Message" buttons for every copy on the page
    assert f'hx-swap-oob="outerHTML:.pick-{session.pk}-s"' in body
    assert f'hx-swap-oob="outerHTML:.pick-{session.pk}-{messages[1].pk}"' in body
    pick(logged_in, session, messages[2])
    body = logged_in.post("/context/pick/", {"action": "clear"}, **HX).content.decode()
    assert body.count("hx-swap-oob") == 1 and f".pick-{session.pk}-{messages[2].pk}" in body


def test_saving_a_search_turns_its_button_into_saved(logged_in):
    body = logged_in.post("/context/saved/", {"q": "flaky", "mode": "hybrid"}, **HX).content.decode()
    assert 'id="saved-searches"' in body
    assert 'id="save-search" hx-swap-oob="true"' in body and "★ Saved search" in body


def test_no_template_comment_leaks_into_the_page(logged_in, convo):
    pick(logged_in, convo[0])
    for path in ("/context/", f"/sessions/{convo[0].pk}/"):
        assert "{#" not in logged_in.get(path).content.decode()
