"""The dashboard's query strings and form fields: "²" (which `str.isdigit()` accepts and `int()`
refuses) and NUL (which PostgreSQL refuses) are read as bad input, never a 500."""

import re

import pytest
from django import forms as django_forms
from django.conf import settings
from django.http import QueryDict
from django.urls import get_resolver

from accounts import forms as accounts_forms
from accounts.tests.factories import team_with
from evals import forms as evals_forms
from search import forms as search_forms
from sessions_app import forms as sessions_forms

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
    team = team_with(user)
    logged_in.post("/workspaces/switch/", {"workspace": team.pk})
    assert logged_in.get("/sessions/", {"owner": "²"}).status_code == 200


# --- every page, every parameter the views read --------------------------------------------------

# The names the views read from a query string or a form: `request.GET.get("name")` and friends,
# found in the source so that a parameter added later is swept too, plus the fields of the forms.
_READ = re.compile(r"""(?:GET|POST|data|query_params)\.(?:get|getlist)\(\s*["'](\w+)["']""")


def _parameter_names() -> set[str]:
    names = set()
    for app in ("accounts", "sessions_app", "search", "evals"):
        for path in (settings.BASE_DIR / app).rglob("*.py"):
            if "tests" not in path.parts and "migrations" not in path.parts:
                names.update(_READ.findall(path.read_text()))
    for module in (accounts_forms, sessions_forms, search_forms, evals_forms):
        for form in vars(module).values():
            if isinstance(form, type) and issubclass(form, django_forms.BaseForm):
                names.update(form.base_fields)
    return names


def _pages(session, user) -> list[str]:
    """Every dashboard page that answers a GET, with its path parameters filled in."""
    workspace = user.memberships.select_related("workspace").first().workspace
    pages = []
    for pattern in get_resolver().url_patterns:
        pages.extend(_paths(pattern, "", session, workspace))
    return pages


def _paths(pattern, prefix, session, workspace):
    route = prefix + str(pattern.pattern)
    if hasattr(pattern, "url_patterns"):
        if route.startswith(("admin", "api", "sync", "convex", "accounts/", "static", "^")):
            return []  # the APIs have their own sweep (accounts/tests/test_api_edges.py); allauth's own
        return [p for sub in pattern.url_patterns for p in _paths(sub, route, session, workspace)]
    values = {"session_id": session.pk, "slug": workspace.slug, "fmt": "md"}
    path = re.sub(r"<(?:\w+:)?(\w+)>", lambda m: str(values.get(m[1], 1)), route)
    return [] if "<" in path or "(" in path or "^" in path else ["/" + path]


@pytest.fixture
def read_names(monkeypatch):
    """The query parameter names read (get, getlist, []) while it is recording. (Not `in`: building
    a QueryDict asks that of every name it is given.)"""
    read: set[str] = set()

    def recording(method):
        def wrapper(self, key, *args, **kwargs):
            read.add(key)
            return method(self, key, *args, **kwargs)

        return wrapper

    for name in ("get", "getlist", "__getitem__"):
        monkeypatch.setattr(QueryDict, name, recording(getattr(QueryDict, name)))
    return read


@pytest.mark.parametrize("bad", ["a\x00b", "²"])
def test_no_page_answers_500_to_bad_text_in_any_parameter(logged_in, session, user, read_names, bad):
    """Each page, GET with each parameter it reads set to text PostgreSQL or int() can't take,
    one at a time: an error, a redirect or the page; never a 500. What a page reads is recorded
    from one request that sends every name the views and forms know with a harmless value."""
    logged_in.raise_request_exception = False
    names = sorted(_parameter_names())
    failures = []
    for page in _pages(session, user):
        read_names.clear()
        logged_in.get(page, dict.fromkeys(names, "1"))
        for name in sorted(read_names & set(names)):
            status = logged_in.get(page, {name: bad}).status_code
            if status >= 500:
                failures.append(f"GET {page} {name}={bad!r}: {status}")
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("next_url", ["²", "home", "https://evil.example/"])
def test_workspace_switch_goes_home_for_a_next_that_is_not_a_path_here(logged_in, user, next_url):
    workspace = user.memberships.select_related("workspace").first().workspace
    response = logged_in.post("/workspaces/switch/", {"workspace": str(workspace.pk), "next": next_url})
    assert response.status_code == 302 and response["Location"] == "/"


def test_workspace_switch_refuses_a_non_ascii_digit_id(logged_in, user):
    logged_in.raise_request_exception = False
    assert logged_in.post("/workspaces/switch/", {"workspace": "٣"}).status_code == 403
