"""The Evals page: only eval-ready sessions of the workspace, filters (status, agent, tags,
reviewer), counts, pages, and bulk status/tag changes with permissions."""

import pytest

from accounts.tests.factories import team_with
from evals.services import session_review
from sessions_app.models import Session
from sessions_app.tests.factories import SessionFactory

pytestmark = pytest.mark.django_db


def ready(owner, title, *, status=None, tags=(), reviewer=None, **fields):
    session = SessionFactory(owner=owner, title=title, **fields)
    session_review(session=session, actor=reviewer or owner, eval_ready=True, eval_status=status, eval_tags=list(tags))
    return session


def test_lists_only_eval_ready_sessions_with_counts(logged_in, user, other_user):
    ready(user, "Golden one", status="golden", tags=["auth"])
    ready(user, "Needs work", status="needs_review", source="opencode")
    SessionFactory(owner=user, title="Not ready")
    ready(other_user, "Someone else's")
    page = logged_in.get("/evals/").content.decode()
    assert "Golden one" in page and "Needs work" in page
    assert "Not ready" not in page and "Someone else" not in page
    assert '<div class="stat-value">2</div>' in page
    assert 'eval=golden">Golden</a> <strong>1</strong>' in page
    assert 'source=opencode">OpenCode</a> <strong>1</strong>' in page
    assert 'aria-current="page">Evals' in page


@pytest.mark.parametrize(
    "query, expected",
    [
        ("eval=golden", ["Golden one"]),
        ("tags=auth", ["Golden one"]),
        ("tags=AUTH, other", ["Golden one"]),
        ("source=opencode", ["Needs work"]),
        ("eval=unset", ["Plain one"]),
    ],
)
def test_filters(logged_in, user, query, expected):
    ready(user, "Golden one", status="golden", tags=["auth"])
    ready(user, "Needs work", status="needs_review", source="opencode")
    ready(user, "Plain one")
    page = logged_in.get(f"/evals/?{query}").content.decode()
    shown = [t for t in ("Golden one", "Needs work", "Plain one") if f">{t}</a>" in page]
    assert shown == expected


def test_reviewer_filter_in_a_team(logged_in, user, other_user):
    team = team_with(user, reviewer=other_user)
    ready(user, "By me", workspace=team)
    ready(other_user, "By them", workspace=team, reviewer=other_user)
    logged_in.post("/workspaces/switch/", {"workspace": team.pk})
    page = logged_in.get(f"/evals/?reviewer={other_user.pk}").content.decode()
    assert ">By them</a>" in page and ">By me</a>" not in page


def test_pages_of_fifty(logged_in, user):
    for i in range(51):
        ready(user, f"S{i:02d}")
    first = logged_in.get("/evals/").content.decode()
    assert first.count('name="ids"') == 50 and "Page 1 of 2" in first and 'rel="next"' in first
    assert logged_in.get("/evals/?page=2").content.decode().count('name="ids"') == 1


def test_empty_states(logged_in, user):
    assert "No eval-ready sessions yet" in logged_in.get("/evals/").content.decode()
    ready(user, "One", status="golden")
    assert "No eval-ready session matches" in logged_in.get("/evals/?eval=incorrect").content.decode()


def test_bulk_status_and_tags_check_each_sessions_permission(logged_in, user, other_user):
    team = team_with(other_user, member=user)
    mine = ready(user, "Mine", workspace=team)
    theirs = ready(other_user, "Theirs", workspace=team)
    logged_in.post("/workspaces/switch/", {"workspace": team.pk})
    response = logged_in.post("/evals/bulk/", {"action": "status", "status": "correct", "ids": [mine.pk, theirs.pk]})
    assert response.status_code == 302 and response["Location"] == "/evals/"
    page = logged_in.get("/evals/").content.decode()
    assert "Updated 1 of 1 session. Skipped 1 you can&#x27;t review." in page
    assert Session.objects.get(pk=mine.pk).eval_status == "correct"
    assert Session.objects.get(pk=theirs.pk).eval_status is None
    logged_in.post("/evals/bulk/", {"action": "add_tag", "tag": "Flaky", "ids": [mine.pk]})
    assert Session.objects.get(pk=mine.pk).eval_tags == ["flaky"]
    logged_in.post("/evals/bulk/", {"action": "remove_tag", "tag": "flaky", "ids": [mine.pk]})
    assert Session.objects.get(pk=mine.pk).eval_tags == []
    logged_in.post("/evals/bulk/", {"action": "not_ready", "ids": [mine.pk], "next": "/evals/?eval=correct"})
    assert not Session.objects.get(pk=mine.pk).eval_ready


def test_bulk_errors_are_messages(logged_in, user):
    session = ready(user, "One")
    page = logged_in.get(logged_in.post("/evals/bulk/", {"action": "add_tag", "ids": [session.pk]})["Location"])
    assert "Which tag?" in page.content.decode()
    page = logged_in.get(logged_in.post("/evals/bulk/", {"action": "status"})["Location"])
    assert "Tick at least one session." in page.content.decode()
    response = logged_in.post(
        "/evals/bulk/", {"action": "status", "ids": [session.pk], "next": "https://evil.example/"}
    )
    assert response["Location"] == "/evals/"


def test_anonymous_users_log_in(client, db):
    assert client.get("/evals/")["Location"].startswith("/accounts/login/")
    assert client.post("/evals/bulk/", {})["Location"].startswith("/accounts/login/")
