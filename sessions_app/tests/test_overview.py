"""The Overview (home) and Analytics pages: workspace-scoped aggregates."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from accounts.models import Workspace
from sessions_app import analytics
from sessions_app.models import Source
from sessions_app.templatetags.charts import axis_label, nice_scale, stacked_bars
from sessions_app.tests.factories import SessionFactory
from sessions_app.views import overview

pytestmark = pytest.mark.django_db


def days_ago(days: int):
    return timezone.now() - timedelta(days=days)


@pytest.fixture
def known_sessions(user, personal_workspace):
    """Three sessions with known figures: two in the last 30 days, one older."""
    return [
        SessionFactory(
            owner=user,
            workspace=personal_workspace,
            created_at=days_ago(0),
            prompt_tokens=100,
            completion_tokens=50,
            cache_read_tokens=10,
            cache_write_tokens=5,
            cost=Decimal("0.50"),
            message_count=3,
            duration_ms=60_000,
            project_name="alpha",
            model="claude-sonnet-4",
        ),
        SessionFactory(
            owner=user,
            workspace=personal_workspace,
            created_at=days_ago(2),
            prompt_tokens=200,
            completion_tokens=100,
            cost=None,  # never reported
            message_count=2,
            project_name="beta",
            model="gpt-4o",
            provider=None,
        ),
        SessionFactory(
            owner=user,
            workspace=personal_workspace,
            created_at=days_ago(40),
            prompt_tokens=1000,
            completion_tokens=1000,
            cost=Decimal("2.25"),
            message_count=10,
            duration_ms=120_000,
            project_name="alpha",
        ),
    ]


def assert_redirects_to_login(response):
    assert response.status_code == 302
    assert response.url.startswith(reverse("account_login"))


@pytest.mark.parametrize("name", ["home", "sessions:analytics"])
def test_pages_need_login(client, name):
    assert_redirects_to_login(client.get(reverse(name)))


# --- overview -------------------------------------------------------------------------------


def test_overview_totals(logged_in, known_sessions):
    response = logged_in.get(reverse("home"))
    assert response.status_code == 200
    totals = response.context["totals"]

    everything = totals["all"]
    assert everything["sessions"] == 3
    assert everything["message_count"] == 15
    assert everything["prompt_tokens"] == 1300
    assert everything["completion_tokens"] == 1150
    assert everything["total_tokens"] == 2450
    assert everything["cache_read_tokens"] == 10
    assert everything["cache_write_tokens"] == 5
    assert everything["cost"] == Decimal("2.75")
    assert everything["unknown_cost_sessions"] == 1

    recent = totals["recent"]
    assert recent["sessions"] == 2
    assert recent["message_count"] == 5
    assert recent["total_tokens"] == 450
    assert recent["cost"] == Decimal("0.50")
    assert recent["unknown_cost_sessions"] == 1

    page = response.content.decode()
    assert "1 session without a reported cost" in page
    assert "$2.75" in page


def test_overview_chart_has_every_day_zero_filled(logged_in, known_sessions):
    daily = logged_in.get(reverse("home")).context["daily"]
    today = timezone.localdate()
    assert len(daily) == 30
    assert [day["date"] for day in daily] == [today - timedelta(days=29 - i) for i in range(30)]
    assert daily[-1] | {"cost": None} == {
        "date": today,
        "sessions": 1,
        "prompt_tokens": 100,
        "completion_tokens": 50,
        "total_tokens": 150,
        "cost": None,
    }
    assert daily[-3]["total_tokens"] == 300 and daily[-3]["sessions"] == 1
    assert sum(day["total_tokens"] for day in daily) == 450  # the bars add up to the 30-day total
    assert all(day["total_tokens"] == 0 for day in daily[:-3] + daily[-2:-1])


def test_overview_chart_is_accessible_svg(logged_in, known_sessions):
    page = logged_in.get(reverse("home")).content.decode()
    assert '<svg class="chart-svg"' in page and 'role="img"' in page
    assert '<title id="tokens-chart-title">' in page and '<desc id="tokens-chart-desc">' in page
    assert "Show the numbers" in page  # the <details> data table
    assert "<script" not in page.split('<figure class="chart">')[1].split("</figure>")[0]


def test_overview_recent_sessions_and_top_lists(logged_in, known_sessions):
    response = logged_in.get(reverse("home"))
    page = response.content.decode()
    for session in known_sessions:
        assert f'href="{reverse("sessions:detail", args=[session.pk])}"' in page
    # last 30 days by tokens: beta (300) before alpha (150); the 40-day-old alpha session is outside
    projects = response.context["top_projects"].rows
    assert [(row["key"], row["total_tokens"]) for row in projects] == [("beta", 300), ("alpha", 150)]
    models = response.context["top_models"].rows
    assert [row["key"] for row in models] == ["gpt-4o", "claude-sonnet-4"]
    assert f'href="{reverse("sessions:list")}?project=beta"' in page
    assert f'href="{reverse("sessions:list")}?model=gpt-4o"' in page


def test_overview_unknown_cost_is_a_dash_not_zero(logged_in, user, personal_workspace):
    SessionFactory(owner=user, workspace=personal_workspace, prompt_tokens=10, cost=None)
    response = logged_in.get(reverse("home"))
    assert response.context["totals"]["all"]["cost"] is None
    page = response.content.decode()
    assert "No session reported a cost" in page
    assert "$0.00" not in page


def test_overview_ignores_other_workspaces(logged_in, user, other_user, personal_workspace, team, known_sessions):
    foreign = Workspace.objects.get(created_by=other_user, is_personal=True)
    SessionFactory(owner=other_user, workspace=foreign, prompt_tokens=99_999, cost=Decimal("100"))
    SessionFactory(owner=other_user, workspace=team, prompt_tokens=77_777, title="Team deploy session")
    SessionFactory(owner=user, workspace=team, prompt_tokens=55_555)  # mine, but in the team workspace

    response = logged_in.get(reverse("home"))
    assert response.context["totals"]["all"]["sessions"] == 3
    assert response.context["totals"]["all"]["total_tokens"] == 2450
    assert response.context["totals"]["all"]["cost"] == Decimal("2.75")
    assert "Team deploy session" not in response.content.decode()


def test_team_member_sees_team_totals(logged_in, user, other_user, personal_workspace, team):
    SessionFactory(owner=user, workspace=personal_workspace, prompt_tokens=5)
    SessionFactory(owner=other_user, workspace=team, prompt_tokens=700, completion_tokens=70, cost=Decimal("1.5"))
    SessionFactory(owner=user, workspace=team, prompt_tokens=300, completion_tokens=30, cost=Decimal("0.5"))

    logged_in.post(reverse("accounts:workspace-switch"), {"workspace": team.pk})
    response = logged_in.get(reverse("home"))
    totals = response.context["totals"]["all"]
    assert (totals["sessions"], totals["total_tokens"], totals["cost"]) == (2, 1100, Decimal("2.0"))
    assert "Platform team" in response.content.decode()

    response = logged_in.get(reverse("sessions:analytics"))
    assert response.context["summary"]["total_tokens"] == 1100


def test_overview_empty_state(logged_in, other_user):
    foreign = Workspace.objects.get(created_by=other_user, is_personal=True)
    SessionFactory(owner=other_user, workspace=foreign, title="Not mine")
    response = logged_in.get(reverse("home"))
    assert response.status_code == 200
    page = response.content.decode()
    assert "No sessions yet" in page
    assert f'href="{reverse("accounts:api-keys")}"' in page
    assert "CLAUDE_SYNC_CONVEX_URL=http://testserver" in page
    assert "CLAUDE_SYNC_API_KEY=osk_" in page
    assert "Not mine" not in page and "<svg" not in page


def test_overview_escapes_names(logged_in, user, personal_workspace):
    xss = "<script>alert(1)</script>"
    SessionFactory(owner=user, workspace=personal_workspace, title=xss, project_name=xss, model=xss)
    page = logged_in.get(reverse("home")).content.decode()
    assert "<script>alert(1)" not in page


# --- analytics ------------------------------------------------------------------------------


def test_analytics_summary_and_derived_figures(logged_in, known_sessions):
    summary = logged_in.get(reverse("sessions:analytics"), {"days": "all"}).context["summary"]
    assert summary["sessions"] == 3
    assert summary["total_tokens"] == 2450
    assert summary["message_count"] == 15
    assert summary["duration_ms"] == 180_000
    assert summary["avg_duration_ms"] == 90_000  # over the two sessions that reported a duration
    assert summary["models"] == 3  # claude-sonnet-4, gpt-4o and the factory's default model
    assert summary["projects"] == 2
    assert summary["avg_tokens_per_session"] == pytest.approx(2450 / 3)
    assert summary["tokens_per_message"] == pytest.approx(2450 / 15)
    assert summary["prompt_completion_ratio"] == pytest.approx(1300 / 1150)
    # costs: over the two sessions (150 + 2000 tokens) that reported one
    assert summary["cost"] == Decimal("2.75")
    assert summary["cost_per_session"] == Decimal("1.375")
    assert summary["cost_per_1k_tokens"] == Decimal("2.75") * 1000 / 2150


def test_analytics_period_and_source_filters(logged_in, user, personal_workspace, known_sessions):
    SessionFactory(owner=user, workspace=personal_workspace, source=Source.CODEX, prompt_tokens=7)

    summary = logged_in.get(reverse("sessions:analytics")).context["summary"]  # default: 30 days
    assert (summary["sessions"], summary["total_tokens"]) == (3, 457)

    summary = logged_in.get(reverse("sessions:analytics"), {"days": "7", "source": "codex-cli"}).context["summary"]
    assert (summary["sessions"], summary["total_tokens"]) == (1, 7)

    response = logged_in.get(reverse("sessions:analytics"), {"days": "all", "source": "claude-code"})
    assert response.context["summary"]["sessions"] == 3
    assert [row["key"] for row in response.context["by_source"].rows] == ["claude-code"]


@pytest.mark.parametrize(
    "params",
    [{"days": "abc"}, {"days": "-1"}, {"days": "0"}, {"source": "nope"}, {"days": "7" * 50, "source": "<b>"}],
)
def test_analytics_bad_params_fall_back_to_defaults(logged_in, known_sessions, params):
    response = logged_in.get(reverse("sessions:analytics"), params)
    assert response.status_code == 200
    assert response.context["period"] == "30"
    assert response.context["summary"]["sessions"] == 2
    if "source" in params:
        assert response.context["source"] == ""


def test_analytics_hidden_source_is_not_a_filter(logged_in, user, known_sessions):
    user.hidden_sources = ["claude-code"]
    user.save(update_fields=["hidden_sources"])
    response = logged_in.get(reverse("sessions:analytics"), {"source": "claude-code"})
    assert response.context["source"] == ""
    assert "claude-code" not in [value for value, _ in response.context["sources"]]


def test_analytics_tables(logged_in, user, personal_workspace, known_sessions):
    response = logged_in.get(reverse("sessions:analytics"), {"days": "all"})
    by_model = {row["key"]: row for row in response.context["by_model"].rows}
    assert by_model["gpt-4o"]["sessions"] == 1 and by_model["gpt-4o"]["cost"] is None
    assert by_model["claude-sonnet-4"]["avg_duration_ms"] == 60_000

    projects = response.context["projects"]
    assert [row["key"] for row in projects.rows] == ["alpha", "beta"]  # alpha's last session is the newest
    alpha = next(row for row in projects.rows if row["key"] == "alpha")
    assert (alpha["sessions"], alpha["total_tokens"], alpha["duration_ms"]) == (2, 2150, 180_000)
    assert alpha["cost"] == Decimal("2.75")
    assert not projects.truncated

    page = response.content.decode()
    for heading in ("Usage by model", "Usage by provider", "Usage by agent", "Projects"):
        assert heading in page


def test_analytics_projects_sorted_by_last_active(logged_in, user, personal_workspace):
    now = timezone.now()
    for name, hours in (("old", 30), ("newest", 1), ("middle", 5)):
        SessionFactory(
            owner=user, workspace=personal_workspace, project_name=name, updated_at=now - timedelta(hours=hours)
        )
    rows = logged_in.get(reverse("sessions:analytics")).context["projects"].rows
    assert [row["key"] for row in rows] == ["newest", "middle", "old"]


def test_analytics_projects_capped_with_note(logged_in, user, personal_workspace, monkeypatch):
    monkeypatch.setattr(overview, "TABLE_LIMIT", 2)
    for name in ("a", "b", "c"):
        SessionFactory(owner=user, workspace=personal_workspace, project_name=name)
    response = logged_in.get(reverse("sessions:analytics"))
    assert len(response.context["projects"].rows) == 2 and response.context["projects"].truncated
    assert "Showing the 2 most recently active of 3 projects" in response.content.decode()


def test_project_without_name_groups_by_path_and_is_not_linked(logged_in, user, personal_workspace):
    SessionFactory(owner=user, workspace=personal_workspace, project_name=None, project_path="/srv/tool")
    SessionFactory(owner=user, workspace=personal_workspace, project_name="", project_path="")
    rows = logged_in.get(reverse("sessions:analytics")).context["projects"].rows
    by_key = {row["key"]: row for row in rows}
    assert set(by_key) == {"/srv/tool", None}
    assert by_key["/srv/tool"]["link"] is None  # the session list filters on project_name only


@pytest.mark.parametrize(
    ("provider", "model", "expected"),
    [
        ("Anthropic", "whatever", "anthropic"),
        ("google-antigravity", None, "google"),
        ("openai-compatible", None, "openai"),
        ("github-copilot-oauth", None, "github-copilot"),
        ("OpenRouter", "claude-sonnet-4", "OpenRouter"),
        (None, "claude-3-5-haiku", "anthropic"),
        ("", "gpt-4o", "openai"),
        (None, "gemini-2.5-pro", "google"),
        (None, "deepseek-coder", "deepseek"),
        (None, None, "unknown"),
    ],
)
def test_provider_inference(user, personal_workspace, provider, model, expected):
    SessionFactory(owner=user, workspace=personal_workspace, provider=provider, model=model)
    rows = analytics.usage_by_provider(personal_workspace).rows
    assert [row["key"] for row in rows] == [expected]


def test_analytics_empty_and_zero_divisions(logged_in, user, personal_workspace):
    response = logged_in.get(reverse("sessions:analytics"))
    assert response.status_code == 200
    assert "No sessions" in response.content.decode()

    # sessions with no tokens, messages, duration or cost: every ratio is "—", nothing divides by zero
    SessionFactory(owner=user, workspace=personal_workspace, cost=None)
    response = logged_in.get(reverse("sessions:analytics"))
    summary = response.context["summary"]
    assert summary["tokens_per_message"] is None
    assert summary["cost_per_session"] is None and summary["cost_per_1k_tokens"] is None
    assert summary["prompt_completion_ratio"] is None and summary["avg_duration_ms"] is None
    assert response.status_code == 200


def test_analytics_ignores_other_workspaces(logged_in, user, other_user, team, known_sessions):
    foreign = Workspace.objects.get(created_by=other_user, is_personal=True)
    SessionFactory(owner=other_user, workspace=foreign, prompt_tokens=99_999, project_name="secret-project")
    SessionFactory(owner=other_user, workspace=team, prompt_tokens=77_777, model="team-model")
    response = logged_in.get(reverse("sessions:analytics"), {"days": "all"})
    assert response.context["summary"]["total_tokens"] == 2450
    page = response.content.decode()
    assert "secret-project" not in page and "team-model" not in page


# --- query counts ---------------------------------------------------------------------------


def make_varied_sessions(owner, workspace, count: int) -> None:
    for i in range(count):
        SessionFactory(
            owner=owner,
            workspace=workspace,
            created_at=days_ago(i % 45),
            project_name=f"project-{i % 7}",
            model=f"model-{i % 4}",
            source=[Source.CLAUDE_CODE, Source.OPENCODE, Source.CODEX][i % 3],
            prompt_tokens=i * 10,
            cost=Decimal(i) if i % 2 else None,
            duration_ms=i * 1000 if i % 3 else None,
        )


@pytest.mark.parametrize("name", ["home", "sessions:analytics"])
def test_query_count_does_not_grow_with_data(client, name):
    from accounts.tests.factories import UserFactory

    def count_queries(sessions: int) -> int:
        user = UserFactory()
        make_varied_sessions(user, Workspace.objects.get(created_by=user, is_personal=True), sessions)
        client.force_login(user)
        with CaptureQueriesContext(connection) as queries:
            assert client.get(reverse(name)).status_code == 200
        return len(queries)

    assert count_queries(3) == count_queries(30)


# --- chart geometry -------------------------------------------------------------------------


def test_nice_scale():
    assert nice_scale(0) == (4, 1)
    assert nice_scale(7) == (8, 2)
    assert nice_scale(450) == (600, 200)
    top, step = nice_scale(123_456)
    assert top >= 123_456 and top % step == 0 and top / step <= 5


def test_stacked_bars_labels_and_heights():
    today = timezone.localdate()
    days = [
        {"date": today - timedelta(days=29 - i), "sessions": 0, "prompt_tokens": 0, "completion_tokens": 0}
        for i in range(30)
    ]
    days[-1] |= {"prompt_tokens": 300, "completion_tokens": 100}
    for day in days:
        day["total_tokens"] = day["prompt_tokens"] + day["completion_tokens"]
    chart = stacked_bars(days)
    labelled = [i for i, bar in enumerate(chart["bars"]) if bar["label"]]
    assert labelled[-1] == 29 and labelled == [1, 8, 15, 22, 29]
    assert chart["bars"][-1]["label"]["anchor"] == "end"
    assert chart["bars"][0]["prompt_height"] is None
    assert float(chart["bars"][-1]["prompt_height"]) > float(chart["bars"][-1]["completion_height"]) > 0
    assert chart["peak"] is days[-1]
    assert [line["label"] for line in chart["grid"]][-1] == axis_label(nice_scale(400)[0])


def test_axis_label():
    assert [axis_label(v) for v in (0, 950, 1000, 1500, 2_000_000, 3_500_000_000)] == [
        "0",
        "950",
        "1k",
        "1.5k",
        "2M",
        "3.5B",
    ]
