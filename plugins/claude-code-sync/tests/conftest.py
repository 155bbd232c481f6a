"""Fixtures for the plugin's unit tests: the package from src/, a throwaway HOME, a transcript
writer in Claude Code's format, and stub servers (answering, answering nothing, or absent)."""

import json
import os
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src"
if str(SRC) not in sys.path:
    sys.path.insert(0, str(SRC))

ENV_VARS = (
    "OPENSYNC_URL",
    "OPENSYNC_API_KEY",
    "CLAUDE_SYNC_CONVEX_URL",
    "CLAUDE_SYNC_API_KEY",
    "CLAUDE_SYNC_AUTO_SYNC",
    "CLAUDE_SYNC_TOOL_CALLS",
    "CLAUDE_SYNC_THINKING",
    "CLAUDE_SYNC_REDACT",
    "CLAUDE_CONFIG_DIR",
    "CLAUDE_CODE_SYNC_TIMEOUT",
)


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A fresh HOME with none of the plugin's environment variables set."""
    path = tmp_path / "home"
    path.mkdir()
    monkeypatch.setenv("HOME", str(path))
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    return path


class Transcript:
    """Writes lines the way Claude Code does: one JSON object per line, assistant messages split
    into one line per content block, each repeating the message's usage."""

    def __init__(self, path: Path, session_id: str, cwd: str, model: str = "claude-sonnet-4-5-20250929"):
        self.path, self.session_id, self.cwd, self.model = path, session_id, cwd, model
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.clock = 1_768_903_200_000  # 2026-01-20T10:00:00Z
        self.count = 0

    def stamp(self) -> tuple[str, int]:
        self.clock += 1000
        seconds, ms = divmod(self.clock, 1000)
        return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{ms:03d}Z", self.clock

    def uuid(self) -> str:
        self.count += 1
        return f"00000000-0000-4000-8000-{self.count:012d}"

    def write(self, *entries: dict, raw: str | None = None) -> None:
        with open(self.path, "a", encoding="utf-8") as handle:
            for entry in entries:
                handle.write(json.dumps(entry, ensure_ascii=False) + "\n")
            if raw is not None:
                handle.write(raw)

    def base(self, kind: str, **extra) -> dict:
        timestamp, _ = self.stamp()
        return {
            "parentUuid": None,
            "isSidechain": False,
            "userType": "external",
            "cwd": self.cwd,
            "sessionId": self.session_id,
            "version": "2.1.29",
            "gitBranch": "main",
            "slug": "bright-happy-otter",
            "type": kind,
            "uuid": self.uuid(),
            "timestamp": timestamp,
            **extra,
        }

    def user(self, content, **extra) -> dict:
        entry = self.base("user", message={"role": "user", "content": content}, **extra)
        self.write(entry)
        return entry

    def tool_result(self, tool_use_id: str, output, is_error: bool = False, **extra) -> dict:
        block = {"tool_use_id": tool_use_id, "type": "tool_result", "content": output, "is_error": is_error}
        return self.user([block], **extra)

    def assistant(self, message_id: str, blocks: list[dict], usage: dict, model: str | None = None, **extra):
        """One line per content block, each with the same message id and usage."""
        entries = []
        for block in blocks:
            message = {
                "model": model or self.model,
                "id": message_id,
                "type": "message",
                "role": "assistant",
                "content": [block],
                "stop_reason": None,
                "usage": usage,
            }
            entries.append(self.base("assistant", message=message, requestId=f"req_{message_id}", **extra))
        self.write(*entries)
        return entries


def usage(input_tokens=3, output=10, cache_read=0, cache_write=0, cache_1h=0) -> dict:
    return {
        "input_tokens": input_tokens,
        "cache_creation_input_tokens": cache_write,
        "cache_read_input_tokens": cache_read,
        "cache_creation": {"ephemeral_5m_input_tokens": cache_write - cache_1h, "ephemeral_1h_input_tokens": cache_1h},
        "output_tokens": output,
        "service_tier": "standard",
    }


@pytest.fixture
def make_transcript(home):
    def make(session_id="11111111-2222-4333-8444-555555555555", cwd="/home/dev/src/demo-app", **kwargs):
        folder = home / ".claude" / "projects" / cwd.replace("/", "-")
        return Transcript(folder / f"{session_id}.jsonl", session_id, cwd, **kwargs)

    return make


class StubServer:
    """An OpenSync stand-in. `respond(path, body)` returns (status, answer) or (status, answer,
    headers) and may sleep."""

    def __init__(self):
        self.requests: list[tuple[str, str, dict | None, dict]] = []
        self.accepted: list[dict] = []  # batch bodies answered with a 2xx
        self.respond = self.default_respond
        self.lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def handle_one(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = json.loads(raw) if raw else None
                with stub.lock:
                    stub.requests.append((self.command, self.path, body, dict(self.headers)))
                status, answer, *extra = stub.respond(self.command, self.path, body, self.headers)
                if self.path == "/sync/batch" and 200 <= status < 300:
                    with stub.lock:
                        stub.accepted.append(body)
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in (extra[0] if extra else {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = handle_one

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @staticmethod
    def default_respond(method, path, body, headers):
        if path == "/health":
            return 200, {"status": "ok", "timestamp": 0}
        if headers.get("Authorization") != "Bearer osk_test_key_0123456789":
            return 401, {"error": "Invalid API key"}
        if path == "/sync/sessions/list":
            return 200, {"sessionIds": []}
        body = body or {}
        counts = {name: len(body.get(name, [])) for name in ("sessions", "messages")}
        return 200, {"ok": True, **counts, "errors": []}

    def batches(self) -> list[dict]:
        with self.lock:
            return list(self.accepted)

    def messages(self) -> list[dict]:
        return [message for batch in self.batches() for message in batch.get("messages", [])]

    def sessions(self) -> list[dict]:
        return [session for batch in self.batches() for session in batch.get("sessions", [])]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


KEY = "osk_test_key_0123456789"


@pytest.fixture
def server():
    stub = StubServer()
    yield stub
    stub.close()


@pytest.fixture
def configured(home, server):
    """The plugin pointed at the stub server through its config file."""
    config = home / ".claude-code-sync.json"
    config.write_text(json.dumps({"url": server.url, "apiKey": KEY}))
    config.chmod(0o600)
    return server


@pytest.fixture
def blackhole():
    """A port that accepts connections (the kernel's backlog) but never answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    sock.close()


@pytest.fixture
def dead_url():
    """A port nothing listens on."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return f"http://127.0.0.1:{port}"


def run_cli(home: Path, *args: str, stdin: str = "", env: dict | None = None, timeout: float = 60):
    """`python -m claude_code_sync ...` in a subprocess with HOME=home, as Claude Code runs it."""
    environment = {k: v for k, v in os.environ.items() if k not in ENV_VARS}
    environment.update({"HOME": str(home), "PYTHONPATH": str(SRC), **(env or {})})
    return subprocess.run(
        [sys.executable, "-m", "claude_code_sync", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=environment,
        timeout=timeout,
    )


def flushers_of(home: Path) -> list[int]:
    """Background flushers started for this HOME (found through /proc: Linux only)."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
            environ = (proc / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"flush" in cmdline and b"--background" in cmdline and f"HOME={home}".encode() in environ:
            pids.append(int(proc.name))
    return pids


def wait_for_no_flushers(home: Path, timeout: float = 30) -> None:
    """Wait for this HOME's background flushers to exit (the tests leave no process behind)."""
    deadline = time.monotonic() + timeout
    while flushers_of(home):
        if time.monotonic() > deadline:
            raise TimeoutError(f"flushers still running: {flushers_of(home)}")
        time.sleep(0.05)


def wait_until(predicate, timeout: float = 15, message: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {message}")
        time.sleep(0.05)
