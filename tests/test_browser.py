"""Real browser (Debian's chromium driven by Playwright) against gunicorn with production settings.

Each test drives one user journey the way a person would (clicks, typing, scrolling) and checks
that HTMX does its work in place: a `window.__noReload` flag set on the page survives every step
that must not reload it. Every page is watched for JavaScript errors, failed HTMX requests and
failed loads (`Watch`).

Full-page screenshots of the main pages go to $OPENSYNC_TEST_ARTIFACTS (default
data/test-artifacts/screenshots, git-ignored) for a human to look at.

Without chromium these tests skip, or fail when OPENSYNC_REQUIRE_BROWSER=1 (CI): see conftest.py.
"""

import contextlib
import json
import os
import re
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.auth.hashers import PBKDF2PasswordHasher
from django.db import connection
from django.utils import timezone

from accounts.models import ApiKey, hash_api_key
from evals.tests.bulk import add_conversations
from sessions_app.models import Message, Session, Source
from sessions_app.tests.factories import MessageFactory, PartFactory, SessionFactory

from . import celery_worker
from .live import BASE_DIR, CHROMIUM, database_url, start_gunicorn, stop

try:
    from playwright.sync_api import expect
except ImportError:  # the conftest hook skips (or fails) every test here
    expect = None
else:
    expect.set_options(timeout=10_000)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "correct horse battery"
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 375, "height": 812}
ARTIFACTS = Path(os.environ.get("OPENSYNC_TEST_ARTIFACTS") or BASE_DIR / "data" / "test-artifacts" / "screenshots")
SOURCES = [value for value, _ in Source.choices]


# --- servers, browser, pages -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def live(django_db_setup, django_db_blocker, tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("browser-data")
    with django_db_blocker.unblock():
        settings_dict = dict(connection.settings_dict)
    env = {"OPENSYNC_DATA_DIR": str(data_dir)}
    # Production settings serve collected, hashed static files through whitenoise.
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"],
        cwd=BASE_DIR,
        check=True,
        env={
            **os.environ,
            **env,
            "DJANGO_SETTINGS_MODULE": "opensync.settings",
            "DATABASE_URL": database_url(settings_dict),
            "SECRET_KEY": "x",
        },
    )
    proc, port = start_gunicorn(settings_dict, workers=2, extra_env=env)
    yield f"http://127.0.0.1:{port}"
    stop(proc)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
        )
        yield browser
        browser.close()


class Watch:
    """What must not happen on a page: JS errors, console errors, failed HTMX requests, failed loads."""

    def __init__(self, page, allowed_statuses=()):
        self.page = page
        self.allowed_statuses = set(allowed_statuses)
        self.problems: list[str] = []
        page.on("pageerror", lambda exc: self.problems.append(f"JS error: {exc} at {page.url}\n{exc.stack}"))
        page.on("console", self._console)
        page.on("response", self._response)
        page.on("requestfailed", self._failed)

    def _console(self, message):
        # a failed load is reported (with its URL) by _response
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            self.problems.append(f"console error: {message.text}")

    def _response(self, response):
        if response.status >= 400 and response.status not in self.allowed_statuses:
            kind = "HTMX request" if response.request.headers.get("hx-request") else "request"
            self.problems.append(f"{kind} {response.request.method} {response.url} -> {response.status}")

    def _failed(self, request):
        if request.headers.get("hx-request") or request.resource_type != "document":
            self.problems.append(f"request {request.method} {request.url} failed: {request.failure}")

    def check(self):
        assert self.problems == [], "\n".join(self.problems)
        if self.page.locator("#htmx-error").count():
            expect(self.page.locator("#htmx-error")).to_be_hidden()


def page_opener(browser, base_url: str):
    """Yields open_(**context options) -> (page, watch) in a fresh browser context (own cookies,
    storage) on `base_url`; closes the contexts after."""
    contexts = []

    def open_(allowed_statuses=(), viewport=DESKTOP, **options):
        context = browser.new_context(base_url=base_url, viewport=viewport, **options)
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(10_000)
        return page, Watch(page, allowed_statuses)

    yield open_
    for context in contexts:
        context.close()


@pytest.fixture
def open_page(browser, live):
    yield from page_opener(browser, live)


@pytest.fixture
def browser_user(user):
    # The server runs production settings, whose hashers don't include the tests' fast MD5.
    user.password = PBKDF2PasswordHasher().encode(PASSWORD, "browsersalt", iterations=1000)
    user.save(update_fields=["password"])
    return user


def log_in(page, live, user, path="/sessions/"):
    """Open `path` anonymously, get sent to the login form, log in, land back on `path`."""
    page.goto(path)
    expect(page).to_have_url(re.compile(r"/accounts/login/"))
    page.fill("input[name=login]", user.email)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live}{path}")


def settled(page):
    """Wait until HTMX is idle: no request in flight, swapped content settled and processed.

    New content gets its hx-* behaviour when it settles (20 ms after the swap); a click inside
    that window would be a plain link or form submission.
    """
    page.wait_for_function(
        "() => window.htmx && !document.querySelector('.htmx-request, .htmx-swapping, .htmx-settling, .htmx-added')"
    )


def mark_no_reload(page):
    page.evaluate("window.__noReload = true")


def assert_not_reloaded(page):
    assert page.evaluate("window.__noReload === true"), "the page was reloaded"


def shot(page, name, full_page=True):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    # caret="initial": hiding the caret makes Playwright add a <style> element, which the page's
    # Content-Security-Policy refuses (a console error the watch would report)
    page.screenshot(path=ARTIFACTS / f"{name}.png", full_page=full_page, caret="initial")


def row_ids(page) -> list[int]:
    return page.locator("#session-rows tr[id^=session-row-]").evaluate_all(
        "rows => rows.map(row => Number(row.id.replace('session-row-', '')))"
    )


def horizontal_overflow(page) -> list[str]:
    """Elements sticking out past the right edge of the viewport (the page scrolls sideways)."""
    return page.evaluate(
        """() => {
          const width = document.documentElement.clientWidth;
          if (document.documentElement.scrollWidth <= width) return [];
          const out = [];
          for (const el of document.body.querySelectorAll('*')) {
            const r = el.getBoundingClientRect();
            if (r.width && r.right > width + 1 && !el.closest('.table-wrap, pre')) {
              const cls = (el.getAttribute('class') || '').trim().replace(/\\s+/g, '.');
              const name = el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') + (cls ? '.' + cls : '');
              out.push(name + ' right=' + Math.round(r.right));
            }
          }
          return out.slice(0, 10);
        }"""
    )


def collect_static(data_dir: Path, settings_dict: dict) -> None:
    """Production settings serve collected, hashed static files (whitenoise) from the data folder."""
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"],
        cwd=BASE_DIR,
        check=True,
        env={
            **os.environ,
            "OPENSYNC_DATA_DIR": str(data_dir),
            "DJANGO_SETTINGS_MODULE": "opensync.settings",
            "DATABASE_URL": database_url(settings_dict),
            "SECRET_KEY": "x",
        },
    )


@pytest.fixture
def worker_live(transactional_db, tmp_path):
    """A gunicorn whose Celery tasks really run: the embedded Valkey as its broker and a Celery
    worker, all three on one data folder, so the worker writes export files into the MEDIA_ROOT
    gunicorn serves downloads from. Separate from `live`, whose tasks go to a memory broker."""
    data_dir = (tmp_path / "data").resolve()
    data_dir.mkdir()
    settings_dict = dict(connection.settings_dict)
    collect_static(data_dir, settings_dict)
    env = {"OPENSYNC_DATA_DIR": str(data_dir)}
    with contextlib.ExitStack() as stack:
        broker_url = stack.enter_context(contextlib.contextmanager(celery_worker.broker)(data_dir))
        stack.enter_context(contextlib.contextmanager(celery_worker.worker)(broker_url, extra_env=env))
        proc, port = start_gunicorn(settings_dict, workers=2, extra_env={**env, "CELERY_BROKER_URL": broker_url})
        stack.callback(stop, proc)
        yield f"http://127.0.0.1:{port}"


@pytest.fixture
def open_worker_page(browser, worker_live):
    yield from page_opener(browser, worker_live)


# --- data ------------------------------------------------------------------------------------------


def make_sessions(user, n=66) -> list[Session]:
    """n sessions, the agents taking turns, newest first (distinct updated_at)."""
    now = timezone.now()
    return [
        SessionFactory(
            owner=user,
            source=SOURCES[i % len(SOURCES)],
            title=f"Session {i:02d} about {SOURCES[i % len(SOURCES)]}",
            updated_at=now - timedelta(minutes=i),
            created_at=now - timedelta(minutes=i, seconds=30),
            message_count=i % 9,
            prompt_tokens=1000 * i,
            completion_tokens=250 * i,
        )
        for i in range(n)
    ]


def make_rich_session(user, title="Fix the flaky login test") -> Session:
    """A user question with a fenced code block; an answer with thinking, text, a tool call and its result."""
    start = timezone.now() - timedelta(hours=1)
    session = SessionFactory(owner=user, title=title, message_count=2, prompt_tokens=1200, completion_tokens=340)
    MessageFactory(
        session=session,
        role="user",
        created_at=start,
        text_content="Why does this fail?\n\n```python\ndef add(a, b):\n    return a - b\n```\n",
    )
    answer = MessageFactory(session=session, role="assistant", created_at=start + timedelta(minutes=1), text_content="")
    PartFactory(message=answer, type="thinking", content={"text": "The subtraction is the secret culprit."}, order=0)
    PartFactory(message=answer, type="text", content={"text": "Let me run the **tests** first."}, order=1)
    PartFactory(
        message=answer,
        type="tool-call",
        content={"toolName": "bash", "args": {"command": "pytest -q tests/test_math.py", "timeout": 120}},
        order=2,
    )
    PartFactory(message=answer, type="tool-result", content={"output": "1 failed"}, order=3)
    return session


def make_eval_sessions(user, n: int) -> tuple[list[Session], int]:
    """n eval-ready sessions, oldest first, in bulk (a few queries whatever n): a prompt, an
    assistant turn with a tool call, the tool's result, the answer; every third session has a
    second exchange; every 100th is golden with an expected output. Returns the sessions and
    how many exchanges they hold (one DeepEval golden each, per turn)."""
    from accounts.models import Workspace

    workspace = Workspace.objects.get(created_by=user, is_personal=True)
    start = timezone.now() - timedelta(days=30)
    sessions = Session.objects.bulk_create(
        Session(
            workspace=workspace,
            owner=user,
            external_id=f"export-{i:05d}",
            title=f"Fix the flaky sync test {i}",
            source=SOURCES[i % len(SOURCES)],
            model="claude-sonnet-4-20250514",
            project_name="demo-app",
            prompt_tokens=1200 + i,
            completion_tokens=300,
            eval_ready=True,
            eval_status="golden" if i % 100 == 0 else None,
            expected_output=f"Retry with backoff in module_{i}." if i % 100 == 0 else None,
            created_at=start + timedelta(minutes=i),
            updated_at=start + timedelta(minutes=i),
        )
        for i in range(n)
    )
    exchanges = add_conversations(
        sessions,
        tool_output=lambda i: f"def sync_{i}():\n" * 20,
        answer=lambda i: f"module_{i} retries at once; wait between attempts.",
        second_every=3,
    )
    return sessions, exchanges


# --- the journeys ----------------------------------------------------------------------------------


def test_api_keys_are_created_and_revoked_without_page_reloads(live, open_page, browser_user):
    page, watch = open_page()
    log_in(page, live, browser_user, "/settings/api-keys/")

    mark_no_reload(page)
    page.fill("#id_name", "laptop")
    page.click("text=Create key")
    raw = page.locator("#new-key").inner_text().strip()
    assert raw.startswith("osk_") and len(raw) >= 36
    assert_not_reloaded(page)  # swapped by HTMX, not reloaded
    key = ApiKey.objects.get(name="laptop")
    assert key.key_hash == hash_api_key(raw) and raw not in (key.prefix + key.key_hash)

    # An empty name shows the server's error in place (the browser's own check bypassed).
    watch.allowed_statuses.add(422)  # the error answer is a 422, swapped in on purpose
    page.evaluate("document.querySelector('#id_name').removeAttribute('required')")
    page.click("text=Create key")
    page.locator(".form-error").first.wait_for()
    assert_not_reloaded(page)

    page.on("dialog", lambda dialog: dialog.accept())  # the "Revoke …?" confirmation
    page.locator(f"#key-{key.pk} button", has_text="Revoke").click()
    page.locator(f"#key-{key.pk} .badge-off").wait_for()
    assert_not_reloaded(page)
    key.refresh_from_db()
    assert key.revoked_at is not None

    page.reload()
    assert raw not in page.content()  # shown once only
    watch.check()


def test_session_list_filters_by_agent_goes_back_and_loads_more(live, open_page, browser_user):
    sessions = make_sessions(browser_user, 66)
    newest_first = [s.pk for s in sessions]
    page, watch = open_page()
    log_in(page, live, browser_user, "/sessions/")

    rows = page.locator("#session-rows tr[id^=session-row-]")
    expect(rows).to_have_count(50)
    assert row_ids(page) == newest_first[:50]
    expect(page.get_by_role("link", name="Load more")).to_be_visible()
    shot(page, "list")
    mark_no_reload(page)

    # Choosing an agent filters in place (HTMX on change) and puts the filter in the URL.
    page.get_by_label("Agent", exact=True).select_option("codex-cli")
    expect(page).to_have_url(re.compile(r"/sessions/\?(.*&)?source=codex-cli(&|$)"))
    codex = [s.pk for s in sessions if s.source == "codex-cli"]
    expect(rows).to_have_count(len(codex))
    assert row_ids(page) == codex
    expect(page.locator("#session-rows .badge-source")).to_have_text(["Codex"] * len(codex))
    expect(page.get_by_text("That's all the sessions matching these filters.")).to_be_visible()
    assert_not_reloaded(page)
    shot(page, "list-filtered")
    settled(page)

    # Back: the unfiltered list again.
    page.go_back()
    expect(page).to_have_url(f"{live}/sessions/")
    expect(rows).to_have_count(50)
    assert row_ids(page) == newest_first[:50]
    expect(page.get_by_label("Agent", exact=True)).to_have_value("")
    assert_not_reloaded(page)
    settled(page)

    # Load more appends the remaining rows in place; the URL stays.
    page.get_by_role("link", name="Load more").click()
    expect(rows).to_have_count(66)
    assert row_ids(page) == newest_first
    expect(page.get_by_role("link", name="Load more")).to_have_count(0)
    expect(page).to_have_url(f"{live}/sessions/")
    assert_not_reloaded(page)
    watch.check()


def test_bulk_mark_eval_ready_updates_the_rows_in_place(live, open_page, browser_user):
    sessions = make_sessions(browser_user, 6)
    page, watch = open_page()
    log_in(page, live, browser_user, "/sessions/")
    mark_no_reload(page)

    mark = page.get_by_role("button", name="Mark eval-ready")
    expect(mark).to_be_disabled()  # nothing selected yet
    chosen = sessions[1:3]
    for s in chosen:
        page.locator(f"#session-row-{s.pk}").get_by_role("checkbox").check()
    expect(page.locator("[data-selected-count]")).to_have_text("2")
    expect(mark).to_be_enabled()
    mark.click()

    expect(page.locator("#bulk-status")).to_have_text("Marked 2 sessions eval-ready.")
    for s in chosen:
        expect(page.locator(f"#session-row-{s.pk} .badge-ok")).to_have_text("Eval-ready")
    expect(page.locator("#session-rows .badge-ok")).to_have_count(2)  # the others untouched
    expect(page.locator("[data-selected-count]")).to_have_text("0")  # fresh rows, unchecked
    assert_not_reloaded(page)
    assert set(Session.objects.filter(eval_ready=True).values_list("pk", flat=True)) == {s.pk for s in chosen}
    watch.check()


def test_bulk_delete_confirms_in_a_modal_and_removes_the_rows(live, open_page, browser_user):
    sessions = make_sessions(browser_user, 5)
    page, watch = open_page()
    log_in(page, live, browser_user, "/sessions/")
    mark_no_reload(page)
    chosen, kept = sessions[:2], sessions[2:]
    for s in chosen:
        page.locator(f"#session-row-{s.pk}").get_by_role("checkbox").check()

    page.locator("#bulk-form").get_by_role("button", name="Delete…").click()
    dialog = page.locator("#modal dialog")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_role("heading")).to_have_text("Delete 2 sessions?")
    settled(page)
    dialog.get_by_role("button", name="Delete 2 sessions").click()

    expect(page.locator("#bulk-status")).to_have_text("Deleted 2 sessions.")
    expect(dialog).to_have_count(0)
    expect(page.locator("#session-rows tr[id^=session-row-]")).to_have_count(len(kept))
    assert row_ids(page) == [s.pk for s in kept]
    assert_not_reloaded(page)
    assert list(Session.objects.order_by("-updated_at").values_list("pk", flat=True)) == [s.pk for s in kept]
    watch.check()


def test_viewer_shows_code_tool_calls_and_collapsed_thinking(live, open_page, browser_user):
    session = make_rich_session(browser_user)
    page, watch = open_page()
    log_in(page, live, browser_user, f"/sessions/{session.pk}/")

    expect(page.get_by_role("heading", level=1)).to_have_text("Fix the flaky login test")
    articles = page.locator("article.message")
    expect(articles).to_have_count(2)
    expect(articles.nth(0).locator(".role")).to_have_text("User")

    # The fenced block is a highlighted <pre>.
    code = articles.nth(0).locator(".md pre")
    expect(code).to_be_visible()
    expect(code).to_contain_text("def add(a, b):")
    expect(code.locator("[class^=tok-]").first).to_be_attached()

    # Thinking is collapsed by default.
    thinking = articles.nth(1).locator("details.block-thinking")
    expect(thinking).not_to_have_attribute("open", "")
    expect(thinking.get_by_text("The subtraction is the secret culprit.")).to_be_hidden()
    expect(articles.nth(1).get_by_text("Let me run the tests first.")).to_be_visible()

    # A tool call opens to its pretty-printed arguments.
    tool = articles.nth(1).locator("details.block-tool-call")
    expect(tool.locator("summary")).to_have_text("Tool call bash")
    args = tool.locator("pre")
    expect(args).to_be_hidden()
    shot(page, "viewer")
    mark_no_reload(page)
    tool.locator("summary").click()
    expect(args).to_be_visible()
    text = args.inner_text()
    assert '{\n  "command": "pytest -q tests/test_math.py",\n  "timeout": 120\n}' in text, text
    expect(thinking.get_by_text("The subtraction is the secret culprit.")).to_be_hidden()  # still closed

    thinking.locator("summary").click()
    expect(thinking.get_by_text("The subtraction is the secret culprit.")).to_be_visible()
    assert_not_reloaded(page)
    shot(page, "viewer-expanded")
    watch.check()


def test_rename_inline_updates_the_title_without_reload(live, open_page, browser_user):
    session = make_rich_session(browser_user, title="Old title")
    page, watch = open_page()
    log_in(page, live, browser_user, f"/sessions/{session.pk}/")
    heading = page.get_by_role("heading", level=1)
    expect(heading).to_have_text("Old title")
    mark_no_reload(page)

    page.get_by_role("link", name="Rename").click()
    field = page.get_by_label("Session title")
    expect(field).to_have_value("Old title")
    expect(field).to_be_focused()  # autofocus on the swapped-in form
    settled(page)
    field.fill("Renamed in the browser")
    field.press("Enter")
    expect(heading).to_have_text("Renamed in the browser")
    expect(field).to_have_count(0)
    assert_not_reloaded(page)
    session.refresh_from_db()
    assert session.title == "Renamed in the browser"

    # Escape cancels an edit: nothing is saved.
    settled(page)
    page.get_by_role("link", name="Rename").click()
    page.get_by_label("Session title").fill("Not saved")
    settled(page)
    page.get_by_label("Session title").press("Escape")
    expect(heading).to_have_text("Renamed in the browser")
    assert_not_reloaded(page)
    session.refresh_from_db()
    assert session.title == "Renamed in the browser"
    watch.check()


def test_public_link_is_readable_anonymously_until_sharing_stops(live, open_page, browser_user):
    session = make_rich_session(browser_user, title="Shared debugging session")
    page, watch = open_page()
    log_in(page, live, browser_user, f"/sessions/{session.pk}/")
    mark_no_reload(page)

    page.get_by_role("button", name="Create public link").click()
    link = page.locator("#public-link")
    expect(link).to_have_value(re.compile(r"^http://127\.0\.0\.1:\d+/s/[\w-]{20,}$"))
    url = link.input_value()
    assert_not_reloaded(page)
    session.refresh_from_db()
    assert session.is_public and url.endswith(f"/s/{session.share_slug}")
    settled(page)

    # A fresh context: no cookies, not logged in.
    anon, anon_watch = open_page(allowed_statuses={404})
    response = anon.goto(url)
    assert response.status == 200
    expect(anon.get_by_role("heading", level=1)).to_have_text("Shared debugging session")
    expect(anon.locator("article.message")).to_have_count(2)
    expect(anon.get_by_role("link", name="Log in")).to_be_visible()  # anonymous indeed
    html = anon.content()
    assert browser_user.email not in html
    assert session.project_path not in html
    shot(anon, "public")

    page.get_by_role("button", name="Stop sharing").click()
    expect(page.get_by_role("button", name="Create public link")).to_be_visible()
    expect(link).to_have_count(0)
    assert_not_reloaded(page)
    session.refresh_from_db()
    assert not session.is_public

    response = anon.reload()
    assert response.status == 404
    expect(anon.get_by_role("heading", name="Page not found")).to_be_visible()
    assert "Shared debugging session" not in anon.content()
    assert anon_watch.problems == []  # the 404 itself is expected
    watch.check()


def test_delete_asks_in_a_modal_dialog(live, open_page, browser_user):
    session = make_rich_session(browser_user, title="Doomed session")
    page, watch = open_page()
    log_in(page, live, browser_user, f"/sessions/{session.pk}/")
    mark_no_reload(page)
    dialog = page.locator("#modal dialog")

    page.get_by_role("link", name="Delete…").click()
    expect(dialog).to_be_visible()
    assert dialog.evaluate("d => d.open && d.matches(':modal')")
    expect(dialog.get_by_role("heading")).to_have_text("Delete this session?")
    expect(dialog).to_contain_text("“Doomed session” and its 2 messages will be deleted")
    shot(page, "delete-modal", full_page=False)  # the backdrop covers the viewport only
    dialog.get_by_role("link", name="Cancel").click()
    expect(dialog).to_have_count(0)
    assert_not_reloaded(page)

    # Escape closes it too (the browser's own dialog behaviour).
    page.get_by_role("link", name="Delete…").click()
    expect(dialog).to_be_visible()
    page.keyboard.press("Escape")
    expect(dialog).to_have_count(0)
    assert Session.objects.filter(pk=session.pk).exists()

    page.get_by_role("link", name="Delete…").click()
    expect(dialog).to_be_visible()
    settled(page)
    dialog.get_by_role("button", name="Delete session").click()
    page.wait_for_url(f"{live}/sessions/")
    expect(page.locator(".flash")).to_contain_text("Deleted “Doomed session”.")
    assert not Session.objects.filter(pk=session.pk).exists()
    watch.check()


def test_long_session_loads_more_messages_on_scroll(live, open_page, browser_user):
    session = SessionFactory(owner=browser_user, title="A very long session", message_count=250)
    start = timezone.now() - timedelta(days=1)
    Message.objects.bulk_create(
        Message(
            session=session,
            external_id=f"long-{i}",
            role="user" if i % 2 == 0 else "assistant",
            text_content=f"Step {i}: " + "some words to read " * 8,
            created_at=start + timedelta(seconds=i),
        )
        for i in range(250)
    )
    page, watch = open_page()
    # Any main-thread task over 50 ms is recorded, to catch a page that freezes while it grows.
    page.context.add_init_script(
        "window.__longTasks = []; try { new PerformanceObserver(list => list.getEntries().forEach("
        "e => window.__longTasks.push(e.duration))).observe({type: 'longtask', buffered: true}); } catch (e) {}"
    )
    log_in(page, live, browser_user, f"/sessions/{session.pk}/")
    articles = page.locator("article.message")
    expect(articles).to_have_count(100)
    mark_no_reload(page)

    # Scrolling to the bottom brings the "Load more messages" link into view: it loads by itself.
    for expected in (200, 250):
        page.mouse.wheel(0, 200_000)
        expect(articles).to_have_count(expected)
    expect(page.get_by_role("link", name="Load more messages")).to_have_count(0)
    texts = articles.locator(".md").all_inner_texts()
    assert [t.split(":")[0] for t in texts] == [f"Step {i}" for i in range(250)]  # in order, no repeats
    assert_not_reloaded(page)
    long_tasks = page.evaluate("window.__longTasks")
    assert max(long_tasks, default=0) < 2000, f"the main thread was blocked: {sorted(long_tasks)[-5:]} ms"
    watch.check()


def test_theme_toggle_switches_and_persists_across_reloads(live, open_page, browser_user):
    session = make_rich_session(browser_user)
    make_sessions(browser_user, 8)
    page, watch = open_page()
    log_in(page, live, browser_user, "/sessions/")
    html = page.locator("html")
    toggle = page.locator("#theme-toggle")
    expect(html).not_to_have_attribute("data-theme", re.compile(".*"))
    expect(toggle).to_have_attribute("aria-label", "Colour theme: system")

    toggle.click()
    expect(html).to_have_attribute("data-theme", "light")
    toggle.click()
    expect(html).to_have_attribute("data-theme", "dark")
    expect(toggle).to_have_attribute("aria-label", "Colour theme: dark")
    assert page.evaluate("localStorage.getItem('opensync-theme')") == "dark"

    page.reload()
    expect(html).to_have_attribute("data-theme", "dark")
    expect(toggle).to_have_attribute("aria-label", "Colour theme: dark")
    shot(page, "list-dark")
    page.goto(f"/sessions/{session.pk}/")
    expect(html).to_have_attribute("data-theme", "dark")
    page.locator("details.block-tool-call summary").click()
    shot(page, "viewer-dark")

    toggle.click()  # back to following the system
    expect(html).not_to_have_attribute("data-theme", re.compile(".*"))
    assert page.evaluate("localStorage.getItem('opensync-theme')") is None
    page.reload()
    expect(html).not_to_have_attribute("data-theme", re.compile(".*"))
    watch.check()


def test_phone_width_pages_do_not_scroll_sideways(live, open_page, browser_user):
    session = make_rich_session(browser_user)
    make_sessions(browser_user, 12)
    page, watch = open_page(viewport=PHONE, is_mobile=True, has_touch=True)
    log_in(page, live, browser_user, "/sessions/")
    expect(page.locator("#session-rows tr[id^=session-row-]")).to_have_count(13)
    shot(page, "list-phone")
    shot(page, "list-phone-top", full_page=False)
    assert horizontal_overflow(page) == []

    page.goto(f"/sessions/{session.pk}/")
    page.locator("details.block-tool-call summary").click()
    shot(page, "viewer-phone")
    shot(page, "viewer-phone-top", full_page=False)
    assert horizontal_overflow(page) == []
    watch.check()


def test_search_from_the_list_finds_highlights_and_jumps_to_the_message(live, open_page, browser_user):
    session = make_rich_session(browser_user, title="Database outage")
    target = MessageFactory(
        session=session,
        role="user",
        text_content="The API answers ECONNREFUSED after the deploy",
        search_text="The API answers ECONNREFUSED after the deploy",  # as the sync would store it
    )
    other = SessionFactory(owner=browser_user, title="Unrelated work")
    MessageFactory(session=other, text_content="styling buttons", search_text="styling buttons")
    page, watch = open_page()
    log_in(page, live, browser_user)
    page.fill("#session-search", "ECONNREFUSED")
    page.press("#session-search", "Enter")
    page.wait_for_url(re.compile(r"/search/\?.*q=ECONNREFUSED"))
    hit = page.locator(".search-hit").first
    expect(hit).to_contain_text("Database outage")
    expect(hit.locator("mark")).to_have_text("ECONNREFUSED")
    expect(page.locator(".search-hit")).to_have_count(1)
    shot(page, "search")

    # Switching the mode re-runs the search in place (HTMX) and says semantic search is turned off.
    mark_no_reload(page)
    page.check("input[name=mode][value=hybrid]")
    expect(page.locator(".notice")).to_contain_text("is turned off")
    assert_not_reloaded(page)
    expect(page).to_have_url(re.compile(r"mode=hybrid"))

    settled(page)
    hit.locator(".hit-title").click()
    page.wait_for_url(re.compile(rf"/sessions/{session.pk}/\?at={target.pk}"))
    expect(page.locator(f"#m-{target.pk}")).to_have_class(re.compile("is-target"))
    watch.check()


def make_context_sessions(user) -> tuple[Session, Message]:
    """A session with an ECONNREFUSED message (search_text set as the sync would) and a long answer
    that a small token budget can't hold, and an unrelated session."""
    session = make_rich_session(user, title="Database outage")
    text = "The API answers ECONNREFUSED after the deploy, see /srv/app/releases/2024-06-01T12-00-00/logs/api.log"
    target = MessageFactory(session=session, role="user", text_content=text, search_text=text)
    long_answer = "Restarting the database container and checking the connection pool settings. " * 30
    MessageFactory(session=session, role="assistant", text_content=long_answer, search_text=long_answer)
    other = SessionFactory(owner=user, title="Unrelated work")
    MessageFactory(session=other, text_content="styling buttons", search_text="styling buttons")
    return session, target


def context_tokens(page) -> int:
    """The token count the context panel shows ("<n> of <budget> tokens")."""
    return int(page.locator("#context-count strong").inner_text())


def test_context_page_searches_picks_fits_a_budget_and_copies(live, open_page, browser_user):
    from search import tokens
    from search.models import Bookmark, SavedSearch

    session, target = make_context_sessions(browser_user)
    page, watch = open_page(permissions=["clipboard-read", "clipboard-write"])
    log_in(page, live, browser_user)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Context").click()
    page.wait_for_url(f"{live}/context/")
    expect(page.get_by_role("link", name="Context")).to_have_attribute("aria-current", "page")
    expect(page.locator("#context-output")).to_contain_text("Nothing picked yet")
    expect(page.locator("#context-q")).to_be_focused()  # autofocus: type straight away
    mark_no_reload(page)

    # Typing searches by itself once the typing pauses (debounced): one request, not one per key.
    searches = []
    page.on("request", lambda r: searches.append(r.url) if "/context/?" in r.url and "q=" in r.url else None)
    page.locator("#context-q").press_sequentially("ECONNREFUSED", delay=30)
    hits = page.locator("#context-results .search-hit")
    expect(hits).to_have_count(1)
    hit = hits.first
    expect(hit.locator(".hit-title")).to_have_text("Database outage")
    expect(hit.locator(".hit-title")).to_have_attribute("href", f"/sessions/{session.pk}/?at={target.pk}#m-{target.pk}")
    expect(hit.locator("mark")).to_have_text("ECONNREFUSED")
    expect(page).to_have_url(re.compile(r"/context/\?q=ECONNREFUSED&mode=fulltext$"))
    assert len(searches) <= 2, searches
    assert_not_reloaded(page)
    settled(page)

    # Add the whole session, then the matched message: each button swaps itself and the
    # context panel reloads (context-changed).
    output = page.locator("#context-output")
    hit.get_by_role("button", name="+ Session").click()
    expect(hit.get_by_role("button", name="✓ Session in context")).to_have_attribute("aria-pressed", "true")
    expect(output.locator(".pick-head a")).to_have_text("Database outage")
    settled(page)
    hit.get_by_role("button", name="+ Message").click()
    expect(hit.get_by_role("button", name="✓ Message in context")).to_be_visible()
    expect(output.locator(".picked-messages li")).to_contain_text("ECONNREFUSED after the deploy")
    text_box = page.locator("#context-text")
    expect(text_box).to_have_value(re.compile(r"ECONNREFUSED after the deploy"))
    expect(page.locator("#context-count")).to_contain_text("of 8000 tokens · 1 of 1 session")
    text = text_box.input_value()
    assert text.startswith("Relevant coding sessions:") and "--- Session: Database outage ---" in text
    assert context_tokens(page) == tokens.count(text)  # the count is of the exact text shown
    expect(output.get_by_text("Trimmed to fit")).to_have_count(0)
    assert_not_reloaded(page)
    settled(page)

    # A small budget trims it, keeping the picked message; the meter follows.
    budget = page.locator("#id_budget")
    budget.fill("150")
    # htmx validates the form first and silently drops the request if the browser finds it invalid
    assert budget.evaluate("el => el.validity.valid"), budget.evaluate("el => el.validationMessage")
    expect(output.get_by_text("Trimmed to fit")).to_be_visible()
    expect(page.locator("#context-count")).to_contain_text("of 150 tokens")
    assert context_tokens(page) <= 150
    assert context_tokens(page) == tokens.count(text_box.input_value())
    expect(text_box).to_have_value(re.compile(r"ECONNREFUSED after the deploy"))
    assert "Restarting the database container" not in text_box.input_value()
    expect(page.locator("#context-meter")).to_have_attribute("max", "150")
    settled(page)

    # XML-tagged.
    page.get_by_label("XML-tagged").check()
    expect(text_box).to_have_value(re.compile(r"^<context>\n<session id=\"\d+\" title=\"Database outage\""))
    assert text_box.input_value().rstrip().endswith("</context>")
    assert context_tokens(page) <= 150
    expect(budget).to_have_value("150")
    assert_not_reloaded(page)
    settled(page)
    shot(page, "context")

    # Ctrl+K jumps back to the search box from anywhere on the page.
    text_box.click()
    expect(page.locator("#context-q")).not_to_be_focused()
    page.keyboard.press("Control+k")
    expect(page.locator("#context-q")).to_be_focused()

    # Copy puts the exact text on the clipboard; Download gives the same text as a file.
    output.get_by_role("button", name="Copy").click()
    expect(output.get_by_role("button", name="Copied")).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == text_box.input_value()
    with page.expect_download() as download_info:
        output.get_by_role("link", name="Download").click()
    download = download_info.value
    assert re.fullmatch(r"context-\d{4}-\d{2}-\d{2}\.xml", download.suggested_filename)
    assert Path(download.path()).read_text().replace("\r\n", "\n") == text_box.input_value()
    assert_not_reloaded(page)

    # Save the search; bookmark the session: both lists update in place.
    page.get_by_role("button", name="☆ Save this search").click()
    saved = page.locator("#saved-searches")
    expect(saved.get_by_role("link", name="ECONNREFUSED")).to_have_attribute(
        "href", "/context/?q=ECONNREFUSED&mode=fulltext"
    )
    settled(page)
    hit.get_by_role("button", name="☆ Bookmark", exact=True).click()
    expect(hit.get_by_role("button", name="★ Bookmarked", exact=True)).to_be_visible()
    marks = page.locator("#bookmarks")
    expect(marks.get_by_role("link", name="Database outage")).to_be_visible()
    expect(marks.get_by_role("button", name="✓ Session in context")).to_be_visible()
    assert_not_reloaded(page)
    assert SavedSearch.objects.filter(user=browser_user, query="ECONNREFUSED").count() == 1
    assert Bookmark.objects.filter(user=browser_user, session=session, message=None).exists()
    settled(page)

    # The picks, the budget and the format survive a reload.
    page.reload()
    expect(hit.get_by_role("button", name="✓ Session in context")).to_be_visible()
    expect(hit.get_by_role("button", name="✓ Message in context")).to_be_visible()
    expect(output.locator(".pick-head a")).to_have_text("Database outage")
    expect(output.locator(".picked-messages li")).to_contain_text("ECONNREFUSED after the deploy")
    expect(budget).to_have_value("150")
    expect(page.get_by_label("XML-tagged")).to_be_checked()
    expect(text_box).to_have_value(re.compile(r"^<context>"))
    expect(saved.get_by_role("link", name="ECONNREFUSED")).to_be_visible()
    expect(page.locator("#context-results .save-search")).to_have_text("★ Saved search")
    expect(marks.get_by_role("link", name="Database outage")).to_be_visible()
    mark_no_reload(page)

    # Clear asks first (the browser's confirm), then empties the context in place.
    page.once("dialog", lambda dialog: dialog.accept())
    output.get_by_role("button", name="Clear").click()
    expect(output).to_contain_text("Nothing picked yet")
    expect(text_box).to_have_count(0)
    assert_not_reloaded(page)
    page.reload()
    expect(output).to_contain_text("Nothing picked yet")
    expect(hit.get_by_role("button", name="+ Session")).to_be_visible()
    watch.check()


def test_context_page_fits_a_phone_screen(live, open_page, browser_user):
    make_context_sessions(browser_user)
    page, watch = open_page(viewport=PHONE, is_mobile=True, has_touch=True)
    log_in(page, live, browser_user, "/context/?q=ECONNREFUSED")
    hit = page.locator("#context-results .search-hit").first
    expect(hit.locator("mark")).to_have_text("ECONNREFUSED")
    mark_no_reload(page)
    hit.get_by_role("button", name="+ Session").click()
    expect(page.locator("#context-output .pick-head a")).to_have_text("Database outage")
    settled(page)
    hit.get_by_role("button", name="+ Message").click()
    expect(page.locator("#context-output .picked-messages li")).to_have_count(1)
    settled(page)
    hit.get_by_role("button", name="☆ Bookmark message").click()
    expect(page.locator("#bookmarks .link-list li")).to_have_count(1)
    settled(page)
    page.get_by_role("button", name="☆ Save this search").click()
    expect(page.locator("#saved-searches .link-list li")).to_have_count(1)
    assert_not_reloaded(page)
    settled(page)
    shot(page, "context-phone")
    page.evaluate("window.scrollTo(0, 0)")
    shot(page, "context-phone-top", full_page=False)
    assert horizontal_overflow(page) == []
    watch.check()


def test_review_queue_labels_three_sessions_with_the_keyboard(live, open_page, browser_user):
    now = timezone.now()
    sessions = [
        SessionFactory(owner=browser_user, title=f"Queue session {i}", updated_at=now - timedelta(minutes=i))
        for i in range(3)
    ]
    for session in sessions:
        MessageFactory(session=session, role="user", text_content=f"Please fix {session.title}")
    page, watch = open_page()
    log_in(page, live, browser_user, "/sessions/")
    page.get_by_role("link", name="Review one by one →").click()
    page.wait_for_url(re.compile(r"/evals/queue/"))
    statuses = ["1", "2", "4"]
    for index, session in enumerate(sessions):
        expect(page.locator(".queue-progress")).to_have_text(f"{index + 1} of 3")
        expect(page.locator(".queue-title")).to_contain_text(session.title)
        settled(page)
        mark_no_reload(page)
        page.keyboard.press("e")
        expect(page.locator("#review-panel [data-review=eval-ready]")).to_have_text("✓ Eval-ready")
        settled(page)
        page.keyboard.press(statuses[index])
        expect(page.locator("#review-status")).to_have_text("Saved.")
        settled(page)
        page.keyboard.press("t")
        expect(page.locator("#review-add-tag")).to_be_focused()
        page.keyboard.type("keyboard")
        page.keyboard.press("Enter")
        expect(page.get_by_role("button", name="Remove the tag keyboard")).to_be_visible()
        settled(page)
        expect(page.locator("#review-add-tag")).to_be_focused()  # htmx keeps the focus: add another
        page.keyboard.press("Escape")
        page.keyboard.press("n")
        expect(page.locator("#review-eval-notes")).to_be_focused()
        page.keyboard.type("j and k stay in the field")
        page.keyboard.press("Escape")
        assert_not_reloaded(page)  # every action above saved in place
        if index == 0:
            shot(page, "review-queue")
        if index < 2:
            page.keyboard.press("j")
            page.wait_for_url(re.compile(rf"pos={index + 2}"))
    expect(page.get_by_text("End of the queue")).to_be_visible()
    page.keyboard.press("k")
    page.wait_for_url(re.compile(r"pos=2"))
    stored = {s.pk: s for s in Session.objects.filter(pk__in=[s.pk for s in sessions])}
    assert [stored[s.pk].eval_status for s in sessions] == ["golden", "correct", "needs_review"]
    assert all(stored[s.pk].eval_ready and stored[s.pk].eval_tags == ["keyboard"] for s in sessions)
    assert all(stored[s.pk].eval_notes == "" for s in sessions)  # typed but never saved
    watch.check()


def test_evals_page_bulk_sets_a_status_and_fits_a_phone(live, open_page, browser_user):
    from evals.services import session_review

    sessions = make_sessions(browser_user, 3)
    for session in sessions:
        session_review(session=session, actor=browser_user, eval_ready=True, eval_tags=["auth"])
    page, watch = open_page()
    log_in(page, live, browser_user, "/evals/")
    expect(page.locator("input[name=ids]")).to_have_count(3)
    page.locator("input[name=ids]").first.check()
    page.select_option("#bulk-action", "status")
    page.select_option("select[name=status]", "golden")
    page.get_by_role("button", name="Apply").last.click()
    expect(page.get_by_text("Updated 1 of 1 session.")).to_be_visible()
    expect(page.locator(".count-list").first).to_contain_text("Golden 1")
    shot(page, "evals")
    watch.check()

    phone, phone_watch = open_page(viewport=PHONE, is_mobile=True, has_touch=True)
    log_in(phone, live, browser_user, "/evals/")
    shot(phone, "evals-phone")
    assert horizontal_overflow(phone) == []
    phone_watch.check()


EXPORT_SESSIONS = 10_000  # the worker builds ~2,000 per second: several polls (1 s apart) see the bar moving


def progress_value(page) -> int | None:
    """The export progress bar's aria-valuenow, None while there is no bar."""
    return page.evaluate(
        "() => { const bar = document.querySelector('#export-job [role=progressbar]');"
        " return bar ? Number(bar.getAttribute('aria-valuenow')) : null; }"
    )


def test_export_modal_builds_with_live_progress_and_downloads(worker_live, open_worker_page, browser_user, tmp_path):
    from evals.models import ExportJob, ExportStatus

    started = time.monotonic()
    sessions, exchanges = make_eval_sessions(browser_user, EXPORT_SESSIONS)
    seeded = time.monotonic()
    page, watch = open_worker_page(permissions=["clipboard-read", "clipboard-write"])
    log_in(page, worker_live, browser_user, "/evals/")
    mark_no_reload(page)

    # Tick the two newest sessions (the list is newest first), then open the modal with them.
    ticked = sessions[-2:]
    for session in ticked:
        page.get_by_role("checkbox", name=f"Select {session.title}").check()
    page.locator("#export-open").click()
    dialog = page.locator("#modal dialog.export-dialog")
    expect(dialog).to_be_visible()
    assert dialog.evaluate("d => d.open && d.matches(':modal')")
    expect(dialog).to_have_accessible_name("Export a dataset")
    ticked_scope = dialog.get_by_label("The ticked sessions (2)")
    expect(ticked_scope).to_be_enabled()
    expect(ticked_scope).to_be_checked()
    preview = dialog.locator("#export-preview")
    expect(preview).to_contain_text("2 sessions: 2 ticked sessions.")
    expect(preview).to_contain_text("give 3 records")  # the newest has a second exchange
    expect(dialog.locator("#id_turn_mode")).to_be_visible()
    expect(dialog.locator("#id_replay")).to_have_count(0)
    dialog.evaluate("d => { d.__same = true; }")  # the dialog itself is never replaced
    settled(page)

    # Each change refreshes the preview in place, and the format's own options with it.
    page.select_option("#id_format", "promptfoo")
    expect(dialog.get_by_label("Replay recorded answers (providerOutput)")).to_be_checked()
    expect(preview).to_contain_text(re.compile(r"File: opensync-promptfoo-<date>\.jsonl"))
    expect(dialog.locator("#id_turn_mode")).to_be_visible()
    settled(page)
    page.select_option("#id_format", "chat")
    expect(dialog.get_by_text("Whole sessions: one record per session.")).to_be_visible()
    expect(dialog.locator("#id_turn_mode")).to_have_count(0)
    expect(dialog.locator("#id_replay")).to_have_count(0)
    expect(preview).to_contain_text("give 2 records")
    expect(preview).to_contain_text("opensync-chat-<date>.jsonl")
    settled(page)

    # Every eval-ready session, as DeepEval goldens (one per exchange).
    dialog.get_by_label("Every eval-ready session matching the Evals page's filters").check()
    expect(preview).to_contain_text(f"{EXPORT_SESSIONS} sessions: Eval-ready sessions.")
    settled(page)
    page.select_option("#id_format", "deepeval")
    expect(dialog.locator("#id_turn_mode")).to_have_value("per_turn")
    expect(preview).to_contain_text("opensync-deepeval-<date>.json")
    expect(preview.locator("pre.export-record").first).to_contain_text('"input": "Why does test_sync_0 fail on CI?"')
    assert dialog.evaluate("d => d.__same === true")
    assert_not_reloaded(page)
    settled(page)
    shot(page, "export-modal", full_page=False)  # the backdrop covers the viewport only

    # Build: the job replaces the form and polls itself; the bar only ever moves forward.
    dialog.get_by_role("button", name="Build export").click()
    job_section = dialog.locator("#export-job")
    expect(job_section).to_be_visible()
    clicked = time.monotonic()
    download = dialog.get_by_role("link", name=re.compile(r"^Download opensync-deepeval-"))
    seen: list[int] = []
    deadline = time.monotonic() + 120
    while not download.is_visible():
        assert time.monotonic() < deadline, f"no download link after 120 s; progress seen: {seen}"
        value = progress_value(page)
        if value is not None and (not seen or seen[-1] != value):
            seen.append(value)
            if 0 < value < 100 and not any(0 < v < 100 for v in seen[:-1]):
                shot(page, "export-building", full_page=False)
        page.wait_for_timeout(100)
    built = time.monotonic()
    seen.append(progress_value(page))
    print(f"\nseeded {EXPORT_SESSIONS} sessions in {seeded - started:.1f} s; built in {built - clicked:.1f} s; {seen=}")
    assert any(0 < value < 100 for value in seen), seen
    assert seen == sorted(seen) and seen[-1] == 100, seen
    expect(job_section).to_contain_text(f"Ready {EXPORT_SESSIONS} sessions, {exchanges} records")
    expect(job_section).not_to_have_attribute("hx-trigger", re.compile(".*"))  # polling stopped
    expect(dialog).to_have_accessible_name("DeepEval goldens (JSON)")  # named by the job's heading now
    assert dialog.evaluate("d => d.__same === true")
    assert_not_reloaded(page)

    # What's next: the commands to run, each with a Copy button.
    next_steps = dialog.locator(".whats-next")
    expect(next_steps.get_by_role("heading", name="What's next")).to_be_visible()
    run = next_steps.locator("li").filter(has_text="deepeval test run test_opensync.py")
    expect(run.locator("pre")).to_have_text("deepeval test run test_opensync.py")
    run.get_by_role("button", name="Copy").click()
    expect(run.get_by_role("button", name="Copied")).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == "deepeval test run test_opensync.py"
    shot(page, "export-done-next", full_page=False)
    dialog.evaluate("d => { d.scrollTop = 0; }")
    shot(page, "export-done", full_page=False)

    # The file: a JSON array with one golden per exchange.
    job = ExportJob.objects.get()
    assert job.status == ExportStatus.DONE and job.records == exchanges
    with page.expect_download() as download_info:
        download.click()
    path = tmp_path / download_info.value.suggested_filename
    download_info.value.save_as(path)
    assert path.name == job.filename and re.fullmatch(r"opensync-deepeval-\d{4}-\d{2}-\d{2}\.json", path.name)
    goldens = json.loads(path.read_text())
    assert isinstance(goldens, list) and len(goldens) == exchanges
    first, second = goldens[0], goldens[1]
    assert first["name"] == "export-00000#1" and first["input"] == "Why does test_sync_0 fail on CI?"
    assert first["actual_output"] == "module_0 retries at once; wait between attempts."
    assert first["tools_called"][0]["name"] == "Read" and first["expected_output"] is None
    assert (
        second["input"] == "Add the backoff, please." and second["expected_output"] == "Retry with backoff in module_0."
    )
    last = EXPORT_SESSIONS - 1
    assert goldens[-1]["name"] == f"export-{last:05d}#{2 if last % 3 == 0 else 1}"  # every third has two exchanges
    assert_not_reloaded(page)
    watch.check()

    # Past exports lists it, ready.
    page.goto("/evals/exports/")
    row = page.locator(".exports-table tbody tr").filter(has_text=f"#{job.pk} deepeval")
    expect(row).to_have_count(1)
    expect(row.locator(".badge-ok")).to_have_text("Ready")
    expect(row).to_contain_text(f"{EXPORT_SESSIONS} sessions · {exchanges} records")
    expect(row.get_by_role("link", name="Download")).to_have_attribute("href", f"/evals/exports/{job.pk}/download/")
    shot(page, "exports")
    watch.check()


def test_export_modal_fits_a_phone(live, open_page, browser_user):
    make_eval_sessions(browser_user, 3)
    page, watch = open_page(viewport=PHONE, is_mobile=True, has_touch=True)
    log_in(page, live, browser_user, "/evals/")
    # with nothing ticked first (no "selector returned no matches" console error), then one row
    page.locator("#export-open").click()
    dialog = page.locator("#modal dialog.export-dialog")
    expect(dialog.get_by_label("The ticked sessions (0)")).to_be_disabled()
    dialog.get_by_role("link", name="Cancel").click()
    expect(dialog).to_have_count(0)
    page.locator("#eval-bulk input[name=ids]").first.check()
    page.locator("#export-open").click()
    expect(dialog).to_be_visible()
    expect(dialog.get_by_label("The ticked sessions (1)")).to_be_checked()
    expect(dialog.locator("#export-preview pre.export-record").first).to_be_visible()
    shot(page, "export-modal-phone", full_page=False)
    assert horizontal_overflow(page) == []
    # The dialog is in the top layer (position: fixed), which never widens the page: check it too.
    sticking_out = dialog.evaluate(
        """d => { const width = document.documentElement.clientWidth;
          return [d, ...d.querySelectorAll('*')].filter(el => {
            const r = el.getBoundingClientRect();
            return r.width && (r.right > width + 1 || r.left < -1) && !el.closest('pre');
          }).map(el => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') + ' right=' + Math.round(el.getBoundingClientRect().right)).slice(0, 10); }"""
    )
    assert sticking_out == []
    assert dialog.evaluate("d => d.scrollWidth <= d.clientWidth"), "the dialog scrolls sideways"
    watch.check()
