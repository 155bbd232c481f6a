"""The plugin-facing sync API: auth, scopes, isolation, leniency, upsert rules, bad input."""

import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.test import override_settings

from accounts.models import ApiRequestLog, Membership
from accounts.services import api_key_create, api_key_revoke, membership_remove
from accounts.tests.factories import UserFactory, team_with
from sessions_app.models import Message, Part, Session

pytestmark = pytest.mark.django_db


def post(client, path, body, **extra):
    data = body if isinstance(body, str | bytes) else json.dumps(body)
    return client.post(path, data=data, content_type="application/json", **extra)


def only_session(**filters) -> Session:
    return Session.objects.get(**filters)


# --- routes ---------------------------------------------------------------------------------


# "//sync/..." (a base URL with a trailing slash) is covered over real HTTP in
# tests/test_live_server.py: Django's test client reads "//x" as a host name.
@pytest.mark.parametrize("path", ["/health", "/convex.site/health", "/health/"])
def test_health_needs_no_auth_and_answers_json(client, path):
    response = client.get(path)
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok" and isinstance(body["timestamp"], int)
    assert response["Access-Control-Allow-Origin"] == "*"


@pytest.mark.parametrize("path", ["/sync/session", "/convex.site/sync/session", "/convex.site//sync/session"])
def test_sync_paths_accept_plugin_base_url_variants_without_redirect(sync_client, path):
    response = post(sync_client, path, {"externalId": "s-variant"})
    assert response.status_code == 200, response.content
    assert response.json()["ok"] is True
    assert Session.objects.filter(external_id="s-variant").count() == 1


# opencode-sync's `login` rejects "/convex.site" (it wants ".convex.site" in the URL): a base URL
# whose last segment ends in ".convex.site" satisfies every upstream plugin's `login`.
@pytest.mark.parametrize(
    "prefix", ["/opensync.convex.site", "/my-team.opensync.convex.site", "/.convex.site", "/opensync.convex.site/"]
)
def test_a_base_url_ending_in_dot_convex_site_reaches_the_api(sync_client, prefix):
    assert sync_client.get(f"{prefix}/health").status_code == 200
    response = post(sync_client, f"{prefix}/sync/session", {"externalId": "s-dot-convex"})
    assert response.status_code == 200, response.content
    assert Session.objects.filter(external_id="s-dot-convex").count() == 1
    assert sync_client.get(f"{prefix}/sync/sessions/list").json()["sessionIds"] == ["s-dot-convex"]


@pytest.mark.parametrize("path", ["/opensync.convex.site.evil/health", "/a/opensync.convex.site/health", "/x/health"])
def test_other_prefixes_are_not_the_api(client, path):
    assert client.get(path).status_code == 404


def test_trailing_slash_is_not_redirected(sync_client):
    response = post(sync_client, "/sync/session/", {"externalId": "s-slash"})
    assert response.status_code == 200
    assert Session.objects.filter(external_id="s-slash").exists()


def test_unknown_api_path_is_json_404(sync_client):
    response = sync_client.get("/sync/nothing")
    assert response.status_code == 404
    assert response.json() == {"error": "Not found"}


def test_options_preflight_gets_cors_headers(client):
    response = client.options("/sync/batch")
    assert response.status_code == 204
    assert "Authorization" in response["Access-Control-Allow-Headers"]


# --- auth and scopes ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (None, "Missing Authorization header"),
        ("Basic abc", "Invalid API key format"),
        ("Bearer xyz", "Invalid API key format"),
        ("Bearer osk_doesnotexist00000000000000000000000", "Invalid API key"),
    ],
)
def test_bad_credentials_get_401_json(client, db, header, message):
    extra = {"HTTP_AUTHORIZATION": header} if header else {}
    for method, path in (("post", "/sync/session"), ("post", "/sync/batch"), ("get", "/sync/sessions/list")):
        response = post(client, path, {"externalId": "x"}, **extra) if method == "post" else client.get(path, **extra)
        assert response.status_code == 401, path
        assert response.json() == {"error": message}
    assert not Session.objects.exists()


def test_revoked_key_gets_401(client, user, personal_workspace):
    key, raw = api_key_create(user=user, workspace=personal_workspace, name="k")
    api_key_revoke(actor=user, api_key=key)
    response = post(client, "/sync/session", {"externalId": "x"}, HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert response.status_code == 401
    assert response.json() == {"error": "API key has been revoked"}


def test_deactivated_user_key_gets_401(client, user, sync_key):
    user.is_active = False
    user.save()
    response = post(client, "/sync/session", {"externalId": "x"}, HTTP_AUTHORIZATION=f"Bearer {sync_key}")
    assert response.status_code == 401


def test_key_stops_working_when_member_leaves_workspace(client, user, other_user):
    team = team_with(other_user, member=user)
    _, raw = api_key_create(user=user, workspace=team, name="team key")
    auth = {"HTTP_AUTHORIZATION": f"Bearer {raw}"}
    assert post(client, "/sync/session", {"externalId": "before"}, **auth).status_code == 200
    membership_remove(actor=other_user, membership=Membership.objects.get(user=user, workspace=team))
    assert post(client, "/sync/session", {"externalId": "after"}, **auth).status_code == 401


def test_read_scope_cannot_write_but_can_list(client, user, personal_workspace):
    _, raw = api_key_create(user=user, workspace=personal_workspace, name="reader", scope="read")
    auth = {"HTTP_AUTHORIZATION": f"Bearer {raw}"}
    for path, body in (
        ("/sync/session", {"externalId": "x"}),
        ("/sync/message", {"sessionExternalId": "x", "externalId": "m", "role": "user"}),
        ("/sync/batch", {"sessions": [{"externalId": "x"}]}),
    ):
        response = post(client, path, body, **auth)
        assert response.status_code == 403
        assert "read-only" in response.json()["error"]
    assert not Session.objects.exists()
    assert client.get("/sync/sessions/list", **auth).json() == {"sessionIds": []}


def test_last_used_and_request_log_recorded_per_key(sync_client, user):
    post(sync_client, "/sync/session", {"externalId": "s1"})
    post(sync_client, "/sync/message", {"sessionExternalId": "s1", "externalId": "m1", "role": "user"})
    post(sync_client, "/sync/message", {"sessionExternalId": "s1"})
    logs = list(
        ApiRequestLog.objects.filter(user=user).order_by("created_at", "id").values_list("endpoint", "status_code")
    )
    assert logs == [("/sync/session", 200), ("/sync/message", 200), ("/sync/message", 400)]
    assert user.api_keys.get().last_used_at is not None


# --- isolation ------------------------------------------------------------------------------


def test_keys_only_see_and_touch_their_own_workspace(client, user, other_user):
    team_a = team_with(user, name="A")
    team_b = team_with(other_user, name="B")
    _, key_a = api_key_create(user=user, workspace=team_a, name="a")
    _, key_b = api_key_create(user=other_user, workspace=team_b, name="b")
    post(client, "/sync/session", {"externalId": "shared-id", "title": "B's"}, HTTP_AUTHORIZATION=f"Bearer {key_b}")
    response = post(
        client, "/sync/session", {"externalId": "shared-id", "title": "A's"}, HTTP_AUTHORIZATION=f"Bearer {key_a}"
    )
    assert response.status_code == 200
    assert Session.objects.get(workspace=team_b).title == "B's"
    assert Session.objects.get(workspace=team_a).title == "A's"
    listing = client.get("/sync/sessions/list", HTTP_AUTHORIZATION=f"Bearer {key_a}").json()
    assert listing == {"sessionIds": ["shared-id"]}
    assert Session.objects.get(workspace=team_a).owner == user


def test_member_cannot_overwrite_another_members_session(client, user, other_user):
    team = team_with(user, member=other_user)
    _, mine = api_key_create(user=user, workspace=team, name="mine")
    _, theirs = api_key_create(user=other_user, workspace=team, name="theirs")
    post(
        client,
        "/sync/session",
        {"externalId": "s", "title": "mine", "promptTokens": 5},
        HTTP_AUTHORIZATION=f"Bearer {mine}",
    )
    post(
        client,
        "/sync/message",
        {"sessionExternalId": "s", "externalId": "m", "role": "user", "textContent": "orig"},
        HTTP_AUTHORIZATION=f"Bearer {mine}",
    )
    post(
        client,
        "/sync/session",
        {"externalId": "s", "title": "hijack", "promptTokens": 99},
        HTTP_AUTHORIZATION=f"Bearer {theirs}",
    )
    post(
        client,
        "/sync/message",
        {"sessionExternalId": "s", "externalId": "m", "role": "user", "textContent": "hijack"},
        HTTP_AUTHORIZATION=f"Bearer {theirs}",
    )
    own = Session.objects.get(workspace=team, owner=user)
    assert (own.title, own.prompt_tokens, own.message_count) == ("mine", 5, 1)
    assert own.messages.get().text_content == "orig"
    assert Session.objects.get(workspace=team, owner=other_user).title == "hijack"


# --- leniency -------------------------------------------------------------------------------


def test_session_leniency(sync_client):
    body = {
        "sessionId": "legacy-1",  # alias of externalId
        "title": None,  # null = absent
        "inputTokens": 120.0,  # legacy names, floats
        "outputTokens": 30,
        "cost": 1,
        "messageCount": 99,  # client count ignored
        "toolCallCount": 3,
        "totalTokens": 12345,  # recomputed
        "whatever": {"nested": True},  # unknown keys ignored
        "source": "cursor",
    }
    response = post(sync_client, "/sync/session", body)
    assert response.status_code == 200, response.content
    session = only_session(external_id="legacy-1")
    assert (session.prompt_tokens, session.completion_tokens, session.total_tokens) == (120, 30, 150)
    assert session.message_count == 0
    assert session.source == "cursor-sync"
    assert session.cost == Decimal("1")
    assert session.title is None
    assert response.json()["sessionId"] == str(session.pk)


def test_source_defaults_to_opencode_and_cursor_is_normalised_on_every_write(sync_client):
    post(sync_client, "/sync/session", {"externalId": "a"})
    assert only_session(external_id="a").source == "opencode"
    post(sync_client, "/sync/session", {"externalId": "a", "source": "cursor"})
    assert only_session(external_id="a").source == "cursor-sync"
    post(sync_client, "/sync/session", {"externalId": "a"})  # absent source keeps the stored one
    assert only_session(external_id="a").source == "cursor-sync"


def test_message_leniency_timestamp_and_created_at_in_batch(sync_client):
    post(
        sync_client,
        "/sync/message",
        {
            "sessionExternalId": "s",
            "externalId": "m1",
            "role": "tool",
            "timestamp": 1768990000000,
            "textContent": "x",
            "extra": 1,
        },
    )
    response = post(
        sync_client,
        "/sync/batch",
        {
            "messages": [
                {
                    "sessionExternalId": "s",
                    "externalId": "m2",
                    "role": "user",
                    "createdAt": 1768990001000.0,
                    "model": None,
                }
            ]
        },
    )
    assert response.json() == {"ok": True, "sessions": 0, "messages": 1, "errors": []}
    m1, m2 = Message.objects.order_by("created_at")
    assert m1.created_at == datetime.fromtimestamp(1768990000, tz=UTC)
    assert m2.created_at == datetime.fromtimestamp(1768990001, tz=UTC)
    assert m1.role == "tool"


def test_batch_accepts_missing_or_empty_lists(sync_client):
    assert post(sync_client, "/sync/batch", {}).json() == {"ok": True, "sessions": 0, "messages": 0, "errors": []}
    assert post(sync_client, "/sync/batch", {"sessions": None, "messages": []}).status_code == 200


# --- upsert semantics -----------------------------------------------------------------------


def test_session_patch_rules(sync_client):
    post(
        sync_client,
        "/sync/session",
        {
            "externalId": "s",
            "title": "T",
            "model": "m1",
            "projectPath": "/p",
            "promptTokens": 100,
            "completionTokens": 10,
            "cost": 0.5,
            "durationMs": 10,
            "createdAt": 1768990000000,
        },
    )
    first_id = only_session(external_id="s").pk
    # only present fields change; 0 tokens never overwrite; cost overwrites even with 0
    post(
        sync_client,
        "/sync/session",
        {
            "externalId": "s",
            "model": "m2",
            "promptTokens": 0,
            "completionTokens": 20,
            "cost": 0,
            "createdAt": 1795464658891,
        },
    )
    session = only_session(external_id="s")
    assert session.pk == first_id
    assert (session.title, session.model, session.project_path) == ("T", "m2", "/p")
    assert (session.prompt_tokens, session.completion_tokens, session.total_tokens) == (100, 20, 120)
    assert session.cost == Decimal("0")
    assert session.duration_ms == 10
    assert session.created_at == datetime.fromtimestamp(1768990000, tz=UTC)  # createdAt only on insert
    # tokens may go down with any positive value (they are absolute totals)
    post(sync_client, "/sync/session", {"externalId": "s", "promptTokens": 50})
    assert only_session(external_id="s").prompt_tokens == 50


def test_cost_is_unknown_until_reported(sync_client):
    post(sync_client, "/sync/session", {"externalId": "droid", "promptTokens": 5})
    assert only_session(external_id="droid").cost is None


def test_cache_tokens_are_stored(sync_client):
    post(sync_client, "/sync/session", {"externalId": "c", "cacheReadTokens": 500, "cacheCreationTokens": 40})
    post(sync_client, "/sync/session", {"externalId": "c", "cacheReadTokens": 0})
    session = only_session(external_id="c")
    assert (session.cache_read_tokens, session.cache_write_tokens) == (500, 40)


def test_message_for_unknown_session_creates_it(sync_client):
    response = post(
        sync_client,
        "/sync/message",
        {
            "sessionExternalId": "new",
            "externalId": "m",
            "role": "assistant",
            "source": "claude-code",
            "model": "opus",
            "promptTokens": 900,
        },
    )
    assert response.status_code == 200
    session = only_session(external_id="new")
    assert (session.source, session.model, session.message_count, session.prompt_tokens) == (
        "claude-code",
        "opus",
        1,
        0,
    )
    assert response.json()["messageId"] == str(session.messages.get().pk)


def test_resent_message_updates_in_place_and_replaces_parts(sync_client):
    body = {
        "sessionExternalId": "s",
        "externalId": "m",
        "role": "assistant",
        "textContent": "v1",
        "promptTokens": 10,
        "parts": [
            {"type": "text", "content": "v1"},
            {"type": "tool-call", "content": {"toolName": "Edit", "args": {"a": 1}}},
        ],
    }
    post(sync_client, "/sync/message", body)
    post(sync_client, "/sync/session", {"externalId": "s", "promptTokens": 7})
    post(sync_client, "/sync/message", {**body, "textContent": "v2", "parts": [{"type": "text", "content": "v2"}]})
    session = only_session(external_id="s")
    assert session.message_count == 1
    assert session.prompt_tokens == 7  # messages never add tokens to the session
    message = session.messages.get()
    assert message.text_content == "v2"
    assert list(message.parts.values_list("type", "content", "order")) == [("text", "v2", 0)]
    # parts absent: kept; role "unknown": doesn't overwrite a known role
    post(sync_client, "/sync/message", {"sessionExternalId": "s", "externalId": "m", "role": "unknown"})
    message.refresh_from_db()
    assert message.role == "assistant" and message.text_content == "v2" and message.parts.count() == 1
    # an explicit empty list clears them
    post(sync_client, "/sync/message", {"sessionExternalId": "s", "externalId": "m", "role": "assistant", "parts": []})
    assert message.parts.count() == 0


def test_batch_replaces_parts_on_update(sync_client):
    item = {
        "sessionExternalId": "s",
        "externalId": "m",
        "role": "assistant",
        "parts": [{"type": "tool_use", "content": {"toolName": "Bash"}}],
    }
    post(sync_client, "/sync/batch", {"messages": [item]})
    post(
        sync_client,
        "/sync/batch",
        {"messages": [{**item, "parts": [{"type": "tool_use", "content": "shell: ls"}, {"type": "text"}]}]},
    )
    parts = list(Part.objects.values_list("type", "content", "order"))
    assert parts == [("tool_use", "shell: ls", 0), ("text", None, 1)]


def test_duplicates_inside_one_batch_store_one_row(sync_client):
    msg = {"sessionExternalId": "s", "externalId": "m", "role": "user", "textContent": "first"}
    response = post(
        sync_client,
        "/sync/batch",
        {
            "sessions": [{"externalId": "s", "title": "a"}, {"externalId": "s", "title": "b"}],
            "messages": [msg, {**msg, "textContent": "second"}],
        },
    )
    assert response.status_code == 200
    session = only_session(external_id="s")
    assert (session.title, session.message_count) == ("b", 1)
    assert session.messages.get().text_content == "second"


def test_messages_keep_arrival_order_without_timestamps(sync_client):
    items = [
        {"sessionExternalId": "s", "externalId": f"m{i}", "role": "user" if i % 2 else "assistant"} for i in (3, 1, 2)
    ]
    post(sync_client, "/sync/batch", {"messages": items})
    post(sync_client, "/sync/message", {"sessionExternalId": "s", "externalId": "m0", "role": "user"})
    ordered = list(
        only_session(external_id="s").messages.order_by("created_at", "order").values_list("external_id", flat=True)
    )
    assert ordered == ["m3", "m1", "m2", "m0"]


def test_hostile_text_is_stored_verbatim_except_nul(sync_client):
    text = "<script>alert(1)</script> \x00 \ud800 ok"
    raw = json.dumps(
        {
            "sessionExternalId": "s",
            "externalId": "m",
            "role": "user",
            "textContent": text,
            "parts": [{"type": "text", "content": {"t": "\u0000"}}],
        }
    )
    response = post(sync_client, "/sync/message", raw)
    assert response.status_code == 200, response.content
    message = Message.objects.get()
    assert message.text_content == "<script>alert(1)</script> \ufffd \ufffd ok"
    assert message.parts.get().content == {"t": "\ufffd"}


# --- bad input ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body", "needle"),
    [
        ("/sync/session", "{not json", "Malformed JSON"),
        ("/sync/session", "[1, 2]", "must be a JSON object"),
        ("/sync/session", b'{"externalId": "\xff"}', "UTF-8"),
        ("/sync/session", {}, "Missing externalId or sessionId"),
        ("/sync/session", {"externalId": ""}, "Missing externalId"),
        ("/sync/session", {"externalId": "s", "promptTokens": "12"}, "promptTokens must be a number"),
        ("/sync/session", {"externalId": "s", "promptTokens": -1}, "promptTokens must not be negative"),
        ("/sync/session", {"externalId": "s", "promptTokens": True}, "promptTokens must be a number"),
        ("/sync/session", {"externalId": "s", "title": 5}, "title must be a string"),
        ("/sync/session", {"externalId": "s", "createdAt": "2026-01-01"}, "createdAt must be a number"),
        ("/sync/session", {"externalId": "s", "createdAt": 1}, "epoch milliseconds"),
        ("/sync/session", {"externalId": "x" * 300}, "too long"),
        ("/sync/session", {"externalId": "s", "promptTokens": 10**13}, "promptTokens is too large"),
        ("/sync/session", {"externalId": "s", "cacheWrite1hTokens": 2e12}, "cacheWrite1hTokens is too large"),
        ("/sync/session", {"externalId": "s", "durationMs": 10**12}, "durationMs is too large"),
        (
            "/sync/session",
            {
                "externalId": "s",
                "modelUsage": [{"model": "a", "inputTokens": 6 * 10**11}, {"model": "b", "inputTokens": 6 * 10**11}],
            },  # fmt: skip
            "add up to more than",
        ),
        ("/sync/message", {"sessionExternalId": "s", "externalId": "m", "reasoningTokens": 1e15}, "is too large"),
        ("/sync/message", {"externalId": "m", "role": "user"}, "Missing sessionExternalId"),
        ("/sync/message", {"sessionExternalId": "s", "role": "user"}, "Missing externalId"),
        ("/sync/message", {"sessionExternalId": "s", "externalId": "m", "role": "robot"}, "role must be one of"),
        ("/sync/message", {"sessionExternalId": "s", "externalId": "m", "parts": "x"}, "parts must be a list"),
        ("/sync/message", {"sessionExternalId": "s", "externalId": "m", "parts": [{"content": 1}]}, "parts[0].type"),
        ("/sync/batch", {"sessions": {"externalId": "s"}}, "sessions must be a list"),
        ("/sync/batch", "null", "must be a JSON object"),
    ],
)
def test_bad_input_gets_400_naming_the_problem(sync_client, path, body, needle):
    post(sync_client, "/sync/session", {"externalId": "keep", "title": "stored"})
    response = post(sync_client, path, body)
    assert response.status_code == 400, response.content
    assert needle in response.json()["error"]
    # nothing already stored changed, nothing new was stored
    assert list(Session.objects.values_list("external_id", "title")) == [("keep", "stored")]
    assert not Message.objects.exists()


def test_batch_reports_bad_items_and_stores_good_ones(sync_client):
    response = post(
        sync_client,
        "/sync/batch",
        {
            "sessions": [{"externalId": "ok", "title": "good"}, {"title": "no id"}, "nope"],
            "messages": [
                {"sessionExternalId": "ok", "externalId": "m1", "role": "user"},
                {"sessionExternalId": "ok", "externalId": "m2", "role": "wizard"},
                {"sessionExternalId": "ok", "externalId": "m3", "role": "assistant", "promptTokens": "many"},
            ],
        },
    )
    assert response.status_code == 200
    body = response.json()
    assert (body["sessions"], body["messages"]) == (1, 1)
    assert body["errors"] == [
        "sessions[1]: Missing externalId or sessionId",
        "sessions[2]: A session must be a JSON object, got str",
        "messages[1]: role must be one of user, assistant, system, tool, unknown (got 'wizard')",
        "messages[2]: promptTokens must be a number, got str",
    ]
    session = only_session(external_id="ok")
    assert (session.title, session.message_count) == ("good", 1)


@override_settings(OPENSYNC_MAX_REQUEST_BYTES=2048)
def test_oversized_body_gets_413_before_it_is_read(sync_client):
    post(sync_client, "/sync/session", {"externalId": "keep", "title": "stored"})
    big = {"externalId": "keep", "title": "x" * 5000}
    response = post(sync_client, "/sync/session", big)
    assert response.status_code == 413
    assert "limit is 2048 bytes" in response.json()["error"]
    assert only_session(external_id="keep").title == "stored"


def test_sessions_list_returns_only_the_key_owners_sessions(sync_client, user, personal_workspace):
    other = UserFactory()
    Session.objects.create(workspace=personal_workspace, owner=other, external_id="not-mine")
    post(sync_client, "/sync/session", {"externalId": "mine"})
    assert sync_client.get("/sync/sessions/list").json() == {"sessionIds": ["mine"]}


def _xmin(message_id) -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT xmin::text::bigint FROM sessions_app_message WHERE id = %s", [message_id])
        return cursor.fetchone()[0]


def test_identical_resend_rewrites_nothing_but_a_change_applies(sync_client):
    body = {
        "sessionExternalId": "s",
        "externalId": "m",
        "role": "assistant",
        "textContent": "v1",
        "parts": [{"type": "text", "content": "v1"}],
    }
    first = post(sync_client, "/sync/message", body).json()["messageId"]
    part_id = Part.objects.get().pk
    version = _xmin(first)
    again = post(sync_client, "/sync/message", body).json()["messageId"]
    assert again == first
    assert _xmin(first) == version  # no new row version
    assert Part.objects.get().pk == part_id  # parts not rewritten
    response = post(sync_client, "/sync/batch", {"messages": [body, {**body, "externalId": "m2"}]})
    assert response.json()["messages"] == 2 and Message.objects.count() == 2
    post(sync_client, "/sync/message", {**body, "parts": [{"type": "text", "content": "v2"}]})
    assert list(Part.objects.filter(message_id=first).values_list("content", flat=True)) == ["v2"]
    assert only_session(external_id="s").message_count == 2
