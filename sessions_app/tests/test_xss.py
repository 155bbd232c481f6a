"""Hostile message content stored through the sync API renders inert in the viewer and on the
public page: no script runs, no event handler, no javascript: URL, no embedded frames."""

import json
from html.parser import HTMLParser

import pytest
from django.test import Client
from django.urls import reverse

from sessions_app.models import Session

pytestmark = pytest.mark.django_db

PAYLOADS = [
    "<script>alert('xss-1')</script>",
    "<img src=x onerror=\"alert('xss-2')\">",
    "<svg onload=alert('xss-3')></svg>",
    "<iframe src='javascript:alert(4)'></iframe>",
    "[click me](javascript:alert('xss-5'))",
    "[data](data:text/html;base64,PHNjcmlwdD5hbGVydCg2KTwvc2NyaXB0Pg==)",
    "![img](x\" onerror=\"alert('xss-7'))",
    '<a href="javascript:alert(8)" onclick="alert(9)">link</a>',
    "```\"><script>alert('xss-10')</script>\nbody\n```",
    "```html\n<script>alert('xss-11')</script>\n```",
    "</textarea><script>alert('xss-12')</script>",
    "<details open ontoggle=alert('xss-13')>",
    "<style>body{background:url(javascript:alert(14))}</style>",
    "<object data='javascript:alert(15)'></object><embed src='javascript:alert(16)'>",
]
HOSTILE = "\n\n".join(PAYLOADS)


class Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.inline_scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        # the CSP nonce differs on every response: compare the layout's tags without it
        self.tags.append((tag, {name: value for name, value in attrs if name != "nonce"}))
        self._in_script = tag == "script"

    def handle_endtag(self, tag):
        self._in_script = False

    def handle_data(self, data):
        if self._in_script and data.strip():
            self.inline_scripts.append(data)


def parse(html: str) -> Tags:
    parser = Tags()
    parser.feed(html)
    return parser


def assert_inert(html: str, baseline: str) -> None:
    page, base = parse(html), parse(baseline)
    # The only scripts are the layout's own (same count and same inline code as a benign page).
    assert [t for t in page.tags if t[0] == "script"] == [t for t in base.tags if t[0] == "script"]
    assert page.inline_scripts == base.inline_scripts
    layout = {(tag, tuple(sorted(attrs.items()))) for tag, attrs in base.tags}
    for tag, attrs in page.tags:
        if (tag, tuple(sorted(attrs.items()))) in layout:
            continue  # the page's own markup (favicon, stylesheet, layout)
        assert tag not in {"iframe", "object", "embed", "svg", "style", "img", "script", "link", "meta"}, tag
        for name, value in attrs.items():
            assert not name.startswith("on"), (tag, name, value)
            if name in {"href", "src", "action", "data", "formaction"}:
                assert not (value or "").strip().lower().startswith(("javascript:", "data:", "vbscript:")), (tag, value)
    for marker in ("alert('xss", "alert(4)", "alert(8)", "alert(9)"):
        # the text is shown, but only escaped, never as markup
        for start in [i for i in range(len(html)) if html.startswith(marker, i)]:
            assert "<script" not in html[max(0, start - 10) : start]


def sync(client, path, body):
    response = client.post(path, json.dumps(body), content_type="application/json")
    assert response.status_code == 200, response.content


def store_hostile_session(sync_client) -> Session:
    sync(sync_client, "/sync/session", {"externalId": "ses_evil", "title": "<script>alert('xss-title')</script>"})
    sync(
        sync_client,
        "/sync/message",
        {"sessionExternalId": "ses_evil", "externalId": "m1", "role": "user", "textContent": HOSTILE},
    )
    sync(
        sync_client,
        "/sync/message",
        {
            "sessionExternalId": "ses_evil",
            "externalId": "m2",
            "role": "assistant",
            "textContent": "<thinking><script>alert('xss-think')</script></thinking>" + HOSTILE,
            "parts": [
                {"type": "text", "content": HOSTILE},
                {"type": "thinking", "content": {"text": HOSTILE}},
                {
                    "type": "tool-call",
                    "content": {"toolName": "<script>alert('xss-tool')</script>", "args": {"html": HOSTILE}},
                },
                {"type": "tool-result", "content": HOSTILE},
                {"type": "<img src=x onerror=alert('xss-type')>", "content": {"x": HOSTILE}},
            ],
        },
    )
    return Session.objects.get(external_id="ses_evil")


def test_hostile_content_renders_inert_in_viewer_and_public_page(sync_client, user):
    session = store_hostile_session(sync_client)
    benign = Session.objects.create(workspace=session.workspace, owner=user, external_id="ok", title="ok")

    viewer = Client()
    viewer.force_login(user)
    html = viewer.get(reverse("sessions:detail", args=[session.pk])).content.decode()
    assert "&lt;script&gt;alert('xss-1')&lt;/script&gt;" in html  # shown as text
    assert_inert(html, viewer.get(reverse("sessions:detail", args=[benign.pk])).content.decode())

    viewer.post(reverse("sessions:share", args=[session.pk]), {"action": "share"})
    viewer.post(reverse("sessions:share", args=[benign.pk]), {"action": "share"})
    session.refresh_from_db()
    benign.refresh_from_db()
    anonymous = Client()
    public = anonymous.get(reverse("sessions:public", args=[session.share_slug])).content.decode()
    assert "xss-1" in public
    assert_inert(public, anonymous.get(reverse("sessions:public", args=[benign.share_slug])).content.decode())

    listing = viewer.get(reverse("sessions:list")).content.decode()
    assert "<script>alert(&#x27;xss-title" not in listing and "<script>alert('xss-title" not in listing
