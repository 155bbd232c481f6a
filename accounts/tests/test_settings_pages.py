"""Settings pages: profile, usage, agents, and the settings navigation on every settings page."""

import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from accounts.models import ApiRequestLog, User, Workspace
from accounts.selectors import CURRENT_WORKSPACE_SESSION_KEY, enabled_sources, workspace_usage
from accounts.services import api_key_create
from accounts.tests.factories import team_with
from sessions_app.models import Source
from sessions_app.tests.factories import SessionFactory

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}
SETTINGS_PAGES = ["settings", "api-keys", "usage", "agents", "workspaces", "data"]


def assert_redirects_to_login(response):
    assert response.status_code == 302
    assert response.url.startswith(reverse("account_login"))


def log_request(api_key, *, endpoint="/sync/session", status_code=200, days_ago=0, method="POST"):
    return ApiRequestLog.objects.create(
        api_key=api_key,
        user_id=api_key.user_id,
        workspace_id=api_key.workspace_id,
        method=method,
        endpoint=endpoint,
        status_code=status_code,
        latency_ms=10,
        created_at=timezone.now() - timedelta(days=days_ago),
    )


# --- every settings page ----------------------------------------------------------------------


@pytest.mark.parametrize("name", [*SETTINGS_PAGES, "delete-data", "delete-account"])
def test_settings_pages_need_login(client, db, name):
    assert_redirects_to_login(client.get(reverse(f"accounts:{name}")))


@pytest.mark.parametrize("name", ["settings", "agents", "delete-data", "delete-account"])
def test_settings_posts_need_login(client, db, name):
    assert_redirects_to_login(client.post(reverse(f"accounts:{name}"), {"name": "x", "email": "x@example.com"}))


@pytest.mark.parametrize("name", SETTINGS_PAGES)
def test_every_settings_page_has_the_settings_nav_with_its_tab_current(logged_in, name):
    response = logged_in.get(reverse(f"accounts:{name}"))
    assert response.status_code == 200
    page = response.content.decode()
    nav = re.search(r'<nav class="settings-nav" aria-label="Settings">(.*?)</nav>', page, re.S).group(1)
    for tab in SETTINGS_PAGES:
        assert f'href="{reverse(f"accounts:{tab}")}"' in nav
    current = re.findall(r'<a href="([^"]+)" aria-current="page">', nav)
    assert current == [reverse(f"accounts:{name}")]


def test_workspace_detail_page_has_the_settings_nav(logged_in, user):
    team = team_with(user, name="Platform team")
    page = logged_in.get(reverse("accounts:workspace", args=[team.slug])).content.decode()
    assert 'aria-label="Settings"' in page
    assert f'<a href="{reverse("accounts:workspaces")}" aria-current="page">' in page


# --- profile --------------------------------------------------------------------------------


def test_profile_shows_email_member_since_links_and_my_totals_only(logged_in, user, other_user):
    team = team_with(user, name="Platform team", member=other_user)
    SessionFactory(owner=user, prompt_tokens=1000, completion_tokens=234, message_count=3)
    SessionFactory(owner=user, workspace=team, prompt_tokens=10, completion_tokens=0, message_count=2)
    # Someone else's sessions, in their workspace and in mine, are not mine.
    SessionFactory(owner=other_user, prompt_tokens=777_777, message_count=99)
    SessionFactory(owner=other_user, workspace=team, prompt_tokens=888_888, message_count=98)

    response = logged_in.get(reverse("accounts:settings"))
    assert response.status_code == 200
    page = response.content.decode()
    assert user.email in page
    assert user.date_joined.strftime("%Y") in page
    assert reverse("account_email") in page
    assert reverse("account_change_password") in page
    assert response.context["totals"] == {"sessions": 2, "messages": 5, "tokens": 1244}
    assert "1,244" in page
    assert "777" not in page and "888" not in page


def test_profile_htmx_save_returns_the_form_fragment(logged_in, user):
    response = logged_in.post(reverse("accounts:settings"), {"name": "  Ada   Lovelace "}, **HTMX)
    assert response.status_code == 200
    page = response.content.decode()
    assert "<html" not in page
    assert page.lstrip().startswith('<form id="profile-form"')
    assert "Saved." in page
    user.refresh_from_db()
    assert user.name == "Ada Lovelace"


@pytest.mark.parametrize("name", ["x" * 151, "bell\x07"])
def test_profile_htmx_errors_are_422_and_inline(logged_in, user, name):
    response = logged_in.post(reverse("accounts:settings"), {"name": name}, **HTMX)
    assert response.status_code == 422
    page = response.content.decode()
    assert "<html" not in page
    assert 'class="form-error" role="alert"' in page
    assert 'aria-invalid="true"' in page
    user.refresh_from_db()
    assert user.name == ""


def test_profile_plain_post_redirects_and_errors_render_the_page(logged_in, user):
    response = logged_in.post(reverse("accounts:settings"), {"name": "Grace"})
    assert response.status_code == 302 and response.url == reverse("accounts:settings")
    user.refresh_from_db()
    assert user.name == "Grace"
    assert "Profile saved." in logged_in.get(response.url).content.decode()

    response = logged_in.post(reverse("accounts:settings"), {"name": "x" * 151})
    assert response.status_code == 200
    assert "<html" in response.content.decode() and "form-error" in response.content.decode()
    user.refresh_from_db()
    assert user.name == "Grace"


def test_profile_blank_name_falls_back_to_email(logged_in, user):
    user.name = "Old"
    user.save()
    logged_in.post(reverse("accounts:settings"), {"name": "   "})
    user.refresh_from_db()
    assert user.name == "" and user.get_full_name() == user.email


def test_profile_post_needs_csrf(user):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    assert client.post(reverse("accounts:settings"), {"name": "x"}).status_code == 403


# --- usage ----------------------------------------------------------------------------------


@pytest.fixture
def usage_data(user, other_user, personal_workspace):
    """My workspace's data, plus data that must never show: another user's, another workspace's, old."""
    key, _ = api_key_create(user=user, workspace=personal_workspace, name="laptop")
    log_request(key, endpoint="/sync/session")
    log_request(key, endpoint="/sync/session", days_ago=1)
    log_request(key, endpoint="/sync/batch", status_code=400)
    log_request(key, endpoint="/sync/batch", days_ago=45)  # older than 30 days
    SessionFactory(owner=user, source=Source.CLAUDE_CODE, prompt_tokens=100, completion_tokens=20, cost=Decimal("0.5"))
    SessionFactory(owner=user, source=Source.CLAUDE_CODE, prompt_tokens=10, completion_tokens=2, cost=Decimal("0.25"))
    SessionFactory(owner=user, source=Source.FACTORY_DROID, prompt_tokens=5, completion_tokens=5, cost=None)
    SessionFactory(
        owner=user, source=Source.CODEX, prompt_tokens=123_456, created_at=timezone.now() - timedelta(days=40)
    )

    outsider_ws = Workspace.objects.get(created_by=other_user, is_personal=True)
    outsider_key, _ = api_key_create(user=other_user, workspace=outsider_ws, name="theirs")
    for _ in range(7):
        log_request(outsider_key, endpoint="/api/leak")
    SessionFactory(owner=other_user, source=Source.PI, prompt_tokens=999_999)

    team = team_with(user)
    team_key, _ = api_key_create(user=user, workspace=team, name="team key")
    log_request(team_key, endpoint="/sync/message")
    SessionFactory(owner=user, workspace=team, source=Source.OPENCODE, prompt_tokens=555_555)
    return {"team": team}


def test_usage_counts_only_the_current_workspace(logged_in, usage_data):
    response = logged_in.get(reverse("accounts:usage"))
    assert response.status_code == 200
    usage = response.context["usage"]
    assert usage["requests"] == 3 and usage["errors"] == 1
    assert {(r["endpoint"], r["requests"], r["errors"]) for r in usage["per_endpoint"]} == {
        ("/sync/session", 2, 0),
        ("/sync/batch", 1, 1),
    }
    assert len(usage["per_day"]) == 30
    assert usage["per_day"][-1]["requests"] == 2 and usage["per_day"][-2]["requests"] == 1
    by_source = {row["source"]: row for row in usage["per_source"]}
    assert set(by_source) == {"claude-code", "factory-droid"}
    assert (by_source["claude-code"]["sessions"], by_source["claude-code"]["total"]) == (2, 132)
    # claude-code (upstream's folded tokens): the plugins' figures; droid (no cost): priced by the server
    assert by_source["claude-code"]["usd"] == Decimal("0.75")
    assert by_source["factory-droid"]["usd"] == Decimal(5 * 3 + 5 * 15) / 1_000_000
    assert usage["source_totals"] == {
        "sessions": 3,
        "prompt": 115,
        "completion": 27,
        "total": 142,
        "usd": Decimal("0.75009"),
    }

    page = response.content.decode()
    assert "/api/leak" not in page and "/sync/message" not in page
    for leaked in ("999,999", "999999", "555,555", "123,456"):
        assert leaked not in page
    assert "Claude Code" in page and "Factory Droid" in page
    assert page.count("<rect ") == 30
    assert "$0.75" in page


def test_usage_follows_the_workspace_switcher(logged_in, usage_data):
    session = logged_in.session
    session[CURRENT_WORKSPACE_SESSION_KEY] = usage_data["team"].pk
    session.save()
    usage = logged_in.get(reverse("accounts:usage")).context["usage"]
    assert usage["requests"] == 1
    assert [row["source"] for row in usage["per_source"]] == ["opencode"]


def test_usage_of_a_workspace_i_left_is_not_shown(logged_in, user, other_user, usage_data):
    """A stale workspace id in the session falls back to the personal workspace."""
    foreign = Workspace.objects.get(created_by=other_user, is_personal=True)
    session = logged_in.session
    session[CURRENT_WORKSPACE_SESSION_KEY] = foreign.pk
    session.save()
    usage = logged_in.get(reverse("accounts:usage")).context["usage"]
    assert "/api/leak" not in {row["endpoint"] for row in usage["per_endpoint"]}
    assert usage["requests"] == 3


def test_usage_empty_states(logged_in):
    page = logged_in.get(reverse("accounts:usage")).content.decode()
    assert "No API requests in this workspace" in page
    assert "No sessions in this workspace" in page
    assert "<svg" not in page


def _usage_queries(client) -> int:
    with CaptureQueriesContext(connection) as ctx:
        assert client.get(reverse("accounts:usage")).status_code == 200
    return len(ctx.captured_queries)


def test_usage_runs_a_constant_number_of_queries(logged_in, user, personal_workspace, django_assert_max_num_queries):
    key, _ = api_key_create(user=user, workspace=personal_workspace, name="laptop")
    log_request(key)
    SessionFactory(owner=user)
    small = _usage_queries(logged_in)

    for n in range(40):
        log_request(key, endpoint=f"/sync/e{n % 7}", days_ago=n % 30, status_code=200 + (n % 3) * 100)
    for source in Source.values:
        SessionFactory.create_batch(3, owner=user, source=source, cost=Decimal("0.1"))
    assert _usage_queries(logged_in) == small
    # session + user, the workspace switcher and current workspace (twice), then 3 aggregates
    with django_assert_max_num_queries(14):
        logged_in.get(reverse("accounts:usage"))


def test_workspace_usage_aggregates_in_sql(personal_workspace, user, django_assert_num_queries):
    key, _ = api_key_create(user=user, workspace=personal_workspace, name="laptop")
    for _ in range(5):
        log_request(key)
    SessionFactory.create_batch(5, owner=user)
    with django_assert_num_queries(3):
        workspace_usage(personal_workspace)


# --- agents ---------------------------------------------------------------------------------


def test_agents_page_lists_every_source_checked_by_default(logged_in):
    page = logged_in.get(reverse("accounts:agents")).content.decode()
    for value, label in Source.choices:
        assert label in page
        assert re.search(rf'<input type="checkbox" name="sources" value="{value}" id="source-{value}" checked>', page)
        assert f'<label for="source-{value}">' in page


def test_agents_plain_post_saves_and_redirects(logged_in, user):
    response = logged_in.post(reverse("accounts:agents"), {"sources": ["claude-code", "codex-cli"]})
    assert response.status_code == 302 and response.url == reverse("accounts:agents")
    user.refresh_from_db()
    assert set(user.hidden_sources) == set(Source.values) - {"claude-code", "codex-cli"}
    assert enabled_sources(user) == [("claude-code", "Claude Code"), ("codex-cli", "Codex")]
    page = logged_in.get(response.url).content.decode()
    assert "Saved." in page
    assert 'value="opencode" id="source-opencode">' in page  # unchecked now


def test_agents_htmx_post_returns_the_form_with_saved(logged_in, user):
    response = logged_in.post(reverse("accounts:agents"), {"sources": ["pi"]}, **HTMX)
    assert response.status_code == 200
    page = response.content.decode()
    assert "<html" not in page
    assert page.lstrip().startswith('<form id="agents-form"')
    assert 'role="status">Saved.' in page
    user.refresh_from_db()
    assert enabled_sources(user) == [("pi", "Pi")]


def test_agents_ignores_unknown_values_and_can_show_all_again(logged_in, user):
    logged_in.post(reverse("accounts:agents"), {"sources": ["pi", "bogus", "<script>"]})
    user.refresh_from_db()
    assert "bogus" not in user.hidden_sources and enabled_sources(user) == [("pi", "Pi")]
    logged_in.post(reverse("accounts:agents"), {"sources": Source.values})
    user.refresh_from_db()
    assert user.hidden_sources == []
    assert enabled_sources(user) == list(Source.choices)


def test_agents_only_change_my_settings(logged_in, user, other_user):
    logged_in.post(reverse("accounts:agents"), {"sources": []})
    assert User.objects.get(pk=other_user.pk).hidden_sources == []
    user.refresh_from_db()
    assert set(user.hidden_sources) == set(Source.values)
