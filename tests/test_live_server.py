"""The sync API over real HTTP to gunicorn: plugin URL variants and concurrent writers."""

import threading

import pytest
from django.db import connection

from sessions_app.models import Message, Part, Session

from .live import request, start_gunicorn, stop

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture(scope="module")
def live(django_db_setup, django_db_blocker):
    """One gunicorn for the module, serving the test database (tests commit their data)."""
    with django_db_blocker.unblock():
        proc, port = start_gunicorn(connection.settings_dict)
    yield port
    stop(proc)


@pytest.fixture
def key(sync_key):
    return sync_key


@pytest.mark.parametrize("path", ["/health", "//health", "/convex.site/health"])
def test_health_variants_over_http(live, path):
    status, body = request(live, "GET", path)
    assert status == 200 and body["status"] == "ok"


@pytest.mark.parametrize("prefix", ["", "/", "/convex.site", "/convex.site/"])
def test_plugin_base_url_variants_reach_the_sync_api(live, key, prefix):
    status, body = request(live, "POST", f"{prefix}/sync/session", {"externalId": f"v{prefix}"}, key=key)
    assert status == 200, body
    status, body = request(live, "GET", f"{prefix}/sync/sessions/list", key=key)
    assert status == 200 and f"v{prefix}" in body["sessionIds"]


def test_errors_over_http_are_json(live, key):
    assert request(live, "POST", "/sync/session", b"{oops", key=key) == (
        400,
        {"error": "Malformed JSON body: Expecting property name enclosed in double quotes at line 1 column 2"},
    )
    assert request(live, "POST", "/sync/session", {"externalId": "x"}) == (
        401,
        {"error": "Missing Authorization header"},
    )
    status, body = request(live, "GET", "/api/nothing", key=key)
    assert (status, body) == (404, {"error": "Not found"})


def test_concurrent_clients_store_each_row_once(live, key):
    """N clients send the same session and the same messages at the same moment."""
    clients, messages = 8, 40
    batch = {
        "sessions": [{"externalId": "race", "title": "Race", "promptTokens": 10}],
        "messages": [
            {"sessionExternalId": "race", "externalId": f"m{i}", "role": "user", "textContent": f"text {i}",
             "parts": [{"type": "text", "content": f"text {i}"}, {"type": "tool-call", "content": {"toolName": "Bash"}}]}
            for i in range(messages)
        ],
    }  # fmt: skip
    barrier = threading.Barrier(clients)
    results = []

    def send(n):
        barrier.wait()
        if n % 2:
            results.append(request(live, "POST", "/sync/batch", batch, key=key))
        else:  # the other half send one message at a time, in a different order
            for item in reversed(batch["messages"]):
                results.append(request(live, "POST", "/sync/message", item, key=key))
            results.append(request(live, "POST", "/sync/session", batch["sessions"][0], key=key))

    threads = [threading.Thread(target=send, args=(n,)) for n in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert all(status == 200 for status, _ in results), [r for r in results if r[0] != 200][:3]
    session = Session.objects.get()
    assert session.external_id == "race" and session.title == "Race" and session.prompt_tokens == 10
    assert Message.objects.count() == messages
    assert session.message_count == messages
    assert Part.objects.count() == 2 * messages


def raw_exchange(port: int, data: bytes) -> tuple[int, dict, bytes]:
    """Send raw bytes, read the whole answer: (status, headers, body)."""
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, body


@pytest.mark.parametrize(
    "data, status, error",
    [
        # gunicorn's --limit-request-line (4094 bytes)
        (b"GET /api/sessions?q=" + b"x" * 5000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414, "URI Too Long: Request Line"),
        # --limit-request-fields (100 headers)
        (b"GET /health HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(150)) + b"\r\n",
         431, "Request Header Fields Too Large: "),
        # --limit-request-field_size (8190 bytes)
        (b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"x" * 9000 + b"\r\n\r\n", 431,
         "Request Header Fields Too Large: "),
        (b"NOT A REQUEST\r\n\r\n", 400, "Bad Request: "),
    ],
)  # fmt: skip
def test_gunicorn_s_own_errors_are_json(live, data, status, error):
    """Errors gunicorn answers before Django sees the request (opensync.gunicorn_worker)."""
    import json

    found, headers, body = raw_exchange(live, data)
    assert found == status and headers["content-type"] == "application/json"
    assert json.loads(body)["error"].startswith(error)
