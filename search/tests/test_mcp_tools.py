"""The MCP tools in process (search.mcp.tools, and /mcp through Django's test client): what each
returns, paging, cut markers, budgets, errors and workspace scoping. The SDK's own client over
HTTP against gunicorn, and over stdio, is tests/test_mcp.py."""

import json
import os
import subprocess
import sys
import threading
from datetime import UTC, date, datetime, timedelta

import pytest
from django.core.cache import cache

from accounts.models import ApiRequestLog, Workspace
from accounts.services import api_key_create, api_key_revoke
from accounts.tests.factories import UserFactory
from search.mcp import tools
from search.mcp.tools import Caller, ToolInputError
from search.models import Bookmark
from sessions_app.models import Message, Session
from sessions_app.tests.factories import MessageFactory, PartFactory, SessionFactory

pytestmark = pytest.mark.django_db

BASE = "http://testserver"
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def caller(user, personal_workspace):
    return Caller(user=user, workspace=personal_workspace, can_write=False, base_url=BASE)


@pytest.fixture
def writer(caller):
    return Caller(user=caller.user, workspace=caller.workspace, can_write=True, base_url=BASE)


@pytest.fixture
def outsider():
    """Someone else, in their own workspace."""
    other = UserFactory()
    workspace = Workspace.objects.get(created_by=other, is_personal=True)
    return Caller(user=other, workspace=workspace, can_write=True, base_url=BASE)


def sync(sync_client, sessions: list[dict], messages: list[dict]) -> None:
    response = sync_client.post(
        "/sync/batch", {"sessions": sessions, "messages": messages}, content_type="application/json"
    )
    assert response.status_code == 200 and response.json()["errors"] == [], response.content


@pytest.fixture
def conversation(sync_client):
    sync(
        sync_client,
        [{"externalId": "s-pg", "title": "Postgres refused connections", "source": "codex-cli", "projectName": "api"}],
        [
            {"sessionExternalId": "s-pg", "externalId": "m1", "role": "user", "textContent": "the tests can't connect"},
            {
                "sessionExternalId": "s-pg",
                "externalId": "m2",
                "role": "assistant",
                "textContent": "The connection failed with ECONNREFUSED on port 5432: <b>start</b> postgres first.",
            },
        ],
    )
    return Session.objects.get(external_id="s-pg")


# --- search_sessions -------------------------------------------------------------------------------


def search(caller, query, mode="fulltext", limit=10, offset=0, **filters):
    return tools.search_sessions(
        caller, query=query, mode=mode, limit=limit, offset=offset, filters=tools.Filters(**filters)
    )


def test_search_finds_the_session_and_the_matching_message(caller, conversation, sync_client):
    answer = search(caller, "ECONNREFUSED")
    assert answer["mode"] == "fulltext" and answer["notice"] is None and answer["nextOffset"] is None
    [hit] = answer["results"]
    matched = Message.objects.get(external_id="m2")
    assert hit["sessionId"] == str(conversation.pk) and hit["title"] == "Postgres refused connections"
    assert hit["agent"] == "codex-cli" and hit["project"] == "api"
    assert hit["url"] == f"{BASE}/sessions/{conversation.pk}/"
    assert hit["match"]["messageId"] == str(matched.pk) and hit["match"]["role"] == "assistant"
    assert hit["match"]["url"] == f"{BASE}/sessions/{conversation.pk}/?at={matched.pk}#m-{matched.pk}"
    # the snippet is text for an agent: the matches in bold, no HTML
    assert hit["match"]["snippet"] == "connection failed with **ECONNREFUSED** on port 5432: start postgres first"
    # the same ranking as the HTTP API
    api = sync_client.get("/api/search", {"q": "ECONNREFUSED"}).json()["results"]
    assert [r["id"] for r in api] == [r["sessionId"] for r in answer["results"]]


def test_search_without_embeddings_falls_back_with_a_notice(caller, conversation):
    answer = search(caller, "ECONNREFUSED", mode="hybrid")
    assert answer["mode"] == "fulltext" and "embeddings" in answer["notice"].lower()
    assert len(answer["results"]) == 1


def test_search_pages_with_next_offset(caller, user, personal_workspace, sync_client):
    sync(
        sync_client,
        [{"externalId": f"s{i}", "title": f"kubernetes rollout {i}"} for i in range(3)],
        [],
    )
    first = search(caller, "kubernetes", limit=2)
    assert len(first["results"]) == 2 and first["nextOffset"] == 2
    second = search(caller, "kubernetes", limit=2, offset=first["nextOffset"])
    assert len(second["results"]) == 1 and second["nextOffset"] is None
    ids = [r["sessionId"] for r in first["results"] + second["results"]]
    assert len(set(ids)) == 3


def test_search_filters_by_agent_project_model_and_dates(caller, user, personal_workspace, sync_client):
    day = int(T0.timestamp() * 1000)
    sync(
        sync_client,
        [
            {"externalId": "a", "title": "deploy fix", "source": "claude-code", "model": "m1", "createdAt": day},
            {"externalId": "b", "title": "deploy fix", "source": "opencode", "projectName": "web", "createdAt": day},
        ],
        [],
    )
    ids = {s.external_id: str(s.pk) for s in Session.objects.all()}

    def found(**filters):
        return {r["sessionId"] for r in search(caller, "deploy", **filters)["results"]}

    assert found() == {ids["a"], ids["b"]}
    assert found(agent="claude-code") == {ids["a"]}
    assert found(project="web") == {ids["b"]}
    assert found(model="m1") == {ids["a"]}
    assert found(date_from=date(2026, 3, 1), date_to=date(2026, 3, 1)) == {ids["a"], ids["b"]}
    assert found(date_from=date(2026, 3, 2)) == set()
    with pytest.raises(ToolInputError, match="date_from must not be after date_to"):
        search(caller, "deploy", date_from=date(2026, 3, 2), date_to=date(2026, 3, 1))


def test_text_postgres_cannot_store_is_a_tool_error(caller):
    for call in (
        lambda: search(caller, "a\x00b"),
        lambda: search(caller, "deploy", agent="claude\x00"),
        lambda: tools.list_sessions(caller, limit=5, filters=tools.Filters(project="\ud800")),
        lambda: tools.get_context(caller, **context_args(query="\x00")),
        lambda: tools.usage_summary(caller, range="7d", model="m\x00"),
    ):
        with pytest.raises(ToolInputError, match=r"^(query|agent|project|model): Text must not contain"):
            call()


def test_no_next_offset_past_the_largest_offset(caller, sync_client, monkeypatch):
    sync(sync_client, [{"externalId": f"s{i}", "title": f"kubernetes rollout {i}"} for i in range(3)], [])
    monkeypatch.setattr(tools, "MAX_OFFSET", 2)
    assert search(caller, "kubernetes", limit=2)["nextOffset"] == 2
    assert search(caller, "kubernetes", limit=1, offset=2)["nextOffset"] is None


def test_search_never_reaches_another_workspace(outsider, conversation):
    assert search(outsider, "ECONNREFUSED")["results"] == []


# --- sessions ------------------------------------------------------------------------------------


def test_get_session_overview(caller, user, personal_workspace):
    session = SessionFactory(
        owner=user, workspace=personal_workspace, title="Fix CI", prompt_tokens=1200, completion_tokens=300,
        eval_ready=True, eval_status="golden", eval_tags=["ci"], eval_notes="a clean fix",
    )  # fmt: skip
    overview = tools.get_session(caller, session_id=str(session.pk))
    assert overview["sessionId"] == str(session.pk) and overview["title"] == "Fix CI"
    assert overview["tokens"]["total"] == 1500 and overview["totalTokens"] == 1500
    assert overview["review"] == {"evalReady": True, "status": "golden", "tags": ["ci"], "notes": "a clean fix"}
    assert set(overview["cost"]) == {"usd", "source", "note"}
    assert overview["url"] == f"{BASE}/sessions/{session.pk}/"


@pytest.mark.parametrize("session_id", ["999999999", "abc", "", "1; DROP TABLE x", "1" * 30])
def test_unknown_or_malformed_session_ids_are_not_found(caller, session_id):
    with pytest.raises(ToolInputError, match="not found in this workspace"):
        tools.get_session(caller, session_id=session_id)


def test_another_workspaces_session_is_not_found_by_any_tool(caller, outsider):
    theirs = SessionFactory(owner=outsider.user, workspace=outsider.workspace)
    message = MessageFactory(session=theirs, text_content="secret plans")
    calls = [
        lambda: tools.get_session(caller, session_id=str(theirs.pk)),
        lambda: tools.get_messages(caller, session_id=str(theirs.pk), limit=10, max_chars=2000),
        lambda: tools.get_context(caller, **context_args(session_ids=[str(theirs.pk)])),
        lambda: tools.bookmark(
            Caller(caller.user, caller.workspace, True, BASE), session_id=str(theirs.pk), message_id=str(message.pk)
        ),
    ]
    for call in calls:
        with pytest.raises(ToolInputError, match=f"Session {theirs.pk} not found in this workspace"):
            call()
    assert not Bookmark.objects.exists()


def test_list_sessions_pages_most_recent_first(caller, user, personal_workspace):
    for i in range(5):
        SessionFactory(owner=user, workspace=personal_workspace, title=f"s{i}", updated_at=T0 + timedelta(minutes=i))
    SessionFactory(title="someone else's")
    first = tools.list_sessions(caller, limit=3)
    assert [s["title"] for s in first["sessions"]] == ["s4", "s3", "s2"] and first["nextCursor"]
    second = tools.list_sessions(caller, limit=3, cursor=first["nextCursor"])
    assert [s["title"] for s in second["sessions"]] == ["s1", "s0"] and second["nextCursor"] is None
    with pytest.raises(ToolInputError, match="cursor is not valid"):
        tools.list_sessions(caller, limit=3, cursor="nonsense")


# --- messages ------------------------------------------------------------------------------------


@pytest.fixture
def long_session(user, personal_workspace):
    session = SessionFactory(owner=user, workspace=personal_workspace, message_count=5)
    rows = []
    for i in range(5):
        rows.append(
            MessageFactory(
                session=session,
                role="assistant" if i % 2 else "user",
                text_content=("x" * 5000) if i == 1 else f"message {i}",
                created_at=T0 + timedelta(seconds=i),
            )
        )
    PartFactory(message=rows[3], type="tool-call", order=0, content={"toolName": "Bash", "args": {"command": "ls -la"}})
    PartFactory(message=rows[3], type="tool-result", order=1, content={"toolName": "Bash", "output": "y" * 3000})
    return session, rows


def test_get_messages_pages_oldest_first(caller, long_session):
    session, rows = long_session
    first = tools.get_messages(caller, session_id=str(session.pk), limit=2, max_chars=2000)
    assert [m["messageId"] for m in first["messages"]] == [str(rows[0].pk), str(rows[1].pk)]
    assert first["nextCursor"] and first["messageCount"] == 5
    second = tools.get_messages(caller, session_id=str(session.pk), limit=2, max_chars=2000, cursor=first["nextCursor"])
    third = tools.get_messages(caller, session_id=str(session.pk), limit=2, max_chars=2000, cursor=second["nextCursor"])
    assert [m["messageId"] for m in second["messages"] + third["messages"]] == [str(m.pk) for m in rows[2:]]
    assert third["nextCursor"] is None
    assert first["messages"][0]["url"] == f"{BASE}/sessions/{session.pk}/?at={rows[0].pk}#m-{rows[0].pk}"


def test_get_messages_cuts_long_text_and_summarises_tools(caller, long_session):
    session, rows = long_session
    page = tools.get_messages(caller, session_id=str(session.pk), limit=5, max_chars=1000)
    long_text = page["messages"][1]["text"]
    assert long_text.startswith("x" * 1000) and long_text.endswith("[… 4000 more characters cut]")
    with_tools = page["messages"][3]
    assert with_tools["toolCalls"] == [{"tool": "Bash", "args": '{"command": "ls -la"}'}]
    [result] = with_tools["toolResults"]
    assert result["tool"] == "Bash" and result["output"] == "y" * 1000 + " [… 2000 more characters cut]"


def test_get_messages_from_a_message(caller, long_session):
    session, rows = long_session
    page = tools.get_messages(
        caller, session_id=str(session.pk), limit=2, max_chars=2000, from_message_id=str(rows[2].pk)
    )
    assert [m["messageId"] for m in page["messages"]] == [str(rows[2].pk), str(rows[3].pk)] and page["nextCursor"]
    last = tools.get_messages(
        caller, session_id=str(session.pk), limit=1, max_chars=2000, from_message_id=str(rows[4].pk)
    )
    assert [m["messageId"] for m in last["messages"]] == [str(rows[4].pk)] and last["nextCursor"] is None


def test_get_messages_rejects_bad_positions(caller, long_session, user, personal_workspace):
    session, rows = long_session
    other = MessageFactory(session=SessionFactory(owner=user, workspace=personal_workspace))
    args = {"session_id": str(session.pk), "limit": 2, "max_chars": 2000}
    with pytest.raises(ToolInputError, match="cursor is not valid"):
        tools.get_messages(caller, **args, cursor="garbage")
    with pytest.raises(ToolInputError, match=f"Message {other.pk} not found in session {session.pk}"):
        tools.get_messages(caller, **args, from_message_id=str(other.pk))
    with pytest.raises(ToolInputError, match="not both"):
        tools.get_messages(caller, **args, cursor="x", from_message_id=str(rows[0].pk))


# --- context -------------------------------------------------------------------------------------


def context_args(**changes):
    return {
        "query": None, "session_ids": None, "mode": "fulltext", "limit": 5, "fmt": "text", "max_tokens": 8000,
        "messages_per_session": 10, **changes,
    }  # fmt: skip


@pytest.mark.parametrize("fmt", ["text", "markdown", "xml", "messages"])
def test_get_context_is_exactly_what_the_api_returns(caller, sync_client, fmt):
    words = " ".join(f"word{i}" for i in range(400))
    sync(
        sync_client,
        [{"externalId": "ctx", "title": "Postgres refused connections"}],
        [
            {"sessionExternalId": "ctx", "externalId": f"c{i}", "role": "user", "textContent": f"ECONNREFUSED {words}"}
            for i in range(3)
        ],
    )
    for budget, trimmed in ((8000, False), (200, True)):
        mine = tools.get_context(caller, **context_args(query="ECONNREFUSED", fmt=fmt, max_tokens=budget))
        api = sync_client.get(
            "/api/context", {"q": "ECONNREFUSED", "type": "fulltext", "format": fmt, "maxTokens": budget}
        ).json()
        assert mine == api
        assert mine["tokenCount"] <= budget and mine["truncated"] is trimmed and mine["sessionCount"] == 1


def test_get_context_of_given_sessions_keeps_their_order(caller, user, personal_workspace):
    one, two = (SessionFactory(owner=user, workspace=personal_workspace, title=t) for t in ("one", "two"))
    for session in (one, two):
        MessageFactory(session=session, text_content=f"inside {session.title}")
    body = tools.get_context(caller, **context_args(session_ids=[str(two.pk), str(one.pk)], fmt="markdown"))
    assert body["sessionIds"] == [str(two.pk), str(one.pk)] and body["type"] is None
    assert body["text"].index("inside two") < body["text"].index("inside one")
    for wrong in ({}, {"query": "x", "session_ids": [str(one.pk)]}, {"query": "  "}):
        with pytest.raises(ToolInputError, match="either query or session_ids"):
            tools.get_context(caller, **context_args(**wrong))


# --- usage ---------------------------------------------------------------------------------------


def test_usage_summary_agrees_with_the_analytics_api(caller, sync_client):
    today = int(datetime.now(UTC).timestamp() * 1000)
    sync(
        sync_client,
        [
            {
                "externalId": "u1",
                "source": "claude-code",
                "model": "claude-sonnet-4-5",
                "promptTokens": 1000,
                "completionTokens": 200,
                "createdAt": today,
            },
            {
                "externalId": "u2",
                "source": "opencode",
                "model": "gpt-5",
                "promptTokens": 4000,
                "completionTokens": 800,
                "createdAt": today,
            },
        ],  # fmt: skip
        [],
    )
    summary = tools.usage_summary(caller, range="7d", group_by="agent")
    api = sync_client.get("/api/analytics/summary", {"range": "7d"}).json()
    assert summary["total"]["sessions"] == api["sessions"] == 2
    assert summary["total"]["tokens"]["total"] == api["tokens"]["total"] > 0
    assert summary["total"]["costUsd"] == api["cost"]["total"]
    assert {g["key"] for g in summary["groups"]} == {"claude-code", "opencode"}
    assert sum(g["sessions"] for g in summary["groups"]) == 2
    only = tools.usage_summary(caller, range="7d", agent="opencode", group_by="model")
    assert only["total"]["sessions"] == 1 and [g["key"] for g in only["groups"]] == ["gpt-5"]
    with pytest.raises(ToolInputError, match="from must not be after to"):
        tools.usage_summary(caller, range="30d", date_from=date(2026, 3, 2), date_to=date(2026, 3, 1))


# --- the one write -------------------------------------------------------------------------------


def test_bookmark_needs_a_sync_key_and_is_idempotent(caller, writer, long_session):
    session, rows = long_session
    with pytest.raises(ToolInputError, match="read-only"):
        tools.bookmark(caller, session_id=str(session.pk))
    assert not Bookmark.objects.exists()
    for _ in range(2):
        marked = tools.bookmark(writer, session_id=str(session.pk), message_id=str(rows[2].pk))
    assert marked["bookmarked"] is True and Bookmark.objects.get().message_id == rows[2].pk
    assert (
        tools.bookmark(writer, session_id=str(session.pk), message_id=str(rows[2].pk), on=False)["bookmarked"] is False
    )
    assert not Bookmark.objects.exists()


# --- /mcp through the test client: keys, limits, the request log ---------------------------------

ACCEPT = "application/json, text/event-stream"


def rpc(client, key, method, params=None, **headers):
    body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params or {}}
    if key:
        headers["HTTP_AUTHORIZATION"] = f"Bearer {key}"
    return client.post("/mcp", json.dumps(body), content_type="application/json", HTTP_ACCEPT=ACCEPT, **headers)


def test_mcp_answers_a_tool_call_in_process(client, sync_key, conversation):
    response = rpc(client, sync_key, "tools/call", {"name": "search_sessions", "arguments": {"query": "ECONNREFUSED"}})
    assert response.status_code == 200 and response["Content-Type"].startswith("application/json")
    result = response.json()["result"]
    assert result["isError"] is False
    assert result["structuredContent"]["results"][0]["sessionId"] == str(conversation.pk)
    # the links point at the server the agent reached
    assert result["structuredContent"]["results"][0]["url"].startswith("http://testserver/sessions/")
    log = ApiRequestLog.objects.get(endpoint="/mcp")
    assert log.method == "POST" and log.status_code == 200


def test_mcp_needs_a_valid_key(client, user, personal_workspace):
    assert rpc(client, None, "tools/list").json() == {"error": "Missing Authorization header"}
    assert rpc(client, "osk_nope", "tools/list").status_code == 401
    key, raw = api_key_create(user=user, workspace=personal_workspace, name="agent", scope="read")
    assert rpc(client, raw, "tools/list").status_code == 200
    api_key_revoke(actor=user, api_key=key)
    response = rpc(client, raw, "tools/list")
    assert response.status_code == 401 and response.json() == {"error": "API key has been revoked"}


def test_mcp_shares_the_read_apis_rate_limit(client, sync_key, settings):
    cache.clear()
    settings.OPENSYNC_API_RATE_LIMITS = {**settings.OPENSYNC_API_RATE_LIMITS, "read": (2, 60)}
    try:
        assert [rpc(client, sync_key, "tools/list").status_code for _ in range(2)] == [200, 200]
        refused = rpc(client, sync_key, "tools/list")
        assert refused.status_code == 429 and int(refused["Retry-After"]) >= 1
        assert refused.json()["error"].startswith("Too many read requests")
        # the same budget as /api/sessions
        assert client.get("/api/sessions", HTTP_AUTHORIZATION=f"Bearer {sync_key}").status_code == 429
    finally:
        cache.clear()


def test_mcp_searches_take_the_search_budget(client, sync_key, settings, conversation):
    """search_sessions and get_context with a query cost what /api/search and /api/context do."""
    cache.clear()
    settings.OPENSYNC_API_RATE_LIMITS = {**settings.OPENSYNC_API_RATE_LIMITS, "search": (1, 60), "read": (100, 60)}
    search_call = {"name": "search_sessions", "arguments": {"query": "ECONNREFUSED"}}
    context_call = {"name": "get_context", "arguments": {"query": "ECONNREFUSED"}}
    by_ids = {"name": "get_context", "arguments": {"session_ids": [str(conversation.pk)]}}
    try:
        assert rpc(client, sync_key, "tools/call", search_call).status_code == 200
        for call in (search_call, context_call):
            refused = rpc(client, sync_key, "tools/call", call)
            assert refused.status_code == 429 and refused.json()["error"].startswith("Too many search requests")
        assert client.get("/api/search?q=x", HTTP_AUTHORIZATION=f"Bearer {sync_key}").status_code == 429  # one budget
        # reading is not searching
        assert rpc(client, sync_key, "tools/call", by_ids).status_code == 200
        assert rpc(client, sync_key, "tools/list").status_code == 200
    finally:
        cache.clear()


def test_mcp_links_follow_the_host_asked_for_ipv6_too(client, sync_key, conversation):
    response = rpc(
        client,
        sync_key,
        "tools/call",
        {"name": "get_session", "arguments": {"session_id": str(conversation.pk)}},
        HTTP_HOST="[::1]:8000",
    )
    assert response.status_code == 200
    assert response.json()["result"]["structuredContent"]["url"] == f"http://[::1]:8000/sessions/{conversation.pk}/"


def test_mcp_preflight_allows_the_protocol_headers(client):
    response = client.options("/mcp")
    assert response.status_code == 204
    assert "MCP-Protocol-Version" in response["Access-Control-Allow-Headers"]


def answered_within(seconds: float, send) -> tuple[int, dict]:
    """`send()`'s (status, JSON body), failing if the request is held open instead of answered."""
    answer: list = []
    thread = threading.Thread(target=lambda: answer.append(send()), daemon=True)
    thread.start()
    thread.join(seconds)
    assert answer, f"the request was not answered within {seconds} s"
    return answer[0].status_code, answer[0].json()


@pytest.mark.django_db(transaction=True)  # the request runs in another thread: the key must be committed
def test_nothing_holds_a_worker_open(client, sync_key):
    """Stateless behind sync workers: no event stream (GET), no session to delete, no
    subscriptions/listen; each is answered at once."""
    auth = {"HTTP_AUTHORIZATION": f"Bearer {sync_key}", "HTTP_ACCEPT": ACCEPT}
    for method in ("get", "delete"):
        status, body = answered_within(10, lambda: getattr(client, method)("/mcp", **auth))  # noqa: B023
        assert status == 405 and body == {"error": f'Method "{method.upper()}" not allowed.'}
    meta = {"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}}
    listen = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "subscriptions/listen",
        "params": {"_meta": meta, "notifications": {"toolsListChanged": True}},
    }
    status, body = answered_within(
        10,
        lambda: client.post(
            "/mcp",
            json.dumps(listen),
            content_type="application/json",
            HTTP_MCP_PROTOCOL_VERSION="2026-07-28",
            HTTP_MCP_METHOD="subscriptions/listen",
            **auth,
        ),
    )
    assert body["error"]["code"] == -32601, (status, body)  # method not found


def test_the_sdk_loads_only_when_mcp_is_used():
    """Web workers that never serve /mcp don't carry the SDK (~26 MB, ~1 s of imports each)."""
    script = (
        "import sys, django; django.setup(); from django.urls import get_resolver; get_resolver().url_patterns; "
        "import opensync.wsgi; print(sorted(m for m in sys.modules if m == 'mcp' or m.startswith('mcp.')))"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "opensync.settings", "DATABASE_URL": "postgres://x@127.0.0.1:1/x"}
    env |= {"SECRET_KEY": "x", "CELERY_BROKER_URL": "memory://"}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
