"""Dashboard benchmark: the session list and viewer of a 100,000-session workspace against a small one.

    .venv/bin/python tests/benchmarks/dashboard.py [--sessions 100000] [--small 1000] [--messages 5000]
                                                   [--repeat 30] [--keep] [--explain]

On one fresh database (`bench_dashboard` on the embedded server, dropped at the end unless --keep):

* workspace A (one user) holds --sessions sessions, workspace B (another user) --small, with a
  realistic spread of agents, projects, models, tokens, cost and duration over a year; rows are
  COPYed in arrival order, both workspaces mixed, then VACUUM ANALYZE;
* A also holds a session of --messages messages (prompts, Markdown answers with code, tool calls
  and tool results) and B one of 100 messages of the same conversation.

Then, in-process with Django's test client (test settings, DEBUG off), A and B interleaved so the
shared machine's noise hits both alike, the median and p95 over --repeat requests of:

* list pages: the first page, a source+model filter, a project filter sorted by tokens, a "load
  more" page ten cursors deep, and the first page with the filter-menu cache cold;
* the viewer: the first page of the long session against the short one, and a "load more" page
  of the long session 80% of the way down against the short session's (only) page.

Each figure is a ratio A/B (1.0 = the page does not grow with the workspace). Last line: one JSON
object, the headline `ratio` being the worst list ratio. --explain prints EXPLAIN (ANALYZE,
BUFFERS) of the slowest query of each list page at A's size.
"""

import argparse
import gc
import json
import math
import os
import random
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(BASE_DIR))

from tests.benchmarks.ingest import CODE, TOOLS, run_in_child, setup_django, text  # noqa: E402

DATABASE = "bench_dashboard"
NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)

SOURCES = {"claude-code": 40, "opencode": 20, "codex-cli": 15, "cursor-sync": 10, "factory-droid": 8, "pi": 7}
MODELS = {  # model → (provider, weight)
    "claude-sonnet-4-20250514": ("anthropic", 30),
    "claude-opus-4-1-20250805": ("anthropic", 14),
    "claude-3-5-haiku-20241022": ("anthropic", 6),
    "gpt-5": ("openai", 12),
    "gpt-5-mini": ("openai", 6),
    "gpt-4.1": ("openai", 5),
    "o3": ("openai", 4),
    "gemini-2.5-pro": ("google", 8),
    "gemini-2.5-flash": ("google", 5),
    "deepseek-chat": ("deepseek", 4),
}
# The agents lean on their vendor's models (claude-code on Claude, codex on OpenAI).
SOURCE_MODELS = {
    "claude-code": lambda m: MODELS[m][0] == "anthropic",
    "codex-cli": lambda m: MODELS[m][0] == "openai",
}
PROJECTS = [f"project-{name}" for name in (
    "api", "web", "billing", "auth", "infra", "mobile", "search", "docs", "etl", "ml", "cli", "sdk", "admin",
    "gateway", "worker", "notify", "reports", "ledger", "catalog", "checkout", "cart", "inventory", "crm",
    "portal", "scheduler", "metrics", "alerts", "deploy", "terraform", "helm", "design", "ui-kit", "forms",
    "chat", "video", "media", "upload", "export", "import", "sync", "cache", "queue", "ranker", "feeds",
    "profile", "settings", "onboarding", "legacy", "scripts", "playground",
)]  # fmt: skip
# Filters the benchmark applies: an agent/model pair (~11% of sessions) and the busiest project
# (~7%), so that the small workspace still fills a page (pages of fewer rows render faster).
FILTER_SOURCE, FILTER_MODEL, FILTER_PROJECT = "claude-code", "claude-opus-4-1-20250805", PROJECTS[0]
LIST_DEPTH = 10  # "load more" pages followed before the measured one


# --- data -----------------------------------------------------------------------------------------


def session_rows(rng: random.Random, n: int, workspace_id: int, owner_id: int, prefix: str) -> list[tuple]:
    """n sessions spread over the year before NOW (columns as in COPY_SESSION)."""
    project_weights = [1 / (rank + 1) ** 0.8 for rank in range(len(PROJECTS))]  # a few busy projects
    models = list(MODELS)
    rows = []
    for i in range(n):
        source = rng.choices(list(SOURCES), weights=list(SOURCES.values()))[0]
        fits = SOURCE_MODELS.get(source, lambda m: True)
        candidates = [m for m in models if fits(m)]
        model = rng.choices(candidates, weights=[MODELS[m][1] for m in candidates])[0]
        provider = MODELS[model][0]
        if rng.random() < 0.02:  # some plugins don't say
            model = provider = None
        project = rng.choices(PROJECTS, weights=project_weights)[0]
        prompt = int(rng.lognormvariate(11, 1.3))
        completion = int(prompt * rng.uniform(0.02, 0.15))
        cost = (
            None if source == "factory-droid" or rng.random() < 0.04 else round(prompt * 3e-6 + completion * 15e-6, 6)
        )
        duration = None if rng.random() < 0.08 else int(rng.lognormvariate(13.5, 1.2))
        created = NOW - timedelta(seconds=rng.uniform(0, 365 * 86400))
        updated = min(NOW, created + timedelta(milliseconds=duration or rng.randint(1000, 3_600_000)))
        eval_ready = rng.random() < 0.05
        eval_status = rng.choice(["golden", "correct", "incorrect", "needs_review"]) if rng.random() < 0.03 else None
        rows.append((workspace_id, owner_id, f"{prefix}-{i:07d}", text(rng, 20, 90), f"/home/dev/src/{project}",
                     project, model, provider, source, prompt, completion, int(prompt * rng.uniform(0, 0.6)), 0,
                     cost, duration, rng.randint(2, 400), False, eval_ready, eval_status, created, updated))  # fmt: skip
    return rows


COPY_SESSION = (
    "COPY sessions_app_session (workspace_id, owner_id, external_id, title, project_path, project_name, model,"
    " provider, source, prompt_tokens, completion_tokens, cache_read_tokens, cache_write_tokens, cost,"
    " duration_ms, message_count, is_public, eval_ready, eval_status, created_at, updated_at) FROM STDIN"
)

ANSWER = """## What changed

The handler now validates the payload before touching the database, so a malformed request
fails fast with a `400` instead of a `500`:

- `parse_request()` returns a typed `Request` or raises `ValueError`
- the retry loop moved into `services.sync()`
- tests cover the **empty body** and *truncated JSON* cases

```{lang}
{code}```

Run `pytest -k sync` to check; the migration is backwards compatible.
"""
TS_CODE = """export async function fetchUser(id: string): Promise<User> {
  const res = await fetch(`/api/users/${id}`);
  if (!res.ok) throw new Error(`HTTP ${res.status}`);
  return (await res.json()) as User;
}
"""
BASH_OUTPUT = """$ pytest -q tests/test_sync.py
........................................................ [ 87%]
.......F.                                                [100%]
FAILED tests/test_sync.py::test_retry_after_conflict - AssertionError: 2 != 1
1 failed, 63 passed in 4.21s
"""


def conversation(rng: random.Random, size: int = 100) -> list[dict]:
    """One coding conversation of `size` messages: turns of a prompt, tool calls, an answer."""
    out: list[dict] = []
    while len(out) < size:
        prompt = text(rng, 40, 600)
        if rng.random() < 0.2:
            prompt += "\n\n```python\n" + CODE + "```"
        out.append({"role": "user", "text": prompt, "parts": [("text", {"text": prompt})]})
        for _ in range(rng.randint(0, 3)):
            tool = rng.choice(TOOLS)
            args = {"file_path": f"src/app/module_{rng.randint(1, 90)}.py", "pattern": "def ", "limit": 200}
            if tool == "Bash":
                args = {"command": "pytest -q tests/test_sync.py", "timeout": 120000}
            result = (
                BASH_OUTPUT
                if tool == "Bash"
                else (CODE * rng.randint(1, 12) if tool == "Read" else text(rng, 100, 1500))
            )
            if rng.random() < 0.2:
                result = json.dumps({"matches": [{"file": f"src/m{i}.py", "line": i * 7} for i in range(12)]})
            note = text(rng, 30, 160)
            out.append({"role": "assistant", "text": note, "parts": [
                ("text", {"text": note}),
                ("tool-call", {"toolName": tool, "args": args}),
                ("tool-result", {"output": result}),
            ]})  # fmt: skip
        lang, code = rng.choice([("python", CODE), ("typescript", TS_CODE), ("bash", BASH_OUTPUT)])
        answer = text(rng, 100, 900) + "\n\n" + ANSWER.replace("{lang}", lang).replace("{code}", code)
        out.append({"role": "assistant", "text": answer, "parts": [("text", {"text": answer})]})
    return out[:size]


def insert_messages(cur, session_id: int, template: list[dict], n: int, start: datetime, rng) -> None:
    """n messages cycling through `template` (so any page of 100 renders the same work);
    `order` is left to its column default (the sequence)."""
    when = start
    with cur.copy(
        "COPY sessions_app_message (session_id, external_id, role, text_content, model, prompt_tokens,"
        " completion_tokens, duration_ms, created_at) FROM STDIN"
    ) as copy:
        for i in range(n):
            m = template[i % len(template)]
            when += timedelta(seconds=rng.randint(1, 40))
            assistant = m["role"] == "assistant"
            copy.write_row((session_id, f"m{i:06d}", m["role"], m["text"], "claude-sonnet-4-20250514" if assistant else None,
                            rng.randint(500, 90_000) if assistant else None, rng.randint(20, 2000) if assistant else None,
                            rng.randint(300, 30_000) if assistant else None, when))  # fmt: skip
    ids = cur.execute(
        'SELECT id FROM sessions_app_message WHERE session_id = %s ORDER BY created_at, "order"', [session_id]
    ).fetchall()
    with cur.copy('COPY sessions_app_part (message_id, type, content, "order") FROM STDIN') as copy:
        for i, (message_id,) in enumerate(ids):
            for order, (kind, content) in enumerate(template[i % len(template)]["parts"]):
                copy.write_row((message_id, kind, json.dumps(content), order))
    cur.execute(
        "UPDATE sessions_app_session SET message_count = %s, updated_at = %s WHERE id = %s", [n, when, session_id]
    )


def populate(conninfo: dict, args, a: tuple[int, int], b: tuple[int, int]) -> tuple[int, int]:
    """Sessions of A and B, then the two viewer sessions. Returns (long session id, short one's)."""
    import psycopg

    rng = random.Random(11)
    # The viewer sessions are the newest of their workspaces' counts; the rest is random.
    rows = session_rows(rng, args.sessions - 1, *a, "a") + session_rows(rng, args.small - 1, *b, "b")
    rows.sort(key=lambda r: r[-2])  # arrival order: both workspaces interleaved in the heap
    template = conversation(random.Random(5))
    with psycopg.connect(**conninfo) as conn, conn.cursor() as cur:
        with cur.copy(COPY_SESSION) as copy:
            for row in rows:
                copy.write_row(row)
        ids = []
        for (workspace_id, owner_id), n in ((a, args.messages), (b, len(template))):
            (sid,) = cur.execute(
                "INSERT INTO sessions_app_session (workspace_id, owner_id, external_id, title, project_name, model,"
                " provider, source, prompt_tokens, completion_tokens, cache_read_tokens, cache_write_tokens, cost,"
                " duration_ms, message_count, is_public, created_at, updated_at)"
                " VALUES (%s, %s, %s, %s, %s, %s, 'anthropic', 'claude-code', 4000000, 200000, 0, 0, 12.5, 9000000,"
                " 0, false, %s, %s) RETURNING id",
                [workspace_id, owner_id, f"viewer-{n}", f"Refactor the sync handler ({n} messages)", PROJECTS[0],
                 "claude-sonnet-4-20250514", NOW - timedelta(days=2), NOW - timedelta(days=2)],
            ).fetchone()  # fmt: skip
            insert_messages(cur, sid, template, n, NOW - timedelta(days=2), rng)
            ids.append(sid)
        conn.commit()
    with psycopg.connect(**conninfo, autocommit=True) as conn:
        conn.execute("VACUUM (ANALYZE) sessions_app_session, sessions_app_message, sessions_app_part")
    return ids[0], ids[1]


# --- measuring ------------------------------------------------------------------------------------


def get(client, url: str, htmx: bool = False):
    started = time.perf_counter()
    response = client.get(url, headers={"HX-Request": "true"} if htmx else {})
    elapsed = time.perf_counter() - started
    if response.status_code != 200:
        raise SystemExit(f"GET {url} answered {response.status_code}")
    return elapsed * 1000, response


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def measure(pairs: dict, repeat: int, warmup: int = 3) -> dict:
    """pairs: kind → ((client, url, htmx, before), (client, url, htmx, before)) for A and B.

    Every round runs each kind for both sides back to back, alternating which goes first.
    `before` (or None) runs untimed before each request (e.g. clearing a cache).
    """
    samples = {kind: ([], []) for kind in pairs}
    for r in range(warmup + repeat):
        gc.collect()
        for k, (kind, sides) in enumerate(pairs.items()):
            order = (0, 1) if (r + k) % 2 == 0 else (1, 0)
            for side in order:
                client, url, htmx, before = sides[side]
                if before:
                    before()
                ms, _ = get(client, url, htmx)
                if r >= warmup:
                    samples[kind][side].append(ms)
    return {
        kind: {
            "a": statistics.median(a),
            "b": statistics.median(b),
            "a_p95": p95(a),
            "b_p95": p95(b),
            "ratio": statistics.median(a) / statistics.median(b),
        }
        for kind, (a, b) in samples.items()
    }


def query_count(client, url: str, htmx: bool = False, before=None) -> tuple[int, float, str]:
    """(queries, ms of the slowest, its SQL) for one request."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    get(client, url, htmx)  # warm, like the measured requests
    if before:
        before()
    with CaptureQueriesContext(connection) as ctx:
        get(client, url, htmx)
    slowest = max(ctx.captured_queries, key=lambda q: float(q["time"]))
    return len(ctx.captured_queries), float(slowest["time"]) * 1000, slowest["sql"]


def facets_forgetter(cache, workspace):
    """Drops one workspace's cached filter menus (selectors.filter_choices: their DISTINCT queries
    run again, as every few minutes in production); the other workspace's stay warm."""
    key = f"session-facets:{workspace.pk}"

    def forget():
        if cache.get(key) is None:
            raise SystemExit(f"no cache entry {key!r}: selectors.filter_choices changed its key")
        cache.delete(key)

    return forget


def explain(sql: str) -> str:
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql)
        return "\n".join(row[0] for row in cur.fetchall())


def walk_list(client, url: str, depth: int) -> str:
    """The URL of the "load more" page `depth` cursors after `url`."""
    for _ in range(depth):
        _, response = get(client, url, htmx="cursor=" in url)
        url = response.context_data["next_url"]
        if not url:
            raise SystemExit("the list ran out of pages; use more sessions")
    return url


def walk_messages(client, session_id: int, page: int) -> str:
    """The HTMX "load more" URL of message page `page` (0 = the first) of a session."""
    _, response = get(client, f"/sessions/{session_id}/")
    url = f"/sessions/{session_id}/messages/?after={response.context_data['after_cursor']}"
    for _ in range(page - 1):
        _, response = get(client, url, htmx=True)
        url = f"/sessions/{session_id}/messages/?after={response.context_data['after_cursor']}"
    return url


# --- main -----------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sessions", type=int, default=100_000, help="sessions in the large workspace")
    parser.add_argument("--small", type=int, default=1000, help="sessions in the small workspace")
    parser.add_argument("--messages", type=int, default=5000, help="messages in the long session")
    parser.add_argument("--repeat", type=int, default=30, help="measured requests per page and workspace")
    parser.add_argument("--keep", action="store_true", help=f"keep the {DATABASE} database")
    parser.add_argument("--explain", action="store_true", help="print the plans of the slowest list queries")
    parser.add_argument("--data-dir", default=str(BASE_DIR / "data"))
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.small < 50 * (LIST_DEPTH + 2) or args.messages < 300:
        parser.error(f"--small must be >= {50 * (LIST_DEPTH + 2)} and --messages >= 300")

    if args.child:
        results = run(args, {"host": os.environ["BENCH_SOCKET"], "user": "postgres", "dbname": DATABASE})
        print(json.dumps(results))
        return

    # Importing opensync.settings.embedded evaluates the settings package with the embedded
    # database, so Django runs in a child process whose environment names the benchmark database.
    run_in_child(
        __file__,
        DATABASE,
        Path(args.data_dir),
        {
            "DJANGO_SETTINGS_MODULE": "opensync.settings.test",  # DEBUG off; plain static storage for the test client
        },
        keep=args.keep,
    )


def run(args, conninfo: dict) -> dict:
    setup_django(DATABASE)
    from django.core.cache import cache
    from django.test import Client

    from accounts.models import User
    from accounts.services import workspace_ensure_personal

    users = [User.objects.create_user(f"{who}@bench.example", name=f"Bench {who.upper()}") for who in ("a", "b")]
    workspaces = [workspace_ensure_personal(user=u) for u in users]
    started = time.perf_counter()
    long_id, short_id = populate(conninfo, args, (workspaces[0].pk, users[0].pk), (workspaces[1].pk, users[1].pk))
    print(f"data: A {args.sessions} sessions, B {args.small}; a {args.messages}-message session in A and a "
          f"100-message one in B; loaded in {time.perf_counter() - started:.1f} s")  # fmt: skip

    clients = []
    for user, workspace in zip(users, workspaces, strict=True):
        client = Client()
        client.force_login(user)
        response = client.post("/workspaces/switch/", {"workspace": workspace.pk, "next": "/sessions/"})
        assert response.status_code == 302, response.status_code
        clients.append(client)

    filtered = f"/sessions/?source={FILTER_SOURCE}&model={FILTER_MODEL}"
    sorted_ = f"/sessions/?project={FILTER_PROJECT}&sort=tokens"
    list_urls = {
        "list_first": ("/sessions/", False, None),
        "list_filtered": (filtered, False, None),
        "list_sorted": (sorted_, False, None),
        "list_deep": ([walk_list(c, "/sessions/", LIST_DEPTH) for c in clients], True, None),
        "list_cold": ("/sessions/", False, [facets_forgetter(cache, w) for w in workspaces]),
    }
    pairs = {
        kind: tuple(
            (c, *(v[i] if isinstance(v, list) else v for v in (url, htmx, before))) for i, c in enumerate(clients)
        )
        for kind, (url, htmx, before) in list_urls.items()
    }
    deep_page = int(args.messages / 100 * 0.8)
    pairs["viewer"] = (
        (clients[0], f"/sessions/{long_id}/", False, None),
        (clients[1], f"/sessions/{short_id}/", False, None),
    )
    pairs["viewer_deep"] = (
        (clients[0], walk_messages(clients[0], long_id, deep_page), True, None),
        (clients[1], f"/sessions/{short_id}/messages/", True, None),
    )
    shown = {}  # rows on each side's page: both must be full for a fair comparison
    for kind, sides in pairs.items():
        shown[kind] = []
        for client, url, htmx, _ in sides:
            context = get(client, url, htmx)[1].context_data
            shown[kind].append(len(context["sessions"] if kind.startswith("list") else context["items"]))
        if min(shown[kind]) < (50 if kind.startswith("list") else 100):
            raise SystemExit(f"{kind}: a page is not full ({shown[kind]} rows); use more --small sessions")

    stats = measure(pairs, args.repeat)
    counts = {kind: [query_count(*side) for side in sides] for kind, sides in pairs.items()}

    labels = {
        "list_first": "list: first page",
        "list_filtered": "list: source+model filter",
        "list_sorted": "list: project, sort=tokens",
        "list_deep": f"list: load more, page {LIST_DEPTH + 1}",
        "list_cold": "list: first page, cold menus",
        "viewer": "viewer: first page",
        "viewer_deep": f"viewer: load more, page {deep_page + 1}",
    }
    print(
        f"\n{'page':32} {'A median':>9} {'A p95':>8} {'B median':>9} {'B p95':>8} {'ratio':>6}"
        "  rows A/B  queries A/B  slowest SQL A/B ms"
    )
    for kind, s in stats.items():
        (qa, sa, _), (qb, sb, _) = counts[kind]
        print(f"{labels[kind]:32} {s['a']:9.1f} {s['a_p95']:8.1f} {s['b']:9.1f} {s['b_p95']:8.1f} {s['ratio']:6.2f}"
              f"  {shown[kind][0]:4d}/{shown[kind][1]:<4d} {qa:5d}/{qb:<5d}  {sa:6.2f}/{sb:.2f}")  # fmt: skip
    print(f"(ms; A = {args.sessions} sessions / the {args.messages}-message session, B = {args.small} / 100 messages;"
          f" {args.repeat} requests each)")  # fmt: skip

    if args.explain:
        for kind in ("list_first", "list_filtered", "list_sorted", "list_deep", "list_cold"):
            _, ms, sql = counts[kind][0]
            print(f"\n--- {labels[kind]} at {args.sessions}: slowest query ({ms:.2f} ms)\n{sql}\n")
            print(explain(sql))

    headline = ("list_first", "list_filtered", "list_sorted", "list_deep")
    figures = {f"{kind}_ratio": round(s["ratio"], 3) for kind, s in stats.items()}
    figures["ratio"] = round(max(stats[k]["ratio"] for k in headline), 3)
    figures.update({"sessions_large": args.sessions, "sessions_small": args.small, "messages": args.messages,
                    "repeat": args.repeat})  # fmt: skip
    for kind, s in stats.items():
        figures[f"{kind}_a_ms"] = round(s["a"], 2)
        figures[f"{kind}_b_ms"] = round(s["b"], 2)
    return figures


if __name__ == "__main__":
    main()
