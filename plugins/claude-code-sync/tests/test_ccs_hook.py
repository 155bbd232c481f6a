"""`claude-code-sync hook <Event>` run as Claude Code runs it: a subprocess, JSON on stdin."""

import json
import subprocess
import sys
import threading
import time

import pytest

from conftest import KEY, SRC, run_cli, usage, wait_for_no_flushers, wait_until

SID = "11111111-2222-4333-8444-555555555555"


def hook(home, event, transcript=None, env=None, **fields):
    payload = {"session_id": SID, "cwd": "/home/dev/src/demo-app", "hook_event_name": event, **fields}
    if transcript is not None:
        payload["transcript_path"] = str(transcript.path)
    started = time.monotonic()
    result = run_cli(home, "hook", event, stdin=json.dumps(payload), env=env)
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""  # Claude Code would hand stdout to the model
    return elapsed


def log_text(home):
    path = home / ".claude-code-sync" / "sync.log"
    return path.read_text() if path.exists() else ""


def spool_files(home):
    folder = home / ".claude-code-sync" / "spool"
    return sorted(folder.glob("*.json")) if folder.exists() else []


def point_at(home, url, key=KEY):
    config = home / ".claude-code-sync.json"
    config.write_text(json.dumps({"url": url, "apiKey": key}))
    config.chmod(0o600)


def test_hook_sends_new_lines_once_and_fast(configured, make_transcript, home):
    t = make_transcript()
    t.user("hello there")
    assert hook(home, "UserPromptSubmit", t, prompt="hello there") < 1
    wait_until(lambda: configured.messages(), message="the first message")
    t.assistant("msg_1", [{"type": "text", "text": "hi!"}], usage(2, 5))
    assert hook(home, "Stop", t) < 1
    assert hook(home, "SessionEnd", t, reason="prompt_input_exit") < 1
    wait_for_no_flushers(home)
    assert [m["textContent"] for m in configured.messages()] == ["hello there", "hi!"]
    sessions = configured.sessions()
    assert sessions[0]["title"] == "hello there" and sessions[-1]["endReason"] == "prompt_input_exit"
    assert all(h["Authorization"] == f"Bearer {KEY}" for _, p, _, h in configured.requests if p == "/sync/batch")
    assert spool_files(home) == []


@pytest.mark.parametrize(
    "stdin",
    [
        "",
        "not json at all",
        "[1, 2, 3]",
        '{"session_id": 42}',
        '{"session_id": "nope", "transcript_path": "/nonexistent/x.jsonl"}',
    ],
)
def test_bad_input_never_fails_the_hook(configured, home, stdin):
    started = time.monotonic()
    result = run_cli(home, "hook", "PostToolUse", stdin=stdin)
    assert result.returncode == 0 and result.stdout == "" and result.stderr == ""
    assert time.monotonic() - started < 1
    assert configured.batches() == []


def test_the_log_never_holds_hook_input_text(configured, home):
    """Hook input carries the prompt; a truncated or garbled one must not land in the log."""
    secret = '{"session_id": "s", "prompt": "my card is 4111 1111 1111 1111'
    assert run_cli(home, "hook", "UserPromptSubmit", stdin=secret).returncode == 0
    assert "not JSON" in log_text(home) and "4111" not in log_text(home)


def test_unreadable_transcript_is_logged_not_fatal(configured, make_transcript, home):
    t = make_transcript()
    t.path.mkdir(parents=True)  # a directory where the transcript should be: open() fails even for root
    assert hook(home, "Stop", t) < 1
    assert "missing or unreadable" in log_text(home)
    assert configured.batches() == []


def test_unconfigured_or_auto_sync_off_does_nothing(home, make_transcript, server):
    t = make_transcript()
    t.user("hello")
    hook(home, "Stop", t)
    assert not (home / ".claude-code-sync" / "state").exists()
    point_at(home, server.url)
    hook(home, "Stop", t, env={"CLAUDE_SYNC_AUTO_SYNC": "false"})
    assert server.batches() == [] and spool_files(home) == []


def test_server_down_then_back_keeps_everything_in_order(home, make_transcript, server, dead_url):
    point_at(home, dead_url)
    t = make_transcript()
    expected = []
    for n in range(4):
        t.user(f"prompt {n}")
        t.assistant(f"msg_{n}", [{"type": "text", "text": f"answer {n}"}], usage(1, 1))
        expected += [f"prompt {n}", f"answer {n}"]
        assert hook(home, "Stop", t) < 1
        assert len(spool_files(home)) == n + 1  # the queue grows, nothing is lost
    wait_for_no_flushers(home)
    point_at(home, server.url)
    assert hook(home, "UserPromptSubmit", t) < 1
    wait_until(lambda: not spool_files(home), message="the queue to drain")
    wait_for_no_flushers(home)
    assert [m["textContent"] for m in server.messages()] == expected


def test_blackholed_server_does_not_slow_the_hook(home, make_transcript, blackhole):
    point_at(home, blackhole)
    t = make_transcript()
    t.user("hello")
    env = {"CLAUDE_CODE_SYNC_TIMEOUT": "2"}
    timings = [hook(home, event, t, env=env) for event in ("SessionStart", "UserPromptSubmit", "Stop")]
    assert max(timings) < 1, timings
    assert spool_files(home)  # still queued
    wait_for_no_flushers(home, timeout=30)
    status = json.loads((home / ".claude-code-sync" / "send-status.json").read_text())
    assert status["lastError"]["kind"] == "timeout"


def test_hook_returns_when_stdin_is_never_closed(configured, home, make_transcript):
    t = make_transcript()
    t.user("hello")
    payload = json.dumps({"session_id": SID, "transcript_path": str(t.path), "hook_event_name": "Stop"})
    env = {"HOME": str(home), "PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin"}
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-m", "claude_code_sync", "hook", "Stop"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=env,
    )
    process.stdin.write(payload.encode())
    process.stdin.flush()  # and never closed
    assert process.wait(timeout=5) == 0
    assert time.monotonic() - started < 1
    process.stdin.close()
    process.stdout.close()
    wait_for_no_flushers(home)
    assert [m["textContent"] for m in configured.messages()] == ["hello"]


def test_rejected_key_keeps_everything_queued(home, make_transcript, server):
    point_at(home, server.url, key="osk_revoked_key_000000")
    t = make_transcript()
    t.user("hello")
    hook(home, "Stop", t)
    wait_for_no_flushers(home)
    assert len(spool_files(home)) == 1
    status = run_cli(home, "status")
    assert "API key was rejected" in status.stdout and "1 batches waiting" in status.stdout
    point_at(home, server.url)
    assert run_cli(home, "flush").returncode == 0
    assert [m["textContent"] for m in server.messages()] == ["hello"]


def test_concurrent_hooks_send_each_message_once(configured, home, make_transcript):
    t = make_transcript()
    for n in range(30):
        t.user(f"prompt {n}")
        t.assistant(f"msg_{n}", [{"type": "text", "text": f"answer {n}"}], usage(1, 1))
    payload = json.dumps({"session_id": SID, "transcript_path": str(t.path), "hook_event_name": "PostToolUse"})
    results = []

    def one():
        results.append(run_cli(home, "hook", "PostToolUse", stdin=payload))

    threads = [threading.Thread(target=one) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(r.returncode == 0 for r in results)
    wait_until(lambda: not spool_files(home), message="the queue to drain")
    wait_for_no_flushers(home)
    ids = [m["externalId"] for m in configured.messages()]
    assert len(ids) == 60 and len(set(ids)) == 60
    texts = [m["textContent"] for m in configured.messages()]
    assert texts == [x for n in range(30) for x in (f"prompt {n}", f"answer {n}")]


def test_session_start_catches_up_a_session_that_grew_after_its_last_hook(configured, home, make_transcript):
    old = make_transcript(session_id="22222222-2222-4333-8444-555555555555")
    old.user("old question")
    hook(home, "Stop", old, session_id=old.session_id)
    old.assistant("msg_late", [{"type": "text", "text": "late answer"}], usage(1, 1))  # after the last Stop
    new = make_transcript()
    new.user("new question")
    hook(home, "SessionStart", new, source="startup")
    wait_until(lambda: len(configured.messages()) >= 3, message="the late answer")
    wait_for_no_flushers(home)
    assert sorted(m["textContent"] for m in configured.messages()) == ["late answer", "new question", "old question"]


def test_a_resumed_session_is_caught_up_again_after_its_earlier_end(configured, home, make_transcript):
    """`claude --resume` keeps the session id: after SessionStart the session is live again, so an
    answer written after its last hook (Ctrl-C fires no SessionEnd) is still caught up."""
    old = make_transcript(session_id="22222222-2222-4333-8444-555555555555")
    old.user("first run")
    hook(home, "SessionEnd", old, session_id=old.session_id, reason="prompt_input_exit")
    old.user("after resume")
    hook(home, "SessionStart", old, session_id=old.session_id, source="resume")
    old.assistant("msg_late", [{"type": "text", "text": "late answer"}], usage(1, 1))  # then Ctrl-C
    new = make_transcript()
    new.user("next session")
    hook(home, "SessionStart", new, source="startup")
    wait_until(lambda: len(configured.messages()) >= 4, message="the late answer")
    wait_for_no_flushers(home)
    assert "late answer" in [m["textContent"] for m in configured.messages()]


def test_a_huge_transcript_is_read_in_the_background(configured, home, make_transcript):
    """The first hook on a long session (e.g. resumed from before the plugin was installed) reads
    a few MB itself and leaves the rest to the detached flusher."""
    t = make_transcript()
    for n in range(600):
        t.user(f"prompt {n:03d} " + "lorem ipsum " * 1500)  # ~18 KB a line, ~11 MB in all
    assert hook(home, "SessionStart", t, source="resume") < 1
    wait_until(lambda: len(configured.messages()) == 600, timeout=60, message="all 600 messages")
    wait_for_no_flushers(home)
    assert [m["textContent"][:10] for m in configured.messages()] == [f"prompt {n:03d}" for n in range(600)]


def test_one_giant_line_is_left_to_the_flusher(configured, home, make_transcript):
    """A single huge tool output (here 16 MB of code-like text) is never parsed by the hook itself:
    parsing and redacting it takes seconds."""
    t = make_transcript()
    t.user("first")
    t.tool_result("toolu_1", "def f(a, b):\n    return a.b-c_d + 'x'\n" * 400_000)
    t.user("last")
    assert hook(home, "Stop", t) < 1
    wait_until(lambda: len(configured.messages()) == 3, timeout=60, message="all 3 messages")
    wait_for_no_flushers(home)
    assert [m["role"] for m in configured.messages()] == ["user", "tool", "user"]
