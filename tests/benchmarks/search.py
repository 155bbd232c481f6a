"""Search benchmark: /api/search (full-text, semantic, hybrid) against the bare SQL it runs, at two sizes.

    .venv/bin/python tests/benchmarks/search.py [--sizes 100000,1000000] [--repeat 5] [--warmup 1]
                                                [--dims 256] [--limit 20] [--keep] [--no-explain]

On one fresh database (`bench_search` on the embedded server, dropped at the end unless --keep),
migrated in a child process with OPENSYNC_EMBEDDINGS_DIMENSIONS=--dims (small vectors):

* one workspace is GROWN IN PLACE through --sizes: realistic coding sessions (10-120 messages:
  prompts, Markdown answers with code, tool calls with JSON arguments and tool results, error
  strings such as ECONNREFUSED, file paths, identifiers) from a fixed seed, COPYed with
  `search_text` precomputed (so the generated `search_vector` fills), one chunk embedding per
  message and one session embedding per session. Vectors are the fake embeddings server's
  hashed bag of words (`fake_vector`, summed per word and normalised: identical to
  fake_vector(search_text)), so queries and documents agree. The GIN and HNSW indexes are
  dropped while a stage loads and rebuilt after it, then VACUUM ANALYZE; FK triggers are off
  during the COPY (rows are consistent by construction). No parts rows: search never reads them.
* at each size, in-process with Django's test client (production settings, DEBUG off, an API
  key of `read` scope, the fake OpenAI-compatible server on 127.0.0.1 as provider), a fixed set
  of queries per mode through `GET /api/search?type=...&limit=`, interleaved with two kinds of
  bare SQL, replayed by psycopg on its own connection with the exact statements and params
  `search_sessions` executes for that request (recorded with an execute_wrapper), in the same
  transactions:
  - "SQL" (the ranking): full-text = the ranking statement (and its SET LOCAL); semantic = the
    vector statements (set_config and the nearest-neighbour scans); hybrid = both. What the
    database must do to rank, whatever the app around it.
  - "page SQL": every statement the search runs for the page: the ranking, and then the session
    rows, the snippets (full-text highlights, the matched chunk's text) and highlighted titles.
    API/page is what the endpoint costs over the database work it cannot skip (auth, HTTP,
    ORM, serialization).
  The query embedding is cached per process (search.embeddings.queries._query_vector), so after
  the warm-up the API does not call the provider either.

Prints p50/p95 per mode and kind, ratios API/SQL and API/page SQL p50, the growth
p50(largest)/p50(smallest), the slowest query per mode, and (unless --no-explain) EXPLAIN
(ANALYZE, BUFFERS) of the slowest ranking statement per mode at the largest size. Last line: one
JSON object; the headline `ratio` is the worst API/SQL (ranking) p50 ratio at the largest size,
`page_ratio` the worst API/page SQL one.
"""

import argparse
import contextlib
import gc
import hashlib
import json
import math
import os
import random
import re
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

BASE_DIR = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(BASE_DIR))
# The benchmark measures the work, not the per-key API budgets: its thousands of requests a minute
# from one key would run into them by design (their cost is one Redis round trip, ~0.6 ms).
# Inherited by the servers it starts.
for _scope in ("SYNC", "READ", "SEARCH", "EXPORT"):
    os.environ.setdefault(f"OPENSYNC_RATE_LIMIT_{_scope}", "off")

from search.tests.fake_embeddings_server import WORD, FakeEmbeddingsServer, fake_vector  # noqa: E402 - no Django
from tests.benchmarks.ingest import run_in_child, search_text, setup_django  # noqa: E402

DATABASE = "bench_search"
NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
MODES = ("fulltext", "semantic", "hybrid")

# --- vocabulary -----------------------------------------------------------------------------------

PROSE = """the a to of and in is it that for this we on with be not as you can are by if from or but
should will when function test tests error file code change update add fix use handler request
response database query index migration model view config value list return returns user users
session sessions data field table column server client api endpoint run check build deploy
service worker cache retry timeout connection pool logs log message type types string json schema
call calls method class module import package version dependency install script command output
input path directory branch commit merge rebase review pull issue bug failing fails failed passes
green red flaky slow fast performance memory leak thread async await promise callback event loop
component state props render hook effect route router page form button validation validate parse
serialize payload header token auth login password permission role admin workspace project null
empty missing invalid duplicate unique constraint key foreign primary transaction lock deadlock
race condition retry backoff queue celery task job cron schedule docker container image compose
kubernetes pod deployment helm terraform env variable secret production staging local rollback
refactor rename extract move delete remove clean up simplify explain why how what where which
looks like seems because instead then now again still already first next last before after into
over under between without within across each every all some any more less most least new old
same different other another only just also too very really actually probably maybe sure okay
let me look at see read write open edit create make need want try think know find show give take
keep put set get start stop wait handle catch throw raise log print debug trace stack frame line
number count size length limit offset page cursor sort order filter search match pattern regex
""".split()  # noqa: SIM905 - a word list reads best as text
IDENTIFIERS = """useEffect useState useMemo load_config parse_request fetchUser get_or_create select_related
prefetch_related bulk_create handleSubmit onClick setTimeout QuerySet ForeignKey JsonResponse
APIView serializer_class get_queryset perform_create on_delete created_at updated_at session_id
workspace_id user_id max_length DATABASE_URL CELERY_BROKER_URL SECRET_KEY asyncio.gather
json.loads os.environ subprocess.run pytest.fixture mock.patch retry_with_backoff
connect_timeout pool_size max_connections useCallback createContext ReactDOM.render""".split()  # noqa: SIM905
PATHS = """models.py views.py urls.py settings.py serializers.py tasks.py admin.py
src/app/models.py src/app/views.py src/app/services.py src/api/client.ts src/components/Button.tsx
src/hooks/useSession.ts package.json tsconfig.json pyproject.toml requirements.txt Dockerfile
docker-compose.yml .github/workflows/ci.yml tests/test_sync.py tests/test_api.py
sessions_app/models.py accounts/services.py search/selectors.py README.md Makefile
migrations/0002_add_index.py frontend/src/App.tsx scripts/deploy.sh""".split()  # noqa: SIM905
ERRORS = [
    "ECONNREFUSED", "ETIMEDOUT", "ENOENT", "EADDRINUSE", "EACCES",
    "TypeError: Cannot read properties of undefined (reading 'map')",
    "KeyError: 'workspace_id'", "IntegrityError: duplicate key value violates unique constraint",
    "ModuleNotFoundError: No module named 'psycopg'", "django.db.utils.OperationalError: connection refused",
    "Error: connect ECONNREFUSED 127.0.0.1:5432", "AssertionError: 2 != 1", "HTTP 500 Internal Server Error",
    "SyntaxError: Unexpected token '<'", "RecursionError: maximum recursion depth exceeded",
]  # fmt: skip
CODES = [
    'def load_config(path: str) -> dict:\n    with open(path) as fh:\n        data = json.load(fh)\n'
    '    if "version" not in data:\n        raise ValueError(f"missing version in {path}")\n    return data\n',
    "export async function fetchUser(id: string): Promise<User> {\n  const res = await fetch(`/api/users/${id}`);\n"
    "  if (!res.ok) throw new Error(`HTTP ${res.status}`);\n  return (await res.json()) as User;\n}\n",
    "useEffect(() => {\n  const timer = setTimeout(refresh, 1000);\n  return () => clearTimeout(timer);\n}, [refresh]);\n",
    "class Session(models.Model):\n    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE)\n"
    "    title = models.TextField(null=True)\n    created_at = models.DateTimeField(default=timezone.now)\n",
    "async def retry_with_backoff(call, attempts=5):\n    for attempt in range(attempts):\n        try:\n"
    "            return await call()\n        except ConnectionError:\n            await asyncio.sleep(2 ** attempt)\n",
    "SELECT id, title FROM sessions WHERE workspace_id = $1 ORDER BY updated_at DESC LIMIT 50;\n",
    "$ docker compose up -d db\n$ pytest -q tests/test_sync.py\n1 failed, 63 passed in 4.21s\n",
]  # fmt: skip
TOOLS = ["Read", "Edit", "Bash", "Grep", "Write", "Glob"]

QUERIES = {
    "fulltext": [
        "migration index", "retry backoff", "flaky test", "connection pool timeout", "cache invalidation",
        '"race condition"', '"unique constraint"', "deadlock -docker", "kubernetes OR helm", "celery task retry",
        "ECONNREFUSED", "ETIMEDOUT", "IntegrityError", "models.py", "src/app/models.py", "package.json",
        "useEffect", "load_config", "get_or_create", "retry_with_backoff",
    ],
    "semantic": [
        "why does the server refuse connections to the database", "how did we make the slow query fast with an index",
        "fix the flaky test that fails in ci", "add retry with backoff when the request times out",
        "react hook runs the effect too often", "rename the field and write a migration",
        "the docker container cannot reach postgres", "deadlock between two transactions",
        "validate the payload before saving", "explain why the cache returns stale data",
        "deploy to production with helm and rollback", "memory leak in the worker",
        "permission check for admin users", "parse json config file with missing version",
        "duplicate key error on insert", "sort and filter the session list with a cursor",
        "login token expired for the user", "refactor the handler into a service", "celery task schedule cron job",
        "search endpoint returns empty results",
    ],
    "hybrid": [
        "ECONNREFUSED when connecting to postgres", "models.py migration", "useEffect runs too often",
        "IntegrityError duplicate key", "retry_with_backoff timeout", "flaky test in ci", "slow query index",
        "docker compose database", "load_config missing version", "cache invalidation bug",
        "why does the server refuse connections", "rename a field in the model", "race condition in the worker",
        "deploy with helm", "validate the request payload", "package.json dependency version",
        "permission denied for admin", "parse json response", "session list pagination cursor", "memory leak",
    ],
}  # fmt: skip


# --- data -----------------------------------------------------------------------------------------


class Vectors:
    """Bag-of-words vectors summed per token: normalise(sum of fake_vector(token)) == fake_vector(text)."""

    def __init__(self, dims: int):
        self.dims = dims
        self._tokens: dict[str, tuple] = {}

    def contributions(self, text: str) -> list:
        out = []
        for token in WORD.findall(text.lower()):
            contribution = self._tokens.get(token)
            if contribution is None:
                vector = fake_vector(token, self.dims)  # one token: ±1 at one index
                index = next(i for i, x in enumerate(vector) if x)
                contribution = self._tokens[token] = (index, vector[index])
            out.append(contribution)
        return out

    def literal(self, pieces: list[str]) -> str:
        """pgvector text of the vector of the texts in `pieces` joined by whitespace."""
        acc = [0.0] * self.dims
        for piece in pieces:
            for index, sign in self.contributions(piece):
                acc[index] += sign
        norm = math.sqrt(sum(x * x for x in acc))
        if not norm:
            acc, norm = [1.0] + [0.0] * (self.dims - 1), 1.0
        return "[" + ",".join("0" if not x else f"{x / norm:.6g}" for x in acc) + "]"


class Corpus:
    """Sessions of a coding agent, one after the other, from a fixed seed."""

    def __init__(self, dims: int, seed: int = 17):
        self.rng = random.Random(seed)
        self.vectors = Vectors(dims)
        self.prose_cum = list(_cumulative([1 / (rank + 1) ** 1.05 for rank in range(len(PROSE))]))

    def words(self, low: int, high: int) -> list[str]:
        rng = self.rng
        words = rng.choices(PROSE, cum_weights=self.prose_cum, k=rng.randint(low, high))
        for _ in range(rng.choices((0, 1, 2), weights=(70, 24, 6))[0]):  # some code-ish mentions
            kind = rng.random()
            pool = IDENTIFIERS if kind < 0.45 else PATHS if kind < 0.85 else ERRORS
            words.insert(rng.randrange(len(words) + 1), rng.choice(pool))
        return words

    def message(self, role: str, prompt_like: bool) -> tuple[str, list[str], list[str]]:
        """(text_content, search_text pieces, embedded pieces) of one message."""
        rng = self.rng
        if prompt_like:
            words = self.words(6, 60)
            if rng.random() < 0.12:
                words += ["i", "get", rng.choice(ERRORS)]
            text = " ".join(words)
            return text, [text], [text]
        if rng.random() < 0.45:  # a tool call and its result
            note = " ".join(self.words(3, 25))
            tool = rng.choice(TOOLS)
            if tool == "Bash":
                args = {"command": rng.choice(["pytest -q tests/test_sync.py", "npm run build", "docker compose up -d",
                                               "python manage.py migrate", "curl -s localhost:8000/health"]),
                        "timeout": 120000}  # fmt: skip
            else:
                args = {"file_path": rng.choice(PATHS), "pattern": rng.choice(IDENTIFIERS), "limit": 200}
            kind = rng.random()
            if kind < 0.35:
                result = rng.choice(CODES)
            elif kind < 0.6:
                result = f"{rng.choice(ERRORS)}\n    at {rng.choice(PATHS)}:{rng.randint(1, 400)}\n" + " ".join(
                    self.words(5, 30)
                )
            else:
                result = " ".join(self.words(20, 220))
            tool_piece = (tool + " " + json.dumps(args))[:2000]
            search = search_text({"textContent": note, "parts": [
                {"type": "text", "content": note},
                {"type": "tool-call", "content": {"toolName": tool, "args": args}},
                {"type": "tool-result", "content": {"output": result}},
            ]})  # fmt: skip
            return note, [search], [note, tool_piece, result[:2000]]
        words = self.words(25, 220)
        text = " ".join(words)
        pieces = [text]
        if rng.random() < 0.35:
            code = rng.choice(CODES)
            text += "\n\n```\n" + code + "```\n"
            pieces.append(code)
        return text, [text], pieces

    def session(self, n: int) -> tuple[str, list[tuple[str, str, str, list[str]]]]:
        """(title, [(role, text_content, search_text, embedded pieces)])."""
        title = " ".join(self.words(3, 10)).capitalize()
        out = []
        for i in range(n):
            prompt = i % 4 == 0 or self.rng.random() < 0.1
            role = "user" if prompt else "assistant"
            text, search_pieces, embedded = self.message(role, prompt)
            out.append((role, text, search_pieces[0], embedded))
        return title, out


def _cumulative(weights):
    total = 0.0
    for w in weights:
        total += w
        yield total


def check_vectors(dims: int) -> None:
    """The summed vectors equal the fake server's for the whole text (what a query gets)."""
    corpus = Corpus(dims, seed=99)
    _, messages = corpus.session(40)
    for _, _, search, pieces in messages:
        mine = [float(x) for x in corpus.vectors.literal(pieces)[1:-1].split(",")]
        theirs = fake_vector("\n".join(pieces), dims)
        assert max(abs(a - b) for a, b in zip(mine, theirs, strict=True)) < 1e-5, search[:80]


INDEXES_SQL = """
SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid)
FROM pg_index i JOIN pg_class t ON t.oid = i.indrelid JOIN pg_class c ON c.oid = i.indexrelid
JOIN pg_am am ON am.oid = c.relam
WHERE t.relname = ANY(%s) AND am.amname IN ('gin', 'gist', 'hnsw', 'ivfflat')
  AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid)
"""
LOADED_TABLES = ["sessions_app_session", "sessions_app_message", "search_messagechunkembedding",
                 "search_sessionembedding"]  # fmt: skip


def grow(conninfo: dict, corpus: Corpus, state: dict, target: int, workspace_id: int, owner_id: int) -> None:
    """Add sessions until the workspace holds `target` messages (the last session is cut to fit)."""
    import psycopg

    rng = corpus.rng
    with psycopg.connect(**conninfo, autocommit=True) as admin:
        indexes = admin.execute(INDEXES_SQL, [LOADED_TABLES]).fetchall()
        for name, _ in indexes:  # cheaper to build once at the end than to maintain row by row
            admin.execute(f"DROP INDEX {name}")
    sessions, session_vectors = [], []
    conns = [psycopg.connect(**conninfo) for _ in range(2)]
    try:
        for conn in conns:
            conn.execute("SET session_replication_role = replica")  # no FK triggers: consistent by construction
        mcur, ecur = (c.cursor() for c in conns)
        with (
            mcur.copy("COPY sessions_app_message (id, session_id, external_id, role, text_content, model,"
                      " prompt_tokens, completion_tokens, duration_ms, created_at, search_text) FROM STDIN") as mcopy,
            ecur.copy("COPY search_messagechunkembedding (workspace_id, session_id, message_id, chunk_index,"
                      " text_hash, embedding, updated_at) FROM STDIN") as ecopy,
        ):  # fmt: skip
            while state["messages"] < target:
                n = min(rng.randint(10, 120), target - state["messages"])
                state["sessions"] += 1
                sid = state["sessions"]
                title, messages = corpus.session(n)
                project = rng.choice(["api", "web", "billing", "auth", "infra", "search", "cli", "sdk"])
                created = NOW - timedelta(days=400) + timedelta(minutes=sid * 7)
                when = created
                for i, (role, text, search, pieces) in enumerate(messages):
                    state["messages"] += 1
                    mid = state["messages"]
                    when += timedelta(seconds=rng.randint(2, 90))
                    assistant = role == "assistant"
                    mcopy.write_row((mid, sid, f"m{i:04d}", role, text, "claude-sonnet-4-20250514" if assistant else None,
                                     rng.randint(500, 90_000) if assistant else None,
                                     rng.randint(20, 2000) if assistant else None,
                                     rng.randint(300, 30_000) if assistant else None, when, search))  # fmt: skip
                    ecopy.write_row((workspace_id, sid, mid, 0, hashlib.sha256(search.encode()).hexdigest(),
                                     corpus.vectors.literal(pieces), when))  # fmt: skip
                sessions.append((sid, workspace_id, owner_id, f"bench-{sid:07d}", title, f"/home/dev/src/{project}",
                                 project, "claude-sonnet-4-20250514", "anthropic",
                                 rng.choice(["claude-code", "opencode", "codex-cli"]),
                                 rng.randint(10_000, 900_000), rng.randint(1000, 90_000), 0, 0,
                                 round(rng.random() * 3, 6), int((when - created).total_seconds() * 1000), n, False,
                                 created, when))  # fmt: skip
                first_prompt = messages[0][1][:2000]
                session_vectors.append((workspace_id, sid, hashlib.sha256(title.encode()).hexdigest(),
                                        corpus.vectors.literal([title, first_prompt]), when))  # fmt: skip
        with mcur.copy(
            "COPY sessions_app_session (id, workspace_id, owner_id, external_id, title, project_path, project_name,"
            " model, provider, source, prompt_tokens, completion_tokens, cache_read_tokens, cache_write_tokens,"
            " cost, duration_ms, message_count, is_public, created_at, updated_at) FROM STDIN"
        ) as copy:
            for row in sessions:
                copy.write_row(row)
        with ecur.copy(
            "COPY search_sessionembedding (workspace_id, session_id, text_hash, embedding, updated_at) FROM STDIN"
        ) as copy:
            for row in session_vectors:
                copy.write_row(row)
        for conn in conns:
            conn.commit()
    finally:
        for conn in conns:
            conn.close()
    with psycopg.connect(**conninfo, autocommit=True) as admin:
        for table in ("sessions_app_session", "sessions_app_message"):
            admin.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
        admin.execute("SET maintenance_work_mem = '3GB'")
        admin.execute("SET max_parallel_maintenance_workers = 2")
        for name, definition in indexes:
            started = time.perf_counter()
            admin.execute(definition)
            print(f"  index {name}: {time.perf_counter() - started:.1f} s", flush=True)
        admin.execute("VACUUM (ANALYZE) " + ", ".join(LOADED_TABLES))


# --- measuring ------------------------------------------------------------------------------------


class Recorder:
    """execute_wrapper: records (sql, params, transaction) of every query, and the time spent in
    the database. `transaction` numbers the statements' transactions: the statements of one
    outermost atomic block share one; a statement outside any is its own (autocommit), None."""

    def __init__(self):
        self.queries: list[tuple[str, object, int | None]] = []
        self.seconds = 0.0
        self._block, self._blocks = None, 0

    def __call__(self, execute, sql, params, many, context):
        blocks = context["connection"].atomic_blocks
        outer = blocks[0] if blocks else None
        if outer is not None and outer is not self._block:
            self._blocks += 1
        self._block = outer  # held, so a later block can't reuse its id
        self.queries.append((sql, params, self._blocks if outer is not None else None))
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            self.seconds += time.perf_counter() - started


def record(func, *args, **kwargs) -> list[tuple[str, object, int | None]]:
    from django.db import connection

    recorder = Recorder()
    with connection.execute_wrapper(recorder):
        func(*args, **kwargs)
    return recorder.queries


def _transactions(queries) -> list[tuple[bool, list[tuple[str, object]]]]:
    """[(atomic, [(sql, params)])]: consecutive statements of one transaction grouped."""
    out: list[tuple[bool, list]] = []
    last = object()
    for sql, params, block in queries:
        if block is None or block != last:
            out.append((block is not None, []))
        out[-1][1].append((sql, params))
        last = block
    return out


def _ranks(sql: str) -> bool:
    """Whether a statement is part of ranking (see the module docstring)."""
    return any(mark in sql for mark in ("ts_rank_cd", "work_mem", "<=>", "set_config"))


def bare_plans(mode: str, workspace, query: str, limit: int) -> dict[str, list]:
    """{"rank": plan, "page": plan} for `mode` and `query`: every statement search_sessions
    executes for the request, and the ranking ones among them. A plan is a list of
    transactions, each (atomic, [(sql, params)])."""
    from search.selectors import search_sessions

    search_sessions(workspace, query, mode=mode, limit=limit)  # warm the embedding cache first
    recorded = record(search_sessions, workspace, query, mode=mode, limit=limit)
    ranking = [(sql, params, block) for sql, params, block in recorded if _ranks(sql)]
    if mode != "fulltext":
        assert any("<=>" in sql for sql, _, _ in ranking), recorded
    return {"rank": _transactions(ranking), "page": _transactions(recorded)}


def run_bare(conn, plan) -> float:
    """Replay a plan on an autocommit connection, its atomic groups in one transaction each."""
    started = time.perf_counter()
    for atomic, statements in plan:
        with conn.transaction() if atomic else contextlib.nullcontext(), conn.cursor() as cur:
            for sql, params in statements:
                cur.execute(sql, params)
                if cur.description:
                    cur.fetchall()
    return (time.perf_counter() - started) * 1000


def run_api(client, url: str, key: str) -> float:
    started = time.perf_counter()
    response = client.get(url, headers={"Authorization": f"Bearer {key}"})
    elapsed = (time.perf_counter() - started) * 1000
    if response.status_code != 200:
        raise SystemExit(f"GET {url} answered {response.status_code}: {response.content[:300]!r}")
    return elapsed


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


SIDES = ("api", "rank", "page")


def measure(client, key, conn, workspace, args) -> dict:
    plans, urls = {}, {}
    for mode in MODES:
        for q in QUERIES[mode]:
            urls[mode, q] = "/api/search?" + urlencode({"q": q, "type": mode, "limit": args.limit})
            response = client.get(urls[mode, q], headers={"Authorization": f"Bearer {key}"})
            body = response.json()
            if response.status_code != 200 or body.get("type", mode) != mode:
                raise SystemExit(f"{mode} {q!r}: {response.status_code} {str(body)[:300]}")
            plans[mode, q] = bare_plans(mode, workspace, q, args.limit)
    samples = {(mode, q): {side: [] for side in SIDES} for mode, q in plans}
    for r in range(args.warmup + args.repeat):
        gc.collect()
        for k, (mode, q) in enumerate(plans):
            shift = (r + k) % len(SIDES)  # each side goes first, second and last in turn
            for side in SIDES[shift:] + SIDES[:shift]:
                ms = run_api(client, urls[mode, q], key) if side == "api" else run_bare(conn, plans[mode, q][side])
                if r >= args.warmup:
                    samples[mode, q][side].append(ms)
    out = {}
    for mode in MODES:
        api, bare, page = ([x for q in QUERIES[mode] for x in samples[mode, q][side]] for side in SIDES)
        slowest = max(QUERIES[mode], key=lambda q: statistics.median(samples[mode, q]["rank"]))
        out[mode] = {
            "api_p50": statistics.median(api), "api_p95": p95(api),
            "bare_p50": statistics.median(bare), "bare_p95": p95(bare),
            "page_p50": statistics.median(page), "page_p95": p95(page),
            "ratio": statistics.median(api) / statistics.median(bare),
            "page_ratio": statistics.median(api) / statistics.median(page),
            "slowest_query": slowest,
            "slowest_api_p50": statistics.median(samples[mode, slowest]["api"]),
            "slowest_bare_p50": statistics.median(samples[mode, slowest]["rank"]),
            "slowest_plan": plans[mode, slowest]["rank"],
        }  # fmt: skip
    return out


def explain(conn, plan) -> str:
    """EXPLAIN (ANALYZE, BUFFERS) of the slowest statement of a bare plan (its set_configs applied)."""
    lines = []
    for _, statements in plan:
        with conn.transaction(), conn.cursor() as cur:
            for sql, params in statements:
                if "set_config" in sql or sql.lstrip().upper().startswith("SET "):
                    cur.execute(sql, params)
                    continue
                started = time.perf_counter()
                rows = cur.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql, params).fetchall()
                lines.append((time.perf_counter() - started, "\n".join(row[0] for row in rows)))
    return re.sub(r"'\[[^']{60,}\]'::vector", "'[…query vector…]'::vector", max(lines)[1])


# --- main -----------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="100000,1000000", help="message counts, comma-separated (grown in place)")
    parser.add_argument("--repeat", type=int, default=5, help="measured rounds over every query of every mode")
    parser.add_argument("--warmup", type=int, default=1, help="unmeasured rounds first")
    parser.add_argument("--limit", type=int, default=20, help="results per search")
    parser.add_argument("--dims", type=int, default=256, help="embedding dimensions of the bench database")
    parser.add_argument("--keep", action="store_true", help=f"keep the {DATABASE} database")
    parser.add_argument("--no-explain", action="store_true", help="skip EXPLAIN ANALYZE of the slowest queries")
    parser.add_argument("--data-dir", default=str(BASE_DIR / "data"))
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.sizes = sorted(int(s) for s in args.sizes.split(","))

    if args.child:
        results = run(args, {"host": os.environ["BENCH_SOCKET"], "user": "postgres", "dbname": DATABASE})
        print(json.dumps(results))
        return

    check_vectors(args.dims)
    # Django runs in a child process whose environment names the benchmark database, so the
    # settings never start against (or migrate) the development database.
    run_in_child(
        __file__,
        DATABASE,
        Path(args.data_dir),
        {
            "DJANGO_SETTINGS_MODULE": "opensync.settings",  # production settings: DEBUG off, buffered request log
            "ALLOWED_HOSTS": "testserver,127.0.0.1,localhost",
            "OPENSYNC_EMBEDDINGS_PROVIDER": "openai",
            "OPENSYNC_EMBEDDINGS_API_KEY": "test-key",
            "OPENSYNC_EMBEDDINGS_DIMENSIONS": str(args.dims),  # read by the migration that creates the columns
            "OPENSYNC_EMBEDDINGS_SEND_DIMENSIONS": "always",
        },
        keep=args.keep,
    )


def run(args, conninfo: dict) -> dict:
    fake = FakeEmbeddingsServer(api_key="test-key", native_dimensions=args.dims).start()
    os.environ["OPENSYNC_EMBEDDINGS_BASE_URL"] = fake.url  # before the settings are read
    setup_django(DATABASE)
    import psycopg
    from django.db import connection
    from django.test import Client

    from accounts.models import ApiKeyScope, User
    from accounts.services import api_key_create, workspace_ensure_personal

    user = User.objects.create_user("search@bench.example", name="Bench Search")
    workspace = workspace_ensure_personal(user=user)
    _, key = api_key_create(user=user, workspace=workspace, name="bench", scope=ApiKeyScope.READ)
    connection.close()
    client = Client()
    # Django binds client-side too, and runs in autocommit outside its atomic blocks
    bare = psycopg.connect(**conninfo, cursor_factory=psycopg.ClientCursor, autocommit=True)

    corpus, state = Corpus(args.dims), {"sessions": 0, "messages": 0}
    results, loads = {}, {}
    for size in args.sizes:
        started = time.perf_counter()
        print(f"loading to {size} messages...", flush=True)
        grow(conninfo, corpus, state, size, workspace.pk, user.pk)
        loads[size] = time.perf_counter() - started
        print(f"{size} messages, {state['sessions']} sessions: loaded in {loads[size]:.0f} s", flush=True)
        connection.close()
        results[size] = measure(client, key, bare, workspace, args)

    largest, smallest = args.sizes[-1], args.sizes[0]
    if not args.no_explain:
        for mode in ("fulltext", "semantic"):
            r = results[largest][mode]
            print(f"\n--- {mode} at {largest}: slowest bare query {r['slowest_query']!r} "
                  f"({r['slowest_bare_p50']:.1f} ms p50)\n{explain(bare, r['slowest_plan'])}")  # fmt: skip
    bare.close()
    fake.stop()

    print(f"\n{'messages':>9} {'mode':9} {'API p50':>8} {'API p95':>8} {'SQL p50':>8} {'SQL p95':>8} {'API/SQL':>7}"
          f" {'page p50':>8} {'API/page':>8}  slowest query (API/SQL p50 ms)")  # fmt: skip
    for size in args.sizes:
        for mode in MODES:
            r = results[size][mode]
            print(f"{size:9d} {mode:9} {r['api_p50']:8.1f} {r['api_p95']:8.1f} {r['bare_p50']:8.1f} "
                  f"{r['bare_p95']:8.1f} {r['ratio']:7.2f} {r['page_p50']:8.1f} {r['page_ratio']:8.2f}  "
                  f"{r['slowest_query']!r} ({r['slowest_api_p50']:.1f}/{r['slowest_bare_p50']:.1f})")  # fmt: skip
    if len(args.sizes) > 1:
        for mode in MODES:
            a, b = results[largest][mode], results[smallest][mode]
            print(f"growth {smallest}->{largest} {mode:9}: API x{a['api_p50'] / b['api_p50']:.2f}, "
                  f"SQL x{a['bare_p50'] / b['bare_p50']:.2f}")  # fmt: skip
    print(f"(ms; {args.repeat} rounds x {len(QUERIES['fulltext'])} queries per mode, limit {args.limit}, "
          f"{args.dims}-d vectors; SQL = the ranking statements by psycopg (hybrid: full-text + semantic); "
          "page = every statement of the search, ranking, session rows and snippets)")  # fmt: skip

    figures = {"sizes": args.sizes, "repeat": args.repeat, "limit": args.limit, "dims": args.dims,
               "sessions": state["sessions"], "load_s": {str(s): round(t, 1) for s, t in loads.items()}}  # fmt: skip
    for size in args.sizes:
        for mode in MODES:
            r = results[size][mode]
            for name in ("api_p50", "api_p95", "bare_p50", "bare_p95", "ratio", "page_p50", "page_p95", "page_ratio"):
                figures[f"{mode}_{name}_{size}"] = round(r[name], 3)
            figures[f"{mode}_slowest_{size}"] = r["slowest_query"]
    if len(args.sizes) > 1:
        for mode in MODES:
            a, b = results[largest][mode], results[smallest][mode]
            figures[f"{mode}_growth_api"] = round(a["api_p50"] / b["api_p50"], 3)
            figures[f"{mode}_growth_bare"] = round(a["bare_p50"] / b["bare_p50"], 3)
    figures["ratio"] = round(max(results[largest][m]["ratio"] for m in MODES), 3)
    figures["page_ratio"] = round(max(results[largest][m]["page_ratio"] for m in MODES), 3)
    return figures


if __name__ == "__main__":
    main()
