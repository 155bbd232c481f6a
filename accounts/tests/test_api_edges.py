"""Bad input at the API's edges is a 4xx with `{"error": ...}`, never a 500: JSON nested too
deep on every endpoint that takes a body, text PostgreSQL can't store, Django's own request
limits, and the strict whole-number and JSON readers everything shares (opensync.inputs)."""

import json
import re

import pytest
from django.test import override_settings
from drf_spectacular.generators import SchemaGenerator

from opensync import inputs
from sessions_app import selectors
from sessions_app.models import Message, Part
from sessions_app.tests.factories import SessionFactory

pytestmark = pytest.mark.django_db


def nested(depth: int, leaf=1):
    value = leaf
    for level in range(depth):
        value = [value] if level % 2 else {"k": value}
    return value


def nested_text(depth: int) -> str:
    """JSON text `depth` levels deep (json.dumps itself can't write 1,000 levels)."""
    opening = "".join("[" if level % 2 else '{"k":' for level in reversed(range(depth)))
    return opening + "1" + "".join("]" if level % 2 else "}" for level in range(depth))


def deep_body(depth: int) -> str:
    """A body every writing endpoint would read, with JSON `depth` levels deep where each keeps
    free-form data (a part's content), so the nesting is what fails, not a missing field."""
    message = '{"sessionExternalId": "deep", "externalId": "deep-1", "role": "user", "parts": [{"type": "tool-call", '
    message += f'"content": {nested_text(depth)}}}]'
    return message + f', "messages": [{message}}}], "sessions": [], "format": "deepeval"}}'


def body_endpoints() -> list[tuple[str, str]]:
    """Every operation of the API that takes a body, from the generated schema: a new one is
    covered by the tests below without naming it."""
    schema = SchemaGenerator().get_schema(request=None, public=True)
    found = [
        (method.upper(), re.sub(r"\{[^}]+\}", "1", path))
        for path, operations in schema["paths"].items()
        for method in operations
        if method in ("post", "put", "patch")
    ]
    assert ("POST", "/sync/message") in found and ("POST", "/api/export/evals") in found
    return found


@pytest.mark.parametrize("method, path", body_endpoints())
def test_json_nested_a_thousand_levels_is_a_400_on_every_endpoint_with_a_body(sync_client, method, path):
    response = sync_client.generic(method, path, deep_body(1000), content_type="application/json")
    assert response.status_code == 400, response.content
    assert response.json() == {"error": "Malformed JSON body: JSON is nested more than 100 levels deep"}


@pytest.mark.parametrize("method, path", body_endpoints())
def test_json_just_past_the_limit_is_refused_too(sync_client, method, path):
    response = sync_client.generic(method, path, deep_body(inputs.MAX_JSON_DEPTH), content_type="application/json")
    assert response.status_code == 400 and "nested more than 100 levels" in response.json()["error"]


def test_json_at_the_limit_is_stored_and_shown(sync_client, logged_in):
    # the body's own levels (the object, parts, the part) count: the content gets the rest
    content = nested(inputs.MAX_JSON_DEPTH - 3)
    body = {"sessionExternalId": "ok", "externalId": "ok-1", "role": "tool", "parts": [
        {"type": "tool-call", "content": content}]}  # fmt: skip
    response = sync_client.post("/sync/message", json.dumps(body), content_type="application/json")
    assert response.status_code == 200, response.content
    part = Part.objects.get(message__external_id="ok-1")
    assert part.content == content
    assert logged_in.get(f"/sessions/{part.message.session_id}/").status_code == 200


def test_brackets_inside_strings_do_not_count_as_nesting(sync_client):
    text = "[" * 5000 + "{" * 5000
    body = {"sessionExternalId": "s", "externalId": "m", "role": "user", "textContent": text,
            "parts": [{"type": "text", "content": text}]}  # fmt: skip
    response = sync_client.post("/sync/message", json.dumps(body), content_type="application/json")
    assert response.status_code == 200, response.content
    assert Message.objects.get(external_id="m").text_content == text


def test_nesting_is_measured_on_the_parsed_value_without_recursion():
    assert not inputs.nested_deeper_than(nested(100))
    assert inputs.nested_deeper_than(nested(101))
    assert not inputs.nested_deeper_than([nested(99)] * 500)  # wide, not deep
    assert inputs.nested_deeper_than({"a": "]]]", "b": nested(101)})
    assert not inputs.nested_deeper_than({"a": '\\"[[[' * 200})  # brackets in strings are text
    assert not inputs.nested_deeper_than("[[[") and not inputs.nested_deeper_than(None)
    with pytest.raises(inputs.JsonTooDeep):
        inputs.loads(json.dumps(nested(101)))
    with pytest.raises(inputs.JsonTooDeep):
        inputs.loads(json.dumps(nested(900)))  # the parser takes it; a recursive reader would not
    with pytest.raises(inputs.JsonTooDeep):
        inputs.loads("[" * 100_000)  # malformed and deep: never a RecursionError


def test_a_tool_call_whose_arguments_are_deep_json_text_is_shown_as_text(sync_client, logged_in):
    """JSON inside a string is one level to the parser; the viewer parses it to pretty-print
    and must not recurse through it."""
    args = "[" * 5000 + "]" * 5000
    body = {"sessionExternalId": "s", "externalId": "m", "role": "assistant",
            "parts": [{"type": "tool-call", "content": {"toolName": "Bash", "args": args}}]}  # fmt: skip
    assert sync_client.post("/sync/message", json.dumps(body), content_type="application/json").status_code == 200
    session_id = Message.objects.get(external_id="m").session_id
    response = logged_in.get(f"/sessions/{session_id}/")
    assert response.status_code == 200 and "[[[[" in response.content.decode()


def test_a_deep_cursor_is_a_400(sync_client):
    import base64

    cursor = base64.urlsafe_b64encode(f"[{nested_text(1000)}, 1]".encode()).decode()
    assert selectors.decode_cursor(cursor) is None
    response = sync_client.get("/api/sessions", {"cursor": cursor})
    assert response.status_code == 400 and "cursor" in response.json()["error"]


# --- text PostgreSQL can't store --------------------------------------------------------------------


@pytest.fixture
def eval_ready(user):
    return SessionFactory(owner=user, eval_ready=True, eval_tags=["bug-fix"])


@pytest.mark.parametrize("tags", ["bug\x00fix", "a,\x00"])
def test_nul_in_export_tags_is_a_400(sync_client, eval_ready, tags):
    response = sync_client.get("/api/export/evals", {"tags": tags})
    assert response.status_code == 400
    assert response.json() == {"error": "tags: A tag can't be stored: Text must not contain a NUL character (\\u0000)."}
    response = sync_client.post("/api/export/evals", json.dumps({"tags": [tags]}), content_type="application/json")
    assert response.status_code == 400 and "NUL" in response.json()["error"]


@pytest.mark.parametrize("field", ["model", "project", "tool"])
def test_unpaired_surrogate_in_an_export_filter_is_a_400(sync_client, eval_ready, field):
    body = f'{{"{field}": "a\\ud800"}}'  # an escape json.dumps would not write for a str
    response = sync_client.post("/api/export/evals", body, content_type="application/json")
    assert response.status_code == 400
    assert response.json() == {"error": "Text must not contain an unpaired surrogate (\\ud800-\\udfff)."}


def test_sync_replaces_nul_and_keeps_the_rest_of_the_message(sync_client):
    """The sync API keeps what it can store: a NUL becomes U+FFFD rather than losing the message."""
    body = {"sessionExternalId": "s\x00", "externalId": "m", "role": "user", "textContent": "a\x00b",
            "parts": [{"type": "text", "content": {"t\x00": "c\x00d"}}]}  # fmt: skip
    response = sync_client.post("/sync/message", json.dumps(body), content_type="application/json")
    assert response.status_code == 200, response.content
    message = Message.objects.get(external_id="m")
    assert (message.text_content, message.session.external_id) == ("a\ufffdb", "s\ufffd")
    assert message.parts.get().content == {"t\ufffd": "c\ufffdd"}


# --- Django's own request limits ----------------------------------------------------------------------


def test_too_many_query_parameters_is_a_400_not_a_500(sync_client):
    response = sync_client.get("/api/sessions?" + "&".join(f"p{i}=1" for i in range(1001)))
    assert response.status_code == 400
    assert response.json() == {
        "error": "The number of GET/POST parameters exceeded settings.DATA_UPLOAD_MAX_NUMBER_FIELDS."
    }


@override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=1024, OPENSYNC_MAX_REQUEST_BYTES=10_000)
def test_a_body_over_django_s_limit_is_a_413(sync_client):
    body = json.dumps({"externalId": "x", "title": "t" * 2000})
    for path in ("/sync/session", "/api/export/evals"):
        response = sync_client.post(path, body, content_type="application/json")
        assert response.status_code == 413, (path, response.content)
        assert response.json() == {"error": "Request body is too large; the limit is 1024 bytes"}


# --- whole numbers ------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["²", "٣", "1²", "-1", " 1", "1.0", "", "9" * 19, None])
def test_whole_number_takes_ascii_digits_only(value):
    assert inputs.whole_number(value) is None


def test_whole_number():
    assert [inputs.whole_number(v) for v in ("0", "007", "9" * 18)] == [0, 7, 10**18 - 1]


# --- the schema tells the truth ---------------------------------------------------------------------


def test_the_schema_lists_the_limits_on_every_operation_and_the_export_s_real_media_types(client):
    from opensync.api import COMMON_ERRORS

    schema = client.get("/api/schema?format=json").json()
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            assert {str(status) for status in COMMON_ERRORS} <= set(operation["responses"]), (method, path)
            assert operation["responses"]["414"]["content"]["application/json"]["schema"] == {
                "$ref": "#/components/schemas/Error"
            }
    for path in ("/api/export/evals", "/api/export/jobs/{job_id}/download"):
        files = schema["paths"][path]["get"]["responses"]["200"]["content"]
        assert files["application/json"]["schema"]["type"] == "array"  # DeepEval: JSON, not bytes
        assert files["application/x-ndjson"]["schema"] == {"type": "string", "description": "One JSON record per line."}
        assert files["application/zip"]["schema"] == {"type": "string", "format": "binary"}
