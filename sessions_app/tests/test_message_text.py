"""A message's full text on demand (the Copy button and "Show the full text"), the weight of
the viewer and public pages with a huge message, and what the public page leaves out."""

import re

import pytest
from django.test import Client
from django.urls import reverse

from accounts.tests.factories import UserFactory
from sessions_app import selectors
from sessions_app.exports import message_markdown

from .factories import MessageFactory, PartFactory, SessionFactory

pytestmark = pytest.mark.django_db

BIG = 5 * 1024 * 1024  # a tool result or a pasted log of 5 MB


def big_session(owner, **kwargs):
    session = SessionFactory(owner=owner, title="Huge log", **kwargs)
    MessageFactory(session=session, role="user", text_content="Why does the build fail?")
    answer = MessageFactory(session=session, role="assistant", text_content="")
    PartFactory(message=answer, type="text", content={"text": "The log says:\n\n" + "x" * BIG}, order=0)
    return session, answer


def public_session(owner, **kwargs):
    return SessionFactory(owner=owner, is_public=True, share_slug="p" * 32, **kwargs)


def text_url(session, message):
    return reverse("sessions:message-text", args=[session.pk, message.pk])


def public_text_url(session, message):
    return reverse("sessions:public-message-text", args=[session.share_slug, selectors.message_position(message)])


# --- page weight --------------------------------------------------------------------------------------


def test_viewer_page_weight_follows_what_is_displayed(logged_in, user):
    session, _ = big_session(user)
    page = logged_in.get(reverse("sessions:detail", args=[session.pk]))
    assert page.status_code == 200
    # Was 5,279,266 bytes: the whole message in the hidden copy text. Now only what is shown.
    assert len(page.content) < 200_000, len(page.content)


def test_public_page_weight_follows_what_is_displayed(client, user):
    session, _ = big_session(user, is_public=True, share_slug="w" * 32)
    page = client.get(reverse("sessions:public", args=[session.share_slug]))
    assert page.status_code == 200
    assert len(page.content) < 200_000, len(page.content)


def test_a_cut_message_links_to_its_full_text(logged_in, user):
    session, answer = big_session(user)
    html = logged_in.get(reverse("sessions:detail", args=[session.pk])).content.decode()
    assert f'href="{text_url(session, answer)}"' in html and "Show the full text" in html


# --- the text on demand ---------------------------------------------------------------------------------


def test_message_text_is_the_whole_message_as_markdown(logged_in, user):
    session, answer = big_session(user)
    response = logged_in.get(text_url(session, answer))
    assert response.status_code == 200
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    body = b"".join(response.streaming_content) if response.streaming else response.content
    assert body.decode() == message_markdown(answer)
    assert len(body) > BIG
    assert response["X-Robots-Tag"] == "noindex, nofollow"


def test_message_text_is_scoped_like_the_viewer(client, user, other_user):
    session, answer = big_session(user)
    assert client.get(text_url(session, answer)).status_code == 302  # to the login page
    client.force_login(other_user)
    assert client.get(text_url(session, answer)).status_code == 404
    # a message of another session (of someone else) under my session's URL: 404 too
    mine = SessionFactory(owner=other_user)
    assert client.get(reverse("sessions:message-text", args=[mine.pk, answer.pk])).status_code == 404


def test_public_message_text_is_scoped_by_the_share_token(client, user):
    session = public_session(user)
    message = MessageFactory(session=session, text_content="shared words")
    response = client.get(public_text_url(session, message))
    assert response.status_code == 200 and "shared words" in response.content.decode()
    assert response["X-Robots-Tag"] == "noindex, nofollow"

    # another session's message, a made-up position, a wrong token: all 404
    other = MessageFactory(session=SessionFactory(owner=user), text_content="private words")
    position = selectors.message_position(other)
    assert client.get(reverse("sessions:public-message-text", args=[session.share_slug, position])).status_code == 404
    assert client.get(reverse("sessions:public-message-text", args=[session.share_slug, "garbage"])).status_code == 404
    assert client.get(reverse("sessions:public-message-text", args=["x" * 32, position])).status_code == 404
    session.is_public = False
    session.save()
    assert client.get(public_text_url(session, message)).status_code == 404


# --- the public page shows the conversation only ------------------------------------------------------


def test_public_page_has_no_forms_ids_or_csrf_tokens(user):
    session = public_session(user)
    message = MessageFactory(session=session, text_content="the visible conversation")
    client = Client()
    html = client.get(reverse("sessions:public", args=[session.share_slug])).content.decode()
    assert "the visible conversation" in html
    assert "<form" not in html  # no context / bookmark buttons, no workspace switcher
    assert "csrfmiddlewaretoken" not in html and "X-CSRFToken" not in html
    assert "/context/" not in html
    for internal in (session.pk, message.pk):
        assert not re.search(rf"\b(?:m|copy|pick|at)[-=]{internal}\b", html), internal
        assert f'value="{internal}"' not in html
    assert "csrftoken" not in client.cookies  # nothing made it set a CSRF cookie

    # the next page of messages (HTMX) is the conversation only too
    more = client.get(reverse("sessions:public-messages", args=[session.share_slug]), HTTP_HX_REQUEST="true")
    assert "<form" not in more.content.decode()


def test_viewer_still_has_its_actions(logged_in, user):
    session = SessionFactory(owner=user)
    message = MessageFactory(session=session)
    html = logged_in.get(reverse("sessions:detail", args=[session.pk])).content.decode()
    assert reverse("search:context-pick") in html and reverse("search:bookmark") in html
    assert f'data-copy-url="{text_url(session, message)}"' in html


def test_outsider_gets_404_for_a_message_text_in_a_team(client, user, other_user, team_as_member):
    session = SessionFactory(owner=other_user, workspace=team_as_member)
    message = MessageFactory(session=session, text_content="team words")
    client.force_login(user)  # a member: may read
    assert "team words" in client.get(text_url(session, message)).content.decode()
    client.force_login(UserFactory())
    assert client.get(text_url(session, message)).status_code == 404
