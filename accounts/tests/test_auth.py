"""Sign-up, login, logout and password reset through django-allauth; social login by env."""

import os
import subprocess
import sys

import pytest
from django.core import mail
from django.db import connection

from accounts.models import Membership, Role, User, Workspace
from tests.live import BASE_DIR, database_url

pytestmark = pytest.mark.django_db


def test_signup_creates_user_with_personal_workspace_and_logs_in(client):
    response = client.post(
        "/accounts/signup/",
        {"email": "New.Person@Example.com", "password1": "a-long-pass-phrase-42", "password2": "a-long-pass-phrase-42"},
    )
    assert response.status_code == 302
    user = User.objects.get(email__iexact="new.person@example.com")
    workspace = Workspace.objects.get(created_by=user, is_personal=True)
    assert Membership.objects.get(user=user, workspace=workspace).role == Role.ADMIN
    assert client.get("/").status_code == 200  # logged in: the sessions page, not a redirect


def test_signup_rejects_duplicate_email_and_weak_password(client, user):
    response = client.post("/accounts/signup/", {"email": user.email.upper(), "password1": "x", "password2": "x"})
    assert response.status_code == 200
    assert User.objects.filter(email__iexact=user.email).count() == 1


def test_login_with_email_and_logout(client, user):
    response = client.post("/accounts/login/", {"login": user.email, "password": "correct horse battery"})
    assert response.status_code == 302
    assert client.get("/").status_code == 200
    client.post("/accounts/logout/")
    response = client.get("/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def test_wrong_password_is_refused(client, user):
    response = client.post("/accounts/login/", {"login": user.email, "password": "nope"})
    assert response.status_code == 200
    assert client.get("/").status_code == 302


def test_password_reset_sends_an_email_with_a_working_link(client, user):
    response = client.post("/accounts/password/reset/", {"email": user.email})
    assert response.status_code == 302
    assert len(mail.outbox) == 1
    body = mail.outbox[0].body
    link = next(word for word in body.split() if "/accounts/password/reset/key/" in word)
    path = link.split("testserver", 1)[1]
    response = client.get(path, follow=True)
    form_path = response.redirect_chain[-1][0] if response.redirect_chain else path
    response = client.post(form_path, {"password1": "brand-new-pass-phrase-7", "password2": "brand-new-pass-phrase-7"})
    assert response.status_code == 302
    user.refresh_from_db()
    assert user.check_password("brand-new-pass-phrase-7")


@pytest.mark.django_db(transaction=True)
def test_social_providers_appear_when_configured_by_env():
    """GitHub/GitLab/Google are installed only when their keys are set (settings read env once,
    so this runs in a fresh process)."""
    script = (
        "import django; django.setup();"
        "from django.test import Client;"
        "html = Client().get('/accounts/login/').content.decode();"
        "print('GitHub' in html, 'Google' in html, 'GitLab' in html)"
    )
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "opensync.settings",
        "DATABASE_URL": database_url(connection.settings_dict),
        "SECRET_KEY": "x",
        "ALLOWED_HOSTS": "testserver",
        "GITHUB_CLIENT_ID": "gh-id",
        "GITHUB_CLIENT_SECRET": "gh-secret",
        "GOOGLE_CLIENT_ID": "g-id",
        "GOOGLE_CLIENT_SECRET": "g-secret",
        "STATICFILES_STORAGE": "django.contrib.staticfiles.storage.StaticFilesStorage",
    }
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "True", "False"]

    env.pop("GITHUB_CLIENT_SECRET")
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0 and "GITHUB_CLIENT_SECRET" in result.stderr
