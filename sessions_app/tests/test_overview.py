"""The Overview (home): workspace-scoped totals, chart and top lists, all from the rollups."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from accounts.models import Workspace
from sessions_app.models import Source
from sessions_app.templatetags.charts import axis_label, nice_scale, stacked_bars
from sessions_app.tests.factories import SessionFactory

pytestmark = pytest.mark.django_db

# claude-sonnet-4 in the price book: $3 input, $15 output, $0.30 cache reads, $3.75 5-minute writes
SONNET_4_COST = Decimal(100 * 3 + 50 * 15 + 10 * 0.3 + 5 * 3.75) / 1_000_000  # session A below
GPT_4O_COST = Decimal(200 * 2.5 + 100 * 10) / 1_000_000  # session B: $2.50 / $10


def days_ago(days: int):
    return timezone.now() - timedelta(days=days)


@pytest.fixture
def known_sessions(user, personal_workspace):
    """Three OpenCode sessions with known figures: two in the last 30 days, one older whose model
    has no price (so it shows the cost its plugin reported)."""
    return [
        SessionFactory(
            owner=user,
            workspace=personal_workspace,
            source=Source.OPENCODE,
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
            source=Source.OPENCODE,
            created_at=days_ago(2),
            prompt_tokens=200,
            completion_tokens=100,
            cost=None,  # never reported: the server prices it
            message_count=2,
            project_name="beta",
            model="gpt-4o",
            provider=None,
        ),
        SessionFactory(
            owner=user,
            workspace=personal_workspace,
            source=Source.OPENCODE,
            created_at=days_ago(40),
            prompt_tokens=1000,
            completion_tokens=1000,
            cost=Decimal("2.25"),
            message_count=10,
            duration_ms=120_000,
            project_name="alpha",
            model="in-house-model",  # not in the price book: the plugin's $2.25 is shown
        ),
    ]


def assert_redirects_to_login(response):
    assert response.status_code == 302
    assert response.url.startswith(reverse("account_login"))


@pytest.mark.parametrize("name", ["home", "sessions:analytics"])
def test_pages_need_login(client, name):
    assert_redirects_to_login(client.get(reverse(name)))


def test_overview_totals(logged_in, known_sessions):
    response = logged_in.get(reverse("home"))
    assert response.status_code == 200
    totals = response.context["totals"]

    everything = totals["all"]
    assert everything["sessions"] == 3
    assert everything["messages"] == 15
    assert (everything["input_tokens"], everything["output_tokens"]) == (1300, 1150)
    assert (everything["cache_read_tokens"], everything["cache_write_tokens"]) == (10, 5)
    assert everything["total_tokens"] == 2465  # input, output and cache: every token processed
    assert everything["cost"] == SONNET_4_COST + GPT_4O_COST + Decimal("2.25")
    assert (everything["sessions_computed"], everything["sessions_reported"]) == (2, 1)
    assert everything["sessions_unknown_cost"] == 0

    recent = totals["recent"]
    assert recent["sessions"] == 2
    assert recent["messages"] == 5
    assert recent["total_tokens"] == 465
    assert recent["cost"] == SONNET_4_COST + GPT_4O_COST

    page = response.content.decode()
    assert "$0.0026" in page  # the 30 days' computed cost
    assert "$2.25" in page  # all time: the one priced from its plugin's figure


def test_overview_chart_has_every_day_zero_filled(logged_in, known_sessions):
    daily = logged_in.get(reverse("home")).context["daily"]
    today = timezone.localdate()
    assert len(daily) == 30
    assert [day["date"] for day in daily] == [today - timedelta(days=29 - i) for i in range(30)]
    assert daily[-1] | {"cost": None} == {
        "date": today,
        "sessions": 1,
        "prompt_tokens": 115,  # input with cache reads and writes
        "completion_tokens": 50,
        "total_tokens": 165,
        "cost": None,
    }
    assert daily[-3]["total_tokens"] == 300 and daily[-3]["sessions"] == 1
    assert sum(day["total_tokens"] for day in daily) == 465  # the bars add up to the 30-day total
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
    # last 30 days by tokens: beta (300) before alpha (165); the 40-day-old alpha session is outside
    projects = response.context["top_projects"].rows
    assert [(row["key"], row["total_tokens"]) for row in projects] == [("beta", 300), ("alpha", 165)]
    models = response.context["top_models"].rows
    assert [row["key"] for row in models] == ["gpt-4o", "claude-sonnet-4"]
    assert f'href="{reverse("sessions:list")}?project=beta"' in page
    assert f'href="{reverse("sessions:list")}?model=gpt-4o"' in page


def test_overview_unknown_cost_is_a_dash_not_zero(logged_in, user, personal_workspace):
    SessionFactory(owner=user, workspace=personal_workspace, source=Source.OPENCODE, model="in-house-model",
                   prompt_tokens=10, cost=None)  # fmt: skip
    response = logged_in.get(reverse("home"))
    totals = response.context["totals"]["all"]
    assert (totals["cost_known"], totals["sessions_unknown_cost"]) == (False, 1)
    page = response.content.decode()
    assert "No session has a known cost" in page
    assert "$0.00" not in page


def test_overview_says_which_costs_are_the_plugins(logged_in, known_sessions):
    page = logged_in.get(reverse("home")).content.decode()
    assert "1 session at the plugin" not in page  # the 30 days: both computed
    old = known_sessions[2]
    assert (old.cost_source, old.cost, old.computed_cost) == ("reported", Decimal("2.25"), None)
    assert "in-house-model" in old.cost_note


def test_overview_ignores_other_workspaces(
    logged_in, user, other_user, personal_workspace, team_as_member, known_sessions
):
    foreign = Workspace.objects.get(created_by=other_user, is_personal=True)
    SessionFactory(owner=other_user, workspace=foreign, prompt_tokens=99_999, cost=Decimal("100"))
    SessionFactory(owner=other_user, workspace=team_as_member, prompt_tokens=77_777, title="Team deploy session")
    SessionFactory(owner=user, workspace=team_as_member, prompt_tokens=55_555)  # mine, but in the team workspace

    response = logged_in.get(reverse("home"))
    assert response.context["totals"]["all"]["sessions"] == 3
    assert response.context["totals"]["all"]["total_tokens"] == 2465
    assert "Team deploy session" not in response.content.decode()


def test_team_member_sees_team_totals(logged_in, user, other_user, personal_workspace, team_as_member):
    SessionFactory(owner=user, workspace=personal_workspace, prompt_tokens=5)
    SessionFactory(owner=other_user, workspace=team_as_member, source=Source.PI, model="claude-sonnet-4", prompt_tokens=700,
                   completion_tokens=70)  # fmt: skip
    SessionFactory(owner=user, workspace=team_as_member, source=Source.PI, model="claude-sonnet-4", prompt_tokens=300,
                   completion_tokens=30)  # fmt: skip

    logged_in.post(reverse("accounts:workspace-switch"), {"workspace": team_as_member.pk})
    response = logged_in.get(reverse("home"))
    totals = response.context["totals"]["all"]
    assert (totals["sessions"], totals["total_tokens"]) == (2, 1100)
    assert totals["cost"] == Decimal(1000 * 3 + 100 * 15) / 1_000_000
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


@pytest.mark.parametrize(
    ("name", "params"),
    [("home", {}), ("sessions:analytics", {}), ("sessions:analytics", {"range": "all", "by": "project"})],
)
def test_query_count_does_not_grow_with_data(client, name, params):
    from accounts.tests.factories import UserFactory

    def count_queries(sessions: int) -> int:
        user = UserFactory()
        make_varied_sessions(user, Workspace.objects.get(created_by=user, is_personal=True), sessions)
        client.force_login(user)
        with CaptureQueriesContext(connection) as queries:
            assert client.get(reverse(name), params).status_code == 200
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
