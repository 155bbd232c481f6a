"""plugins/claude-code-sync, installed for real (`uv tool install`) and run exactly as Claude Code
runs it: `claude-code-sync hook <Event>` with the hook JSON on stdin and a transcript that grows
between hooks, against the real server (gunicorn on the test database)."""

import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from accounts.services import api_key_create
from sessions_app.models import Message, Part, Session

from .live import BASE_DIR

PLUGIN_DIR = BASE_DIR / "plugins" / "claude-code-sync"
SID = "5b0c2a6e-8d1f-4c3b-9a7e-2f4d6c8b1a3e"
SONNET = "claude-sonnet-4-5-20250929"
HAIKU = "claude-haiku-4-5-20251001"
T0 = datetime(2026, 1, 20, 10, 0, 0, tzinfo=UTC)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def uv_executable() -> str | None:
    bundled = Path(sys.executable).parent / "uv"
    return str(bundled) if bundled.exists() else shutil.which("uv")


@pytest.fixture(scope="module")
def cli(tmp_path_factory):
    """The package installed with `uv tool install` into a temporary tool folder."""
    uv = uv_executable()
    if uv is None:
        pytest.skip("needs uv to install the plugin")
    root = tmp_path_factory.mktemp("uv-tools")
    env = {**os.environ, "UV_TOOL_DIR": str(root / "tools"), "UV_TOOL_BIN_DIR": str(root / "bin")}
    subprocess.run([uv, "tool", "install", str(PLUGIN_DIR)], env=env, check=True, capture_output=True, timeout=300)
    return str(root / "bin" / "claude-code-sync")


def stamp(seconds: float) -> str:
    moment = T0.timestamp() + seconds
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{int(moment * 1000) % 1000:03d}Z"


def at(seconds: float) -> datetime:
    return datetime.fromtimestamp(T0.timestamp() + seconds, UTC)


def usage(input_tokens, output, cache_read=0, cache_5m=0, cache_1h=0):
    return {
        "input_tokens": input_tokens,
        "cache_creation_input_tokens": cache_5m + cache_1h,
        "cache_read_input_tokens": cache_read,
        "cache_creation": {"ephemeral_5m_input_tokens": cache_5m, "ephemeral_1h_input_tokens": cache_1h},
        "output_tokens": output,
        "service_tier": "standard",
    }


class Transcript:
    """A transcript as Claude Code writes it: parentUuid chain, one line per content block of an
    answer (each repeating the message's usage), tool results as user lines, subagents in
    <session>/subagents/agent-<id>.jsonl."""

    def __init__(self, home: Path, session_id: str = SID, project: str = "demo-app"):
        self.session_id = session_id
        self.cwd = home / "proj" / project
        self.cwd.mkdir(parents=True, exist_ok=True)
        self.path = home / ".claude" / "projects" / str(self.cwd).replace("/", "-") / f"{session_id}.jsonl"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.parent = None

    def entry(self, kind, uuid, seconds, agent=None, **fields):
        """One line; `agent` marks a subagent's line (isSidechain, agentId), off the main chain."""
        line = {
            "parentUuid": self.parent,
            "isSidechain": agent is not None,
            "userType": "external",
            "cwd": str(self.cwd),
            "sessionId": self.session_id,
            "version": "2.1.29",
            "gitBranch": "main",
            "slug": "tidy-humming-lark",
            "type": kind,
            **({"agentId": agent} if agent else {}),
            **fields,
            "uuid": uuid,
            "timestamp": stamp(seconds),
        }
        if agent is None:
            self.parent = uuid
        return line

    def append(self, *lines, raw: str = "", path: Path | None = None):
        target = path or self.path
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target, "a", encoding="utf-8") as handle:
            handle.writelines(json.dumps(line, ensure_ascii=False) + "\n" for line in lines)
            handle.write(raw)

    def user(self, uuid, seconds, content, **fields):
        return self.entry("user", uuid, seconds, message={"role": "user", "content": content}, **fields)

    def assistant(self, uuid, seconds, message_id, block, use, model=SONNET, **fields):
        """One line of an answer: a single content block, with the whole message's usage."""
        message = {
            "model": model,
            "id": message_id,
            "type": "message",
            "role": "assistant",
            "content": [block],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": use,
        }
        return self.entry("assistant", uuid, seconds, message=message, requestId=f"req_{message_id}", **fields)

    def tool_result(self, uuid, seconds, tool_use_id, content, result):
        block = {"tool_use_id": tool_use_id, "type": "tool_result", "content": content}
        return self.user(uuid, seconds, [block], toolUseResult=result)


def tool_use(tool_id, name, arguments):
    return {"type": "tool_use", "id": tool_id, "name": name, "input": arguments}


def environment(home: Path, **extra) -> dict:
    return {"PATH": os.environ["PATH"], "HOME": str(home), "CLAUDE_CODE_SYNC_TIMEOUT": "3", **extra}


def run(cli, env, *args, stdin=""):
    return subprocess.run([cli, *args], input=stdin, env=env, capture_output=True, text=True, timeout=120)


def hook(cli, env, transcript, event, **fields):
    """One hook as Claude Code runs it; returns the wall time it took."""
    payload = {
        "session_id": transcript.session_id,
        "transcript_path": str(transcript.path),
        "cwd": str(transcript.cwd),
        "permission_mode": "default",
        "hook_event_name": event,
        **fields,
    }
    started = time.monotonic()
    result = run(cli, env, "hook", event, stdin=json.dumps(payload))
    elapsed = time.monotonic() - started
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    return elapsed


def queued(home: Path) -> list[Path]:
    folder = home / ".claude-code-sync" / "spool"
    return sorted(folder.glob("*.json")) if folder.exists() else []


def flushers(home: Path) -> list[int]:
    """This HOME's background flushers (through /proc)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
            environ = (proc / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"--background" in cmdline and f"HOME={home}".encode() in environ:
            found.append(int(proc.name))
    return found


def settle(home: Path, timeout: float = 30) -> None:
    """Wait for this HOME's background flushers to finish (a hook that returned before its
    flusher did leaves it running, detached)."""
    deadline = time.monotonic() + timeout
    while flushers(home):
        if time.monotonic() > deadline:
            raise TimeoutError(f"flushers still running: {flushers(home)}")
        time.sleep(0.05)


@pytest.fixture
def home(tmp_path):
    path = tmp_path / "home"
    path.mkdir()
    yield path
    settle(path)  # no process left behind


def rows(session):
    return list(session.messages.order_by("created_at", "order").values_list("external_id", "role", "text_content"))


def test_hooks_sync_a_growing_session_exactly_once(cli, gunicorn_server, sync_key, home):
    env = environment(home, CLAUDE_SYNC_THINKING="true")
    login = run(cli, env, "login", "--url", gunicorn_server.url, "--key", sync_key)
    assert login.returncode == 0, login.stderr
    assert stat.S_IMODE((home / ".claude-code-sync.json").stat().st_mode) == 0o600
    t = Transcript(home)
    times = []

    # Claude Code starts: only a file-history snapshot so far (no top-level timestamp)
    t.append(
        {
            "type": "file-history-snapshot",
            "messageId": "u1",
            "isSnapshotUpdate": False,
            "snapshot": {"messageId": "u1", "trackedFileBackups": {}, "timestamp": stamp(0)},
        }
    )
    times.append(hook(cli, env, t, "SessionStart", source="startup"))
    assert not Session.objects.exists()  # no empty session

    prompt = "Ajoute un endpoint /health — merci ✓ 日本語"
    t.append(t.user("u1", 1, prompt))
    times.append(hook(cli, env, t, "UserPromptSubmit", prompt=prompt))

    # one API answer, streamed as three lines sharing message id and usage (output grows)
    edit = {"file_path": f"{t.cwd}/server.py", "old_string": "app = App()", "new_string": "app = App(health=True)"}
    cached = {"cache_read": 10_000, "cache_5m": 2_000}
    thinking = {"type": "thinking", "thinking": "L'utilisateur veut /health.", "signature": "c2ln"}
    t.append(
        t.assistant("a1", 2, "msg_01", thinking, usage(3, 12, **cached)),
        t.assistant("a2", 3, "msg_01", {"type": "text", "text": "Je vais modifier server.py."}, usage(3, 12, **cached)),
        t.assistant("a3", 4, "msg_01", tool_use("toolu_01", "Edit", edit), usage(3, 250, **cached)),
        t.tool_result("t1", 5, "toolu_01", "The file server.py has been updated.", {"filePath": edit["file_path"]}),
    )
    response = {"filePath": edit["file_path"], "success": True}
    edited = {"tool_name": "Edit", "tool_input": edit, "tool_use_id": "toolu_01", "tool_response": response}
    times.append(hook(cli, env, t, "PostToolUse", **edited))
    settle(home)
    assert Session.objects.get().title == prompt
    assert Message.objects.count() == 5

    # a subagent: its own transcript, plus an inline sidechain line (older Claude Code)
    task = {"description": "Find tests", "prompt": "Find the test files", "subagent_type": "Explore"}
    t.append(t.assistant("a4", 6, "msg_02", tool_use("toolu_02", "Task", task), usage(2, 80, 12_000, cache_5m=500)))
    found = {"type": "text", "text": "tests/test_server.py"}
    t.append(
        t.user("s1", 7, "Find the test files", agent="a1b2c3d"),
        t.assistant("s2", 8, "msg_s1", found, usage(500, 40, cache_1h=3_000), model=HAIKU, agent="a1b2c3d"),
        path=t.path.with_suffix("") / "subagents" / "agent-a1b2c3d.jsonl",
    )
    result = [{"type": "text", "text": "Found tests/test_server.py"}]
    t.append(
        t.assistant("s3", 9, "msg_side", {"type": "text", "text": "inline sidechain"}, usage(7, 9), agent="a1b2c3d"),
        t.tool_result("t2", 10, "toolu_02", result, {"status": "completed", "agentId": "a1b2c3d"}),
    )
    delegated = {"tool_name": "Task", "tool_input": task, "tool_use_id": "toolu_02"}
    times.append(hook(cli, env, t, "PostToolUse", **delegated, tool_response={"status": "completed"}))

    # a corrupt line, then the final answer still being written when Stop fires
    answer = {"type": "text", "text": 'C\'est fait : GET /health renvoie {"ok": true}.'}
    final = json.dumps(t.assistant("a5", 20, "msg_03", answer, usage(4, 60, cache_read=14_000)), ensure_ascii=False)
    t.append(raw='{"type": "assistant", "message": {oops\n' + final[:40])
    times.append(hook(cli, env, t, "Stop", stop_hook_active=False))
    settle(home)
    assert not Message.objects.filter(external_id="a5").exists()  # the half line waits
    t.append(raw=final[40:] + "\n")
    summary = {"type": "summary", "summary": "Endpoint /health ajouté", "leafUuid": "a5"}
    t.append(summary, t.entry("system", "y1", 21, subtype="stop_hook_summary", content="", level="info"))
    times.append(hook(cli, env, t, "Stop", stop_hook_active=False))
    times.append(hook(cli, env, t, "SessionEnd", reason="prompt_input_exit"))
    settle(home)
    assert max(times) < 1, times
    assert queued(home) == []

    session = Session.objects.get(external_id=SID)
    assert (session.source, session.title, session.provider) == ("claude-code", "Endpoint /health ajouté", "anthropic")
    assert (session.project_path, session.project_name, session.model) == (str(t.cwd), "demo-app", SONNET)
    # tokens: each message id once, subagents included
    assert (session.prompt_tokens, session.completion_tokens) == (3 + 2 + 500 + 7 + 4, 250 + 80 + 40 + 9 + 60)
    assert (session.cache_read_tokens, session.cache_write_tokens) == (36_000, 5_500)
    # Sonnet 4.5 ($3/$15, 5m writes $3.75, reads $0.30) + Haiku 4.5 ($1/$5, 1h writes $2), per million
    sonnet = (3 * 3 + 250 * 15 + 2000 * 3.75 + 10_000 * 0.3) + (2 * 3 + 80 * 15 + 500 * 3.75 + 12_000 * 0.3)
    sonnet += (7 * 3 + 9 * 15) + (4 * 3 + 60 * 15 + 14_000 * 0.3)
    haiku = 500 * 1 + 40 * 5 + 3000 * 2
    assert session.reported_cost == Decimal("0.03290800") == Decimal(str(round((sonnet + haiku) / 1e6, 8)))
    # The server prices the same usage itself, per model (the subagent on Haiku's prices), with the
    # 1-hour writes at the 1-hour rate, and keeps the subagent's share apart.
    assert (session.computed_cost, session.cost, session.cost_source) == (
        session.reported_cost,
        session.reported_cost,
        "computed",
    )
    # the subagent: its Haiku transcript and the inline sidechain line (on Sonnet)
    assert session.subagent_cost == Decimal(str(round((haiku + 7 * 3 + 9 * 15) / 1e6, 8)))
    assert session.subagent_tokens == 500 + 40 + 3000 + 7 + 9
    assert (session.cache_write_5m_tokens, session.cache_write_1h_tokens) == (2_500, 3_000)
    assert (session.usage_input_tokens, session.usage_cache_write_1h_tokens) == (516, 3_000)
    assert (session.created_at, session.duration_ms, session.end_reason) == (at(1), 20_000, "prompt_input_exit")

    assert rows(session) == [
        ("u1", "user", prompt),
        ("a1", "assistant", None),
        ("a2", "assistant", "Je vais modifier server.py."),
        ("a3", "assistant", None),
        ("t1", "tool", None),
        ("a4", "assistant", None),
        ("t2", "tool", None),
        ("a5", "assistant", 'C\'est fait : GET /health renvoie {"ok": true}.'),
    ]
    assert session.message_count == 8
    times_by_id = dict(session.messages.values_list("external_id", "created_at"))
    assert times_by_id == {
        "u1": at(1),
        "a1": at(2),
        "a2": at(3),
        "a3": at(4),
        "t1": at(5),
        "a4": at(6),
        "t2": at(10),
        "a5": at(20),
    }
    parts = {
        m: list(Part.objects.filter(message__external_id=m).values_list("type", "content"))
        for m in ("a1", "a3", "t1", "t2")
    }
    assert parts == {
        "a1": [("thinking", "L'utilisateur veut /health.")],
        "a3": [("tool-call", {"id": "toolu_01", "toolName": "Edit", "args": edit})],
        "t1": [
            (
                "tool-result",
                {"toolUseId": "toolu_01", "output": "The file server.py has been updated.", "isError": False},
            )
        ],
        "t2": [("tool-result", {"toolUseId": "toolu_02", "output": "Found tests/test_server.py", "isError": False})],
    }
    a1 = session.messages.get(external_id="a1")
    assert (a1.model, a1.prompt_tokens, a1.completion_tokens) == (SONNET, 3, 12)
    assert session.messages.get(external_id="a2").prompt_tokens is None  # tokens on the first line only
    assert not Message.objects.filter(external_id__in=["s1", "s2", "s3"]).exists()  # sidechains aren't messages

    status = run(cli, env, "status")
    assert "ok (server reachable, key accepted)" in status.stdout
    assert "Sessions synced:       1" in status.stdout and "Corrupt lines skipped: 1" in status.stdout
    assert "0 batches waiting" in status.stdout
    logout = run(cli, env, "logout")
    assert logout.returncode == 0 and run(cli, env, "status").returncode == 1


def test_server_down_hooks_stay_fast_and_nothing_is_lost(cli, gunicorn_server, sync_key, home):
    env = environment(home, OPENSYNC_URL=gunicorn_server.url, OPENSYNC_API_KEY=sync_key)
    t = Transcript(home)
    expected = []

    def turn(n):
        t.append(
            t.user(f"u{n}", 10 * n, f"question {n}"),
            t.assistant(f"a{n}", 10 * n + 1, f"msg_{n}", {"type": "text", "text": f"réponse {n}"}, usage(1, 2)),
        )
        expected.extend([(f"u{n}", "user", f"question {n}"), (f"a{n}", "assistant", f"réponse {n}")])

    turn(0)
    hook(cli, env, t, "Stop")
    settle(home)
    assert rows(Session.objects.get()) == expected

    gunicorn_server.stop()
    try:
        for n in range(1, 4):
            turn(n)
            assert hook(cli, env, t, "Stop") < 1
            assert len(queued(home)) == n  # the queue grows; nothing is dropped
    finally:
        settle(home)
        gunicorn_server.start()
    assert Message.objects.count() == 2

    turn(4)
    assert hook(cli, env, t, "UserPromptSubmit", prompt="question 4") < 1
    settle(home)
    session = Session.objects.get()
    assert rows(session) == expected  # every message once, in order
    assert (session.prompt_tokens, session.completion_tokens, session.message_count) == (5, 10, 10)
    assert queued(home) == []


class Blackhole:
    """A port that accepts connections and never answers."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"


def test_a_server_that_never_answers_does_not_slow_the_hooks(cli, gunicorn_server, sync_key, home):
    hole = Blackhole()
    try:
        env = environment(home, OPENSYNC_URL=hole.url, OPENSYNC_API_KEY=sync_key)
        t = Transcript(home)
        times = []
        for n, event in enumerate(("SessionStart", "UserPromptSubmit", "PostToolUse", "Stop", "SessionEnd")):
            t.append(t.user(f"u{n}", n, f"prompt {n}"))
            times.append(hook(cli, env, t, event))
        assert max(times) < 1, times
        settle(home)  # the background flusher gives up after CLAUDE_CODE_SYNC_TIMEOUT
    finally:
        hole.sock.close()
    assert queued(home) and not Message.objects.exists()

    env = environment(home, OPENSYNC_URL=gunicorn_server.url, OPENSYNC_API_KEY=sync_key)
    result = run(cli, env, "flush")
    assert result.returncode == 0, result.stderr
    assert [text for _, _, text in rows(Session.objects.get())] == [f"prompt {n}" for n in range(5)]


def test_a_rejected_key_keeps_everything_queued(cli, gunicorn_server, sync_key, user, personal_workspace, home):
    t = Transcript(home)
    t.append(t.user("u1", 1, "hello"))
    env = environment(home, OPENSYNC_URL=gunicorn_server.url, OPENSYNC_API_KEY="osk_revokedrevokedrevokedrevoked0000")
    hook(cli, env, t, "Stop")
    settle(home)
    assert len(queued(home)) == 1 and not Session.objects.exists()
    assert "the API key was rejected" in run(cli, env, "status").stdout
    result = run(cli, env, "sync")
    assert (
        result.returncode == 1 and "rejected the API key" in result.stderr and "1 batches stay queued" in result.stderr
    )

    # a read-only key is refused at login
    _, read_key = api_key_create(user=user, workspace=personal_workspace, name="read", scope="read")
    refused = run(cli, environment(home), "login", "--url", gunicorn_server.url, "--key", read_key)
    assert refused.returncode == 1 and "403" in refused.stderr

    env = environment(home, OPENSYNC_URL=gunicorn_server.url, OPENSYNC_API_KEY=sync_key)
    assert run(cli, env, "flush").returncode == 0
    assert rows(Session.objects.get()) == [("u1", "user", "hello")] and queued(home) == []


def test_concurrent_hooks_store_every_message_once(cli, gunicorn_server, sync_key, home):
    env = environment(home, OPENSYNC_URL=gunicorn_server.url, OPENSYNC_API_KEY=sync_key)
    t = Transcript(home)
    for n in range(20):
        t.append(
            t.user(f"u{n}", 2 * n, f"q{n}"),
            t.assistant(f"a{n}", 2 * n + 1, f"msg_{n}", {"type": "text", "text": f"a{n}"}, usage(1, 1)),
        )
    results = []
    threads = [threading.Thread(target=lambda: results.append(hook(cli, env, t, "PostToolUse"))) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 8
    settle(home)
    session = Session.objects.get()
    assert [row[0] for row in rows(session)] == [x for n in range(20) for x in (f"u{n}", f"a{n}")]
    assert (session.message_count, session.prompt_tokens) == (40, 20)


def test_sync_backfills_with_since_project_and_dry_run(cli, gunicorn_server, sync_key, home):
    env = environment(home, OPENSYNC_URL=gunicorn_server.url, OPENSYNC_API_KEY=sync_key)
    old = Transcript(home, session_id="0ld00000-0000-4000-8000-000000000001", project="alpha")
    old.append(old.user("u1", 1, "old work"))
    month_ago = time.time() - 30 * 86400
    os.utime(old.path, (month_ago, month_ago))
    new = Transcript(home, session_id="4e400000-0000-4000-8000-000000000002", project="beta")
    new.append(
        new.user("u1", 1, "new work"), new.assistant("a1", 2, "msg_1", {"type": "text", "text": "ok"}, usage(1, 1))
    )

    dry = run(cli, env, "sync", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "would send 3 messages and 2 session updates from 2 sessions" in dry.stdout
    assert "[2/2] sessions read" in dry.stderr
    assert not Session.objects.exists() and queued(home) == []

    since = time.strftime("%Y-%m-%d", time.localtime(time.time() - 7 * 86400))
    recent = run(cli, env, "sync", "--since", since)
    assert recent.returncode == 0, recent.stderr
    assert list(Session.objects.values_list("external_id", flat=True)) == [new.session_id]

    alpha = run(cli, env, "sync", "--project", str(old.cwd))
    assert alpha.returncode == 0, alpha.stderr
    assert Session.objects.get(external_id=old.session_id).project_name == "alpha"
    assert Message.objects.count() == 3
    assert "Nothing to send." in run(cli, env, "sync").stdout
