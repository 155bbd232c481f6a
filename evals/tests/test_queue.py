"""The review queue: which sessions, the position and its clamping, filters, and the page."""

from datetime import timedelta

import pytest
from django.utils import timezone

from sessions_app.tests.factories import MessageFactory, SessionFactory

pytestmark = pytest.mark.django_db


def titles_in_order(logged_in, query="", n=10):
    out = []
    for pos in range(1, n + 1):
        page = logged_in.get(f"/evals/queue/?{query}pos={pos}").content.decode()
        title = page.split('class="queue-title"><a href="', 1)[1].split(">", 1)[1].split("<", 1)[0]
        out.append(title)
    return out


def test_the_queue_steps_through_the_list_order_with_progress(logged_in, user):
    now = timezone.now()
    for i in range(3):
        session = SessionFactory(owner=user, title=f"S{i}", updated_at=now - timedelta(minutes=i))
        MessageFactory(session=session, text_content=f"message of S{i}")
    assert titles_in_order(logged_in, n=3) == ["S0", "S1", "S2"]
    page = logged_in.get("/evals/queue/?pos=2").content.decode()
    assert "<strong>2</strong> of 3" in page and 'data-queue="previous"' in page and 'data-queue="next"' in page
    assert "message of S1" in page and 'id="review-panel" class="card review-panel" open' in page
    assert "data-review-queue" in page
    last = logged_in.get("/evals/queue/?pos=99").content.decode()  # clamped to the end
    assert "<strong>3</strong> of 3" in last and 'data-queue="next"' not in last and "End of the queue" in last
    assert "<strong>1</strong> of 3" in logged_in.get("/evals/queue/?pos=x").content.decode()


def test_filters_narrow_the_queue(logged_in, user):
    SessionFactory(owner=user, title="Ready", eval_ready=True)
    SessionFactory(owner=user, title="Not yet")
    page = logged_in.get("/evals/queue/?eval=not_ready").content.decode()
    assert "<strong>1</strong> of 1" in page and ">Not yet<" in page


def test_a_member_only_gets_their_own_sessions_a_reviewer_all(client, team):
    SessionFactory(owner=team.owner, workspace=team.workspace, title="Theirs")
    SessionFactory(owner=team.member, workspace=team.workspace, title="Mine")
    client.force_login(team.member)
    client.post("/workspaces/switch/", {"workspace": team.workspace.pk})
    page = client.get("/evals/queue/").content.decode()
    assert "of 1" in page and ">Mine<" in page
    client.force_login(team.reviewer)  # a new session: the switcher starts from the personal workspace
    client.post("/workspaces/switch/", {"workspace": team.workspace.pk})
    assert "of 2" in client.get("/evals/queue/").content.decode()


def test_an_empty_queue_says_so(logged_in):
    assert "Nothing to review" in logged_in.get("/evals/queue/").content.decode()


def test_the_list_links_to_the_queue_with_its_filters(logged_in, user):
    SessionFactory(owner=user)
    page = logged_in.get("/sessions/?source=claude-code").content.decode()
    assert 'href="/evals/queue/?source=claude-code"' in page
