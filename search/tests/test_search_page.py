"""The search page: results for the current workspace, HTMX fragments, paging, bad input."""

import pytest
from django.urls import reverse

from accounts.models import Workspace
from sessions_app.tests.factories import MessageFactory, SessionFactory

pytestmark = pytest.mark.django_db

HX = {"HTTP_HX_REQUEST": "true"}
URL = "/search/"


def indexed_message(session, text):
    """A message whose search_text is set as the sync would set it."""
    return MessageFactory(session=session, text_content=text, search_text=text)


def test_needs_login(client, db):
    response = client.get(URL, {"q": "x"})
    assert response.status_code == 302 and response.url.startswith(reverse("account_login"))


def test_results_link_to_the_matching_message(logged_in, user, other_user):
    session = SessionFactory(owner=user, title="Database fix")
    message = indexed_message(session, "The server answered ECONNREFUSED on port 5432")
    SessionFactory(owner=other_user, title="ECONNREFUSED elsewhere")  # another workspace
    html = logged_in.get(URL, {"q": "ECONNREFUSED"}).content.decode()
    assert "Database fix" in html and "ECONNREFUSED elsewhere" not in html
    assert f"?at={message.pk}#m-{message.pk}" in html and "<mark>ECONNREFUSED</mark>" in html


def test_htmx_returns_the_results_fragment_and_more_results(logged_in, user):
    for i in range(25):
        indexed_message(SessionFactory(owner=user, title=f"s{i}"), "flaky login test")
    first = logged_in.get(URL, {"q": "flaky"}, **HX)
    html = first.content.decode()
    assert "<html" not in html and html.count('class="card search-hit"') == 20 and "More results" in html
    more = logged_in.get(URL, {"q": "flaky", "offset": 20}, **HX).content.decode()
    assert more.count('class="card search-hit"') == 5 and "More results" not in more and 'id="results"' not in more


def test_empty_and_no_match_and_too_long(logged_in, user):
    assert "Search your sessions" in logged_in.get(URL).content.decode()
    assert "Nothing found" in logged_in.get(URL, {"q": "zzzqqq"}).content.decode()
    response = logged_in.get(URL, {"q": "x" * 501})
    assert response.status_code == 200 and "too long" in response.content.decode()


def test_semantic_without_provider_says_so(logged_in, user):
    indexed_message(SessionFactory(owner=user, title="Deploy"), "deploy the app")
    html = logged_in.get(URL, {"q": "deploy", "mode": "hybrid"}).content.decode()
    assert "Semantic search is turned off" in html
    assert "Deploy" in html


def test_filters_apply(logged_in, user):
    indexed_message(SessionFactory(owner=user, title="In pi", source="pi"), "cache invalidation")
    indexed_message(SessionFactory(owner=user, title="In codex", source="codex-cli"), "cache invalidation")
    html = logged_in.get(URL, {"q": "cache", "source": "pi"}).content.decode()
    assert "In pi" in html and "In codex" not in html


def test_session_list_has_a_search_box(logged_in, user):
    html = logged_in.get(reverse("sessions:list")).content.decode()
    assert f'action="{URL}"' in html and 'name="q"' in html
    assert Workspace.objects.filter(created_by=user).exists()
