"""Browser pages for sessions: the list (filters, keyset pages, bulk actions) and the viewer
(message pages, rename, share, delete, export)."""

import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from accounts.models import Membership, Workspace
from accounts.tests.factories import UserFactory
from sessions_app import selectors
from sessions_app.models import EvalStatus, Message, Part, Session, Source

from .factories import MessageFactory, PartFactory, SessionFactory

pytestmark = pytest.mark.django_db

HX = {"HTTP_HX_REQUEST": "true"}
LIST = "/sessions/"


def switch(client, workspace):
    client.post(reverse("accounts:workspace-switch"), {"workspace": workspace.pk})


def assert_redirects_to_login(response):
    assert response.status_code == 302
    assert response.url.startswith(reverse("account_login"))


def count_queries(client, url, **extra) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get(url, **extra).status_code == 200
    return len(queries)


def detail_url(session):
    return reverse("sessions:detail", args=[session.pk])


# --- the list -------------------------------------------------------------------------------------


def test_list_needs_login(client, db):
    assert_redirects_to_login(client.get(LIST))


def test_list_shows_current_workspace_only(logged_in, user, other_user, team_as_member):
    SessionFactory(owner=user, title="Refactor the parser")
    SessionFactory(owner=other_user, workspace=team_as_member, title="Team deploy session")
    SessionFactory(owner=other_user, title="Private experiment")
    page = logged_in.get(LIST).content.decode()
    assert "Refactor the parser" in page
    assert "Team deploy session" not in page  # another of my workspaces, not the current one
    assert "Private experiment" not in page  # someone else's

    switch(logged_in, team_as_member)
    page = logged_in.get(LIST).content.decode()
    assert "Team deploy session" in page and "Refactor the parser" not in page
    assert 'name="owner"' in page  # the owner filter appears in team workspaces


def test_list_empty_workspace_explains_how_to_connect_a_plugin(logged_in):
    page = logged_in.get(LIST).content.decode()
    assert "No sessions yet" in page and "CLAUDE_SYNC_API_KEY" in page and reverse("accounts:api-keys") in page


def test_list_with_no_match_says_so(logged_in, user):
    SessionFactory(owner=user, source=Source.CLAUDE_CODE)
    page = logged_in.get(LIST, {"source": Source.PI}).content.decode()
    assert "No sessions match these filters" in page and "No sessions yet" not in page


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"source": "opencode"}, {"oc"}),
        ({"project": "billing"}, {"oc"}),
        ({"model": "gpt-5"}, {"cx"}),
        ({"provider": "openai"}, {"cx"}),
        ({"eval": "ready"}, {"cx"}),
        ({"eval": "not_ready"}, {"cc", "oc"}),
        ({"eval": "golden"}, {"cc"}),
        ({"eval": "unset"}, {"oc", "cx"}),
        ({"date_from": "2026-03-02"}, {"cx", "oc"}),
        ({"date_to": "2026-03-01"}, {"cc"}),
        ({"date_from": "2026-03-02", "date_to": "2026-03-02"}, {"oc"}),
        ({"source": "codex-cli", "model": "gpt-5"}, {"cx"}),
        ({}, {"cc", "oc", "cx"}),
    ],
)
def test_list_filters(logged_in, user, params, expected):
    day = timezone.make_aware(timezone.datetime(2026, 3, 1, 12))
    SessionFactory(owner=user, title="cc", source="claude-code", eval_status=EvalStatus.GOLDEN, created_at=day)
    SessionFactory(
        owner=user, title="oc", source="opencode", project_name="billing", created_at=day + timedelta(days=1)
    )
    SessionFactory(
        owner=user,
        title="cx",
        source="codex-cli",
        model="gpt-5",
        provider="openai",
        eval_ready=True,
        created_at=day + timedelta(days=2),
    )
    response = logged_in.get(LIST, params)
    assert {s.title for s in response.context_data["sessions"]} == expected


def test_a_date_range_lists_by_creation_date_unless_sorted_otherwise(logged_in, user):
    day = timezone.make_aware(timezone.datetime(2026, 3, 1, 12))
    SessionFactory(owner=user, title="older, active later", created_at=day, updated_at=day + timedelta(days=9))
    SessionFactory(owner=user, title="newer", created_at=day + timedelta(days=1), updated_at=day + timedelta(days=1))
    params = {"date_from": "2026-03-01"}
    assert [s.title for s in logged_in.get(LIST, params).context_data["sessions"]] == ["newer", "older, active later"]
    params["sort"] = "updated"
    assert [s.title for s in logged_in.get(LIST, params).context_data["sessions"]] == ["older, active later", "newer"]


def test_list_owner_filter_in_team(logged_in, user, other_user, team_as_member):
    SessionFactory(owner=user, workspace=team_as_member, title="mine")
    SessionFactory(owner=other_user, workspace=team_as_member, title="theirs")
    switch(logged_in, team_as_member)
    response = logged_in.get(LIST, {"owner": other_user.pk})
    assert [s.title for s in response.context_data["sessions"]] == ["theirs"]


def test_list_bad_filter_values_are_reported_and_ignored(logged_in, user):
    SessionFactory(owner=user, title="still listed")
    response = logged_in.get(LIST, {"date_from": "yesterday", "sort": "nonsense", "source": "aider", "owner": "x"})
    assert response.status_code == 200
    page = response.content.decode()
    assert "still listed" in page and "This filter is ignored" in page


def test_list_end_before_start_is_an_error(logged_in, user):
    SessionFactory(owner=user)
    page = logged_in.get(LIST, {"date_from": "2026-05-02", "date_to": "2026-05-01"}).content.decode()
    assert "The end date is before the start date." in page


def test_disabled_agents_leave_the_source_filter(logged_in, user):
    user.hidden_sources = [Source.PI, Source.CURSOR]
    user.save()
    page = logged_in.get(LIST).content.decode()
    assert 'value="claude-code"' in page and 'value="pi"' not in page and 'value="cursor-sync"' not in page


def test_filter_change_by_htmx_returns_the_results_fragment(logged_in, user):
    SessionFactory(owner=user, title="a fragment row", source="opencode")
    response = logged_in.get(LIST, {"source": "opencode"}, **HX)
    html = response.content.decode()
    assert "<html" not in html and 'id="results"' in html and "a fragment row" in html
    assert "HX-Request" in response["Vary"]
    # A history restore (back button) needs the whole page.
    restore = logged_in.get(LIST, {"source": "opencode"}, HTTP_HX_HISTORY_RESTORE_REQUEST="true", **HX)
    assert "<html" in restore.content.decode()


def test_load_more_appends_the_next_rows(logged_in, user):
    for i in range(55):
        SessionFactory(owner=user, title=f"row {i:02d}", updated_at=timezone.now() - timedelta(minutes=i))
    first = logged_in.get(LIST)
    assert len(first.context_data["sessions"]) == 50
    next_url = first.context_data["next_url"]
    assert next_url and "cursor=" in next_url
    more = logged_in.get(next_url, **HX)
    html = more.content.decode()
    assert "<html" not in html and "<tbody" not in html
    assert [s.title for s in more.context_data["sessions"]] == [f"row {i:02d}" for i in range(50, 55)]
    assert more.context_data["next_url"] is None
    # Without JavaScript the same link renders the full page of the next rows.
    assert "<html" in logged_in.get(next_url).content.decode()


def test_tampered_cursor_starts_over(logged_in, user):
    SessionFactory(owner=user, title="first")
    response = logged_in.get(LIST, {"cursor": "not-a-cursor!!"})
    assert response.status_code == 200 and [s.title for s in response.context_data["sessions"]] == ["first"]


@pytest.mark.parametrize("sort", list(selectors.SORTS))
@pytest.mark.parametrize("direction", ["desc", "asc"])
def test_keyset_pages_visit_every_session_once_in_order(user, personal_workspace, sort, direction):
    now = timezone.now()
    values = [
        (100, Decimal("0.5"), 1000, 3),
        (100, None, None, 3),
        (5, Decimal("0.5"), 1000, 1),
        (0, None, 20, 0),
        (7, Decimal("2"), None, 9),
        (100, Decimal("0.5"), 5, 3),
        (7, None, 1000, 9),
    ]
    for i, (tokens, cost, duration, count) in enumerate(values):
        SessionFactory(
            owner=user,
            prompt_tokens=tokens,
            cost=cost,
            duration_ms=duration,
            message_count=count,
            created_at=now - timedelta(hours=i % 3),
            updated_at=now - timedelta(minutes=i % 2),
        )
    column, _ = selectors.SORTS[sort]
    filters = selectors.SessionFilters(sort=sort, direction=direction)
    seen, cursor = [], None
    while True:
        page, cursor = selectors.session_page(personal_workspace, filters, cursor=cursor, size=2)
        seen.extend(page)
        if cursor is None:
            break
    assert len(seen) == len(values) == len({s.pk for s in seen})

    def key(session):  # NULL is the smallest value in both directions
        value = getattr(session, column)
        return (value is not None, value if value is not None else 0, session.pk)

    assert [s.pk for s in seen] == [s.pk for s in sorted(seen, key=key, reverse=direction == "desc")]


def test_list_query_count_does_not_grow_with_sessions(logged_in, user, other_user, team_as_member):
    switch(logged_in, team_as_member)
    SessionFactory(owner=user, workspace=team_as_member)
    count_queries(logged_in, LIST)  # the filter menus' choices are cached after the first page
    baseline = count_queries(logged_in, LIST)
    for i in range(60):
        SessionFactory(
            owner=other_user if i % 2 else user, workspace=team_as_member, project_name=f"p{i}", model=f"m{i}"
        )
    assert count_queries(logged_in, LIST) == baseline
    assert count_queries(logged_in, LIST + "?source=claude-code&sort=cost") <= baseline


# --- bulk actions ---------------------------------------------------------------------------------


def test_bulk_mark_eval_ready_only_where_allowed(logged_in, user, other_user, team_as_member):
    mine = SessionFactory(owner=user, workspace=team_as_member)
    theirs = SessionFactory(owner=other_user, workspace=team_as_member)  # a member may not review others'
    foreign = SessionFactory(owner=other_user)
    response = logged_in.post(
        reverse("sessions:bulk"), {"action": "eval_ready", "ids": [mine.pk, theirs.pk, foreign.pk]}, **HX
    )
    html = response.content.decode()
    assert response.status_code == 200 and "Marked 1 session eval-ready" in html and "Skipped 1" in html
    assert f'id="session-row-{mine.pk}" hx-swap-oob="true"' in html
    assert response["HX-Retarget"] == "#bulk-status"
    assert list(Session.objects.filter(eval_ready=True)) == [mine]


def test_bulk_delete_asks_first_then_deletes_only_where_allowed(logged_in, user, other_user, team_as_member):
    mine = SessionFactory(owner=user, workspace=team_as_member, title="doomed")
    MessageFactory(session=mine)
    theirs = SessionFactory(owner=other_user, workspace=team_as_member)
    ids = [mine.pk, theirs.pk]
    confirm = logged_in.post(reverse("sessions:bulk"), {"action": "delete", "ids": ids}, **HX)
    html = confirm.content.decode()
    assert "<dialog" in html and "Delete 1 session?" in html and "doomed" in html and "<html" not in html
    assert Session.objects.count() == 2  # nothing deleted yet

    done = logged_in.post(reverse("sessions:bulk"), {"action": "delete", "ids": ids, "confirmed": "yes"}, **HX)
    html = done.content.decode()
    assert "Deleted 1 session." in html and f'id="session-row-{mine.pk}" hx-swap-oob="delete"' in html
    assert list(Session.objects.all()) == [theirs] and not Message.objects.filter(session_id=mine.pk).exists()


def test_bulk_delete_without_javascript(logged_in, user):
    session = SessionFactory(owner=user)
    page = logged_in.post(reverse("sessions:bulk"), {"action": "delete", "ids": [session.pk], "next": LIST})
    assert "<html" in page.content.decode() and "<dialog" in page.content.decode() and " open>" in page.content.decode()
    done = logged_in.post(
        reverse("sessions:bulk"), {"action": "delete", "ids": [session.pk], "confirmed": "yes", "next": LIST}
    )
    assert done.status_code == 302 and done.url == LIST and not Session.objects.exists()


def test_bulk_rejects_unknown_actions_and_foreign_next(logged_in, user):
    session = SessionFactory(owner=user)
    assert logged_in.post(reverse("sessions:bulk"), {"action": "explode", "ids": [session.pk]}).status_code == 400
    done = logged_in.post(
        reverse("sessions:bulk"), {"action": "eval_ready", "ids": [session.pk], "next": "https://evil.example/"}
    )
    assert done.status_code == 302 and done.url == LIST


def test_workspace_admin_may_bulk_delete_members_sessions(client, user, other_user, team_as_member):
    members_session = SessionFactory(owner=user, workspace=team_as_member)
    client.force_login(other_user)  # admin of the team
    client.post(reverse("sessions:bulk"), {"action": "delete", "ids": [members_session.pk], "confirmed": "yes"})
    assert not Session.objects.filter(pk=members_session.pk).exists()


# --- the viewer -----------------------------------------------------------------------------------


def test_viewer_access(client, user, other_user, team_as_member):
    session = SessionFactory(owner=other_user, workspace=team_as_member, title="Shared with the team")
    assert_redirects_to_login(client.get(detail_url(session)))
    client.force_login(user)  # member of the team
    assert "Shared with the team" in client.get(detail_url(session)).content.decode()
    client.force_login(UserFactory())  # outsider
    assert client.get(detail_url(session)).status_code == 404
    assert client.get(reverse("sessions:detail", args=[999999999])).status_code == 404


def test_viewer_header_and_messages_in_order(logged_in, user):
    session = SessionFactory(
        owner=user,
        title="Owner view",
        model="claude-sonnet-4",
        provider="anthropic",
        prompt_tokens=1200,
        completion_tokens=300,
        cache_read_tokens=5000,
        cost=Decimal("0.0421"),
        duration_ms=125_000,
    )
    MessageFactory(session=session, role="user", text_content="Please fix the tests")
    MessageFactory(session=session, role="assistant", text_content="Fixed **them**")
    page = logged_in.get(detail_url(session)).content.decode()
    for text in ("Owner view", "claude-sonnet-4", "anthropic", "demo-app", user.email, "1.5k", "5k read", "$0.0421"):
        assert text in page
    assert "2m 5s" in page
    assert page.index("Please fix the tests") < page.index("Fixed <strong>them</strong>")


def test_viewer_renders_markdown_code_tools_and_thinking(logged_in, user):
    session = SessionFactory(owner=user)
    message = MessageFactory(session=session, role="assistant", text_content=None)
    PartFactory(message=message, type="thinking", content="Need to read config.ts", order=0)
    PartFactory(message=message, type="text", content="Here:\n\n```python\ndef f():\n    return 1\n```", order=1)
    PartFactory(message=message, type="tool-call", content={"toolName": "Edit", "args": {"file_path": "a.py"}}, order=2)
    PartFactory(message=message, type="tool-result", content={"output": "ok"}, order=3)
    page = logged_in.get(detail_url(session)).content.decode()
    assert '<details class="block block-thinking"><summary>Thinking</summary>' in page  # collapsed
    assert '<span class="tok-k">def</span>' in page  # highlighted on the server
    assert "Tool call <code>Edit</code>" in page
    # pretty-printed arguments (what is shown; the page no longer carries a hidden copy of the text)
    assert '<span class="tok-w">  </span><span class="tok-nt">"file_path"</span>' in page
    assert "Tool result" in page


def test_viewer_pages_long_sessions(logged_in, user):
    session = SessionFactory(owner=user)
    Message.objects.bulk_create(
        Message(session=session, external_id=f"m{i:04d}", role="user", text_content=f"line {i:04d}") for i in range(250)
    )
    first = logged_in.get(detail_url(session))
    assert (
        len(first.context_data["items"]) == 100
        and first.context_data["show_after"]
        and not first.context_data["show_before"]
    )
    page = first.content.decode()
    assert "line 0099" in page and "line 0100" not in page
    cursor = first.context_data["after_cursor"]
    more = logged_in.get(reverse("sessions:messages", args=[session.pk]), {"after": cursor}, **HX)
    html = more.content.decode()
    assert "<html" not in html and "line 0100" in html and "line 0199" in html and "line 0200" not in html
    assert "Load earlier" not in html  # appended below: only the link onward
    last = logged_in.get(
        reverse("sessions:messages", args=[session.pk]), {"after": more.context_data["after_cursor"]}, **HX
    )
    assert "line 0249" in last.content.decode() and not last.context_data["show_after"]
    # Without JavaScript the messages URL goes to the viewer at that point.
    plain = logged_in.get(reverse("sessions:messages", args=[session.pk]), {"after": cursor})
    assert plain.status_code == 302 and plain.url.startswith(detail_url(session) + "?after=")


def test_viewer_jumps_to_a_message_and_loads_earlier(logged_in, user):
    session = SessionFactory(owner=user)
    Message.objects.bulk_create(
        Message(session=session, external_id=f"m{i:04d}", role="user", text_content=f"line {i:04d}") for i in range(150)
    )
    target = session.messages.get(external_id="m0120")
    response = logged_in.get(detail_url(session), {"at": target.pk})
    page = response.content.decode()
    assert f'id="m-{target.pk}"' in page and "is-target" in page
    assert "line 0120" in page and "line 0119" not in page and "Load earlier messages" in page
    earlier = logged_in.get(
        reverse("sessions:messages", args=[session.pk]), {"before": response.context_data["before_cursor"]}, **HX
    )
    html = earlier.content.decode()
    assert "line 0020" in html and "line 0119" in html and "line 0120" not in html and "Load earlier" in html
    # A message of another session is ignored: the viewer starts at the top.
    other = MessageFactory(session=SessionFactory(owner=user))
    assert "line 0000" in logged_in.get(detail_url(session), {"at": other.pk}).content.decode()


def test_viewer_query_count_does_not_grow_with_messages(logged_in, user):
    session = SessionFactory(owner=user)

    def add(count):
        for _ in range(count):
            PartFactory(message=MessageFactory(session=session), type="tool-call", content={"name": "x"})

    add(2)
    baseline = count_queries(logged_in, detail_url(session))
    add(150)
    assert count_queries(logged_in, detail_url(session)) == baseline


# --- rename, share, delete, export ----------------------------------------------------------------


def test_rename_inline(logged_in, user):
    session = SessionFactory(owner=user, title="old")
    form = logged_in.get(reverse("sessions:rename", args=[session.pk]), **HX).content.decode()
    assert "<form" in form and "<html" not in form and 'value="old"' in form
    response = logged_in.post(reverse("sessions:rename", args=[session.pk]), {"title": "  New name  "}, **HX)
    assert "<h1>New name</h1>" in response.content.decode() and "<html" not in response.content.decode()
    session.refresh_from_db()
    assert session.title == "New name"
    too_long = logged_in.post(reverse("sessions:rename", args=[session.pk]), {"title": "x" * 600}, **HX)
    assert too_long.status_code == 422 and "form-error" in too_long.content.decode()
    plain = logged_in.post(reverse("sessions:rename", args=[session.pk]), {"title": ""})
    assert plain.status_code == 302
    session.refresh_from_db()
    assert session.title is None  # back to showing the external id


def test_rename_permissions(client, user, other_user, team_as_member):
    session = SessionFactory(owner=other_user, workspace=team_as_member)
    client.force_login(user)  # a plain member: may view, not rename
    assert client.post(reverse("sessions:rename", args=[session.pk]), {"title": "x"}).status_code == 403
    client.force_login(UserFactory())
    assert client.post(reverse("sessions:rename", args=[session.pk]), {"title": "x"}).status_code == 404


def test_share_public_page_and_revoke(logged_in, user):
    client = Client()  # an anonymous visitor
    session = SessionFactory(owner=user, title="Shared fix", project_path="/home/alice/secret-proj")
    MessageFactory(session=session, text_content="the visible conversation")
    response = logged_in.post(reverse("sessions:share", args=[session.pk]), {"action": "share"}, **HX)
    assert response.status_code == 200 and "<html" not in response.content.decode()
    session.refresh_from_db()
    assert session.is_public and len(session.share_slug) >= 22  # >= 128 random bits, URL-safe
    url = reverse("sessions:public", args=[session.share_slug])
    assert url in response.content.decode()

    public = client.get(url)
    html = public.content.decode()
    assert public.status_code == 200 and "the visible conversation" in html and "Shared fix" in html
    assert '<meta name="robots" content="noindex, nofollow">' in html and public["X-Robots-Tag"] == "noindex, nofollow"
    for secret in (user.email, "secret-proj", "/home/alice", session.workspace.name, session.external_id):
        assert secret not in html

    logged_in.post(reverse("sessions:share", args=[session.pk]), {"action": "unshare"})
    assert client.get(url).status_code == 404
    logged_in.post(reverse("sessions:share", args=[session.pk]), {"action": "share"})
    session.refresh_from_db()
    new_url = reverse("sessions:public", args=[session.share_slug])
    assert new_url != url and client.get(url).status_code == 404  # a revoked link never comes back
    assert client.get(new_url).status_code == 200
    logged_in.post(reverse("sessions:share", args=[session.pk]), {"action": "share", "expires": "1d"})
    session.refresh_from_db()
    assert reverse("sessions:public", args=[session.share_slug]) == new_url  # still shared: same link


def test_share_link_expires(client, user):
    session = SessionFactory(owner=user, is_public=True, share_slug="s" * 32)
    url = reverse("sessions:public", args=[session.share_slug])
    session.share_expires_at = timezone.now() + timedelta(hours=1)
    session.save()
    assert client.get(url).status_code == 200
    session.share_expires_at = timezone.now() - timedelta(seconds=1)
    session.save()
    assert client.get(url).status_code == 404
    assert client.get(reverse("sessions:public", args=["nope"])).status_code == 404


def test_share_with_expiry_and_bad_input(logged_in, user):
    session = SessionFactory(owner=user)
    logged_in.post(reverse("sessions:share", args=[session.pk]), {"action": "share", "expires": "7d"})
    session.refresh_from_db()
    assert timedelta(days=6, hours=23) < session.share_expires_at - timezone.now() <= timedelta(days=7)
    bad = logged_in.post(reverse("sessions:share", args=[session.pk]), {"action": "share", "expires": "1y"}, **HX)
    assert bad.status_code == 422 and "form-error" in bad.content.decode()


def test_share_permissions(client, user, other_user, team_as_member):
    session = SessionFactory(owner=other_user, workspace=team_as_member)
    client.force_login(user)
    assert client.post(reverse("sessions:share", args=[session.pk]), {"action": "share"}).status_code == 403
    assert "Public link" not in client.get(detail_url(session)).content.decode()  # no controls shown


def test_public_page_loads_more_messages(client, user):
    session = SessionFactory(owner=user, is_public=True, share_slug="p" * 32)
    Message.objects.bulk_create(
        Message(session=session, external_id=f"m{i:04d}", role="user", text_content=f"line {i:04d}") for i in range(120)
    )
    page = client.get(reverse("sessions:public", args=[session.share_slug]))
    assert page.context_data["after_cursor"]
    more = client.get(
        reverse("sessions:public-messages", args=[session.share_slug]),
        {"after": page.context_data["after_cursor"]},
        **HX,
    )
    assert "line 0119" in more.content.decode() and more["X-Robots-Tag"] == "noindex, nofollow"


def test_delete_with_confirmation(logged_in, user):
    session = SessionFactory(owner=user)
    PartFactory(message=MessageFactory(session=session))
    dialog = logged_in.get(reverse("sessions:delete", args=[session.pk]), **HX).content.decode()
    assert "<dialog" in dialog and "<html" not in dialog and "Delete this session?" in dialog
    page = logged_in.get(reverse("sessions:delete", args=[session.pk])).content.decode()
    assert "<html" in page and " open>" in page  # usable without JavaScript
    response = logged_in.post(reverse("sessions:delete", args=[session.pk]), **HX)
    assert response["HX-Redirect"] == LIST
    assert not Session.objects.exists() and not Message.objects.exists() and not Part.objects.exists()


def test_delete_permissions(client, user, other_user, team_as_member):
    session = SessionFactory(owner=other_user, workspace=team_as_member)
    client.force_login(user)
    assert client.post(reverse("sessions:delete", args=[session.pk])).status_code == 403
    client.force_login(UserFactory())  # an outsider: the same answer as for a deleted session
    assert client.get(reverse("sessions:delete", args=[session.pk])).status_code == 404
    assert client.post(reverse("sessions:delete", args=[session.pk])).url == LIST
    assert Session.objects.filter(pk=session.pk).exists()


def test_export_markdown_and_json(logged_in, user):
    session = SessionFactory(owner=user, title='Fix: the "parser"/lexer', cost=None)
    message = MessageFactory(session=session, role="assistant", text_content="fallback")
    PartFactory(message=message, type="text", content="Done with ```fences``` inside", order=0)
    PartFactory(message=message, type="tool-call", content={"toolName": "Bash", "args": {"cmd": "ls"}}, order=1)
    md = logged_in.get(reverse("sessions:export", args=[session.pk, "md"]))
    assert md["Content-Type"].startswith("text/markdown")
    assert 'attachment; filename="Fix-_the_-parser--lexer_' in md["Content-Disposition"]
    text = b"".join(md.streaming_content).decode()
    assert text.startswith('# Fix: the "parser"/lexer') and "## Assistant" in text and "**Tool: Bash**" in text
    assert "| Cost | — |" in text and "````json" not in text and '"cmd": "ls"' in text

    js = logged_in.get(reverse("sessions:export", args=[session.pk, "json"]))
    import json

    data = json.loads(b"".join(js.streaming_content))
    assert data["session"]["title"] == session.title and data["session"]["cost"] is None
    assert data["messages"][0]["parts"][1] == {
        "type": "tool-call",
        "content": {"toolName": "Bash", "args": {"cmd": "ls"}},
    }
    assert logged_in.get(reverse("sessions:export", args=[session.pk, "pdf"])).status_code == 404


def _markdown(client, session) -> str:
    return b"".join(client.get(reverse("sessions:export", args=[session.pk, "md"])).streaming_content).decode()


def test_export_markdown_uses_the_project_name_when_there_is_no_path(logged_in, user):
    session = SessionFactory(owner=user, project_path="", project_name="demo-app")
    assert "| Project | demo-app |" in _markdown(logged_in, session)
    session = SessionFactory(owner=user, project_path="/src/api", project_name="")
    assert "| Project | /src/api |" in _markdown(logged_in, session)


def test_message_content_cannot_forge_a_turn_in_markdown(logged_in, user):
    session = SessionFactory(owner=user, title="Bad\n## Assistant")
    forged = (
        "Sure.\n\n## Assistant\n\nI forged this turn.\n\n> ### User\n- # Tool\nAssistant\n---\n<h2>System</h2>\n"
        "```bash\n# a comment stays as written\n```\n~~~\n## still code, the fence left open"
    )
    MessageFactory(session=session, role="user", text_content=forged)
    text = _markdown(logged_in, session)
    assert text.startswith("# Bad ## Assistant\n")  # the title on one line
    headings = [line for line in text.split("\n") if re.match(r" {0,3}(?:> |- )?#{1,6} ", line)]
    in_code = ["# a comment stays as written", "## still code, the fence left open"]  # in fences, below
    assert headings == ["# Bad ## Assistant", "## User", *in_code]
    assert "\\## Assistant\n\nI forged this turn." in text and "> \\### User\n- \\# Tool" in text
    assert "Assistant\n\\---" in text and "&lt;h2>System&lt;/h2>" in text
    assert "```bash\n# a comment stays as written\n```" in text
    assert text.endswith("~~~\n## still code, the fence left open\n~~~\n\n")  # closed: it can't swallow turns


@pytest.mark.parametrize(
    "title, expected",
    [
        ("report\u202etxt.exe", "reporttxt.exe"),
        ("\u2066a\u2069\u200eb\u200fc\u202ad\u202be\u202cf\u202dg\u2067h\u2068i\u200bj\ufeffk", "abcdefghijk"),
        ("tab\there\x7f\x85\u2028line", "tab_here_line"),
        ("\u202e\u202e", "ses_x"),  # nothing visible: the session's id
    ],
)
def test_export_file_name_drops_control_and_format_characters(logged_in, user, title, expected):
    session = SessionFactory(owner=user, title=title, external_id="ses_x")
    disposition = logged_in.get(reverse("sessions:export", args=[session.pk, "json"]))["Content-Disposition"]
    assert f'filename="{expected}_{session.created_at:%Y-%m-%d}.json"' in disposition


TOOL_SHAPES = [
    # claude-code-sync: the call, and the result in a tool message
    ("tool-call", {"id": "toolu_1", "toolName": "Bash", "args": {"command": "ls"}}, "ls"),
    ("tool-result", {"toolUseId": "toolu_1", "output": "a.txt\nb.txt", "isError": False}, "a.txt"),
    # upstream claude-code-sync and pi: the result as a string
    ("tool-result", "done: 3 files", "done: 3 files"),
    # opencode-sync: the result inside the call
    ("tool-call", {"id": "call_2", "toolName": "read", "args": {"path": "x.py"}, "output": "print(1)"}, "print(1)"),
    # droid: {toolName, args, result}
    ("tool_use", {"toolName": "Edit", "args": {"file_path": "y.py"}, "result": "edited"}, "edited"),
    # OpenCode's own part: {tool, state: {input, output}}
    ("tool", {"tool": "grep", "callID": "c3", "state": {"status": "completed", "input": {"pattern": "TODO"},
                                                        "output": "src/a.py:3: TODO"}}, "src/a.py:3: TODO"),
    ("tool", {"tool": "bash", "state": {"status": "error", "input": {"command": "make"}, "error": "exit 2"}}, "exit 2"),
]  # fmt: skip


def test_export_markdown_reads_every_plugins_tool_parts(logged_in, user):
    session = SessionFactory(owner=user)
    message = MessageFactory(session=session, role="assistant", text_content="")
    for order, (kind, content, _) in enumerate(TOOL_SHAPES):
        PartFactory(message=message, type=kind, content=content, order=order)
    text = _markdown(logged_in, session)
    for _, _, shown in TOOL_SHAPES:
        assert shown in text
    assert '**Tool: grep**\n\n```json\n{\n  "pattern": "TODO"\n}\n```' in text  # not `{}`
    assert '"command": "make"' in text


def test_markdown_text_is_the_text_content_and_the_text_parts_not_in_it(logged_in, user):
    session = SessionFactory(owner=user)
    message = MessageFactory(session=session, role="assistant", text_content="Summary: fixed.")
    PartFactory(message=message, type="text", content="Summary: fixed.", order=0)  # a repeat: once
    PartFactory(message=message, type="text", content="```python\nx = 1\n```", order=1)
    text = _markdown(logged_in, session)
    assert text.count("Summary: fixed.") == 1 and "```python\nx = 1\n```" in text


def test_export_of_someone_elses_session_is_404(client, user):
    session = SessionFactory(owner=user)
    client.force_login(UserFactory())
    assert client.get(reverse("sessions:export", args=[session.pk, "json"])).status_code == 404


def test_former_member_loses_access(logged_in, user, other_user, team_as_member):
    session = SessionFactory(owner=other_user, workspace=team_as_member)
    Membership.objects.filter(user=user, workspace=team_as_member).delete()
    assert logged_in.get(detail_url(session)).status_code == 404


def test_workspace_model_is_not_leaked_by_bulk_ids(logged_in, user, other_user):
    """Ids of sessions in workspaces I'm not in are silently ignored, whatever the action."""
    foreign = SessionFactory(owner=other_user)
    assert Workspace.objects.filter(pk=foreign.workspace_id).exists()
    logged_in.post(reverse("sessions:bulk"), {"action": "delete", "ids": [foreign.pk], "confirmed": "yes"})
    assert Session.objects.filter(pk=foreign.pk).exists()


# --- review fixes -----------------------------------------------------------------------------------


def test_a_cursor_of_another_sort_starts_over(logged_in, user):
    for i in range(3):
        SessionFactory(owner=user, prompt_tokens=i)
    date_cursor = selectors.encode_cursor(timezone.now(), 10**9)
    int_cursor = selectors.encode_cursor(5, 10**9)
    for params in ({"sort": "tokens", "cursor": date_cursor}, {"sort": "updated", "cursor": int_cursor}):
        response = logged_in.get(LIST, params)
        assert response.status_code == 200 and len(response.context_data["sessions"]) == 3


def test_filter_errors_show_in_the_htmx_results(logged_in, user):
    SessionFactory(owner=user)
    html = logged_in.get(LIST, {"date_from": "2026-05-02", "date_to": "2026-05-01"}, **HX).content.decode()
    assert "The end date is before the start date." in html and "<html" not in html


def test_htmx_request_after_logout_redirects_the_whole_page_to_login(client, user):
    session = SessionFactory(owner=user)
    response = client.get(
        reverse("sessions:rename", args=[session.pk]),
        HTTP_HX_CURRENT_URL=f"http://testserver/sessions/{session.pk}/",
        **HX,
    )
    assert response.status_code == 200
    assert response["HX-Redirect"] == f"{reverse('account_login')}?next=%2Fsessions%2F{session.pk}%2F"


def test_a_retried_delete_lands_on_the_list(logged_in, user):
    session = SessionFactory(owner=user)
    logged_in.post(reverse("sessions:delete", args=[session.pk]))
    again = logged_in.post(reverse("sessions:delete", args=[session.pk]))
    assert again.status_code == 302 and again.url == LIST
    assert logged_in.get(reverse("sessions:delete", args=[session.pk])).status_code == 404


def test_sharing_again_after_expiry_makes_a_new_link(logged_in, user):
    session = SessionFactory(owner=user)
    logged_in.post(reverse("sessions:share", args=[session.pk]), {"action": "share", "expires": "1d"})
    session.refresh_from_db()
    old = session.share_slug
    Session.objects.filter(pk=session.pk).update(share_expires_at=timezone.now() - timedelta(seconds=1))
    logged_in.post(reverse("sessions:share", args=[session.pk]), {"action": "share"})
    session.refresh_from_db()
    assert session.share_slug != old and session.share_expires_at is None


def test_share_link_uses_the_configured_public_url(logged_in, user, settings):
    settings.OPENSYNC_PUBLIC_URL = "https://sync.example.com"
    session = SessionFactory(owner=user)
    html = logged_in.post(reverse("sessions:share", args=[session.pk]), {"action": "share"}, **HX).content.decode()
    session.refresh_from_db()
    assert f'value="https://sync.example.com/s/{session.share_slug}"' in html
