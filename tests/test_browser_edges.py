"""Real browser at the edges of the pages: the Content-Security-Policy holds on every main page
(no violation, HTMX still works), and Copy still copies a message's whole text although the page
no longer carries it (viewer and public page)."""

# ruff: noqa: F811 - the fixtures imported from test_browser are the tests' parameters

import re

import pytest

from sessions_app.tests.factories import MessageFactory, PartFactory

from .test_browser import (  # noqa: F401 - fixtures
    assert_not_reloaded,
    browser,
    browser_user,
    expect,
    live,
    log_in,
    make_rich_session,
    mark_no_reload,
    open_page,
    settled,
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# Playwright's init scripts run outside the page's policy: this one records every violation the
# browser reports, whatever the console says.
RECORD_VIOLATIONS = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__csp.push(e.violatedDirective + " " + (e.blockedURI || "inline") + " " + (e.sample || ""));
});
"""


def violations(page) -> list[str]:
    return page.evaluate("window.__csp")


def open_watched(open_page, **options):
    page, watch = open_page(**options)
    page.add_init_script(RECORD_VIOLATIONS)
    return page, watch


def test_main_pages_keep_the_content_security_policy(live, open_page, browser_user):
    session = make_rich_session(browser_user, title="Fix the flaky login test")
    # a table whose columns are aligned (once an inline style="text-align")
    MessageFactory(session=session, role="assistant", text_content="| a | b |\n|:-|-:|\n| 1 | 2 |")

    anon, anon_watch = open_watched(open_page)
    anon.goto("/accounts/login/")
    expect(anon.get_by_role("button", name=re.compile("Sign in|Log in", re.I))).to_be_visible()
    assert violations(anon) == []

    page, watch = open_watched(open_page)
    log_in(page, live, browser_user, "/")
    pages = {
        "/": "Overview",
        "/sessions/": "Sessions",
        f"/sessions/{session.pk}/": "Fix the flaky login test",
        "/search/?q=flaky": "Search",
        "/context/": "Context",
        "/analytics/": "Analytics",
        "/settings/": "Your details",
    }
    for path, text in pages.items():
        response = page.goto(path)
        assert response.status == 200, path
        assert "default-src 'self'" in response.headers["content-security-policy"], path
        expect(page.locator("main")).to_contain_text(text)
        # the theme script (inline, with the nonce) ran: the toggle knows the theme
        expect(page.locator("#theme-toggle")).to_have_attribute("aria-label", re.compile("Colour theme"))
        assert violations(page) == [], (path, violations(page))

    # HTMX still works under the policy: the theme toggle, a context pick, the budget (a POST).
    page.goto(f"/sessions/{session.pk}/")
    mark_no_reload(page)
    page.get_by_role("button", name="+ Session").click()
    expect(page.get_by_role("button", name="✓ Session in context")).to_be_visible()
    assert_not_reloaded(page)
    page.goto("/context/")
    settled(page)
    mark_no_reload(page)
    page.locator("#id_budget").fill("150")
    expect(page.locator("#context-count")).to_contain_text("of 150 tokens")
    assert_not_reloaded(page)
    assert violations(page) == []

    # The API docs page: Swagger UI renders the schema.
    page.goto("/api/docs")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("OpenSync API")
    expect(page.locator(".opblock-summary-path").first).to_be_visible()
    assert violations(page) == [], violations(page)

    # The public page, anonymously.
    page.goto(f"/sessions/{session.pk}/")
    page.get_by_role("button", name="Create public link").click()
    url = page.locator("#public-link").input_value()
    anon.goto(url)
    expect(anon.locator("article.message")).to_have_count(3)
    expect(anon.locator("article.message form")).to_have_count(0)
    assert violations(anon) == []
    watch.check()
    anon_watch.check()


def test_copy_fetches_the_whole_message_on_the_viewer_and_the_public_page(live, open_page, browser_user):
    session = make_rich_session(browser_user, title="A long log")
    long_text = "".join(f"line {i:06d} of the build log\n" for i in range(4000))  # ~116 kB, shown cut
    answer = MessageFactory(session=session, role="assistant", text_content="")
    PartFactory(message=answer, type="text", content={"text": "The log:\n\n" + long_text}, order=0)

    page, watch = open_watched(open_page, permissions=["clipboard-read", "clipboard-write"])
    log_in(page, live, browser_user, f"/sessions/{session.pk}/")
    article = page.locator("article.message").nth(2)
    expect(article).to_contain_text("line 000000 of the build log")
    assert "line 003999" not in page.content()  # the page carries what it shows only
    expect(article.get_by_role("link", name="Show the full text")).to_be_visible()
    mark_no_reload(page)
    copy = article.get_by_role("button", name="Copy this message as Markdown")
    copy.click()
    expect(copy).to_have_text("Copied")
    copied = page.evaluate("navigator.clipboard.readText()")
    assert copied.startswith("## Assistant\n\nThe log:") and "line 003999 of the build log" in copied
    assert_not_reloaded(page)

    settled(page)
    page.get_by_role("button", name="Create public link").click()
    url = page.locator("#public-link").input_value()
    anon, anon_watch = open_watched(open_page, permissions=["clipboard-read", "clipboard-write"])
    anon.goto(url)
    public_article = anon.locator("article.message").nth(2)
    public_copy = public_article.get_by_role("button", name="Copy this message as Markdown")
    public_copy.click()
    expect(public_copy).to_have_text("Copied")
    assert anon.evaluate("navigator.clipboard.readText()") == copied
    assert violations(page) == [] and violations(anon) == []
    watch.check()
    anon_watch.check()
