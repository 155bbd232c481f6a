"""Ingest benchmark: the sync API over HTTP against raw psycopg COPY into the same tables.

    .venv/bin/python tests/benchmarks/ingest.py [--sessions 1000] [--messages-per-session 100]
                                                [--clients 4] [--workers 3]

Generates a realistic workload (coding sessions: prompts, long assistant answers with code,
tool calls with JSON arguments and tool results), then in one run, on one fresh database:

1. baseline: the same sessions, messages and parts inserted with psycopg COPY, with the same
   tables and indexes (the fastest way PostgreSQL takes rows);
2. api_insert: the workload sent as `/sync/batch` (one request per session, like droid-sync and
   pi send a session's messages) over HTTP to gunicorn by several concurrent clients;
3. api_update: the same requests again (every row exists: all updates, parts replaced);
4. request log: many one-message `/sync/message` requests (what claude-code-sync sends), to two
   gunicorns on the same database, one with the per-key request log on and one with it off,
   interleaved; reports the log's cost as the ratio of their rates;
5. metrics: the same with `/metrics` on (OPENSYNC_METRICS_TOKEN set: django-prometheus' two
   middlewares, multiprocess mode) and off.
6. embeddings: the same with embeddings on (the local model, the default: each sync queues its
   sessions' embedding after commit, debounced through the shared cache) and off
   (OPENSYNC_EMBEDDINGS_PROVIDER=none), both on a real Valkey as broker and cache, as `make run`
   has; no worker consumes the queue, so only what the web process pays is measured.

Steps 1-5 run with embeddings off, as they were first measured (a memory:// broker would make the
queueing look free).

Prints messages/s for each and ratios against the baseline. Last line: one JSON object.
"""

import argparse
import http.client
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import quote

BASE_DIR = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(BASE_DIR))
# The benchmark measures the work, not the per-key API budgets: its thousands of requests a minute
# from one key would run into them by design (their cost is one Redis round trip, ~0.6 ms).
# Inherited by the servers it starts.
for _scope in ("SYNC", "READ", "SEARCH", "EXPORT"):
    os.environ.setdefault(f"OPENSYNC_RATE_LIMIT_{_scope}", "off")

from sessions_app.search_text import MESSAGE_SEARCH_CHARS, PART_SEARCH_CHARS  # noqa: E402 - no Django

WORDS = [
    "the",
    "function",
    "returns",
    "a",
    "list",
    "of",
    "users",
    "when",
    "the",
    "request",
    "is",
    "valid",
    "and",
    "raises",
    "an",
    "error",
    "otherwise",
    "we",
    "need",
    "to",
    "update",
    "the",
    "migration",
    "and",
    "add",
    "an",
    "index",
    "on",
    "created_at",
    "so",
    "the",
    "query",
    "stays",
    "fast",
    "add",
    "tests",
    "for",
    "the",
    "edge",
    "cases",
    "refactor",
    "the",
    "handler",
    "into",
    "a",
    "service",
    "check",
    "the",
    "logs",
    "for",
    "ECONNREFUSED",
    "retry",
]
CODE = """def load_config(path: str) -> dict:
    with open(path) as fh:
        data = json.load(fh)
    if "version" not in data:
        raise ValueError(f"missing version in {path}")
    return data
"""
TOOLS = ["Read", "Edit", "Bash", "Grep", "Write"]


def text(rng: random.Random, low: int, high: int) -> str:
    size = rng.randint(low, high)
    out = []
    while sum(len(w) + 1 for w in out) < size:
        out.append(rng.choice(WORDS))
    return " ".join(out)


def make_workload(n_sessions: int, per_session: int, seed: int = 7) -> list[dict]:
    rng = random.Random(seed)
    batches = []
    for s in range(n_sessions):
        sid = f"bench-{s:06d}"
        messages = []
        for m in range(per_session):
            created = 1_790_000_000_000 + s * 10_000_000 + m * 1000
            if m % 2 == 0:
                item = {"sessionExternalId": sid, "externalId": f"{sid}-u{m}", "role": "user",
                        "textContent": text(rng, 40, 600), "createdAt": created}  # fmt: skip
            else:
                answer = text(rng, 200, 2500)
                if rng.random() < 0.4:
                    answer += "\n\n```python\n" + CODE + "```\n"
                item = {"sessionExternalId": sid, "externalId": f"{sid}-a{m}", "role": "assistant",
                        "textContent": answer, "model": "claude-sonnet-4-20250514", "createdAt": created,
                        "promptTokens": rng.randint(500, 9000), "completionTokens": rng.randint(50, 900),
                        "durationMs": rng.randint(300, 20000)}  # fmt: skip
                if rng.random() < 0.5:
                    tool = rng.choice(TOOLS)
                    item["parts"] = [
                        {"type": "text", "content": answer[:200]},
                        {"type": "tool-call", "content": {"toolName": tool, "args": {"file_path": f"src/app/module_{m}.py", "pattern": "def ", "limit": 200}}},
                        {"type": "tool-result", "content": text(rng, 100, 3000)},
                    ]  # fmt: skip
            messages.append(item)
        session = {"externalId": sid, "source": rng.choice(["claude-code", "opencode", "codex-cli", "pi"]),
                   "title": text(rng, 20, 80), "projectPath": f"/home/dev/proj/p{s % 37}",
                   "projectName": f"p{s % 37}", "model": "claude-sonnet-4-20250514", "provider": "anthropic",
                   "promptTokens": rng.randint(10_000, 900_000), "completionTokens": rng.randint(1000, 90_000),
                   "cost": round(rng.random() * 3, 6), "durationMs": rng.randint(10_000, 5_000_000),
                   "createdAt": 1_790_000_000_000 + s * 10_000_000}  # fmt: skip
        batches.append({"sessions": [session], "messages": messages})
    return batches


# --- database set-up ----------------------------------------------------------------------------


def start_database(data_dir: Path) -> tuple[object, str]:
    from opensync.settings import embedded

    server = embedded.hold_postgres(data_dir)
    return server, str(server.get_postmaster_info().socket_dir)


def recreate_database(socket_dir: str, name: str, *, create: bool = True) -> None:
    """Drop `name` on the embedded server, and create it empty again unless `create` is False."""
    import psycopg

    with psycopg.connect(host=socket_dir, user="postgres", dbname="postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if create:
            conn.execute(f'CREATE DATABASE "{name}"')


def run_in_child(script: str, name: str, data_dir: Path, env: dict, *, keep: bool, fresh: bool = True) -> None:
    """Run `script --child` (with this process's arguments) with Django pointed at a fresh
    database `name` on the embedded server, drop it afterwards unless `keep`, and exit with the
    child's status. The child finds the server's socket in BENCH_SOCKET.

    Django runs only in the child: importing the settings here would start them against the
    development database. `fresh` False reuses the database a --keep run left.
    """
    server, socket_dir = start_database(data_dir)
    if fresh:
        recreate_database(socket_dir, name)
    env = {
        **os.environ,
        "DATABASE_URL": f"postgresql://postgres@{quote(socket_dir, safe='')}/{name}",
        "BENCH_SOCKET": socket_dir,
        "SECRET_KEY": "benchmark-only",
        "CELERY_BROKER_URL": "memory://",
        "DB_CONN_MAX_AGE": "600",
        "LOG_LEVEL": "WARNING",
        **env,
    }
    try:
        child = subprocess.run([sys.executable, script, *sys.argv[1:], "--child"], cwd=BASE_DIR, env=env)
    finally:
        if not keep:
            recreate_database(socket_dir, name, create=False)
        server.cleanup()
    sys.exit(child.returncode)


def setup_django(name: str) -> None:
    """In a run_in_child child: Django set up on the benchmark database `name` (checked, so it is
    never the real one), with DEBUG off and the schema migrated."""
    import warnings

    import django

    warnings.filterwarnings("ignore", message="No directory at")  # whitenoise: no collectstatic here
    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection

    assert not settings.DEBUG
    assert connection.settings_dict["NAME"] == name, connection.settings_dict["NAME"]
    call_command("migrate", verbosity=0)


def fresh_database(socket_dir: str, name: str) -> dict:
    recreate_database(socket_dir, name)
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "opensync.settings",
        "DATABASE_URL": f"postgresql://postgres@{quote(socket_dir, safe='')}/{name}",
        "SECRET_KEY": "benchmark-only",
        "CELERY_BROKER_URL": "memory://",
        "LOG_LEVEL": "WARNING",
        "OPENSYNC_EMBEDDINGS_PROVIDER": "none",  # a caller turns a provider on (its env after this one)
    }
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=BASE_DIR, env=env, check=True)
    return env


def truncate(socket_dir: str, name: str) -> None:
    import psycopg

    with psycopg.connect(host=socket_dir, user="postgres", dbname=name, autocommit=True) as conn:
        conn.execute("TRUNCATE sessions_app_part, sessions_app_message, sessions_app_session RESTART IDENTITY CASCADE")
        conn.execute("CHECKPOINT")


# --- baseline: psycopg COPY -------------------------------------------------------------------------


def raw_copy(socket_dir: str, name: str, batches: list[dict], workspace_id: int, owner_id: int) -> float:
    """COPY the same rows into the same tables. Returns seconds."""
    import psycopg

    started = time.perf_counter()
    with psycopg.connect(host=socket_dir, user="postgres", dbname=name) as conn, conn.cursor() as cur:
        with cur.copy(
            "COPY sessions_app_session (workspace_id, owner_id, external_id, title, project_path, project_name,"
            " model, provider, source, prompt_tokens, completion_tokens, cache_read_tokens, cache_write_tokens,"
            " cost, duration_ms, message_count, is_public, created_at, updated_at) FROM STDIN"
        ) as copy:
            for b in batches:
                s = b["sessions"][0]
                copy.write_row((workspace_id, owner_id, s["externalId"], s["title"], s["projectPath"], s["projectName"],
                                s["model"], s["provider"], s["source"], s["promptTokens"], s["completionTokens"], 0, 0,
                                s["cost"], s["durationMs"], len(b["messages"]), False, ms(s["createdAt"]), ms(s["createdAt"])))  # fmt: skip
        cur.execute("SELECT external_id, id FROM sessions_app_session")
        session_ids = dict(cur.fetchall())
        with cur.copy(
            "COPY sessions_app_message (session_id, external_id, role, text_content, model, prompt_tokens,"
            " completion_tokens, duration_ms, created_at, search_text) FROM STDIN"
        ) as copy:
            for b in batches:
                for m in b["messages"]:
                    copy.write_row((session_ids[m["sessionExternalId"]], m["externalId"], m["role"], m["textContent"],
                                    m.get("model"), m.get("promptTokens"), m.get("completionTokens"),
                                    m.get("durationMs"), ms(m["createdAt"]), search_text(m)))  # fmt: skip
        cur.execute("SELECT external_id, id FROM sessions_app_message")
        message_ids = dict(cur.fetchall())
        with cur.copy('COPY sessions_app_part (message_id, type, content, "order") FROM STDIN') as copy:
            for b in batches:
                for m in b["messages"]:
                    for order, part in enumerate(m.get("parts", [])):
                        copy.write_row((message_ids[m["externalId"]], part["type"], json.dumps(part["content"]), order))
        conn.commit()
    return time.perf_counter() - started


def search_text(message: dict) -> str:
    """What the server stores in Message.search_text (sessions_app/search_text.py), computed here
    so the baseline writes each row once, with the same text to index."""
    text = message.get("textContent")
    pieces = [text] if text else []
    for part in message.get("parts", []):
        kind, content = part["type"], part["content"]
        if kind == "text" and isinstance(content, str) and content.strip(" \t\r\n") in (text or ""):
            continue  # its words are already in the text content (sessions_app/message_text.py)
        if isinstance(content, str):
            pieces.append(content if kind in ("text", "thinking", "reasoning") else content[:PART_SEARCH_CHARS])
        elif isinstance(content, dict):
            keys = ("toolName", "name", "text", "content", "result", "output", "error", "args", "arguments", "input")
            values = [v if isinstance(v, str) else json.dumps(v) for k in keys if (v := content.get(k)) is not None]
            pieces.append(" ".join(values)[:PART_SEARCH_CHARS])
        elif content is not None:
            pieces.append(json.dumps(content)[:PART_SEARCH_CHARS])
    return "\n".join(pieces)[:MESSAGE_SEARCH_CHARS]


def ms(value: int):
    from datetime import UTC, datetime

    return datetime.fromtimestamp(value / 1000, tz=UTC)


# --- the API over HTTP ----------------------------------------------------------------------------


def send_all(port: int, key: str, bodies: list[bytes], clients: int, path: str = "/sync/batch") -> float:
    queue = list(reversed(bodies))
    lock = threading.Lock()
    failures = []

    def worker():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {key}"}
        while True:
            with lock:
                if not queue:
                    break
                body = queue.pop()
            conn.request("POST", path, body=body, headers=headers)
            response = conn.getresponse()
            data = response.read()
            if response.status != 200 or json.loads(data).get("errors"):
                failures.append((response.status, data[:200]))
        conn.close()

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    if failures:
        raise SystemExit(f"{len(failures)} requests failed, e.g. {failures[0]}")
    return elapsed


def start_web(env: dict, workers: int, **extra_env) -> tuple[subprocess.Popen, int]:
    from tests.live import wait_for_health

    port = free_port()
    web = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "opensync.wsgi:application", "--bind", f"127.0.0.1:{port}",
         "--worker-class", "opensync.gunicorn_worker.JsonErrorWorker",  # as the Procfile's web
         "--workers", str(workers), "--log-level", "warning", "--timeout", "300"],
        cwd=BASE_DIR, env={**env, "DB_CONN_MAX_AGE": "600", **extra_env}, start_new_session=True,
    )  # fmt: skip
    wait_for_health(port, web)
    return web, port


def ab_cost(env: dict, key: str, workers: int, clients: int, requests: int, on: dict, off: dict) -> tuple[float, float]:
    """One-message requests/s to two gunicorns on the same database, one with the `on` settings and
    one with `off`, in interleaved rounds (a burst of other work on the machine hits both)."""
    web_on, port_on = start_web(env, workers, **on)
    web_off, port_off = start_web(env, workers, **off)
    seconds = {"on": 0.0, "off": 0.0}
    rounds = 4
    try:
        for r in range(rounds):
            for label, port in (
                (("on", port_on), ("off", port_off)) if r % 2 == 0 else (("off", port_off), ("on", port_on))
            ):
                bodies = [
                    json.dumps({"sessionExternalId": f"small-{port}-{r}-{i % 20}", "externalId": f"m{i}", "role": "user",
                                "source": "claude-code", "textContent": "Add a /health endpoint to server.py"}).encode()
                    for i in range(requests // rounds)
                ]  # fmt: skip
                seconds[label] += send_all(port, key, bodies, clients, path="/sync/message")
    finally:
        for web in (web_on, web_off):
            web.terminate()
            web.wait(timeout=30)
    return requests / seconds["on"], requests / seconds["off"]


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sessions", type=int, default=1000)
    parser.add_argument("--messages-per-session", type=int, default=100)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--small-requests", type=int, default=4000, help="one-message requests for the log cost")
    parser.add_argument("--data-dir", default=str(BASE_DIR / "data"))
    args = parser.parse_args()

    batches = make_workload(args.sessions, args.messages_per_session)
    n_messages = sum(len(b["messages"]) for b in batches)
    n_parts = sum(len(m.get("parts", [])) for b in batches for m in b["messages"])
    bodies = [json.dumps(b).encode() for b in batches]
    print(f"workload: {args.sessions} sessions, {n_messages} messages, {n_parts} parts, "
          f"{sum(map(len, bodies)) / 1e6:.1f} MB of JSON in {len(bodies)} requests")  # fmt: skip

    server, socket_dir = start_database(Path(args.data_dir))
    name = f"opensync_bench_{os.getpid()}"
    env = fresh_database(socket_dir, name)
    key = subprocess.run(
        [sys.executable, "manage.py", "create_api_key", "--email", "bench@example.com", "--name", "bench"],
        cwd=BASE_DIR, env=env, check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    import psycopg

    with psycopg.connect(host=socket_dir, user="postgres", dbname=name) as conn:
        workspace_id, owner_id = conn.execute("SELECT workspace_id, user_id FROM accounts_apikey").fetchone()

    truncate(socket_dir, name)
    raw_seconds = raw_copy(socket_dir, name, batches, workspace_id, owner_id)
    raw_rate = n_messages / raw_seconds
    print(f"baseline  COPY            {raw_seconds:7.2f} s  {raw_rate:9.0f} messages/s")
    truncate(socket_dir, name)

    web, port = start_web(env, args.workers)
    try:
        insert_seconds = send_all(port, key, bodies, args.clients)
        insert_rate = n_messages / insert_seconds
        print(f"api       /sync/batch new {insert_seconds:7.2f} s  {insert_rate:9.0f} messages/s  "
              f"ratio {insert_rate / raw_rate:.3f}")  # fmt: skip
        update_seconds = send_all(port, key, bodies, args.clients)
        update_rate = n_messages / update_seconds
        print(f"api       /sync/batch again {update_seconds:5.2f} s  {update_rate:9.0f} messages/s  "
              f"ratio {update_rate / raw_rate:.3f}")  # fmt: skip
        with psycopg.connect(host=socket_dir, user="postgres", dbname=name) as conn:
            stored = conn.execute("SELECT count(*), sum(message_count) FROM sessions_app_session").fetchone()
            stored_messages = conn.execute("SELECT count(*) FROM sessions_app_message").fetchone()[0]
            stored_parts = conn.execute("SELECT count(*) FROM sessions_app_part").fetchone()[0]
        assert stored == (args.sessions, n_messages), stored
        assert stored_messages == n_messages and stored_parts == n_parts, (stored_messages, stored_parts)
        web.terminate()
        web.wait(timeout=30)
        log_on, log_off = ab_cost(env, key, args.workers, args.clients, args.small_requests,
                                  {"OPENSYNC_API_REQUEST_LOG": "true"}, {"OPENSYNC_API_REQUEST_LOG": "false"})  # fmt: skip
        print(f"request log  one-message requests: {log_on:7.0f}/s with the log, {log_off:7.0f}/s without "
              f"(ratio {log_on / log_off:.3f})")  # fmt: skip
        metrics_on, metrics_off = ab_cost(env, key, args.workers, args.clients, args.small_requests,
                                          {"OPENSYNC_METRICS_TOKEN": "bench"}, {"OPENSYNC_METRICS_TOKEN": ""})  # fmt: skip
        print(f"metrics      one-message requests: {metrics_on:7.0f}/s with /metrics on, {metrics_off:7.0f}/s off "
              f"(ratio {metrics_on / metrics_off:.3f})")  # fmt: skip
        from opensync.settings import embedded

        valkey_dir = Path(tempfile.mkdtemp(prefix="bench-valkey-"))
        valkey = embedded.start_valkey(valkey_dir)
        try:
            broker = {"CELERY_BROKER_URL": embedded.broker_url(valkey_dir)}
            embed_on, embed_off = ab_cost(env, key, args.workers, args.clients, args.small_requests,
                                          {**broker, "OPENSYNC_EMBEDDINGS_PROVIDER": "local"},
                                          {**broker, "OPENSYNC_EMBEDDINGS_PROVIDER": "none"})  # fmt: skip
        finally:
            valkey.stop()
        print(f"embeddings   one-message requests: {embed_on:7.0f}/s with embeddings queued, {embed_off:7.0f}/s off "
              f"(ratio {embed_on / embed_off:.3f})")  # fmt: skip
    finally:
        if web.poll() is None:
            web.terminate()
            web.wait(timeout=30)
        with psycopg.connect(host=socket_dir, user="postgres", dbname="postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        server.cleanup()

    print(json.dumps({
        "messages": n_messages, "sessions": args.sessions, "parts": n_parts, "clients": args.clients,
        "workers": args.workers, "baseline_messages_per_s": round(raw_rate), "api_insert_messages_per_s": round(insert_rate),
        "api_update_messages_per_s": round(update_rate), "ratio": round(insert_rate / raw_rate, 3),
        "update_ratio": round(update_rate / raw_rate, 3),
        "small_requests_per_s_log_on": round(log_on), "small_requests_per_s_log_off": round(log_off),
        "request_log_ratio": round(log_on / log_off, 3),
        "small_requests_per_s_metrics_on": round(metrics_on), "small_requests_per_s_metrics_off": round(metrics_off),
        "metrics_ratio": round(metrics_on / metrics_off, 3),
        "small_requests_per_s_embeddings_on": round(embed_on), "small_requests_per_s_embeddings_off": round(embed_off),
        "embeddings_queue_ratio": round(embed_on / embed_off, 3),
    }))  # fmt: skip


if __name__ == "__main__":
    main()
