"""The spool and the sender: bounded chunks, order, deletion only after 2xx, error handling."""

import json
import threading
import time

import pytest
from claude_code_sync import config, locks, paths, sender, spool

from conftest import KEY


def message(n, text="x"):
    return {"sessionExternalId": "s1", "externalId": f"m{n}", "role": "user", "textContent": text}


def queue(*chunks):
    paths.ensure_data_dir()
    return spool.write_chunks(list(chunks))


def cfg(url, key=KEY):
    return config.Config(url, key, "test", "test", True, True, False, True)


def test_chunks_are_bounded_by_count_and_size():
    small = spool.make_chunks([{"externalId": "s1"}], [message(n) for n in range(450)])
    assert [len(c["sessions"]) + len(c["messages"]) for c in small] == [200, 200, 51]
    assert small[0]["sessions"] == [{"externalId": "s1"}]  # the session goes first
    big = spool.make_chunks([], [message(n, "y" * 400_000) for n in range(5)] + [message(9, "z" * 2_000_000)])
    assert [len(c["messages"]) for c in big] == [2, 2, 1, 1]
    assert all(len(json.dumps(c)) <= spool.MAX_BYTES for c in big[:3])


def test_flush_sends_in_order_and_deletes_after_2xx(home, server):
    queue({"sessions": [{"externalId": "s1"}], "messages": [message(1)]}, {"sessions": [], "messages": [message(2)]})
    queue({"sessions": [], "messages": [message(3)]})
    result = sender.flush(cfg(server.url))
    assert result.ok and (result.chunks, result.records) == (3, 4)
    assert [m["externalId"] for m in server.messages()] == ["m1", "m2", "m3"]
    assert spool.chunk_files() == []
    status = sender.load_status()
    assert status["syncedSessions"] == ["s1"] and status["lastSyncAt"] and status["lastError"] is None


def test_consecutive_chunks_go_in_one_request_with_each_session_folded(home, server):
    """A backfill queues one chunk per session; they are sent together while they fit, and one
    session's records from several chunks become one, as the server would have applied them."""
    first = {"externalId": "s1", "title": "First prompt", "promptTokens": 5, "cost": 0.01}
    later = {"externalId": "s1", "promptTokens": 0, "completionTokens": 7, "cost": 0.02, "endReason": "other"}
    queue({"sessions": [first], "messages": [message(1)]}, {"sessions": [{"externalId": "s2"}], "messages": []})
    queue({"sessions": [later], "messages": [message(2)]})
    queue(*({"sessions": [], "messages": [message(n) for n in range(10 + 100 * k, 110 + 100 * k)]} for k in range(3)))
    result = sender.flush(cfg(server.url))
    assert result.ok and result.chunks == 6 and spool.chunk_files() == []
    batches = server.batches()
    # 5 records (4 once s1 is folded) + 100 fit in 200; the next two chunks of 100 make the second
    assert [len(b["sessions"]) + len(b["messages"]) for b in batches] == [104, 200]
    assert batches[0]["sessions"] == [
        {"externalId": "s1", "title": "First prompt", "promptTokens": 5, "cost": 0.02, "completionTokens": 7,
         "endReason": "other"},
        {"externalId": "s2"},
    ]  # fmt: skip
    assert [m["externalId"] for m in server.messages()] == ["m1", "m2", *(f"m{n}" for n in range(10, 310))]


def test_chunk_names_keep_increasing(home):
    first = queue({"sessions": [], "messages": [message(1)]})
    second = queue({"sessions": [], "messages": [message(2)]}, {"sessions": [], "messages": [message(3)]})
    assert first + second == spool.chunk_files()


def test_413_splits_the_batch_and_sets_aside_a_single_record_too_big(home, server):
    def respond(method, path, body, headers):
        size = len(json.dumps(body))
        if len(body["messages"]) > 2 or size > 10_000:
            return 413, {"error": "Request body is too large"}
        return 200, {"ok": True, "sessions": 0, "messages": len(body["messages"]), "errors": []}

    server.respond = respond
    records = [message(n) for n in range(7)]
    records[4] = message(4, "h" * 20_000)
    queue({"sessions": [], "messages": records})
    result = sender.flush(cfg(server.url))
    assert result.ok
    assert [m["externalId"] for m in server.messages()] == ["m0", "m1", "m2", "m3", "m5", "m6"]
    assert spool.chunk_files() == [] and spool.rejected_count() == 1
    assert "message m4 of session s1: too large" in sender.load_status()["recentErrors"][0]["error"]


def test_per_item_errors_are_reported_and_not_retried(home, server):
    server.respond = lambda *a: (
        200,
        {"ok": True, "sessions": 0, "messages": 1, "errors": ["messages[1]: role must be one of ..."]},
    )
    queue({"sessions": [], "messages": [message(1), {**message(2), "role": "robot"}]})
    assert sender.flush(cfg(server.url)).ok
    assert spool.chunk_files() == []
    status = sender.load_status()
    assert status["itemErrors"] == 1 and "message m2 of session s1: role must be" in status["recentErrors"][0]["error"]
    assert "rejected by the server" in paths.log_file().read_text()
    sender.flush(cfg(server.url))
    assert len(server.requests) == 1


def test_a_whole_batch_refused_with_400_is_set_aside_and_the_queue_goes_on(home, server):
    calls = []

    def respond(method, path, body, headers):
        calls.append([m["externalId"] for m in body["messages"]])
        if "m1" in calls[-1]:
            return 400, {"error": "messages must be a list"}
        return 200, {"ok": True, "errors": []}

    server.respond = respond
    queue({"sessions": [], "messages": [message(1)]}, {"sessions": [], "messages": [message(2)]})
    assert sender.flush(cfg(server.url)).ok
    assert spool.chunk_files() == [] and spool.rejected_count() == 1
    # sent together, refused; then one by one: only the chunk the server refuses is set aside
    assert calls == [["m1", "m2"], ["m1"], ["m2"]]
    assert [m["externalId"] for m in server.messages()] == ["m2"]


def test_a_wrong_url_or_a_proxy_error_keeps_the_queue(home, server):
    """A 404/405 (wrong path, proxy) or a 400 that is not the server's JSON (a proxy's HTML page)
    says nothing about the batch: set aside, every queued batch would leave the queue for good."""
    queue({"sessions": [], "messages": [message(1)]}, {"sessions": [], "messages": [message(2)]})
    for status, answer in ((404, {"detail": "Not found"}), (405, "<h1>Method Not Allowed</h1>"), (400, "<html>")):
        server.respond = lambda *a, status=status, answer=answer: (status, answer)
        assert sender.flush(cfg(server.url)).outcome == "server"
        assert len(spool.chunk_files()) == 2 and spool.rejected_count() == 0
    server.respond = server.default_respond
    assert sender.flush(cfg(server.url)).ok
    assert [m["externalId"] for m in server.messages()] == ["m1", "m2"]


def test_rejected_key_keeps_the_queue(home, server):
    queue({"sessions": [], "messages": [message(1)]})
    result = sender.flush(cfg(server.url, key="osk_wrong_key_000000"))
    assert result.outcome == "auth" and "401" in result.message
    assert len(spool.chunk_files()) == 1
    assert sender.load_status()["lastError"]["kind"] == "auth"


def test_server_errors_and_unreachable_servers_keep_the_queue(home, server, dead_url):
    queue({"sessions": [], "messages": [message(1)]})
    server.respond = lambda *a: (502, {"error": "bad gateway"})
    assert sender.flush(cfg(server.url)).outcome == "server"
    assert sender.flush(cfg(dead_url)).outcome == "unreachable"
    assert len(spool.chunk_files()) == 1


def test_a_server_that_never_answers_times_out_at_the_deadline(home, blackhole):
    queue({"sessions": [], "messages": [message(1)]})
    started = time.monotonic()
    result = sender.flush(cfg(blackhole), deadline=time.monotonic() + 0.5)
    assert result.outcome == "timeout" and time.monotonic() - started < 1.5
    assert len(spool.chunk_files()) == 1


def test_only_one_sender_at_a_time(home, server):
    queue({"sessions": [], "messages": [message(1)]})
    held = locks.FileLock(paths.send_lock())
    assert held.acquire()
    try:
        assert sender.flush(cfg(server.url)).outcome == "busy"
    finally:
        held.release()
    assert server.requests == []


def test_an_unreadable_chunk_is_moved_aside(home, server):
    paths.ensure_data_dir()
    paths.spool_dir().mkdir()
    (paths.spool_dir() / "00000000000000000001.json").write_text("{garbage")
    queue({"sessions": [], "messages": [message(1)]})
    assert sender.flush(cfg(server.url)).ok
    assert [m["externalId"] for m in server.messages()] == ["m1"] and spool.rejected_count() == 1


def test_a_long_send_keeps_the_fallback_lock_fresh(home, server, monkeypatch):
    """Without fcntl a lock file older than STALE_SECONDS counts as abandoned: a sender still busy
    with a long queue must not look like that, or a second sender would break in (duplicates,
    disorder)."""
    monkeypatch.setattr(locks, "fcntl", None)
    monkeypatch.setattr(locks, "STALE_SECONDS", 1)
    monkeypatch.setattr(spool, "MAX_RECORDS", 1)  # one request per chunk: a long send

    def slow(method, path, body, headers):
        time.sleep(0.3)
        return 200, {"ok": True, "errors": []}

    server.respond = slow
    queue(*({"sessions": [], "messages": [message(n)]} for n in range(8)))
    sending = threading.Thread(target=sender.flush, args=(cfg(server.url),))
    sending.start()
    time.sleep(1.6)
    intruder = locks.FileLock(paths.send_lock())
    broke_in = intruder.acquire(timeout=0.3)
    intruder.release()
    sending.join()
    assert not broke_in
    assert [m["externalId"] for m in server.messages()] == [f"m{n}" for n in range(8)]


# --- 429 / 503 with Retry-After ----------------------------------------------------------------


def refuse_first(times: int, status: int, headers: dict, server):
    """The first `times` batches get `status` with `headers`, the rest the stub's usual answer."""
    refused = []

    def respond(method, path, body, request_headers):
        if path == "/sync/batch" and len(refused) < times:
            refused.append(time.monotonic())
            return status, {"error": "Too many sync requests"}, headers
        return server.default_respond(method, path, body, request_headers)

    server.respond = respond
    return refused


def test_a_rate_limited_batch_is_sent_again_after_retry_after(home, server):
    queue({"sessions": [], "messages": [message(1)]}, {"sessions": [], "messages": [message(2)]})
    refused = refuse_first(1, 429, {"Retry-After": "1"}, server)
    result = sender.flush(cfg(server.url))
    assert result.ok and spool.chunk_files() == []
    assert [m["externalId"] for m in server.messages()] == ["m1", "m2"]
    sent = [r for r in server.requests if r[1] == "/sync/batch"]
    assert len(refused) == 1 and len(sent) == 2
    assert time.monotonic() - refused[0] >= 1  # it waited the second asked for


def test_503_with_retry_after_is_retried_too(home, server):
    queue({"sessions": [], "messages": [message(1)]})
    refuse_first(2, 503, {"Retry-After": "0"}, server)
    assert sender.flush(cfg(server.url)).ok
    assert [m["externalId"] for m in server.messages()] == ["m1"]


def test_no_retry_after_or_a_long_one_keeps_the_queue_for_later(home, server, monkeypatch):
    queue({"sessions": [], "messages": [message(1)]})
    monkeypatch.setattr(sender.time, "sleep", lambda seconds: pytest.fail(f"slept {seconds}s"))
    for headers in ({}, {"Retry-After": "3600"}, {"Retry-After": "soon"}):
        server.requests.clear()
        refuse_first(1, 429, headers, server)
        result = sender.flush(cfg(server.url))
        assert result.outcome == "server" and "429" in result.message
        assert len(spool.chunk_files()) == 1 and len(server.requests) == 1


def test_a_server_that_keeps_refusing_is_left_after_max_retries(home, server):
    queue({"sessions": [], "messages": [message(1)]})
    refuse_first(100, 429, {"Retry-After": "0"}, server)
    assert sender.flush(cfg(server.url)).outcome == "server"
    assert len(server.requests) == sender.MAX_RETRIES + 1 and len(spool.chunk_files()) == 1


def test_a_wait_past_the_deadline_is_not_taken(home, server):
    queue({"sessions": [], "messages": [message(1)]})
    refuse_first(1, 429, {"Retry-After": "5"}, server)
    started = time.monotonic()
    assert sender.flush(cfg(server.url), deadline=started + 1).outcome == "server"
    assert time.monotonic() - started < 1


def test_retry_after_is_seconds_or_an_http_date():
    from email.utils import formatdate

    from claude_code_sync.client import retry_after

    assert retry_after("7") == 7 and retry_after(" 1.5 ") == 1.5 and retry_after("-3") == 0
    assert 55 < retry_after(formatdate(time.time() + 60, usegmt=True)) <= 60
    assert retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0  # in the past: now
    assert retry_after(None) is None and retry_after("") is None and retry_after("later") is None
    assert retry_after("nan") is None
