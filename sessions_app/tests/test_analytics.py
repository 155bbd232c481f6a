"""Analytics: date ranges in the workspace's time zone, the model comparison table and its
breakdowns per person, project, agent and provider, the chart, two rows side by side, CSV, the
budget banner, the empty states, and the same figures as JSON at /api/analytics/..."""

import csv
import io
import zoneinfo
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from accounts.models import Workspace
from accounts.services import api_key_create
from accounts.tests.factories import UserFactory, team_with
from sessions_app import analytics
from sessions_app.models import DURATION_RATIO, Source
from sessions_app.tests.factories import SessionFactory

pytestmark = pytest.mark.django_db

SONNET = "claude-sonnet-4-5"
GPT = "gpt-5"


def cost_of(model, input_tokens, output_tokens, cache_read=0):
    rates = {SONNET: (3, 15, Decimal("0.3")), GPT: (Decimal("1.25"), 10, Decimal("0.125"))}[model]
    return (input_tokens * rates[0] + output_tokens * rates[1] + cache_read * rates[2]) / Decimal(1_000_000)


@pytest.fixture
def team_ws(user, other_user):
    """A team in Berlin time where `user` is admin and `other_user` a member."""
    return team_with(user, name="Berlin team", member=other_user, timezone="Europe/Berlin")


@pytest.fixture
def in_team(logged_in, team_ws):
    logged_in.post(reverse("accounts:workspace-switch"), {"workspace": team_ws.pk})
    return logged_in


def make(owner, workspace, model, *, days=0, hour=12, input_tokens=1000, output=100, cache_read=0, **extra):
    today = timezone.now().astimezone(zoneinfo.ZoneInfo(workspace.timezone)).date()
    moment = datetime.combine(today - timedelta(days=days), datetime.min.time(), UTC) + timedelta(hours=hour)
    fields = {"source": Source.OPENCODE, "project_name": "api", "created_at": moment} | extra
    return SessionFactory(owner=owner, workspace=workspace, model=model, prompt_tokens=input_tokens,
                          completion_tokens=output, cache_read_tokens=cache_read, **fields)  # fmt: skip


@pytest.fixture
def team_sessions(user, other_user, team_ws):
    """Sonnet: 3 sessions by user, reviewed golden, correct, incorrect; GPT-5: 2 by other_user,
    one correct; one session with no model; one from 40 days ago."""
    return [
        make(
            user,
            team_ws,
            SONNET,
            input_tokens=1000,
            output=100,
            cache_read=9000,
            duration_ms=60_000,
            eval_status="golden",
        ),
        make(user, team_ws, SONNET, input_tokens=2000, output=200, duration_ms=120_000, eval_status="correct", days=1),
        make(
            user,
            team_ws,
            SONNET,
            input_tokens=3000,
            output=300,
            duration_ms=600_000,
            eval_status="incorrect",
            days=2,
            project_name="web",
        ),  # fmt: skip
        make(other_user, team_ws, GPT, input_tokens=10_000, output=1000, duration_ms=30_000, eval_status="correct"),
        make(other_user, team_ws, GPT, input_tokens=20_000, output=2000, duration_ms=45_000, days=3),
        make(other_user, team_ws, None, input_tokens=50, output=5, source=Source.CURSOR, days=1),
        make(user, team_ws, SONNET, input_tokens=99_999, output=9, days=40),
    ]


def page(client, **params):
    response = client.get(reverse("sessions:analytics"), params)
    assert response.status_code == 200, response.content[:500]
    return response


# --- the comparison table ---------------------------------------------------------------------


def test_model_comparison_table(in_team, team_sessions):
    response = page(in_team)  # default: last 30 days, by model, by cost
    rows = {row["key"]: row for row in response.context["table"].rows}
    assert set(rows) == {SONNET, GPT, ""}
    sonnet, gpt = rows[SONNET], rows[GPT]
    assert (sonnet["sessions"], sonnet["input_tokens"], sonnet["output_tokens"]) == (3, 6000, 600)
    assert sonnet["cache_read_tokens"] == 9000
    assert sonnet["cache_hit_rate"] == pytest.approx(9000 / 15000)
    assert sonnet["cost"] == cost_of(SONNET, 6000, 600, 9000)
    assert sonnet["cost_per_session"] == sonnet["cost"] / 3
    assert sonnet["cost_per_1k_tokens"] == sonnet["cost"] * 1000 / 15600
    assert gpt["cost"] == cost_of(GPT, 30_000, 3000)
    # durations: 60 s, 120 s, 600 s -> median 120 s, p90 near 600 s, within a bucket (±6%)
    assert sonnet["median_duration_ms"] == pytest.approx(120_000, rel=0.12)
    assert sonnet["p90_duration_ms"] == pytest.approx(600_000, rel=0.12)
    # the review outcome: 2 good (golden + correct) against 1 incorrect
    assert (sonnet["golden"], sonnet["correct"], sonnet["incorrect"], sonnet["reviewed"]) == (1, 1, 1, 3)
    assert sonnet["good_share"] == pytest.approx(200 / 3)
    assert (gpt["reviewed"], gpt["good_share"]) == (1, 100)
    assert rows[""]["label"] == "Unknown model" and rows[""]["cost_known"] is False  # Cursor: no usage
    # biggest cost first, the unknown cost last
    assert [row["key"] for row in response.context["table"].rows] == [GPT, SONNET, ""]
    html = response.content.decode()
    assert "Review: good" in html and "67%" in html and "(2/3)" in html


def test_sorting_by_any_column_both_ways_unknown_last(in_team, team_sessions):
    rows = page(in_team, sort="median_duration_ms", dir="asc").context["table"].rows
    assert [row["key"] for row in rows] == [GPT, SONNET, ""]  # the Cursor session has no duration
    rows = page(in_team, sort="median_duration_ms", dir="desc").context["table"].rows
    assert [row["key"] for row in rows] == [SONNET, GPT, ""]
    rows = page(in_team, sort="label", dir="asc").context["table"].rows
    assert [row["key"] for row in rows] == [SONNET, GPT, ""]
    response = in_team.get(reverse("sessions:analytics"), {"sort": "nonsense"})
    assert response.status_code == 400 and "sort" in response.context["error"]


def test_breakdowns_per_person_project_agent_and_provider(in_team, user, other_user, team_sessions):
    people = {row["key"]: row for row in page(in_team, by="owner").context["table"].rows}
    assert set(people) == {user.pk, other_user.pk}
    assert people[user.pk]["cost"] == cost_of(SONNET, 6000, 600, 9000)
    assert people[other_user.pk]["cost"] == cost_of(GPT, 30_000, 3000)
    assert people[user.pk]["label"] == user.email

    projects = {row["key"]: row["sessions"] for row in page(in_team, by="project").context["table"].rows}
    assert projects == {"api": 5, "web": 1}
    agents = {row["key"]: row["sessions"] for row in page(in_team, by="source").context["table"].rows}
    assert agents == {"opencode": 5, "cursor-sync": 1}
    providers = {row["key"]: row["sessions"] for row in page(in_team, by="provider").context["table"].rows}
    assert providers == {"anthropic": 3, "openai": 2, "": 1}


def test_a_personal_workspace_has_no_per_person_tab(logged_in, user, personal_workspace):
    make(user, personal_workspace, SONNET)
    response = page(logged_in)
    assert "owner" not in response.context["dimensions"]
    assert logged_in.get(reverse("sessions:analytics"), {"by": "owner"}).status_code == 400


def test_drill_down_links_filter_the_page(in_team, team_sessions):
    response = page(in_team)
    sonnet = next(row for row in response.context["table"].rows if row["key"] == SONNET)
    assert f"model={SONNET}" in sonnet["drill"] and "by=project" in sonnet["drill"]
    narrowed = in_team.get(reverse("sessions:analytics") + sonnet["drill"])
    assert narrowed.context["summary"]["sessions"] == 3
    assert {row["key"] for row in narrowed.context["table"].rows} == {"api", "web"}
    assert "Model: claude-sonnet-4-5" in narrowed.content.decode()


# --- ranges and the time zone --------------------------------------------------------------------


def test_presets_and_custom_range_in_the_workspace_time_zone(in_team, user, team_ws, team_sessions):
    assert page(in_team).context["summary"]["sessions"] == 6  # the 40-day-old one is outside 30 days
    assert page(in_team, range="all").context["summary"]["sessions"] == 7
    assert page(in_team, range="7d").context["summary"]["sessions"] == 6
    # 23:30 UTC is the next day in Berlin: a custom range of that day alone finds it
    late = SessionFactory(owner=user, workspace=team_ws, model=SONNET, source=Source.OPENCODE, prompt_tokens=1,
                          created_at=datetime(2026, 3, 1, 23, 30, tzinfo=UTC))  # fmt: skip
    day = {"range": "custom", "from": "2026-03-02", "to": "2026-03-02"}
    response = page(in_team, **day)
    assert response.context["summary"]["sessions"] == 1
    assert response.context["query"].start == date(2026, 3, 2)
    assert (
        page(in_team, range="custom", **{"from": "2026-03-01", "to": "2026-03-01"}).context["summary"]["sessions"] == 0
    )
    # the range is in the URL, so the page can be shared
    html = response.content.decode()
    assert 'value="2026-03-02"' in html and "Europe/Berlin" in html
    assert late.pk


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"range": "custom", "from": "2026-05-01", "to": "2026-04-01"}, "from"),
        ({"range": "custom", "from": "yesterday"}, "from"),
        ({"range": "forever"}, "range"),
        ({"owner": "me"}, "owner"),
        ({"owner": "²"}, "owner"),
        ({"owner": "9" * 40}, "owner"),
        ({"range": "custom", "from": "1066-10-14"}, "from"),
        ({"range": "custom", "to": "9999-12-31"}, "to"),
        ({"metric": "joules"}, "metric"),
        ({"interval": "hour"}, "interval"),
    ],
)
def test_bad_parameters_say_what_is_wrong_and_show_the_default(in_team, team_sessions, params, field):
    response = in_team.get(reverse("sessions:analytics"), params)
    assert response.status_code == 400
    assert response.context["error"].startswith(field)
    assert response.context["summary"]["sessions"] == 6  # the default view
    assert "can't be shown" in response.content.decode()


def test_a_chart_per_day_over_years_is_refused_and_drawn_per_week(in_team, team_sessions):
    response = in_team.get(reverse("sessions:analytics"), {"interval": "day", "range": "custom", "from": "2020-01-01"})
    assert response.status_code == 400
    assert response.context["error"].startswith("interval: a chart has at most 1000 points")
    assert response.context["timeseries"]["interval"] in ("week", "month")


# --- chart ---------------------------------------------------------------------------------------


def test_usage_by_model_over_time(in_team, team_sessions):
    series = page(in_team).context["timeseries"]
    assert series["interval"] == "day" and len(series["periods"]) == 30
    by_key = {s["key"]: s for s in series["series"]}
    assert set(by_key) == {SONNET, GPT, ""}
    assert by_key[SONNET]["total"] == 6000 + 600 + 9000
    assert sum(series["totals"]) == 15_600 + 33_000 + 55
    costs = page(in_team, metric="cost", interval="week").context["timeseries"]
    assert costs["interval"] == "week"
    assert sum(s["total"] for s in costs["series"]) == cost_of(SONNET, 6000, 600, 9000) + cost_of(GPT, 30_000, 3000)
    html = page(in_team, metric="cost").content.decode()
    assert 'class="series-0"' in html and "Cost by model" in html and "Show the numbers" in html


def test_more_than_six_models_fold_into_others(logged_in, user, personal_workspace):
    for n in range(9):
        make(user, personal_workspace, f"model-{n}", input_tokens=100 * (n + 1))
    series = page(logged_in).context["timeseries"]["series"]
    assert len(series) == 7 and series[-1]["key"] == analytics.OTHER and series[-1]["label"] == "3 others"


# --- compare, CSV ------------------------------------------------------------------------------------


def test_compare_two_models_side_by_side(in_team, team_sessions):
    response = in_team.get(reverse("sessions:analytics-compare"), {"by": "model", "pick": [SONNET, GPT]})
    assert response.status_code == 200
    metrics = {m["key"]: m for m in response.context["metrics"]}
    assert (metrics["sessions"]["a"], metrics["sessions"]["b"]) == (3, 2)
    assert metrics["shown_cost"]["b"] == cost_of(GPT, 30_000, 3000)
    expected = float(
        (cost_of(GPT, 30_000, 3000) - cost_of(SONNET, 6000, 600, 9000)) / cost_of(SONNET, 6000, 600, 9000) * 100
    )
    assert metrics["shown_cost"]["change"] == pytest.approx(expected)
    html = response.content.decode()
    assert SONNET in html and GPT in html and "Reviewed good" in html


def test_compare_needs_two_rows_with_sessions(in_team, team_sessions):
    response = in_team.get(reverse("sessions:analytics-compare"), {"by": "model", "pick": [SONNET]})
    assert response.status_code == 400 and "Pick two" in response.content.decode()
    response = in_team.get(reverse("sessions:analytics-compare"), {"by": "model", "a": SONNET, "b": "nope"})
    assert response.status_code == 400 and "no sessions in this range" in response.content.decode()


def test_csv_download_has_every_row_and_escapes_formulas(in_team, user, team_ws, team_sessions):
    make(user, team_ws, '=HYPERLINK("http://evil")')
    response = in_team.get(reverse("sessions:analytics-csv"), {"by": "model", "range": "30d"})
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="opensync-model-30d-')
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    by_model = {row["model"]: row for row in rows}
    assert Decimal(by_model[SONNET]["cost usd"]) == cost_of(SONNET, 6000, 600, 9000)
    assert by_model[SONNET]["sessions"] == "3" and by_model[SONNET]["incorrect"] == "1"
    assert '\'=HYPERLINK("http://evil")' in by_model  # a spreadsheet shows it as text
    people = in_team.get(reverse("sessions:analytics-csv"), {"by": "owner"}).content.decode()
    assert people.splitlines()[0].startswith("person,")
    # the chart's download has a column per model: its header is guarded too
    series = in_team.get(reverse("sessions:analytics-csv"), {"table": "series", "range": "30d"}).content.decode()
    header = next(csv.reader(io.StringIO(series)))
    assert '\'=HYPERLINK("http://evil")' in header and '=HYPERLINK("http://evil")' not in header


# --- budget, empty states, isolation ---------------------------------------------------------------


def test_budget_banner_for_admins_at_80_and_100_percent(in_team, client, other_user, user, team_ws):
    make(user, team_ws, SONNET, input_tokens=1_000_000, output=0)  # $3.00 this month
    team_ws.monthly_budget = Decimal("10")
    team_ws.save()
    assert "budget-banner" not in page(in_team).content.decode()  # 30%
    team_ws.monthly_budget = Decimal("3.60")
    team_ws.save()
    html = page(in_team).content.decode()
    assert "83% of the budget used" in html and "$3.00 of the $3.60 monthly budget" in html
    team_ws.monthly_budget = Decimal("2.50")
    team_ws.save()
    assert "Over budget" in page(in_team).content.decode()
    assert "Over budget" in in_team.get(reverse("home")).content.decode()
    # a member doesn't see it
    client.force_login(other_user)
    client.post(reverse("accounts:workspace-switch"), {"workspace": team_ws.pk})
    assert "budget-banner" not in page(client).content.decode()


def test_empty_states(logged_in, user, personal_workspace):
    html = page(logged_in).content.decode()
    assert "No sessions in this range" in html
    make(user, personal_workspace, None, source=Source.CURSOR, input_tokens=0, output=0)
    html = page(logged_in).content.decode()
    assert "No sessions with a known model in this range" in html
    assert "1 session has no known cost" in html


def test_other_workspaces_never_show(in_team, other_user, team_sessions):
    foreign = Workspace.objects.get(created_by=other_user, is_personal=True)
    make(other_user, foreign, "secret-model", project_name="secret-project")
    for by in ("model", "project", "owner", "source", "provider"):
        html = page(in_team, by=by, range="all").content.decode()
        assert "secret-model" not in html and "secret-project" not in html


def test_percentiles_from_buckets():
    buckets = [0] * 64
    assert analytics.percentile_ms(buckets, 0.5) is None
    buckets[0] = 2  # under a second
    assert 0 <= analytics.percentile_ms(buckets, 0.5) < 1000
    buckets = [0] * 64
    buckets[21] = 10  # [86.7 s, 108.4 s)
    value = analytics.percentile_ms(buckets, 0.5)
    assert 1000 * DURATION_RATIO**20 <= value < 1000 * DURATION_RATIO**21


# --- the JSON API ------------------------------------------------------------------------------------


@pytest.fixture
def team_key(user, team_ws):
    _, raw = api_key_create(user=user, workspace=team_ws, name="dashboards", scope="read")
    return {"HTTP_AUTHORIZATION": f"Bearer {raw}"}


def test_api_summary(client, team_key, team_sessions, team_ws):
    team_ws.monthly_budget = Decimal("100")
    team_ws.save()
    body = client.get("/api/analytics/summary", **team_key).json()
    assert body["sessions"] == 6 and body["range"]["preset"] == "30d" and body["range"]["timeZone"] == "Europe/Berlin"
    assert body["cost"]["total"] == pytest.approx(float(cost_of(SONNET, 6000, 600, 9000) + cost_of(GPT, 30_000, 3000)))
    assert body["cost"]["sessionsUnknown"] == 1 and body["tokens"]["cacheRead"] == 9000
    assert body["budget"]["budget"] == 100 and body["budget"]["level"] is None
    assert client.get("/api/v1/analytics/summary?range=all", **team_key).json()["sessions"] == 7


def test_api_breakdown_and_timeseries(client, team_key, team_sessions, user):
    body = client.get("/api/analytics/breakdown?by=model&sort=sessions", **team_key).json()
    assert [row["key"] for row in body["rows"]] == [SONNET, GPT, ""]
    sonnet = body["rows"][0]
    assert sonnet["review"] == {"reviewed": 3, "golden": 1, "correct": 1, "incorrect": 1, "needsReview": 0,
                                "goodShare": pytest.approx(200 / 3)}  # fmt: skip
    assert sonnet["duration"]["medianMs"] == pytest.approx(120_000, rel=0.12)
    people = client.get("/api/analytics/breakdown?by=owner", **team_key).json()
    assert {row["key"] for row in people["rows"]} == {str(user.pk), str(team_sessions[3].owner_id)}
    series = client.get("/api/analytics/timeseries?metric=cost&interval=week", **team_key).json()
    assert series["interval"] == "week" and series["periods"][0] <= series["periods"][-1]
    filtered = client.get(f"/api/analytics/summary?owner={user.pk}&model={SONNET}", **team_key).json()
    assert filtered["sessions"] == 3


@pytest.mark.parametrize(
    "query",
    [
        "range=nope",
        "range=custom&from=2026-13-01",
        "by=colour",
        "sort=drop",
        "limit=0",
        "limit=x",
        "limit=%C2%B2",
        "limit=" + "9" * 40,
        "owner=%C2%B2",
        "range=custom&to=9999-01-01",
        "interval=hour",
        "interval=day&range=custom&from=2020-01-01&to=2026-01-01",
    ],  # fmt: skip
)
def test_api_bad_parameters_are_400_with_a_reason(client, team_key, query):
    path = "/api/analytics/timeseries" if "interval" in query else "/api/analytics/breakdown"
    response = client.get(f"{path}?{query}", **team_key)
    assert response.status_code == 400
    assert set(response.json()) == {"error"}


def test_api_needs_a_key_and_sees_only_its_workspace(client, sync_key, team_sessions):
    assert client.get("/api/analytics/summary").status_code == 401
    mine = client.get("/api/analytics/summary?range=all", HTTP_AUTHORIZATION=f"Bearer {sync_key}").json()
    assert mine["sessions"] == 0  # the key's workspace is the personal one, not the team


def test_a_member_can_read_analytics_of_their_team(client, other_user, team_ws, team_sessions):
    client.force_login(other_user)
    client.post(reverse("accounts:workspace-switch"), {"workspace": team_ws.pk})
    assert page(client).context["summary"]["sessions"] == 6
    stranger = UserFactory()
    client.force_login(stranger)
    client.post(reverse("accounts:workspace-switch"), {"workspace": team_ws.pk})  # refused: not a member
    assert page(client).context["summary"]["sessions"] == 0


def test_the_same_figures_from_either_rollup(in_team, team_key, client, user, team_sessions):
    """A page without a model, owner or project filter reads the dimension rollups (whole months
    and edge days); with one, the finest rollups. Both give the same numbers."""
    from sessions_app.analytics import Query, breakdown, fine_grained, summary, timeseries

    workspace = team_sessions[0].workspace
    today = analytics.today_in(workspace.timezone)
    for start in (None, today - timedelta(days=40), today.replace(day=1), today - timedelta(days=2)):
        plain = Query(preset="custom", start=start, end=today, tz=workspace.timezone)
        # a filter that keeps everything, so the fine path answers the same question
        every = Query(preset="custom", start=start, end=today, tz=workspace.timezone, project="api")
        assert not fine_grained(plain) and fine_grained(every)
        only_api = [
            s for s in team_sessions if s.project_name == "api" and (start is None or s.created_at.date() >= start)
        ]
        assert summary(workspace, every)["sessions"] == len(only_api)
        assert summary(workspace, plain)["sessions"] >= len(only_api)
        by_model = {r["key"]: r["cost"] for r in breakdown(workspace, plain, "model").rows}
        by_model_api = {r["key"]: r["cost"] for r in breakdown(workspace, every, "model").rows}
        for key, cost in by_model_api.items():
            assert by_model[key] >= cost
        for interval in ("day", "week", "month"):
            a = timeseries(workspace, plain, interval=interval, metric="cost", by="source")
            assert sum(s["total"] for s in a["series"]) == summary(workspace, plain)["cost"]


def test_whole_months_and_edge_days_cover_any_range_exactly(user, personal_workspace):
    """Sessions on every day of four months; every range (month starts and ends, mid-month days,
    all time) counts exactly the sessions that started in it: the totals, and each model's row
    with its durations (an edge month may be read as its month minus the days outside the range)."""
    import random

    from sessions_app.analytics import Query, breakdown, summary

    first = date(2026, 1, 1)
    days = [first + timedelta(days=n) for n in range(120)]
    # the second model on January 2 and 3 and a few days of March: a range from January 4 holds
    # January's month row with its sessions, which the days before the range then take away
    model_of = {day: GPT if day in (date(2026, 1, 2), date(2026, 1, 3)) or day.month == 3 and day.day % 7 == 0
                else SONNET for day in days}  # fmt: skip
    duration_of = {day: day.day * 60_000 + day.month * 1_000 for day in days}
    for day in days:
        SessionFactory(owner=user, workspace=personal_workspace, source=Source.PI, model=model_of[day],
                       prompt_tokens=day.day, duration_ms=duration_of[day],
                       created_at=datetime.combine(day, datetime.min.time(), UTC) + timedelta(hours=13))  # fmt: skip
    rng = random.Random(3)
    edges = [date(2026, m, 1) for m in range(1, 5)] + [date(2026, 1, 31), date(2026, 2, 28), date(2026, 3, 31)]
    ranges = [(date(2026, 1, 4), date(2026, 2, 28)), (date(2026, 1, 4), date(2026, 4, 27)),
              (date(2026, 1, 28), date(2026, 3, 2)), (None, date(2026, 2, 27))]  # fmt: skip
    for _ in range(60):
        start, end = sorted(rng.sample(days + edges, 2))
        ranges.append((None if rng.random() < 0.15 else start, end))
    for start, end in ranges:
        query = Query(preset="custom", start=start, end=end, tz="UTC")
        expected = [d for d in days if (start is None or d >= start) and d <= end]
        figures = summary(personal_workspace, query)
        assert figures["sessions"] == len(expected), (start, end)
        assert figures["input_tokens"] == sum(d.day for d in expected), (start, end)
        assert figures["duration_ms"] == sum(duration_of[d] for d in expected), (start, end)
        assert "named" not in figures
        rows = {row["key"]: row for row in breakdown(personal_workspace, query, "model").rows}
        for model in (SONNET, GPT):
            mine = [d for d in expected if model_of[d] == model]
            if not mine:
                assert model not in rows, (start, end, model)
                continue
            row = rows[model]
            assert row["sessions"] == len(mine), (start, end, model)
            assert row["input_tokens"] == sum(d.day for d in mine), (start, end, model)
            assert row["duration_ms"] == sum(duration_of[d] for d in mine), (start, end, model)
            assert sum(row["buckets"]) == len(mine) and min(row["buckets"]) == 0, (start, end, model)


def test_the_chart_numbers_and_the_comparison_download_as_csv(in_team, team_sessions):
    series = in_team.get(reverse("sessions:analytics-csv"), {"table": "series", "metric": "cost", "interval": "week"})
    assert series.status_code == 200
    lines = list(csv.reader(io.StringIO(series.content.decode())))
    assert lines[0][0] == "week" and lines[0][-1] == "total" and SONNET in lines[0]
    assert sum(Decimal(line[-1]) for line in lines[1:]) == cost_of(SONNET, 6000, 600, 9000) + cost_of(GPT, 30_000, 3000)
    compare = in_team.get(reverse("sessions:analytics-csv"), {"table": "compare", "by": "model", "a": SONNET, "b": GPT})
    rows = {line[0]: line for line in csv.reader(io.StringIO(compare.content.decode()))}
    assert rows["Sessions"][1:3] == ["3", "2"]
    page = in_team.get(reverse("sessions:analytics-compare"), {"by": "model", "a": SONNET, "b": GPT}).content.decode()
    assert "table=compare" in page and "Download CSV" in page
    bad = in_team.get(reverse("sessions:analytics-csv"), {"table": "compare", "a": SONNET})
    assert bad.status_code == 400
