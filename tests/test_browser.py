"""Real browser (Debian's chromium driven by Playwright) against gunicorn: the API keys page
creates and revokes keys with HTMX, without full page reloads."""

import os
import shutil
import subprocess
import sys

import pytest
from django.contrib.auth.hashers import PBKDF2PasswordHasher
from django.db import connection

from accounts.models import ApiKey, hash_api_key

from .live import BASE_DIR, database_url, start_gunicorn, stop

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        not shutil.which(CHROMIUM), reason=f"needs Debian's chromium at {CHROMIUM} (apt-get install chromium)"
    ),
]


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


def test_api_keys_are_created_and_revoked_without_page_reloads(live, browser, user):
    # The server runs production settings, whose hashers don't include the tests' fast MD5.
    user.password = PBKDF2PasswordHasher().encode("correct horse battery", "browsersalt", iterations=1000)
    user.save(update_fields=["password"])
    page = browser.new_page()
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"{live}/settings/api-keys/")
    assert "/accounts/login/" in page.url  # anonymous: login first
    page.fill("input[name=login]", user.email)
    page.fill("input[name=password]", "correct horse battery")
    page.click("button[type=submit]")
    page.wait_for_url(f"{live}/settings/api-keys/")

    page.evaluate("window.__noReload = true")
    page.fill("#id_name", "laptop")
    page.click("text=Create key")
    raw = page.locator("#new-key").inner_text(timeout=10_000).strip()
    assert raw.startswith("osk_") and len(raw) >= 36
    assert page.evaluate("window.__noReload") is True  # swapped by HTMX, not reloaded
    key = ApiKey.objects.get(name="laptop")
    assert key.key_hash == hash_api_key(raw) and raw not in (key.prefix + key.key_hash)

    # An empty name shows the server's error in place (the browser's own check bypassed).
    page.evaluate("document.querySelector('#id_name').removeAttribute('required')")
    page.click("text=Create key")
    page.locator(".form-error").first.wait_for(timeout=10_000)
    assert page.evaluate("window.__noReload") is True

    page.on("dialog", lambda dialog: dialog.accept())  # the "Revoke …?" confirmation
    page.locator(f"#key-{key.pk} button", has_text="Revoke").click()
    page.locator(f"#key-{key.pk} .badge-off").wait_for(timeout=10_000)
    assert page.evaluate("window.__noReload") is True
    key.refresh_from_db()
    assert key.revoked_at is not None

    page.reload()
    assert raw not in page.content()  # shown once only
    assert errors == []
    page.close()
