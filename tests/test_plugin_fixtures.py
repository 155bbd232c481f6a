"""Replay the requests captured from the real plugins and check what is stored, and what the
server's cost engine makes of each plugin's usage."""

import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.conf import settings

from sessions_app.models import Session

# Captured from the real plugins (copied into the repository: the suite reads nothing outside it).
FIXTURES = settings.BASE_DIR / "tests" / "fixtures" / "plugin-requests"

pytestmark = pytest.mark.django_db


def replay(client, name: str, raw_key: str) -> list[dict]:
    """Send every captured request as the plugin did (same method, path, headers, body), with
    our key in place of the capture's; every answer must be 2xx JSON, as the plugins require."""
    answers = []
    for line in (FIXTURES / name).read_text().splitlines():
        if not line.strip():
            continue
        request = json.loads(line)
        headers = {k.lower(): v for k, v in request["headers"].items()}
        extra = {"HTTP_USER_AGENT": headers.get("user-agent", ""), "HTTP_ACCEPT": headers.get("accept", "*/*")}
        if "authorization" in headers:
            extra["HTTP_AUTHORIZATION"] = f"Bearer {raw_key}"
        if request["method"] == "GET":
            response = client.get(request["path"], **extra)
        else:
            response = client.generic(
                request["method"],
                request["path"],
                data=json.dumps(request["body"]),
                content_type=headers.get("content-type", "application/json"),
                **extra,
            )
        assert 200 <= response.status_code < 300, (request["path"], response.content)
        assert response["Content-Type"].startswith("application/json")
        answers.append({"path": request["path"], "json": response.json()})
    return answers


def messages(session: Session) -> list[tuple]:
    return list(session.messages.order_by("created_at", "order").values_list("external_id", "role", "text_content"))


def parts(session: Session, external_id: str) -> list[tuple]:
    return list(session.messages.get(external_id=external_id).parts.order_by("order").values_list("type", "content"))


def test_fixture_files_exist():
    assert sorted(p.name for p in FIXTURES.glob("*.jsonl")) == [
        "claude-code-sync.jsonl",
        "droid-sync.jsonl",
        "opencode-sync.jsonl",
        "pi-client.jsonl",
    ]


def test_claude_code_sync(client, sync_key, user):
    answers = replay(client, "claude-code-sync.jsonl", sync_key)
    assert all(a["json"]["status"] == "ok" for a in answers if a["path"] == "/health")
    assert Session.objects.filter(owner=user).count() == 2
    probe = Session.objects.get(external_id="test-1795464601480")
    assert (probe.source, probe.title, probe.project_name, probe.duration_ms) == (
        "claude-code",
        "Connection Test",
        "synctest",
        1,
    )

    session = Session.objects.get(external_id="0f3c9a52-7b1e-4d2a-9c61-2b8e5d4a1f00")
    assert session.source == "claude-code"
    assert session.title == "add-health-endpoint"  # SessionEnd sends the slug again
    assert (session.project_path, session.project_name) == ("/home/dev/proj/demo-app", "demo-app")
    assert session.model == "claude-sonnet-4-20250514"
    assert (session.prompt_tokens, session.completion_tokens, session.total_tokens) == (12560, 185, 12745)
    # The upstream plugin folds cache reads and writes into promptTokens: the server can't split
    # them, so it shows the plugin's own figure and says why.
    assert (session.reported_cost, session.computed_cost) == (Decimal("0.01098"), None)
    assert (session.cost, session.cost_source) == (Decimal("0.01098"), "reported")
    assert "cached tokens inside its prompt tokens" in session.cost_note
    assert (probe.cost, probe.cost_source) == (None, "none")  # no tokens, no cost: unknown, not $0
    assert session.duration_ms == 9500
    assert session.end_reason == "prompt_input_exit"
    assert session.message_count == 4  # counted by the server; the client said 3, then 2
    assert messages(session) == [
        ("0f3c9a52-7b1e-4d2a-9c61-2b8e5d4a1f00-user-1795464601883", "user", "Add a /health endpoint to server.py"),
        ("toolu_01XYZ", "assistant", None),
        ("11111111-0000-4000-8000-000000000002", "assistant", "I'll add a /health endpoint to server.py."),
        ("11111111-0000-4000-8000-000000000005", "assistant", 'Done. GET /health now returns {"ok": true}.'),
    ]
    assert parts(session, "toolu_01XYZ") == [
        (
            "tool-call",
            {
                "toolName": "Edit",
                "args": {"file_path": "/home/dev/proj/demo-app/server.py", "old_string": "a", "new_string": "b"},
            },
        )
    ]
    assert session.messages.get(external_id="11111111-0000-4000-8000-000000000005").model == "claude-sonnet-4-20250514"


def test_droid_sync(client, sync_key):
    answers = replay(client, "droid-sync.jsonl", sync_key)
    assert answers[1]["json"] == {"ok": True, "sessions": 0, "messages": 4, "errors": []}
    session = Session.objects.get(external_id="a1b2c3d4-0000-4000-8000-00000000d001")
    assert (session.source, session.title, session.model) == (
        "factory-droid",
        "Add pagination to /users",
        "claude-opus-4-5-20251101",
    )
    assert (session.prompt_tokens, session.completion_tokens, session.duration_ms) == (4200, 350, 8200)
    # droid never reports a cost: the server prices its tokens (claude-opus-4-5: $5 / $25 per M)
    assert session.reported_cost is None
    assert (session.cost, session.cost_source) == (Decimal("0.02975"), "computed")
    assert session.cost == Decimal(4200 * 5 + 350 * 25) / 1_000_000
    assert session.message_count == 4
    assert [m[0] for m in messages(session)] == ["m-0001", "m-0002", "m-0002-tool-toolu_D1", "m-0004"]
    assert parts(session, "m-0002-tool-toolu_D1") == [
        ("tool_use", {"toolName": "Edit", "args": {"file_path": "/home/dev/proj/api/users.py"}})
    ]


def test_opencode_sync(client, sync_key):
    answers = replay(client, "opencode-sync.jsonl", sync_key)
    listing = next(a["json"] for a in answers if a["path"] == "/sync/sessions/list")
    assert listing == {"sessionIds": ["test-1795464656135"]}
    probe = Session.objects.get(external_id="test-1795464656135")
    assert (probe.source, probe.provider, probe.model, probe.total_tokens, probe.cost) == (
        "opencode",
        "opencode-sync-cli",
        "test",
        0,
        Decimal("0"),
    )
    assert probe.cost_source == "reported"  # $0 for no tokens is a true figure

    session = Session.objects.get(external_id="ses_abc123")
    assert (session.source, session.title, session.provider) == ("opencode", "Fix login bug", "anthropic")
    assert (session.prompt_tokens, session.completion_tokens, session.reported_cost) == (1000, 200, Decimal("0.0123"))
    # computed from the tokens at claude-sonnet-4's $3 / $15 per M; the plugin's figure is kept
    assert (session.cost, session.cost_source) == (Decimal("0.006"), "computed")
    assert session.project_path == "/home/dev/proj/demo"
    assert session.message_count == 2
    # sent in readdir order, no timestamps: stored in arrival order
    assert messages(session) == [
        ("msg_a1", "assistant", "I fixed the login bug by checking the password hash."),
        ("msg_u1", "user", "Fix the login bug in auth.py"),
    ]
    first = session.messages.get(external_id="msg_a1")
    assert (first.prompt_tokens, first.completion_tokens, first.duration_ms) == (1000, 200, 8000)

    live = Session.objects.get(external_id="ses_live1")
    assert (live.title, live.total_tokens, live.message_count) == ("Live session", 0, 3)
    assert [m[0] for m in messages(live)] == ["msg_live_u1", "msg_live_a1", "msg_live_x"]


def test_pi_client(client, sync_key):
    answers = replay(client, "pi-client.jsonl", sync_key)
    batch = next(a["json"] for a in answers if a["path"] == "/sync/batch")
    assert batch == {"ok": True, "sessions": 0, "messages": 1, "errors": []}  # upstream rejects createdAt here
    session = Session.objects.get(external_id="pi-7c1d2e3f")
    assert session.source == "pi"
    assert session.title == "[Fork::pi-7c1d2] Refactor config loader"
    assert (session.model, session.provider) == ("Claude Sonnet 4.5", "anthropic")
    assert (session.prompt_tokens, session.completion_tokens, session.total_tokens) == (900, 120, 1020)
    assert (session.cost, session.duration_ms, session.message_count) == (Decimal("0.0045"), 4137, 2)
    # pi names the model by its display name; the price book knows it as claude-sonnet-4-5
    assert (session.cost_source, session.computed_cost, session.reported_cost) == (
        "computed",
        Decimal("0.0045"),
        Decimal("0.0045"),
    )
    assert session.price_model.startswith("claude-sonnet-4-5")
    user_msg = session.messages.get(external_id="pi-7c1d2e3f-user-1")
    assert user_msg.created_at == datetime.fromtimestamp(1795464658.891, tz=UTC)
    assert [p[0] for p in parts(session, "pi-7c1d2e3f-assistant-2")] == ["text", "thinking", "tool-call", "tool-result"]
    assert parts(session, "pi-7c1d2e3f-assistant-2")[2] == (
        "tool-call",
        {"toolName": "read", "args": {"path": "src/config.ts"}},
    )
    assert session.messages.get(external_id="pi-7c1d2e3f-assistant-2").model == "claude-sonnet-4-5"

    fork = Session.objects.get(external_id="pi-fork-99")  # auto-created by its first message
    assert (fork.source, fork.message_count) == ("opencode", 1)
    assert fork.messages.get().created_at == datetime.fromtimestamp(1768990001, tz=UTC)


@pytest.mark.parametrize(
    "name", ["claude-code-sync.jsonl", "droid-sync.jsonl", "opencode-sync.jsonl", "pi-client.jsonl"]
)
def test_replaying_twice_changes_nothing(client, sync_key, name):
    replay(client, name, sync_key)
    first = snapshot()
    replay(client, name, sync_key)
    assert snapshot() == first


def snapshot():
    rows = []
    for s in Session.objects.order_by("external_id"):
        rows.append((s.external_id, s.title, s.source, s.total_tokens, s.cost, s.message_count, s.created_at))
        for m in s.messages.order_by("external_id"):
            rows.append(
                (
                    m.external_id,
                    m.role,
                    m.text_content,
                    m.created_at,
                    list(m.parts.values_list("type", "content", "order")),
                )
            )
    return rows
