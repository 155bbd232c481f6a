"""GET /api/search: upstream's result shape, snippets, the fallback without embeddings, limits,
offsets and filters. (Keys, scopes, bad parameters and the v1 aliases of every read endpoint are
tested with the read API in sessions_app/tests/test_read_api.py; /api/context in test_context.py.)"""

import re
from datetime import UTC, datetime, timedelta

import pytest
from django.test import override_settings

from accounts.services import api_key_create
from search.api.views import SearchApi
from sessions_app.models import Session
from sessions_app.tests.factories import SessionFactory

pytestmark = pytest.mark.django_db

# The fields upstream returns (reference §2.10-§2.12); ours may add, never drop.
UPSTREAM_SEARCH_FULLTEXT = {
    "id", "externalId", "title", "projectPath", "model", "totalTokens", "cost", "messageCount", "createdAt",
}  # fmt: skip
UPSTREAM_SEARCH_SEMANTIC = {
    "_id", "externalId", "title", "projectPath", "projectName", "model", "totalTokens", "cost", "isPublic",
    "messageCount", "createdAt", "updatedAt",
}  # fmt: skip
T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def read_client(client, user, personal_workspace):
    _, raw = api_key_create(user=user, workspace=personal_workspace, name="script", scope="read")
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {raw}"
    return client


def session_at(owner, minutes: int, **fields) -> Session:
    return SessionFactory(owner=owner, updated_at=T0 + timedelta(minutes=minutes), created_at=T0, **fields)


def sync_conversation(sync_client):
    body = {
        "sessions": [{"externalId": "s-search", "title": "Postgres tuning", "source": "codex-cli"}],
        "messages": [
            {"sessionExternalId": "s-search", "externalId": "m1", "role": "user", "textContent": "hello there"},
            {
                "sessionExternalId": "s-search",
                "externalId": "m2",
                "role": "assistant",
                "textContent": "The connection failed with ECONNREFUSED on port 5432.",
            },
        ],
    }
    response = sync_client.post("/sync/batch", body, content_type="application/json")
    assert response.status_code == 200 and response.json()["errors"] == []
    return Session.objects.get(external_id="s-search")


def test_search_result_shape(sync_client):
    session = sync_conversation(sync_client)
    body = sync_client.get("/api/search?q=ECONNREFUSED").json()
    assert set(body) == {"results", "type", "notice"}
    assert body["type"] == "fulltext" and body["notice"] is None
    (hit,) = body["results"]
    assert set(hit) >= UPSTREAM_SEARCH_FULLTEXT | UPSTREAM_SEARCH_SEMANTIC  # one shape for every mode
    assert hit["id"] == hit["_id"] == str(session.pk)
    assert hit["source"] == "codex-cli"
    assert isinstance(hit["score"], float) and hit["score"] > 0
    assert "<mark>ECONNREFUSED</mark>" in hit["snippet"]
    message = session.messages.get(external_id="m2")
    assert hit["messageId"] == str(message.pk) and hit["matchedBy"] == ["fulltext"]


def test_search_snippet_is_escaped_html(sync_client):
    body = {
        "messages": [
            {
                "sessionExternalId": "s-xss",
                "externalId": "x",
                "textContent": "<script>alert(1)</script> a <img src=x onerror=alert(1)> needle & 1 < 2",
            }
        ]
    }
    sync_client.post("/sync/batch", body, content_type="application/json")
    (hit,) = sync_client.get("/api/search?q=needle").json()["results"]
    assert set(re.findall(r"<[^>]*>", hit["snippet"])) == {"<mark>", "</mark>"}


@override_settings(OPENSYNC_EMBEDDINGS_PROVIDER="none")
@pytest.mark.parametrize("mode", ["semantic", "hybrid"])
def test_search_without_embeddings_falls_back_and_says_so(sync_client, mode):
    session = sync_conversation(sync_client)
    body = sync_client.get(f"/api/search?q=ECONNREFUSED&type={mode}").json()
    assert body["type"] == "fulltext" and body["notice"]
    assert [r["_id"] for r in body["results"]] == [str(session.pk)]


def test_search_limit_cap_offset_and_filters(read_client, user, monkeypatch):
    for minute in range(4):
        session_at(user, minute, title=f"kubernetes rollout {minute}", source="pi" if minute == 0 else "claude-code")
    monkeypatch.setattr(SearchApi, "max_limit", 2)
    assert len(read_client.get("/api/search?q=kubernetes&limit=500").json()["results"]) == 2
    everything = [r["id"] for r in read_client.get("/api/search?q=kubernetes&limit=2").json()["results"]]
    more = [r["id"] for r in read_client.get("/api/search?q=kubernetes&limit=2&offset=2").json()["results"]]
    assert len(more) == 2 and not set(everything) & set(more)
    filtered = read_client.get("/api/search?q=kubernetes&source=pi").json()["results"]
    assert [r["source"] for r in filtered] == ["pi"]
