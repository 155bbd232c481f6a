"""Analytics in a real browser (Debian's chromium, Playwright) against gunicorn: a custom date
range, the per-person table of a team, two models side by side, the CSV download, the budget
banner, and a price override whose re-pricing a real Celery worker runs while the page shows its
progress. Reuses the servers, browser and helpers of test_browser.py."""

# ruff: noqa: F811 - the fixtures imported from test_browser are the tests' parameters

import csv
import io
import re
import time
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.utils import timezone

from accounts.models import Workspace
from accounts.tests.factories import UserFactory, team_with
from sessions_app import rollups
from sessions_app.models import RepricingJob, Session, Source
from sessions_app.tests.factories import SessionFactory

from .test_browser import (  # noqa: F401 - fixtures
    PHONE,
    assert_not_reloaded,
    browser,
    browser_user,
    expect,
    horizontal_overflow,
    live,
    log_in,
    mark_no_reload,
    open_page,
    open_worker_page,
    settled,
    shot,
    worker_live,
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SONNET, GPT = "claude-sonnet-4-5", "gpt-5"


def team_with_sessions(admin_user):
    """A team where `admin_user` (admin) and a colleague used two models over the last weeks."""
    colleague = UserFactory(email="colleague@example.com")
    team = team_with(admin_user, name="Platform team", member=colleague)
    # an hour ago, but never before today's local midnight: session `day` falls on the local date
    # `day` days back even in the first hour of a day (then "now - 1 h" was yesterday's date, and a
    # range of the last 5 days held 8 sessions, not 10)
    now = timezone.now()
    midnight = timezone.localtime(now).replace(hour=0, minute=0, second=0, microsecond=0)
    anchor = max(midnight, now - timedelta(hours=1))
    for day in range(20):
        for owner, model, tokens, status in (
            (admin_user, SONNET, 40_000, "golden"),
            (colleague, GPT, 90_000, "incorrect"),
        ):
            SessionFactory(owner=owner, workspace=team, source=Source.OPENCODE, model=model, project_name="api",
                           prompt_tokens=tokens + day, completion_tokens=2_000, cache_read_tokens=tokens * 4,
                           duration_ms=60_000 * (day + 1), created_at=anchor - timedelta(days=day),
                           eval_status=status if day % 5 == 0 else None)  # fmt: skip
    return team, colleague


def switch_to(page, team):
    with page.expect_navigation():
        page.select_option("#ws-switch", str(team.pk))


def test_custom_range_per_person_compare_and_csv(live, open_page, browser_user, tmp_path):
    team, colleague = team_with_sessions(browser_user)
    page, watch = open_page(accept_downloads=True)
    log_in(page, live, browser_user, "/analytics/")
    switch_to(page, team)
    page.goto("/analytics/")
    expect(page.locator(".overview-stat").first).to_contain_text("40")  # 40 sessions in 30 days
    mark_no_reload(page)

    # A custom range of the last 5 days: typing a date picks "Custom range", Apply swaps the
    # page body in place (boosted) and puts the range in the URL.
    first = (timezone.localdate() - timedelta(days=4)).isoformat()
    page.fill("#analytics-from", first)
    page.locator("#analytics-from").dispatch_event("change")
    expect(page.locator("#analytics-range")).to_have_value("custom")
    page.get_by_role("button", name="Apply").click()
    expect(page).to_have_url(re.compile(rf"range=custom&from={first}"))
    expect(page.locator(".overview-stat").first).to_contain_text("10")
    expect(page.locator(".analytics-range-note")).to_contain_text("Custom range")
    assert_not_reloaded(page)
    settled(page)

    # Per person: both people with their own spend, in the same range.
    page.get_by_role("link", name="Person").click()
    expect(page).to_have_url(re.compile(r"by=owner"))
    table = page.locator(".comparison-table")
    expect(table.locator("tbody tr")).to_have_count(2)
    expect(table).to_contain_text(browser_user.email)
    expect(table).to_contain_text("colleague@example.com")
    assert "from=" + first in page.url
    settled(page)
    shot(page, "analytics-per-person")

    # Sorting: a click on a header sorts by it; again reverses it.
    page.get_by_role("link", name="Cost / session").click()
    expect(table.locator("th[aria-sort=descending]")).to_contain_text("Cost / session")
    # Sonnet at $3/$15 costs more a session than GPT-5 at $1.25/$10 here, despite fewer tokens
    expect(table.locator("tbody tr").first).to_contain_text(browser_user.email)
    settled(page)
    table.locator("th[aria-sort] a.sort-link").click()
    expect(table.locator("th[aria-sort=ascending]")).to_contain_text("Cost / session")
    expect(table.locator("tbody tr").first).to_contain_text("colleague@example.com")
    settled(page)
    assert_not_reloaded(page)

    # The CSV of the table on screen.
    with page.expect_download() as download:
        page.get_by_role("link", name="Download CSV").click()
    path = tmp_path / download.value.suggested_filename
    download.value.save_as(path)
    assert download.value.suggested_filename.startswith("opensync-owner-custom-")
    rows = list(csv.DictReader(io.StringIO(path.read_text())))
    assert {row["person"] for row in rows} == {browser_user.email, "colleague@example.com"}
    assert sum(int(row["sessions"]) for row in rows) == 10

    # Back to models: tick both and compare them side by side.
    page.get_by_role("link", name="Model", exact=True).click()
    expect(table.locator("tbody tr")).to_have_count(2)
    settled(page)
    page.get_by_role("checkbox", name=f"Compare {SONNET}").check()
    page.get_by_role("checkbox", name=f"Compare {GPT}").check()
    page.get_by_role("button", name="Compare the two ticked").click()
    expect(page).to_have_url(re.compile(r"/analytics/compare/"))
    compare = page.locator(".compare-table")
    expect(compare.locator("thead")).to_contain_text(SONNET)
    expect(compare.locator("thead")).to_contain_text(GPT)
    expect(compare).to_contain_text("Cost per 1K tokens")
    expect(compare.locator("tr", has_text="Reviewed good")).to_contain_text("100%")  # Sonnet's golden
    expect(compare.locator("tr", has_text="Reviewed good")).to_contain_text("0%")  # GPT-5's incorrect
    shot(page, "analytics-compare")
    page.get_by_role("link", name="← Analytics").click()
    expect(page).to_have_url(re.compile(rf"from={first}"))  # the range came along
    watch.check()


def test_analytics_fits_a_phone_and_shows_the_chart(live, open_page, browser_user):
    team, _ = team_with_sessions(browser_user)
    page, watch = open_page(viewport=PHONE)
    log_in(page, live, browser_user, "/analytics/")
    switch_to(page, team)
    page.goto("/analytics/?metric=cost")
    expect(page.locator("svg.chart-svg")).to_be_visible()
    expect(page.locator(".chart-legend")).to_contain_text(SONNET)
    assert horizontal_overflow(page) == []
    shot(page, "analytics-phone")
    watch.check()


def make_priced_sessions(user, n: int) -> list[int]:
    """n sessions in bulk (a few queries), priced and rolled up as the sync would leave them."""
    workspace = Workspace.objects.get(created_by=user, is_personal=True)
    # this month (the budget's) and within the last 30 days (the default range), whatever today is
    start = timezone.now().replace(day=1, hour=0, minute=1, second=0, microsecond=0)
    sessions = Session.objects.bulk_create(
        Session(
            workspace=workspace,
            owner=user,
            external_id=f"bulk-{i:06d}",
            source=Source.OPENCODE,
            model=SONNET,
            project_name="api",
            prompt_tokens=100_000,
            completion_tokens=10_000,
            created_at=start + timedelta(seconds=i),
            updated_at=start + timedelta(seconds=i),
        )  # fmt: skip
        for i in range(n)
    )
    rollups.rebuild(workspace.pk)
    call_command("reprice", pending=True, verbosity=0)
    return [s.pk for s in sessions]


def test_budget_banner_and_a_price_override_repriced_by_the_worker(worker_live, open_worker_page, browser_user):
    n = 30_000
    make_priced_sessions(browser_user, n)
    page, watch = open_worker_page()
    log_in(page, worker_live, browser_user, "/analytics/settings/")

    # A budget below this month's spend: the banner appears for the admin.
    page.fill("#id_monthly_budget", "5000")
    page.get_by_role("button", name="Save").click()
    expect(page.locator(".flash")).to_contain_text("Saved")
    page.goto("/analytics/")
    # 30,000 × (100K × $3 + 10K × $15) / M = $13,500 this month (or part of it early in a month)
    expect(page.locator(".budget-banner")).to_contain_text("Over budget")
    shot(page, "analytics-budget-banner", full_page=False)

    # A negotiated price: the re-pricing runs on the worker, the page shows it advancing.
    page.goto("/analytics/settings/")
    page.fill("#id_model_pattern", SONNET + "*")
    page.fill("#id_input_per_m", "1")
    page.fill("#id_output_per_m", "5")
    page.fill("#id_effective_from", "2020-01-01")
    page.get_by_role("button", name="Add price").click()
    expect(page).to_have_url(re.compile(r"#repricing$"))
    job = page.locator(".repricing-job").first
    bar = job.locator("[role=progressbar]")
    seen = set()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        seen.add(int(bar.get_attribute("aria-valuenow")))
        if "Done" in job.inner_text():
            break
        time.sleep(0.2)
    expect(job).to_contain_text(f"{n:,} sessions priced, {n:,} changed")
    assert 100 in seen and len(seen) >= 2, seen  # it moved while we watched, and finished
    assert RepricingJob.objects.get(reason__startswith="Price for").processed == n
    expect(page.locator("#prices")).to_contain_text(SONNET + "*")
    shot(page, "analytics-repricing")

    # The new price is in every figure: $0.15 a session, $4,500 of the $5,000 budget (90%).
    page.goto("/analytics/")
    expect(page.locator(".overview-stat", has_text="Cost").first).to_contain_text("$0.1500 per session")
    expect(page.locator(".budget-banner")).to_contain_text("90% of the budget used")
    assert set(Session.objects.values_list("cost", flat=True)) == {Decimal("0.15")}
    watch.check()
