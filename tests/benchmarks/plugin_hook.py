"""Claude Code plugin benchmark: claude-code-sync's hook wall time and backfill throughput.

    .venv/bin/python tests/benchmarks/plugin_hook.py [--hooks 30] [--sessions 200] [--lines 40]
                                                     [--repeat 3] [--workers 2] [--keep]

The plugin (plugins/claude-code-sync) promises that a Claude Code hook returns within 1 second
whatever the server does, and that a backfill (`claude-code-sync sync`) gets everything to the
server. Set-up: the plugin installed with `uv tool install` into a temporary tool folder, run as
the installed command with a temporary HOME (the hook JSON on stdin, exactly as Claude Code runs
it); the real server (gunicorn, tests/live.py) on a fresh database `bench_plugin_hook` on the
embedded PostgreSQL server (dropped at the end unless --keep), and a `sync` API key.

1. baseline: the wall time of starting the interpreter that runs the plugin (the tool's venv
   Python) and parsing the same hook JSON from stdin, `python -c "import json,sys;
   json.load(sys.stdin)"`: the floor any Python hook pays.
2. hooks: --hooks `claude-code-sync hook Stop`, each after appending one turn to a growing
   transcript in Claude Code's format (a prompt; the answer one line per content block, each with
   the message's usage: sometimes thinking, a text, a tool_use; the tool_result; a final answer
   with its own usage), against three servers, each with its own HOME and session:
   * up: the real server (configured with `claude-code-sync login`);
   * refused: a port bound with nothing listening, what a stopped server leaves (connection
     refused);
   * blackhole: a socket that accepts connections and never answers.
   Baseline and the three kinds are interleaved hook by hook (the order rotating), so the shared
   machine's noise hits them alike; before each hook the previous one's detached flusher (if
   any) is waited for, as turns are seconds apart in real use (not for the blackhole: its flusher
   waits for an answer that never comes, and the next flushers find the send lock taken).
   Reports the median, p95 and max of each, and the median's ratio to the baseline's. Afterwards,
   the up session must be on the server in full, and `claude-code-sync sync` against the real
   server must deliver the other two sessions' queues in full.
3. backfill: --sessions transcripts of --lines lines each (same line format, across 12 projects),
   in --repeat rounds (order alternating; the tables truncated before each run), the median of:
   * baseline: the minimum work: reading and `json.loads`ing every line of the same files in this
     process, then POSTing the records the plugin sends (captured from its spool once) to
     /sync/batch with plain urllib, in chunks of 200 records, one after another;
   * plugin: `claude-code-sync sync` with an empty local state, to the real server;
   * queue: the same with the server refusing connections: reading, mapping and spooling only;
   * own_chunks: the baseline, but POSTing the plugin's queued chunks one per request (one or
     more per session; the plugin itself sends consecutive chunks together while they fit),
     which tells the cost of small requests from the cost of its code.
   Reports messages/s and time ratios to the baseline.

Last line: one JSON object; the headline `ratio` is the server-up hook median over the baseline
median, `max_hook_s` the slowest hook of all (the promise: < 1).
"""

import argparse
import contextlib
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from datetime import UTC, datetime
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(BASE_DIR))
# The benchmark measures the work, not the per-key API budgets: its thousands of requests a minute
# from one key would run into them by design (their cost is one Redis round trip, ~0.6 ms).
# Inherited by the servers it starts.
for _scope in ("SYNC", "READ", "SEARCH", "EXPORT"):
    os.environ.setdefault(f"OPENSYNC_RATE_LIMIT_{_scope}", "off")

from tests.benchmarks.ingest import CODE, TOOLS, fresh_database, start_database, text, truncate  # noqa: E402
from tests.live import start_gunicorn, stop  # noqa: E402 - no Django

DATABASE = "bench_plugin_hook"
PLUGIN_DIR = BASE_DIR / "plugins" / "claude-code-sync"
MODEL = "claude-sonnet-4-5-20250929"
BASELINE_CODE = "import json,sys; json.load(sys.stdin)"
CHUNK = 200  # records per baseline request (the plugin's spool.MAX_RECORDS)
PROJECTS = 12
KINDS = ("up", "refused", "blackhole")
PROMISE_S = 1.0
QUIET = {"PYTHONWARNINGS": "ignore:No directory at"}  # whitenoise in gunicorn: no collectstatic here
BASH_OUTPUT = "============================= test session starts ==============================\n" + "".join(
    f"tests/test_sync.py::test_case_{i} PASSED                                     [{i * 4:3d}%]\n" for i in range(25)
)


# --- transcripts in Claude Code's format ----------------------------------------------------------


def usage(rng: random.Random, output: int | None = None) -> dict:
    cache_5m = rng.randint(0, 3000)
    return {
        "input_tokens": rng.randint(1, 30),
        "cache_creation_input_tokens": cache_5m,
        "cache_read_input_tokens": rng.randint(5000, 80_000),
        "cache_creation": {"ephemeral_5m_input_tokens": cache_5m, "ephemeral_1h_input_tokens": 0},
        "output_tokens": output or rng.randint(5, 900),
        "service_tier": "standard",
    }


class Transcript:
    """One session's transcript as Claude Code writes it: a parentUuid chain, one line per content
    block of an answer (each repeating the message's usage), tool results as user lines."""

    def __init__(self, home: Path, rng: random.Random, project: str):
        self.rng = rng
        self.session_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        self.cwd = home / "proj" / project
        self.cwd.mkdir(parents=True, exist_ok=True)
        self.path = home / ".claude" / "projects" / str(self.cwd).replace("/", "-") / f"{self.session_id}.jsonl"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.parent = None
        self.clock = datetime(2026, 3, 2, 9, 0, tzinfo=UTC).timestamp() + rng.randint(0, 86400 * 30)
        self.lines = self.messages = 0

    def uid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def entry(self, kind: str, **fields) -> dict:
        self.clock += self.rng.uniform(0.3, 6)
        moment = datetime.fromtimestamp(self.clock, UTC)
        line = {
            "parentUuid": self.parent, "isSidechain": False, "userType": "external", "cwd": str(self.cwd),
            "sessionId": self.session_id, "version": "2.1.29", "gitBranch": "main", "slug": "tidy-humming-lark",
            "type": kind, **fields, "uuid": self.uid(),
            "timestamp": moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z",
        }  # fmt: skip
        self.parent = line["uuid"]
        return line

    def user(self, content, **fields) -> dict:
        return self.entry("user", message={"role": "user", "content": content}, **fields)

    def assistant(self, message_id: str, block: dict, use: dict) -> dict:
        message = {"model": MODEL, "id": message_id, "type": "message", "role": "assistant", "content": [block],
                   "stop_reason": None, "stop_sequence": None, "usage": use}  # fmt: skip
        return self.entry("assistant", message=message, requestId=f"req_{message_id[4:]}")

    def snapshot(self) -> dict:
        return {"type": "file-history-snapshot", "messageId": self.uid(), "isSnapshotUpdate": False,
                "snapshot": {"messageId": self.uid(), "trackedFileBackups": {}, "timestamp": "2026-03-02T09:00:00.000Z"}}  # fmt: skip

    def turn(self) -> list[dict]:
        """A prompt, an answer streamed as thinking (sometimes), text and tool_use lines, the tool's
        result, and a final answer with code."""
        rng = self.rng
        lines = [self.user(text(rng, 40, 600))]
        msg = f"msg_{self.uid().replace('-', '')[:24]}"
        use = usage(rng)
        if rng.random() < 0.4:
            thinking = {"type": "thinking", "thinking": text(rng, 100, 800), "signature": "c2ln" * 40}
            lines.append(self.assistant(msg, thinking, use))
        lines.append(self.assistant(msg, {"type": "text", "text": text(rng, 30, 300)}, use))
        tool, call_id = rng.choice(TOOLS), f"toolu_{self.uid().replace('-', '')[:24]}"
        file_path = f"{self.cwd}/src/app/module_{rng.randint(1, 90)}.py"
        if tool == "Bash":
            args, output = {"command": "pytest -q tests/test_sync.py", "timeout": 120000}, BASH_OUTPUT
            result = {"stdout": output, "stderr": "", "interrupted": False, "isImage": False}
        elif tool == "Read":
            args = {"file_path": file_path}
            source = CODE * rng.randint(1, 12)
            output = "".join(f"{n:6d}\t{line}\n" for n, line in enumerate(source.splitlines(), 1))
            result = {
                "type": "text",
                "file": {"filePath": file_path, "content": source, "numLines": source.count("\n")},
            }
        elif tool in ("Edit", "Write"):
            args = {"file_path": file_path, "old_string": "return data", "new_string": "return dict(data)"}
            output, result = f"The file {file_path} has been updated.", {"filePath": file_path, "structuredPatch": []}
        else:
            args = {"pattern": "def load_config", "path": str(self.cwd), "output_mode": "content"}
            output, result = text(rng, 100, 1200), {"mode": "content", "numFiles": 3}
        use = {**use, "output_tokens": use["output_tokens"] + rng.randint(20, 400)}
        lines.append(self.assistant(msg, {"type": "tool_use", "id": call_id, "name": tool, "input": args}, use))
        block = {"tool_use_id": call_id, "type": "tool_result", "content": output}
        lines.append(self.user([block], toolUseResult=result))
        answer = text(rng, 200, 2500)
        if rng.random() < 0.5:
            answer += "\n\n```python\n" + CODE + "```\n"
        msg = f"msg_{self.uid().replace('-', '')[:24]}"
        lines.append(self.assistant(msg, {"type": "text", "text": answer}, usage(rng)))
        return lines

    def append(self, lines: list[dict]) -> None:
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.writelines(json.dumps(line, ensure_ascii=False) + "\n" for line in lines)
        self.lines += len(lines)
        self.messages += sum(1 for line in lines if is_message(line))


def is_message(line: dict) -> bool:
    """Whether the plugin sends the line as a message (thinking is off by default; snapshots are
    not messages)."""
    if line.get("type") not in ("user", "assistant"):
        return False
    return line["type"] == "user" or line["message"]["content"][0]["type"] != "thinking"


def hook_payload(t: Transcript, event: str = "Stop") -> bytes:
    payload = {"session_id": t.session_id, "transcript_path": str(t.path), "cwd": str(t.cwd),
               "permission_mode": "default", "hook_event_name": event, "stop_hook_active": False}  # fmt: skip
    return json.dumps(payload).encode()


# --- the plugin, its servers and its processes ----------------------------------------------------


def install_plugin(root: Path) -> tuple[str, str]:
    """`uv tool install` into `root`; (the command, the interpreter that runs it)."""
    uv = Path(sys.executable).parent / "uv"
    uv = str(uv) if uv.exists() else shutil.which("uv")
    if uv is None:
        raise SystemExit("needs uv (the project's .venv has it) to install the plugin")
    env = {**os.environ, "UV_TOOL_DIR": str(root / "tools"), "UV_TOOL_BIN_DIR": str(root / "bin")}
    subprocess.run([uv, "tool", "install", str(PLUGIN_DIR)], env=env, check=True, capture_output=True, timeout=300)
    cli = root / "bin" / "claude-code-sync"
    shebang = cli.read_text().splitlines()[0]
    assert shebang.startswith("#!"), shebang
    return str(cli), shebang[2:].strip()


def environment(root: Path, home: Path, **extra) -> dict:
    """What the hook gets (like tests/test_plugin_claude_code.py): PATH with the tool, HOME."""
    return {"PATH": f"{root / 'bin'}:{os.environ['PATH']}", "HOME": str(home), **extra}


def timed_run(command: list[str], env: dict, stdin: bytes = b"") -> tuple[float, subprocess.CompletedProcess]:
    started = time.perf_counter()
    result = subprocess.run(command, input=stdin, env=env, capture_output=True, timeout=120)
    return time.perf_counter() - started, result


class Blackhole:
    """A port that accepts connections and never answers; close() hangs up on all of them."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.sock.settimeout(0.1)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.connections: list[socket.socket] = []
        self.closed = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while not self.closed.is_set():
            with contextlib.suppress(TimeoutError, OSError):
                self.connections.append(self.sock.accept()[0])

    def close(self) -> None:
        if self.closed.is_set():
            return
        self.closed.set()
        self.thread.join()
        for conn in [*self.connections, self.sock]:
            conn.close()


def refused_port() -> tuple[socket.socket, str]:
    """A port bound with nothing listening (kept bound so nobody else takes it): connection refused."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    return sock, f"http://127.0.0.1:{sock.getsockname()[1]}"


def flushers(root: Path) -> list[int]:
    """The plugin's processes whose HOME is under `root` (through /proc)."""
    found, prefix = [], f"HOME={root}/".encode()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            if b"claude_code_sync" not in (proc / "cmdline").read_bytes():
                continue
            if any(var.startswith(prefix) for var in (proc / "environ").read_bytes().split(b"\0")):
                found.append(int(proc.name))
        except OSError:
            continue
    return found


def settle(root: Path, timeout: float = 60) -> None:
    """Wait for the detached flushers under `root` to finish."""
    deadline = time.monotonic() + timeout
    while flushers(root):
        if time.monotonic() > deadline:
            raise TimeoutError(f"flushers still running: {flushers(root)}")
        time.sleep(0.02)


def kill_flushers(root: Path) -> list[int]:
    killed = flushers(root)
    for pid in killed:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return killed


def spool(home: Path) -> list[Path]:
    folder = home / ".claude-code-sync" / "spool"
    return sorted(folder.glob("*.json")) if folder.exists() else []


def stored(conninfo: dict, session_ids: list[str] | None = None) -> tuple[int, int]:
    """(sessions, messages) on the server, of these sessions or of all."""
    import psycopg

    with psycopg.connect(**conninfo) as conn:
        if session_ids is None:
            sessions = conn.execute("SELECT count(*) FROM sessions_app_session").fetchone()[0]
            return sessions, conn.execute("SELECT count(*) FROM sessions_app_message").fetchone()[0]
        sessions = conn.execute(
            "SELECT count(*) FROM sessions_app_session WHERE external_id = ANY(%s)", [session_ids]
        ).fetchone()[0]
        messages = conn.execute(
            "SELECT count(*) FROM sessions_app_message m JOIN sessions_app_session s ON s.id = m.session_id"
            " WHERE s.external_id = ANY(%s)",
            [session_ids],
        ).fetchone()[0]
        return sessions, messages


# --- 1 and 2: hooks ---------------------------------------------------------------------------------


def measure_hooks(args, root: Path, cli: str, python: str, url: str, key: str, conninfo: dict) -> dict:
    rng = random.Random(11)
    refused_sock, refused_url = refused_port()
    hole = Blackhole()
    homes = {kind: root / f"home-{kind}" for kind in KINDS}
    envs = {
        "up": environment(root, homes["up"]),
        "refused": environment(root, homes["refused"], OPENSYNC_URL=refused_url, OPENSYNC_API_KEY=key),
        "blackhole": environment(root, homes["blackhole"], OPENSYNC_URL=hole.url, OPENSYNC_API_KEY=key),
    }
    try:
        for home in homes.values():
            home.mkdir()
        _, login = timed_run([cli, "login", "--url", url, "--key", key], envs["up"])
        assert login.returncode == 0, login.stderr
        transcripts = {kind: Transcript(homes[kind], rng, f"hooks-{kind}") for kind in KINDS}
        for t in transcripts.values():
            t.append([t.snapshot()])
        samples: dict[str, list[float]] = {kind: [] for kind in ("baseline", *KINDS)}
        order = ["baseline", *KINDS]
        for i in range(args.hooks):
            for kind in order[i % 4 :] + order[: i % 4]:
                if kind == "baseline":
                    seconds, result = timed_run(
                        [python, "-c", BASELINE_CODE], envs["up"], hook_payload(transcripts["up"])
                    )
                else:
                    t = transcripts[kind]
                    t.append(t.turn())
                    if kind != "blackhole":
                        settle(homes[kind])
                    seconds, result = timed_run([cli, "hook", "Stop"], envs[kind], hook_payload(t))
                    assert (result.stdout, result.stderr) == (b"", b""), result
                assert result.returncode == 0, result
                samples[kind].append(seconds)
            if (i + 1) % 10 == 0 or i + 1 == args.hooks:
                last = "  ".join(f"{kind} {samples[kind][-1] * 1000:6.1f}" for kind in order)
                print(f"  hook {i + 1:3d}/{args.hooks}: ms  {last}", flush=True)
    finally:
        hole.close()  # the blackholed flusher gets its connection closed and gives up
        refused_sock.close()
    settle(root)

    # nothing lost: the up session is on the server in full; the others' queues go with `sync`
    up = transcripts["up"]
    assert spool(homes["up"]) == [], spool(homes["up"])
    assert stored(conninfo, [up.session_id]) == (1, up.messages), (stored(conninfo, [up.session_id]), up.messages)
    delivered = {}
    for kind in ("refused", "blackhole"):
        t = transcripts[kind]
        queued = len(spool(homes[kind]))
        assert queued and stored(conninfo, [t.session_id]) == (0, 0), kind
        env = environment(root, homes[kind], OPENSYNC_URL=url, OPENSYNC_API_KEY=key)
        seconds, result = timed_run([cli, "sync", "--quiet"], env)
        assert result.returncode == 0, result.stderr
        assert spool(homes[kind]) == [], kind
        assert stored(conninfo, [t.session_id]) == (1, t.messages), (kind, stored(conninfo, [t.session_id]))
        delivered[kind] = (queued, seconds)
    settle(root)
    return {"samples": samples, "delivered": delivered, "lines": up.lines, "messages": up.messages}


# --- 3: backfill --------------------------------------------------------------------------------------


def make_transcripts(home: Path, sessions: int, lines: int) -> tuple[list[Path], int]:
    """`sessions` transcripts of `lines` lines each; (their paths, how many messages they hold)."""
    rng = random.Random(29)
    paths, messages = [], 0
    for s in range(sessions):
        t = Transcript(home, rng, f"project-{s % PROJECTS:02d}")
        content = [t.snapshot()]
        while len(content) < lines:
            content += t.turn()
        t.append(content[:lines])
        paths.append(t.path)
        messages += t.messages
    return paths, messages


def baseline_backfill(paths: list[Path], bodies: list[bytes], url: str, key: str) -> float:
    """Read and parse every line of the transcripts, then POST the plugin's records in chunks."""
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {key}"}
    started = time.perf_counter()
    for path in paths:
        with open(path, "rb") as handle:
            for line in handle:
                json.loads(line)
    for body in bodies:
        request = urllib.request.Request(f"{url}/sync/batch", data=body, headers=headers, method="POST")  # noqa: S310
        with urllib.request.urlopen(request, timeout=120) as response:  # noqa: S310 - our own http:// URL
            answer = json.loads(response.read())
        assert response.status == 200 and not answer.get("errors"), answer
    return time.perf_counter() - started


def chunked(chunks: list[dict], size: int) -> list[bytes]:
    """The records of the plugin's chunks, in order, re-cut into bodies of `size` records."""
    records = [(kind, record) for chunk in chunks for kind in ("sessions", "messages") for record in chunk[kind]]
    bodies = []
    for start in range(0, len(records), size):
        part = records[start : start + size]
        batch = {kind: [record for k, record in part if k == kind] for kind in ("sessions", "messages")}
        bodies.append(json.dumps(batch, ensure_ascii=False).encode())
    return bodies


def measure_backfill(args, root: Path, cli: str, url: str, key: str, conninfo: dict, socket_dir: str) -> dict:
    home = root / "home-backfill"
    home.mkdir()
    started = time.perf_counter()
    paths, messages = make_transcripts(home, args.sessions, args.lines)
    size = sum(path.stat().st_size for path in paths)
    print(f"backfill data: {args.sessions} sessions x {args.lines} lines, {messages} messages, "
          f"{size / 1e6:.1f} MB of transcripts (written in {time.perf_counter() - started:.1f} s)")  # fmt: skip
    refused_sock, refused_url = refused_port()
    env = environment(root, home)
    env_refused = environment(root, home, OPENSYNC_URL=refused_url, OPENSYNC_API_KEY=key)
    _, login = timed_run([cli, "login", "--url", url, "--key", key], env)
    assert login.returncode == 0, login.stderr
    data_dir = home / ".claude-code-sync"

    def queue_only() -> float:
        shutil.rmtree(data_dir, ignore_errors=True)
        seconds, result = timed_run([cli, "sync", "--quiet"], env_refused)
        assert result.returncode == 1 and b"Nothing was lost" in result.stderr, result  # queued, not sent
        return seconds

    def plugin() -> float:
        shutil.rmtree(data_dir, ignore_errors=True)
        truncate(socket_dir, DATABASE)
        seconds, result = timed_run([cli, "sync", "--quiet"], env)
        assert result.returncode == 0, result.stderr
        assert stored(conninfo) == (args.sessions, messages), stored(conninfo)
        assert spool(home) == []
        return seconds

    def baseline(requests: list[bytes]) -> float:
        truncate(socket_dir, DATABASE)
        seconds = baseline_backfill(paths, requests, url, key)
        assert stored(conninfo) == (args.sessions, messages), stored(conninfo)
        return seconds

    try:
        queue_only()  # once to capture the records (and warm the page cache)
        chunks = [json.loads(path.read_bytes()) for path in spool(home)]
        sent = sum(len(chunk["messages"]) for chunk in chunks)
        assert sent == messages and sum(len(c["sessions"]) for c in chunks) == args.sessions, (sent, messages)
        bodies = chunked(chunks, CHUNK)
        own = [json.dumps(chunk, ensure_ascii=False).encode() for chunk in chunks]
        runs = {"baseline": lambda: baseline(bodies), "plugin": plugin, "queue": queue_only,
                "own_chunks": lambda: baseline(own)}  # fmt: skip
        samples: dict[str, list[float]] = {kind: [] for kind in runs}
        for r in range(args.repeat):
            kinds = list(runs) if r % 2 == 0 else list(reversed(runs))
            for kind in kinds:
                seconds = runs[kind]()
                samples[kind].append(seconds)
                print(f"  round {r + 1}: {kind:10} {seconds:6.2f} s  {messages / seconds:7.0f} messages/s", flush=True)
    finally:
        refused_sock.close()
    settle(root)
    return {"samples": samples, "messages": messages, "mb": size / 1e6, "plugin_chunks": len(chunks),
            "baseline_requests": len(bodies)}  # fmt: skip


# --- main -------------------------------------------------------------------------------------------


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20, method="inclusive")[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hooks", type=int, default=30, help="hooks per kind (server up, refused, blackhole)")
    parser.add_argument("--sessions", type=int, default=200, help="transcripts to backfill")
    parser.add_argument("--lines", type=int, default=40, help="lines per backfilled transcript")
    parser.add_argument("--repeat", type=int, default=3, help="backfill rounds (the median is reported)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--keep", action="store_true", help=f"keep the {DATABASE} database and the temp folder")
    parser.add_argument("--data-dir", default=str(BASE_DIR / "data"))
    args = parser.parse_args()
    if args.hooks < 2 or args.repeat < 1:
        parser.error("--hooks must be at least 2 and --repeat at least 1")

    root = Path(tempfile.mkdtemp(prefix="bench-plugin-hook-"))
    started = time.perf_counter()
    cli, python = install_plugin(root)
    print(f"plugin: {cli} (run by {python}), installed in {time.perf_counter() - started:.1f} s")
    server, socket_dir = start_database(Path(args.data_dir))
    web = None
    try:
        env = fresh_database(socket_dir, DATABASE)
        key = subprocess.run(
            [sys.executable, "manage.py", "create_api_key", "--email", "bench@example.com", "--name", "bench"],
            cwd=BASE_DIR, env=env, check=True, capture_output=True, text=True,
        ).stdout.strip()  # fmt: skip
        conninfo = {"host": socket_dir, "user": "postgres", "dbname": DATABASE}
        web, port = start_gunicorn(
            {"HOST": socket_dir, "USER": "postgres", "NAME": DATABASE}, workers=args.workers, extra_env=QUIET
        )
        url = f"http://127.0.0.1:{port}"
        print(f"server: gunicorn ({args.workers} workers) on {url}, database {DATABASE}")

        print(f"\nhooks: {args.hooks} of each kind, interleaved")
        hooks = measure_hooks(args, root, cli, python, url, key, conninfo)
        print("\nbackfill:")
        backfill = measure_backfill(args, root, cli, url, key, conninfo, socket_dir)
    finally:
        killed = kill_flushers(root)
        if web is not None:
            stop(web)
        if not args.keep:
            import psycopg

            with psycopg.connect(host=socket_dir, user="postgres", dbname="postgres", autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
            shutil.rmtree(root, ignore_errors=True)
        server.cleanup()
    if killed:
        print(f"warning: had to kill flushers still running at the end: {killed}")

    samples = hooks["samples"]
    base = statistics.median(samples["baseline"])
    figures = {"hooks": args.hooks, "hook_transcript_lines": hooks["lines"], "hook_messages": hooks["messages"],
               "baseline_ms": round(base * 1000, 1), "baseline_p95_ms": round(p95(samples["baseline"]) * 1000, 1)}  # fmt: skip
    labels = {"baseline": "baseline: python -c json.load", "up": "hook, server up", "refused": "hook, connection refused",
              "blackhole": "hook, server never answers"}  # fmt: skip
    print(f"\n{'hooks (wall time)':32} {'median ms':>10} {'p95 ms':>8} {'max ms':>8} {'ratio':>6}")
    for kind, label in labels.items():
        values = samples[kind]
        median = statistics.median(values)
        print(
            f"{label:32} {median * 1000:10.1f} {p95(values) * 1000:8.1f} {max(values) * 1000:8.1f} {median / base:6.2f}"
        )
        if kind != "baseline":
            figures.update({f"{kind}_median_ms": round(median * 1000, 1), f"{kind}_p95_ms": round(p95(values) * 1000, 1),
                            f"{kind}_max_ms": round(max(values) * 1000, 1), f"{kind}_ratio": round(median / base, 3)})  # fmt: skip
    max_hook = max(max(samples[kind]) for kind in KINDS)
    print(f"(median of {args.hooks} hooks each, interleaved; ratio = median / baseline median)")
    print(
        f"slowest hook: {max_hook:.3f} s ({'within' if max_hook < PROMISE_S else 'OVER'} the {PROMISE_S:.0f} s promise)"
    )
    for kind, (queued, seconds) in hooks["delivered"].items():
        print(f"  {kind}: {queued} queued batches delivered by `claude-code-sync sync` in {seconds:.2f} s, none lost")

    messages = backfill["messages"]
    times = {kind: statistics.median(values) for kind, values in backfill["samples"].items()}
    labels = {"baseline": f"baseline: read+parse, POST x{backfill['baseline_requests']}",
              "plugin": f"claude-code-sync sync ({backfill['plugin_chunks']} chunks)",
              "queue": "sync, server refusing (queue only)",
              "own_chunks": f"baseline, POST x{backfill['plugin_chunks']} (a chunk each)"}  # fmt: skip
    print(f"\n{'backfill':40} {'median s':>9} {'messages/s':>11} {'ratio':>6}")
    for kind, label in labels.items():
        seconds = times[kind]
        print(f"{label:40} {seconds:9.2f} {messages / seconds:11.0f} {seconds / times['baseline']:6.2f}")
    print(f"(median of {args.repeat} rounds; {args.sessions} sessions, {messages} messages, {backfill['mb']:.1f} MB; "
          f"ratio = time / baseline time)")  # fmt: skip

    figures.update({
        "max_hook_s": round(max_hook, 3), "promise_kept": max_hook < PROMISE_S,
        "sessions": args.sessions, "lines_per_session": args.lines, "messages": messages, "repeat": args.repeat,
        "backfill_baseline_s": round(times["baseline"], 3),
        "backfill_baseline_messages_per_s": round(messages / times["baseline"]),
        "backfill_s": round(times["plugin"], 3), "backfill_messages_per_s": round(messages / times["plugin"]),
        "backfill_ratio": round(times["plugin"] / times["baseline"], 3),
        "queue_s": round(times["queue"], 3), "queue_ratio": round(times["queue"] / times["baseline"], 3),
        "own_chunks_baseline_s": round(times["own_chunks"], 3),
        "own_chunks_ratio": round(times["own_chunks"] / times["baseline"], 3),
        "plugin_chunks": backfill["plugin_chunks"], "baseline_requests": backfill["baseline_requests"],
        "ratio": round(statistics.median(samples["up"]) / base, 3),
    })  # fmt: skip
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
