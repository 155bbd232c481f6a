"""What every page answers with at the edge: a Content-Security-Policy that a strict browser can
keep (no inline script without the nonce, no style="", no inline event handler), and cookies
marked Secure whenever the request came over HTTPS."""

import re
from html.parser import HTMLParser

import pytest
from django.test import Client
from django.urls import reverse

from accounts.models import Workspace
from sessions_app.tests.factories import MessageFactory, PartFactory, SessionFactory

pytestmark = pytest.mark.django_db


class Inline(HTMLParser):
    """The inline scripts and styles of a page, the nonces they carry, and any style="" or on*=."""

    def __init__(self):
        super().__init__()
        self.scripts: list[str | None] = []  # nonce of each inline <script> / <style>
        self.attributes: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag in ("script", "style") and "src" not in attrs:
            self.scripts.append(attrs.get("nonce"))
        for name in attrs:
            if name == "style" or name.startswith("on"):
                self.attributes.append(f"<{tag} {name}=…>")


def pages(user) -> dict[str, str]:
    session = SessionFactory(owner=user, title="A session", is_public=True, share_slug="c" * 32)
    message = MessageFactory(session=session, role="assistant", text_content="| a | b |\n|:-|-:|\n| 1 | 2 |")
    PartFactory(message=message, type="tool-call", content={"toolName": "bash", "args": {"command": "ls"}})
    slug = Workspace.objects.get(created_by=user, is_personal=True).slug
    return {
        "dashboard": reverse("home"),
        "list": reverse("sessions:list"),
        "viewer": reverse("sessions:detail", args=[session.pk]),
        "search": reverse("search:search") + "?q=session",
        "context": reverse("search:context"),
        "evals": reverse("evals:evals"),
        "analytics": reverse("sessions:analytics"),
        "prices": reverse("sessions:prices"),
        "settings": reverse("accounts:settings"),
        "api keys": reverse("accounts:api-keys"),
        "usage": reverse("accounts:usage"),
        "data": reverse("accounts:data"),
        "workspace": reverse("accounts:workspace", args=[slug]),
        "api docs": "/api/docs",
        "public": reverse("sessions:public", args=[session.share_slug]),
    }


def assert_strict(response, name):
    policy = response.get("Content-Security-Policy", "")
    assert policy, f"{name}: no Content-Security-Policy"
    directives = dict((part.strip().split(" ", 1) + [""])[:2] for part in policy.split(";") if part.strip())
    assert "'unsafe-inline'" not in policy and "'unsafe-eval'" not in policy, policy
    assert directives["default-src"] == "'self'" and directives["object-src"] == "'none'", policy
    assert directives["frame-ancestors"] == "'none'", policy
    html = response.content.decode()
    found = Inline()
    found.feed(html)
    assert found.attributes == [], f"{name}: {found.attributes}"
    nonce = re.search(r"'nonce-([^']+)'", directives["script-src"])
    for script_nonce in found.scripts:
        assert nonce and script_nonce == nonce[1], f"{name}: an inline script or style without the page's nonce"


def test_every_page_has_a_strict_content_security_policy(logged_in, user):
    for name, url in pages(user).items():
        response = logged_in.get(url)
        assert response.status_code == 200, (name, response.status_code)
        assert_strict(response, name)


def test_anonymous_pages_and_errors_have_it_too(client, user):
    public = pages(user)["public"]
    for name, url in {"login": reverse("account_login"), "signup": reverse("account_signup"), "public": public}.items():
        response = client.get(url)
        assert response.status_code == 200, name
        assert_strict(response, name)
    missing = client.get("/no/such/page/")
    assert missing.status_code == 404 and "Content-Security-Policy" in missing


def test_the_nonce_changes_on_every_response(client):
    first = client.get(reverse("account_login"))["Content-Security-Policy"]
    second = client.get(reverse("account_login"))["Content-Security-Policy"]
    nonce = re.compile(r"'nonce-[^']+'")
    assert nonce.search(first) and nonce.search(first)[0] != nonce.search(second)[0]


# --- Secure cookies -----------------------------------------------------------------------------------


def set_cookies(response) -> dict[str, bool]:
    """Each cookie the response sets, and whether it is Secure."""
    return {name: bool(cookie["secure"]) for name, cookie in response.cookies.items()}


def test_cookies_over_https_are_secure(user):
    client = Client()
    assert set_cookies(client.get(reverse("account_login"), secure=True)) == {"csrftoken": True}
    response = client.post(
        reverse("account_login"), {"login": user.email, "password": "correct horse battery"}, secure=True
    )
    assert response.status_code == 302
    cookies = set_cookies(response)
    assert cookies["sessionid"] is True and all(cookies.values()), cookies


def test_cookies_over_plain_http_are_not_secure_by_default(client):
    # A local install on http://127.0.0.1 must keep working: a Secure cookie would never come back.
    assert set_cookies(client.get(reverse("account_login"))) == {"csrftoken": False}


def test_https_behind_a_proxy_counts_when_its_header_is_trusted(client, settings):
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    response = client.get(reverse("account_login"), HTTP_X_FORWARDED_PROTO="https")
    assert set_cookies(response) == {"csrftoken": True}
    settings.SECURE_PROXY_SSL_HEADER = None  # not trusted: the header is anyone's to send
    assert set_cookies(client.get(reverse("account_login"), HTTP_X_FORWARDED_PROTO="https")) == {"csrftoken": False}


def test_secure_cookies_setting_still_forces_it_over_http(client, settings):
    settings.CSRF_COOKIE_SECURE = settings.SESSION_COOKIE_SECURE = True  # what SECURE_COOKIES=true sets
    assert set_cookies(client.get(reverse("account_login"))) == {"csrftoken": True}
