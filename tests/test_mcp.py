"""The MCP server driven by the official SDK's own client: over Streamable HTTP against a real
gunicorn serving /mcp (both protocol eras: the 2026-07-28 stateless requests and the older
initialize handshake), and over stdio against `manage.py mcp`. Tool by tool behaviour is in
search/tests/test_mcp_tools.py; this is the wire, the keys, isolation and relevance."""

import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlencode

import anyio
import pytest
from django.db import connection
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from accounts.models import Workspace
from accounts.services import api_key_create, api_key_revoke
from accounts.tests.factories import UserFactory
from search.models import Bookmark
from search.tests.fake_embeddings_server import FakeEmbeddingsServer
from search.tests.relevance_corpus import QUERIES
from search.tests.test_embeddings import COLUMN_DIMENSIONS, _fresh_caches  # noqa: F401 - fixture
from search.tests.test_relevance import K, batch_body
from sessions_app.models import Session
from sessions_app.tests.factories import SessionFactory

from .live import BASE_DIR, database_url, request, start_gunicorn, stop

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

TOOLS = ["search_sessions", "list_sessions", "get_session", "get_messages", "get_context", "usage_summary", "bookmark"]
SCHEMAS = Path(__file__).parent / "fixtures" / "mcp_tools.json"
MODES = ["auto", "legacy"]  # auto: the 2026-07-28 protocol (no handshake); legacy: initialize first


def embeddings_env(server: FakeEmbeddingsServer) -> dict[str, str]:
    return {
        "OPENSYNC_EMBEDDINGS_PROVIDER": "openai",
        "OPENSYNC_EMBEDDINGS_MODEL": "text-embedding-3-small",
        "OPENSYNC_EMBEDDINGS_DIMENSIONS": str(COLUMN_DIMENSIONS),
        "OPENSYNC_EMBEDDINGS_BASE_URL": server.url,
        "OPENSYNC_EMBEDDINGS_API_KEY": "test-key",
    }


@pytest.fixture(scope="module")
def embeddings():
    server = FakeEmbeddingsServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def live(django_db_setup, django_db_blocker, embeddings):
    """gunicorn (two workers) on the test database, embedding queries with the fake provider; no
    rate limits (the relevance check makes hundreds of calls; the limit is tested in process)."""
    with django_db_blocker.unblock():
        settings_dict = connection.settings_dict
    proc, port = start_gunicorn(
        settings_dict,
        workers=2,
        extra_env={
            **embeddings_env(embeddings),
            "OPENSYNC_RATE_LIMIT_READ": "off",
            "OPENSYNC_RATE_LIMIT_SEARCH": "off",
            "OPENSYNC_API_REQUEST_LOG_FLUSH_SECONDS": "0",
        },
    )
    yield f"http://127.0.0.1:{port}"
    stop(proc)


def over_http(url: str, key: str, work, mode: str = "auto", statuses: list | None = None):
    """Run `work(client)` with the SDK's Client connected to `url`/mcp with the key; the HTTP
    statuses of its requests go in `statuses`."""

    async def record(response):
        if statuses is not None:
            statuses.append(response.status_code)

    async def main():
        http = create_mcp_http_client(headers={"Authorization": f"Bearer {key}"})
        http.event_hooks["response"].append(record)
        async with http, Client(streamable_http_client(f"{url}/mcp", http_client=http), mode=mode) as client:
            return await work(client)

    return anyio.run(main)


def key_for(user, workspace, scope: str = "read") -> str:
    return api_key_create(user=user, workspace=workspace, name=f"agent-{scope}", scope=scope)[1]


def sync(client, key: str, body: dict) -> None:
    """Through the sync API in this process (committed: gunicorn and the stdio server see it)."""
    response = client.post("/sync/batch", body, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {key}")
    assert response.status_code == 200 and response.json()["errors"] == [], response.content


@pytest.fixture
def history(client, sync_key):
    """A session worth finding, with a long tool output, in the user's workspace."""
    texts = [
        ("user", "the integration tests fail to connect"),
        ("assistant", "ECONNREFUSED on 5432: the database was not started"),
        ("assistant", "log line\n" * 1000),
    ]
    sync(
        client,
        sync_key,
        {
            "sessions": [{"externalId": "pg", "title": "Postgres refused connections"}],
            "messages": [
                {
                    "sessionExternalId": "pg",
                    "externalId": f"m{i}",
                    "role": role,
                    "textContent": text,
                    "createdAt": 1e12 + i,
                }
                for i, (role, text) in enumerate(texts)
            ],
        },
    )
    session = Session.objects.get(external_id="pg")
    return session, list(session.messages.order_by("created_at"))


def structured(result) -> dict:
    assert not result.is_error, result.content
    return result.structured_content


# --- the tools over HTTP ---------------------------------------------------------------------------


def test_the_tools_and_their_schemas_are_the_documented_ones(live, user, personal_workspace):
    listed = over_http(live, key_for(user, personal_workspace), lambda client: client.list_tools())
    assert [tool.name for tool in listed.tools] == TOOLS
    current = {
        tool.name: {"description": tool.description, "inputSchema": tool.input_schema, "annotations": tool.annotations}
        for tool in listed.tools
    }
    current = json.loads(json.dumps(current, default=lambda a: a.model_dump(by_alias=True, exclude_none=True)))
    if os.environ.get("OPENSYNC_UPDATE_MCP_SCHEMAS") == "1":
        SCHEMAS.write_text(json.dumps(current, indent=2, ensure_ascii=False) + "\n")
    # A change here changes what agents see: make it on purpose (OPENSYNC_UPDATE_MCP_SCHEMAS=1)
    # and describe it in the README's tool table.
    assert current == json.loads(SCHEMAS.read_text())


@pytest.mark.parametrize("mode", MODES)
def test_each_tool_answers_over_http(live, user, personal_workspace, history, mode):
    session, messages = history
    key = key_for(user, personal_workspace, "sync")

    async def work(client):
        found = structured(await client.call_tool("search_sessions", {"query": "ECONNREFUSED", "mode": "fulltext"}))
        overview = structured(await client.call_tool("get_session", {"session_id": str(session.pk)}))
        page = structured(
            await client.call_tool("get_messages", {"session_id": str(session.pk), "limit": 2, "max_chars": 500})
        )
        rest = structured(
            await client.call_tool(
                "get_messages",
                {"session_id": str(session.pk), "cursor": page["nextCursor"], "limit": 2, "max_chars": 500},
            )
        )
        context = structured(
            await client.call_tool(
                "get_context", {"query": "ECONNREFUSED", "mode": "fulltext", "format": "text", "max_tokens": 300}
            )
        )
        listed = structured(await client.call_tool("list_sessions", {"limit": 5}))
        usage = structured(await client.call_tool("usage_summary", {"range": "all"}))
        marked = structured(
            await client.call_tool("bookmark", {"session_id": str(session.pk), "message_id": str(messages[1].pk)})
        )
        resource = await client.read_resource(f"opensync://sessions/{session.pk}")
        return found, overview, page, rest, context, listed, usage, marked, resource

    found, overview, page, rest, context, listed, usage, marked, resource = over_http(live, key, work, mode)
    [hit] = found["results"]
    assert hit["sessionId"] == str(session.pk) and hit["match"]["messageId"] == str(messages[1].pk)
    assert "**ECONNREFUSED**" in hit["match"]["snippet"]
    assert hit["match"]["url"] == f"{live}/sessions/{session.pk}/?at={messages[1].pk}#m-{messages[1].pk}"
    assert overview["title"] == "Postgres refused connections" and overview["review"]["evalReady"] is False
    assert [m["messageId"] for m in page["messages"] + rest["messages"]] == [str(m.pk) for m in messages]
    assert page["nextCursor"] and rest["nextCursor"] is None
    assert rest["messages"][0]["text"].endswith("[… 8500 more characters cut]")
    assert context["sessionIds"] == [str(session.pk)] and context["tokenCount"] <= 300 and context["truncated"]
    assert (
        context
        == request(
            int(live.rsplit(":", 1)[1]),
            "GET",
            "/api/context?q=ECONNREFUSED&type=fulltext&format=text&maxTokens=300",
            key=key_for(user, personal_workspace),
        )[1]
    )
    assert [s["sessionId"] for s in listed["sessions"]] == [str(session.pk)] and listed["nextCursor"] is None
    assert usage["total"]["sessions"] == 1
    assert marked["bookmarked"] and Bookmark.objects.get(user=user).message_id == messages[1].pk
    [text] = resource.contents
    assert text.mime_type == "text/markdown" and "ECONNREFUSED" in text.text


@pytest.mark.parametrize("mode", MODES)
def test_bad_arguments_are_tool_errors_and_the_connection_goes_on(live, user, personal_workspace, history, mode):
    async def work(client):
        answers = [
            await client.call_tool("search_sessions", {"query": "x", "limit": 0}),
            await client.call_tool("search_sessions", {"query": "x", "mode": "telepathy"}),
            await client.call_tool("search_sessions", {}),
            await client.call_tool("get_session", {"session_id": "not-a-number"}),
            await client.call_tool("get_messages", {"session_id": str(history[0].pk), "cursor": "garbage"}),
            await client.call_tool("get_context", {"query": "x", "max_tokens": 10}),
            await client.call_tool("usage_summary", {"date_from": "yesterday"}),
            await client.call_tool("no_such_tool", {}),
        ]
        after = await client.call_tool("get_session", {"session_id": str(history[0].pk)})
        return answers, after

    answers, after = over_http(live, key_for(user, personal_workspace), work, mode)
    for answer in answers:
        assert answer.is_error and answer.content[0].text
    assert "greater than or equal to 1" in answers[0].content[0].text
    assert "Session not-a-number not found" in answers[3].content[0].text
    assert "cursor is not valid" in answers[4].content[0].text
    assert structured(after)["sessionId"] == str(history[0].pk)


def test_a_read_key_cannot_write(live, user, personal_workspace, history):
    session, _ = history

    async def work(client):
        return await client.call_tool("bookmark", {"session_id": str(session.pk)})

    answer = over_http(live, key_for(user, personal_workspace, "read"), work)
    assert answer.is_error and "read-only" in answer.content[0].text
    assert not Bookmark.objects.exists()


@pytest.mark.parametrize("mode", MODES)
def test_a_revoked_or_unknown_key_is_refused(live, user, personal_workspace, mode):
    key, raw = api_key_create(user=user, workspace=personal_workspace, name="agent", scope="read")
    assert over_http(live, raw, lambda client: client.list_tools(), mode).tools
    api_key_revoke(actor=user, api_key=key)
    for refused in (raw, "osk_unknown"):
        statuses: list[int] = []
        with pytest.raises(Exception, match="error"):  # the SDK's client gives up: no tools for this key
            over_http(live, refused, lambda client: client.list_tools(), mode, statuses)
        assert statuses and set(statuses) == {401}


def test_a_key_never_sees_another_workspace(live, provider, user, personal_workspace, history):
    """Workspace B's key, given workspace A's ids as arguments, gets "not found" from every tool
    that takes an id, and A's sessions from none that searches or lists (A's session has its
    embeddings: A's own key finds it in every mode)."""
    session, messages = history

    async def own(client):
        return [
            structured(await client.call_tool("search_sessions", {"query": "ECONNREFUSED", "mode": mode}))
            for mode in ("fulltext", "semantic", "hybrid")
        ]

    for answer in over_http(live, key_for(user, personal_workspace), own):
        assert [r["sessionId"] for r in answer["results"]] == [str(session.pk)] and answer["notice"] is None
    other = UserFactory()
    theirs = key_for(other, Workspace.objects.get(created_by=other, is_personal=True), "sync")
    a_id, m_id = str(session.pk), str(messages[1].pk)

    async def work(client):
        by_id = [
            await client.call_tool("get_session", {"session_id": a_id}),
            await client.call_tool("get_messages", {"session_id": a_id}),
            await client.call_tool("get_messages", {"session_id": a_id, "from_message_id": m_id}),
            await client.call_tool("get_context", {"session_ids": [a_id]}),
            await client.call_tool("bookmark", {"session_id": a_id, "message_id": m_id}),
        ]
        searched = [
            await client.call_tool("search_sessions", {"query": "ECONNREFUSED", "mode": mode})
            for mode in ("fulltext", "semantic", "hybrid")
        ]
        listed = await client.call_tool("list_sessions", {})
        context = await client.call_tool("get_context", {"query": "ECONNREFUSED"})
        usage = await client.call_tool("usage_summary", {"range": "all"})
        try:
            await client.read_resource(f"opensync://sessions/{a_id}")
            resource_refused = ""
        except Exception as exc:  # the SDK's client raises the server's error
            resource_refused = str(exc)
        return by_id, searched, listed, context, usage, resource_refused

    by_id, searched, listed, context, usage, resource_refused = over_http(live, theirs, work)
    for answer in by_id:
        assert answer.is_error and f"Session {a_id} not found in this workspace" in answer.content[0].text
    for answer in searched:
        assert structured(answer)["results"] == []
    assert structured(listed)["sessions"] == [] and structured(context)["sessionIds"] == []
    assert structured(usage)["total"]["sessions"] == 0
    assert f"Session {a_id} not found in this workspace" in resource_refused
    assert not Bookmark.objects.exists()


# --- relevance: the same answers as /api/search -----------------------------------------------------


@pytest.fixture
def provider(settings, embeddings):
    """This process embeds what it syncs with the same fake provider gunicorn embeds queries with."""
    for name, value in embeddings_env(embeddings).items():
        setattr(settings, name, int(value) if name.endswith("DIMENSIONS") else value)
    settings.OPENSYNC_EMBEDDINGS_SEND_DIMENSIONS = "auto"


def test_recall_through_mcp_equals_the_http_apis(live, client, sync_key, user, provider):
    """The labelled corpus (search/tests/relevance_corpus.py), synced and embedded, then every
    query in every mode through MCP's search_sessions and through /api/search: recall@10 is the
    same, because the ranking is."""
    sync(client, sync_key, batch_body())
    port = int(live.rsplit(":", 1)[1])
    external = dict(Session.objects.values_list("pk", "external_id"))

    async def work(client):
        answers = {}
        for query, _, _ in QUERIES:
            for mode in ("fulltext", "semantic", "hybrid"):
                result = await client.call_tool("search_sessions", {"query": query, "mode": mode, "limit": K})
                answers[query, mode] = structured(result)
        return answers

    through_mcp = over_http(live, sync_key, work)
    recall = {"mcp": {}, "api": {}}
    for query, _, relevant in QUERIES:
        for mode in ("fulltext", "semantic", "hybrid"):
            mine = through_mcp[query, mode]
            assert mine["mode"] == mode and mine["notice"] is None, (query, mode, mine["notice"])
            mcp_top = [external[int(r["sessionId"])] for r in mine["results"]]
            status, api = request(port, "GET", f"/api/search?{_query(query, mode)}", key=sync_key)
            assert status == 200
            api_top = [external[int(r["id"])] for r in api["results"]]
            assert mcp_top == api_top, (query, mode)
            recall["mcp"].setdefault(mode, []).append(len(relevant & set(mcp_top)) / len(relevant))
            recall["api"].setdefault(mode, []).append(len(relevant & set(api_top)) / len(relevant))
    for mode in ("fulltext", "semantic", "hybrid"):
        mcp_recall = sum(recall["mcp"][mode]) / len(QUERIES)
        api_recall = sum(recall["api"][mode]) / len(QUERIES)
        print(f"recall@{K} {mode}: MCP {mcp_recall:.3f}, /api/search {api_recall:.3f}")
        assert mcp_recall == api_recall > 0.6


def _query(query: str, mode: str) -> str:
    return urlencode({"q": query, "type": mode, "limit": K})


# --- stdio -----------------------------------------------------------------------------------------


def over_stdio(django_db_blocker, args: list[str], work):
    with django_db_blocker.unblock():
        url = database_url(connection.settings_dict)
    params = StdioServerParameters(
        command=sys.executable,
        args=["manage.py", "mcp", *args],
        cwd=str(BASE_DIR),
        env={
            **{name: value for name, value in os.environ.items() if name != "OPENSYNC_PUBLIC_URL"},
            "DJANGO_SETTINGS_MODULE": "opensync.settings",
            "DATABASE_URL": url,
            "SECRET_KEY": "test-secret-key-for-stdio",
            "CELERY_BROKER_URL": "memory://",
        },
    )

    async def main():
        async with Client(params) as client:
            return await work(client)

    return anyio.run(main)


def test_stdio_serves_one_user(django_db_blocker, user, history):
    session, messages = history
    outsider_session = SessionFactory(title="ECONNREFUSED elsewhere")

    async def work(client):
        listed = await client.list_tools()
        found = await client.call_tool("search_sessions", {"query": "ECONNREFUSED", "mode": "fulltext"})
        theirs = await client.call_tool("get_session", {"session_id": str(outsider_session.pk)})
        write = await client.call_tool("bookmark", {"session_id": str(session.pk)})
        return listed, found, theirs, write

    listed, found, theirs, write = over_stdio(django_db_blocker, ["--user", user.email], work)
    assert [tool.name for tool in listed.tools] == TOOLS
    results = structured(found)["results"]
    assert [r["sessionId"] for r in results] == [str(session.pk)]
    assert results[0]["url"].startswith("http://127.0.0.1:8000/sessions/")
    assert theirs.is_error and "not found in this workspace" in theirs.content[0].text
    assert write.is_error and "read-only" in write.content[0].text

    allowed = over_stdio(
        django_db_blocker,
        ["--user", user.email, "--allow-writes", "--base-url", "https://sync.example.com"],
        lambda client: client.call_tool("bookmark", {"session_id": str(session.pk)}),
    )
    assert structured(allowed)["url"] == f"https://sync.example.com/sessions/{session.pk}/"
    assert Bookmark.objects.filter(user=user, session=session).exists()


def test_stdio_refuses_an_unknown_user_or_a_workspace_they_are_not_in(django_db_blocker, user):
    other = UserFactory()
    slug = Workspace.objects.get(created_by=other, is_personal=True).slug
    for args, message in (
        (["--user", "nobody@example.com"], "No active user"),
        (["--user", user.email, "--workspace", slug], "is not a member"),
    ):
        with django_db_blocker.unblock():
            url = database_url(connection.settings_dict)
        done = subprocess.run(
            [sys.executable, "manage.py", "mcp", *args],
            cwd=BASE_DIR,
            env={**os.environ, "DATABASE_URL": url, "SECRET_KEY": "x", "CELERY_BROKER_URL": "memory://"},
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )
        assert done.returncode != 0 and message in done.stderr and done.stdout == ""
