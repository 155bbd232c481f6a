"""The public read API (/api/...): upstream shapes, keys and scopes, workspace isolation, paging
and caps, bad parameters, the /api/v1/ aliases, the OpenAPI schema and the offline docs page."""

import json
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.contrib.staticfiles import finders
from django.core.management import call_command

from accounts.services import api_key_create
from accounts.tests.factories import team_with
from search.tests.test_search_api import UPSTREAM_SEARCH_FULLTEXT, UPSTREAM_SEARCH_SEMANTIC, sync_conversation
from sessions_app.api.views import SessionGetApi, SessionListApi
from sessions_app.models import Session
from sessions_app.tests.factories import MessageFactory, PartFactory, SessionFactory

pytestmark = pytest.mark.django_db

# The fields upstream returns (reference §2.10-§2.12); ours may add, never drop.
UPSTREAM_SESSION = {
    "id", "externalId", "title", "projectPath", "projectName", "model", "provider", "promptTokens",
    "completionTokens", "totalTokens", "cost", "durationMs", "isPublic", "messageCount", "createdAt", "updatedAt",
}  # fmt: skip
UPSTREAM_MESSAGE = {
    "id", "externalId", "role", "textContent", "model", "promptTokens", "completionTokens", "durationMs",
    "createdAt", "parts",
}  # fmt: skip
T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def key_client(client, raw_key: str):
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {raw_key}"
    return client


@pytest.fixture
def read_client(client, user, personal_workspace):
    _, raw = api_key_create(user=user, workspace=personal_workspace, name="script", scope="read")
    return key_client(client, raw)


def session_at(owner, minutes: int, **fields) -> Session:
    return SessionFactory(owner=owner, updated_at=T0 + timedelta(minutes=minutes), created_at=T0, **fields)


def conversation(owner) -> Session:
    """A session with a text-part message, a textContent-only message and a tool message."""
    session = session_at(
        owner,
        0,
        title="Fix: the login/redirect bug",
        prompt_tokens=100,
        completion_tokens=50,
        cost=Decimal("0.12345678"),
    )
    # textContent repeats the first text part (as plugins send it): said once
    first = MessageFactory(session=session, role="user", text_content="Why does login loop?", created_at=T0)
    PartFactory(message=first, type="text", content="Why does login loop?", order=0)
    PartFactory(message=first, type="tool-call", content={"name": "read", "args": {"path": "a.py"}}, order=1)
    PartFactory(message=first, type="text", content={"text": "See a.py"}, order=2)
    MessageFactory(session=session, role="assistant", text_content="The redirect is relative.", created_at=T0)
    MessageFactory(session=session, role="tool", text_content="ok", created_at=T0 + timedelta(seconds=1))
    return session


def assert_error(response, status: int, message: str | None = None):
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert list(body) == ["error"] and isinstance(body["error"], str) and body["error"]
    if message is not None:
        assert body["error"] == message
    return body["error"]


# --- keys, scopes, isolation ----------------------------------------------------------------------

ENDPOINTS = [
    "/api/sessions", "/api/sessions/get?id=1", "/api/export?id=1", "/api/stats", "/api/search?q=x", "/api/context?q=x",
]  # fmt: skip


@pytest.mark.parametrize("path", ENDPOINTS)
def test_no_key_is_401_json(client, db, path):
    assert_error(client.get(path), 401, "Missing Authorization header")
    assert_error(client.get(path, HTTP_AUTHORIZATION="Bearer osk_nope"), 401, "Invalid API key")


@pytest.mark.parametrize("scope", ["read", "sync"])
def test_both_scopes_read(client, user, personal_workspace, scope):
    session = session_at(user, 0)
    _, raw = api_key_create(user=user, workspace=personal_workspace, name="k", scope=scope)
    key_client(client, raw)
    assert client.get("/api/sessions").json()["sessions"][0]["id"] == str(session.pk)
    assert client.get(f"/api/sessions/get?id={session.pk}").status_code == 200
    assert client.get(f"/api/export?id={session.pk}").status_code == 200
    assert client.get("/api/stats").json()["sessionCount"] == 1
    assert client.get("/api/search?q=anything").status_code == 200


def test_read_key_still_cannot_write(read_client):
    response = read_client.post("/sync/session", {"externalId": "x"}, content_type="application/json")
    assert_error(response, 403)


def test_other_workspaces_are_invisible(read_client, user, other_user):
    mine = session_at(user, 0, title="shared words here")
    theirs = session_at(other_user, 1, title="shared words here")
    # the same user's own team workspace is another workspace too
    team = team_with(user)
    in_team = session_at(user, 2, title="shared words here", workspace=team)

    listed = [s["id"] for s in read_client.get("/api/sessions?limit=200").json()["sessions"]]
    assert listed == [str(mine.pk)]
    for other in (theirs, in_team):
        assert_error(read_client.get(f"/api/sessions/get?id={other.pk}"), 404, "Session not found")
        for fmt in ("json", "jsonl", "markdown"):
            assert_error(read_client.get(f"/api/export?id={other.pk}&format={fmt}"), 404, "Session not found")
    assert read_client.get("/api/stats").json()["sessionCount"] == 1
    found = [r["id"] for r in read_client.get("/api/search?q=shared words").json()["results"]]
    assert found == [str(mine.pk)]


def test_team_key_reads_the_whole_team_workspace(client, user, other_user):
    team = team_with(user, member=other_user)
    colleague = session_at(other_user, 0, workspace=team)
    _, raw = api_key_create(user=user, workspace=team, name="team", scope="read")
    key_client(client, raw)
    assert [s["id"] for s in client.get("/api/sessions").json()["sessions"]] == [str(colleague.pk)]
    assert client.get(f"/api/sessions/get?id={colleague.pk}").status_code == 200


# --- /api/sessions ---------------------------------------------------------------------------------


def test_sessions_shape_is_upstreams_plus_source(read_client, user):
    old = session_at(user, 0, cost=None, duration_ms=1200, eval_ready=True)
    new = session_at(user, 5, cost=Decimal("1.5"), title=None)
    body = read_client.get("/api/sessions").json()
    assert set(body) == {"sessions", "nextCursor"} and body["nextCursor"] is None
    first, second = body["sessions"]
    assert (first["id"], second["id"]) == (str(new.pk), str(old.pk))  # updatedAt desc
    for item in (first, second):
        assert UPSTREAM_SESSION | {"source", "costReported", "evalReady"} <= set(item)
        assert isinstance(item["createdAt"], int) and isinstance(item["updatedAt"], int)
    assert first["title"] is None and first["cost"] == 1.5 and first["costReported"] is True
    assert second["cost"] == 0 and second["costReported"] is False  # never reported, upstream's type kept
    assert second["source"] == "claude-code" and second["durationMs"] == 1200 and second["evalReady"] is True
    assert second["createdAt"] == ms(T0) and second["updatedAt"] == ms(T0)
    assert second["isPublic"] is False


def test_sessions_keyset_pagination_walks_everything_once(read_client, user):
    ids = [str(session_at(user, minute).pk) for minute in range(7)][::-1]
    seen, cursor = [], None
    while True:
        body = read_client.get("/api/sessions", {"limit": 3, **({"cursor": cursor} if cursor else {})}).json()
        seen += [s["id"] for s in body["sessions"]]
        cursor = body["nextCursor"]
        if cursor is None:
            break
    assert seen == ids


def test_sessions_filters(read_client, user):
    a = session_at(user, 0, source="codex-cli", project_name="api", model="gpt-5", provider="openai")
    b = session_at(user, 1, source="cursor-sync", project_name="web")
    get = lambda **q: [s["id"] for s in read_client.get("/api/sessions", q).json()["sessions"]]  # noqa: E731
    assert get(source="codex-cli") == [str(a.pk)]
    assert get(source="cursor") == [str(b.pk)]  # normalised like the sync API
    assert get(project="web") == [str(b.pk)]
    assert get(model="gpt-5", provider="openai") == [str(a.pk)]
    assert get(model="nothing") == []


def test_sessions_limit_default_and_cap(read_client, user, monkeypatch):
    for minute in range(4):
        session_at(user, minute)
    monkeypatch.setattr(SessionListApi, "max_limit", 3)
    body = read_client.get("/api/sessions?limit=100000").json()
    assert len(body["sessions"]) == 3 and body["nextCursor"]
    assert len(read_client.get("/api/sessions?limit=").json()["sessions"]) == 3  # empty = default, capped


def test_sessions_list_query_count_is_flat(read_client, user, django_assert_max_num_queries):
    for minute in range(30):
        session_at(user, minute)
    with django_assert_max_num_queries(4):  # key, last-used, the page, the request log
        assert len(read_client.get("/api/sessions").json()["sessions"]) == 30


# --- bad parameters --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "needle"),
    [
        ("/api/sessions?limit=abc", "limit must be a whole number"),
        ("/api/sessions?limit=0", "limit must be at least 1"),
        ("/api/sessions?limit=-5", "limit must be at least 1"),
        ("/api/sessions?limit=1.5", "limit must be a whole number"),
        ("/api/sessions?cursor=garbage", "cursor is not valid"),
        ("/api/sessions?cursor=" + "x" * 600, "cursor is not valid"),
        ("/api/sessions?project=" + "p" * 300, "project must be at most 255 characters"),
        ("/api/sessions/get", "Missing session ID"),
        ("/api/sessions/get?id=", "Missing session ID"),
        ("/api/sessions/get?id=1&messageLimit=lots", "messageLimit must be a whole number"),
        ("/api/sessions/get?id=1&messageCursor=zzz", "messageCursor is not valid"),
        ("/api/export", "Missing session ID"),
        ("/api/export?id=1&format=pdf", "format must be one of json, markdown, jsonl"),
        ("/api/search", "Missing query parameter 'q'"),
        ("/api/search?q=", "Missing query parameter 'q'"),
        ("/api/search?q=%20%20", "Missing query parameter 'q'"),
        ("/api/search?q=" + "a" * 501, "q is too long; the limit is 500 characters"),
        ("/api/search?q=x&type=magic", "type must be one of fulltext, semantic, hybrid"),
        ("/api/search?q=x&limit=0", "limit must be at least 1"),
        ("/api/search?q=x&offset=-1", "offset must not be negative"),
        ("/api/search?q=x&offset=5000", "offset must be at most 1000"),
    ],
)
def test_bad_parameters_are_400_json_naming_the_problem(read_client, user, path, needle):
    session_at(user, 0)  # so id=1 may or may not exist: the 400 comes first either way
    assert needle in assert_error(read_client.get(path), 400)


@pytest.mark.parametrize("raw_id", ["abc", "1e3", "-1", "99999999999999999999999", "٣", "0x10"])
def test_malformed_or_unknown_ids_are_404(read_client, raw_id):
    assert_error(read_client.get("/api/sessions/get", {"id": raw_id}), 404, "Session not found")
    assert_error(read_client.get("/api/export", {"id": raw_id}), 404, "Session not found")


def test_unknown_api_path_and_wrong_method_are_json(read_client):
    assert_error(read_client.get("/api/nothing"), 404, "Not found")
    assert_error(read_client.post("/api/sessions", {}, content_type="application/json"), 405)


def test_accept_header_never_makes_a_406(read_client, user):
    session_at(user, 0)
    response = read_client.get("/api/sessions", HTTP_ACCEPT="text/html")
    assert response.status_code == 200 and response["Content-Type"] == "application/json"


# --- /api/sessions/get -----------------------------------------------------------------------------


def test_session_get_shape_and_order(read_client, user):
    session = conversation(user)
    body = read_client.get(f"/api/sessions/get?id={session.pk}").json()
    assert set(body) == {"session", "messages", "nextMessageCursor"} and body["nextMessageCursor"] is None
    assert UPSTREAM_SESSION | {"source"} <= set(body["session"])
    assert body["session"]["id"] == str(session.pk) and body["session"]["totalTokens"] == 150
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "tool"]  # createdAt, then arrival
    first = body["messages"][0]
    assert set(first) >= UPSTREAM_MESSAGE
    assert first["parts"] == [
        {"type": "text", "content": "Why does login loop?"},
        {"type": "tool-call", "content": {"name": "read", "args": {"path": "a.py"}}},
        {"type": "text", "content": {"text": "See a.py"}},
    ]
    assert first["createdAt"] == ms(T0) and isinstance(first["id"], str)


def test_session_get_pages_huge_sessions(read_client, user, monkeypatch):
    session = session_at(user, 0)
    made = [MessageFactory(session=session, created_at=T0 + timedelta(seconds=i)).pk for i in range(7)]
    monkeypatch.setattr(SessionGetApi, "max_messages", 5)
    body = read_client.get(f"/api/sessions/get?id={session.pk}&messageLimit=999").json()
    assert len(body["messages"]) == 5 and body["nextMessageCursor"]
    seen, cursor = [], None
    while True:
        query = {"id": session.pk, "messageLimit": 3, **({"messageCursor": cursor} if cursor else {})}
        body = read_client.get("/api/sessions/get", query).json()
        seen += [int(m["id"]) for m in body["messages"]]
        cursor = body["nextMessageCursor"]
        if cursor is None:
            break
    assert seen == made


# --- /api/export -----------------------------------------------------------------------------------


def test_export_json_is_upstreams_shape(read_client, user):
    session = conversation(user)
    response = read_client.get(f"/api/export?id={session.pk}")  # json is the default
    assert response["Content-Type"] == "application/json"
    body = json.loads(b"".join(response.streaming_content))
    assert body == {
        "session": {
            "id": str(session.pk),
            "externalId": session.external_id,
            "title": "Fix: the login/redirect bug",
            "model": session.model,
            "source": "claude-code",
        },
        "messages": [
            {"role": "user", "content": "Why does login loop?\nSee a.py"},  # textContent, then the new text part
            {"role": "assistant", "content": "The redirect is relative."},
            {"role": "tool", "content": "ok"},
        ],
    }


def test_export_jsonl_is_wrapped_in_json_like_upstream(read_client, user):
    session = conversation(user)
    response = read_client.get(f"/api/export?id={session.pk}&format=jsonl")
    assert response["Content-Type"] == "application/json"
    body = json.loads(b"".join(response.streaming_content))
    assert body["filename"] == "Fix--the-login-redirect-bug.jsonl"
    lines = body["content"].split("\n")
    assert [json.loads(line) for line in lines] == [
        {"role": "user", "content": "Why does login loop?\nSee a.py"},
        {"role": "assistant", "content": "The redirect is relative."},
        {"role": "tool", "content": "ok"},
    ]
    assert lines[0] == '{"role":"user","content":"Why does login loop?\\nSee a.py"}'  # JSON.stringify's form


def test_export_markdown_is_upstreams_file(read_client, user):
    session = conversation(user)
    response = read_client.get(f"/api/export?id={session.pk}&format=markdown")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/markdown")
    assert response["Content-Disposition"] == 'attachment; filename="Fix--the-login-redirect-bug.md"'
    assert response["Access-Control-Allow-Origin"] == "*"  # upstream forgot CORS here
    assert b"".join(response.streaming_content).decode() == (
        "# Fix: the login/redirect bug\n\n"
        "- **Project:** /home/dev/proj/demo-app\n"
        "- **Model:** claude-sonnet-4-20250514\n"
        "- **Tokens:** 150\n"
        "- **Cost:** $0.1235\n\n---\n\n"
        "## User\n\nWhy does login loop?\nSee a.py\n\n"
        "## Assistant\n\nThe redirect is relative.\n\n"
        "## Tool\n\nok\n\n"
    )


def test_export_content_is_the_text_content_and_the_text_parts_not_in_it(read_client, user):
    """A text part with words the textContent lacks is exported too (it used to replace the
    textContent, whose words were lost)."""
    session = session_at(user, 0)
    message = MessageFactory(session=session, role="assistant", text_content="Summary: fixed it.", created_at=T0)
    PartFactory(message=message, type="text", content="```python\nreturn redirect('/home')\n```", order=0)
    PartFactory(message=message, type="text", content="Summary: fixed it.", order=1)  # a repeat: once
    body = json.loads(b"".join(read_client.get(f"/api/export?id={session.pk}").streaming_content))
    assert body["messages"] == [
        {"role": "assistant", "content": "Summary: fixed it.\n```python\nreturn redirect('/home')\n```"}
    ]


def test_export_markdown_project_name_headings_and_file_name(read_client, user):
    """The project's name when it has no path; content can't forge a turn; a bidi override is
    dropped from the file name."""
    session = session_at(user, 0, title="report\u202etxt.exe", project_path="", project_name="demo-app")
    MessageFactory(
        session=session,
        role="user",
        text_content="Hi\n\n## Assistant\n\nI am forged.\n\n```\n## kept in code",
        created_at=T0,
    )
    response = read_client.get(f"/api/export?id={session.pk}&format=markdown")
    assert response["Content-Disposition"] == 'attachment; filename="reporttxt-exe.md"'
    text = b"".join(response.streaming_content).decode()
    assert "- **Project:** demo-app\n" in text
    assert text.startswith("# reporttxt.exe\n") and "\n## User\n" in text and "\n## Assistant" not in text
    assert "\n\\## Assistant\n\nI am forged." in text
    assert text.endswith("```\n## kept in code\n```\n\n")  # code as written, its open fence closed


def test_export_of_an_untitled_empty_session(read_client, user):
    session = session_at(user, 0, title=None, model=None, project_path=None, project_name=None, cost=None)
    response = read_client.get(f"/api/export?id={session.pk}&format=markdown")
    assert response["Content-Disposition"] == 'attachment; filename="session.md"'
    text = b"".join(response.streaming_content).decode()
    assert text.startswith("# Untitled\n\n- **Project:** N/A\n- **Model:** N/A\n- **Tokens:** 0\n- **Cost:** N/A\n")
    body = json.loads(b"".join(read_client.get(f"/api/export?id={session.pk}&format=jsonl").streaming_content))
    assert body == {"content": "", "filename": "session.jsonl"}
    body = json.loads(b"".join(read_client.get(f"/api/export?id={session.pk}").streaming_content))
    assert body["messages"] == []


# --- /api/stats ------------------------------------------------------------------------------------


def test_stats_are_workspace_totals(read_client, user, other_user):
    session_at(user, 0, model="m1", prompt_tokens=10, completion_tokens=5, cost=Decimal("0.5"), message_count=3)
    session_at(user, 1, model="m1", prompt_tokens=1, completion_tokens=1, cost=None, duration_ms=700, message_count=1)
    session_at(user, 2, model=None, source="pi", prompt_tokens=4, completion_tokens=0, cost=Decimal("0.25"))
    session_at(other_user, 0, model="m1", prompt_tokens=1000, cost=Decimal(9))
    assert read_client.get("/api/stats").json() == {
        "sessionCount": 3,
        "messageCount": 4,
        "totalTokens": 21,
        "totalCost": 0.75,
        "totalDurationMs": 700,
        "modelUsage": {
            "m1": {"tokens": 17, "cost": 0.5, "sessions": 2},
            "unknown": {"tokens": 4, "cost": 0.25, "sessions": 1},
        },
        "sourceUsage": {
            "claude-code": {"tokens": 17, "cost": 0.5, "sessions": 2},
            "pi": {"tokens": 4, "cost": 0.25, "sessions": 1},
        },
    }


def test_stats_of_an_empty_workspace(read_client):
    assert read_client.get("/api/stats").json() == {
        "sessionCount": 0,
        "messageCount": 0,
        "totalTokens": 0,
        "totalCost": 0,
        "totalDurationMs": 0,
        "modelUsage": {},
        "sourceUsage": {},
    }


# --- /api/v1 aliases -------------------------------------------------------------------------------


def test_every_endpoint_has_a_v1_alias(read_client, user):
    session = conversation(user)
    for path in ["sessions", f"sessions/get?id={session.pk}", "stats", "search?q=login"]:
        plain, versioned = read_client.get(f"/api/{path}"), read_client.get(f"/api/v1/{path}")
        assert versioned.status_code == 200 and versioned.json() == plain.json(), path
    for fmt in ("json", "jsonl", "markdown"):
        plain = read_client.get(f"/api/export?id={session.pk}&format={fmt}")
        versioned = read_client.get(f"/api/v1/export?id={session.pk}&format={fmt}")
        assert b"".join(versioned.streaming_content) == b"".join(plain.streaming_content)
    assert_error(read_client.get("/api/v1/sessions/get?id=999999"), 404, "Session not found")
    assert_error(read_client.get("/api/v1/search"), 400, "Missing query parameter 'q'")
    assert read_client.get("/api/v1/sessions/").status_code == 200  # trailing slash, no redirect
    assert read_client.get("/convex.site/api/v1/stats").status_code == 200


def test_read_requests_are_logged_per_key(read_client, user):
    from accounts.models import ApiRequestLog

    read_client.get("/api/stats")
    read_client.get("/api/v1/sessions?limit=0")
    assert list(ApiRequestLog.objects.order_by("pk").values_list("endpoint", "status_code")) == [
        ("/api/stats", 200),
        ("/api/v1/sessions", 400),
    ]


# --- schema and docs -------------------------------------------------------------------------------


def test_schema_validates_without_warnings(tmp_path):
    out = tmp_path / "schema.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(out))
    assert "/api/sessions/get:" in out.read_text()


@pytest.mark.parametrize("path", ["/api/schema", "/api/schema/", "/api/v1/schema"])
def test_schema_is_public_and_describes_both_apis(client, db, path):
    response = client.get(path, {"format": "json"})
    assert response.status_code == 200, response.content
    schema = json.loads(response.content)
    assert set(schema["paths"]) == {
        "/health", "/sync/session", "/sync/message", "/sync/batch", "/sync/sessions/list",
        "/api/sessions", "/api/sessions/get", "/api/search", "/api/context", "/api/export", "/api/stats",
        "/api/export/evals", "/api/export/jobs/{job_id}", "/api/export/jobs/{job_id}/download",
        "/api/analytics/summary", "/api/analytics/breakdown", "/api/analytics/timeseries",
    }  # fmt: skip
    assert schema["components"]["securitySchemes"]["apiKey"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "osk_…",
        "description": schema["components"]["securitySchemes"]["apiKey"]["description"],
    }
    assert schema["components"]["schemas"]["Error"]["properties"] == {
        "error": {"type": "string", "description": "What is wrong, for a person to read."}
    }
    sync = schema["paths"]["/sync/session"]["post"]
    assert sync["requestBody"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/SyncSession"}
    assert {"200", "400", "401", "403", "413"} <= set(sync["responses"])
    assert schema["paths"]["/health"]["get"].get("security") in (None, [{}])
    session_fields = schema["components"]["schemas"]["Session"]["properties"]
    assert UPSTREAM_SESSION | {"source"} <= set(session_fields)
    assert (
        set(schema["components"]["schemas"]["SearchResult"]["properties"])
        >= UPSTREAM_SEARCH_FULLTEXT | UPSTREAM_SEARCH_SEMANTIC
    )
    export = schema["paths"]["/api/export"]["get"]["responses"]["200"]["content"]
    assert set(export) == {"application/json", "text/markdown"}


def test_answers_have_exactly_the_documented_keys(client, sync_client, user):
    schema = json.loads(client.get("/api/schema?format=json").content)["components"]["schemas"]
    documented = lambda name: set(schema[name]["properties"])  # noqa: E731
    session = sync_conversation(sync_client)
    listed = sync_client.get("/api/sessions").json()
    assert set(listed) == documented("SessionList") and set(listed["sessions"][0]) == documented("Session")
    detail = sync_client.get(f"/api/sessions/get?id={session.pk}").json()
    assert set(detail) == documented("SessionDetail") and set(detail["messages"][0]) == documented("Message")
    found = sync_client.get("/api/search?q=ECONNREFUSED").json()
    assert set(found) == documented("Search") and set(found["results"][0]) == documented("SearchResult")
    stats = sync_client.get("/api/stats").json()
    assert set(stats) == documented("Stats") and set(stats["modelUsage"]["unknown"]) == documented("Usage")


@pytest.mark.parametrize("path", ["/api/docs/", "/api/docs", "/api/v1/docs/"])
def test_docs_page_is_public_and_fully_local(client, db, path):
    response = client.get(path)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    html = response.content.decode()
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert len(assets) >= 3  # css, bundle, preset (+ favicon)
    for asset in assets:
        assert asset.startswith("/static/drf_spectacular_sidecar/"), asset
        assert finders.find(asset.removeprefix("/static/")), f"{asset} is not in the static files"
    assert not re.search(r"https?://|//cdn", html)
    assert '"/api/schema"' in html


def test_api_keys_page_links_the_docs(client, user):
    client.force_login(user)
    assert 'href="/api/docs"' in client.get("/settings/api-keys/").content.decode()
