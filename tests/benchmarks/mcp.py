"""MCP benchmark: `search_sessions` through /mcp against `GET /api/search` for the same queries.

    .venv/bin/python tests/benchmarks/mcp.py [--copies 20] [--rounds 5] [--workers 2] [--limit 10]

On a fresh database on the embedded server (dropped at the end): the labelled search corpus
(search/tests/relevance_corpus.py: 63 realistic sessions) synced --copies times under distinct
ids through /sync/batch, embedded with `manage.py embeddings --all` (the local fake of the OpenAI
embeddings API, as the tests use), then one gunicorn (the Procfile's web command, --workers).

For every labelled query in every mode (fulltext, semantic, hybrid), --rounds times, the same
search two ways, interleaved and alternating which goes first (a burst of other work on the
shared machine hits both):

* MCP: `tools/call search_sessions` with the official SDK's client (one connected Client, as an
  agent keeps one), timed around `call_tool`;
* the HTTP API: `GET /api/search?q=&type=&limit=` with the same HTTP client library (httpx2, one
  keep-alive connection), timed around the request and the JSON decoding.

Both answer the same ranking from the same selector (the tests check that); the MCP answer adds
the JSON-RPC framing, the SDK's dispatch and validation, and the bridge from the WSGI view to the
SDK's ASGI transport. The query embedding is cached per process, so after the warm-up neither
side calls the provider. The corpus is small on purpose: the search itself is fast here, so the
fixed MCP overhead is the largest share it can be; on a bigger workspace the ratio only falls.

Prints p50/p95 per mode and overall for both and their ratios (MCP / API). Last line: one JSON
object; the headline `ratio` is the overall p50 ratio, `p95_ratio` the overall p95 one.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlencode

BASE_DIR = Path(__file__).resolve().parents[2]
# Run as a script, this file's folder comes first on the path, and this file would shadow the SDK's
# `mcp` package: the project's root goes there instead.
sys.path[0] = str(BASE_DIR)
# The benchmark measures the work, not the per-key budgets (thousands of calls a minute).
for _scope in ("SYNC", "READ", "SEARCH", "EXPORT"):
    os.environ.setdefault(f"OPENSYNC_RATE_LIMIT_{_scope}", "off")

from search.tests.fake_embeddings_server import FakeEmbeddingsServer  # noqa: E402 - no Django
from search.tests.relevance_corpus import QUERIES, SESSIONS  # noqa: E402
from tests.benchmarks import percentile  # noqa: E402
from tests.benchmarks.ingest import fresh_database, recreate_database, start_database, start_web  # noqa: E402

MODES = ("fulltext", "semantic", "hybrid")
DIMENSIONS = "256"


def corpus_batches(copies: int) -> list[bytes]:
    bodies = []
    for copy in range(copies):
        sessions = [
            {"externalId": f"{external_id}-{copy}", "title": title, "source": "claude-code"}
            for external_id, title, _ in SESSIONS
        ]
        messages = [
            {"sessionExternalId": f"{external_id}-{copy}", "externalId": f"{external_id}-{copy}-m{i}", **message}
            for external_id, _, session_messages in SESSIONS
            for i, message in enumerate(session_messages)
        ]
        bodies.append(json.dumps({"sessions": sessions, "messages": messages}).encode())
    return bodies


async def measure(url: str, key: str, rounds: int, limit: int) -> dict[str, dict[str, list[float]]]:
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared._httpx_utils import create_mcp_http_client

    times: dict[str, dict[str, list[float]]] = {mode: {"mcp": [], "api": []} for mode in MODES}
    headers = {"Authorization": f"Bearer {key}"}
    mcp_http = create_mcp_http_client(headers=headers)
    api_http = create_mcp_http_client(headers=headers)
    async with mcp_http, api_http, Client(streamable_http_client(f"{url}/mcp", http_client=mcp_http)) as client:

        async def through_mcp(query: str, mode: str) -> int:
            result = await client.call_tool("search_sessions", {"query": query, "mode": mode, "limit": limit})
            assert not result.is_error and result.structured_content["mode"] == mode, result.content
            return len(result.structured_content["results"])

        async def through_api(query: str, mode: str) -> int:
            response = await api_http.get(f"{url}/api/search?{urlencode({'q': query, 'type': mode, 'limit': limit})}")
            assert response.status_code == 200, response.text
            body = response.json()
            assert body["type"] == mode, body
            return len(body["results"])

        for query, _, _ in QUERIES:  # warm-up: query embeddings cached, connections open, code paths hot
            for mode in MODES:
                assert await through_mcp(query, mode) == await through_api(query, mode), (query, mode)
        for r in range(rounds):
            for i, (query, _, _) in enumerate(QUERIES):
                for mode in MODES:
                    order = (("mcp", through_mcp), ("api", through_api))
                    for label, call in order if (r + i) % 2 == 0 else order[::-1]:
                        started = time.perf_counter()
                        await call(query, mode)
                        times[mode][label].append((time.perf_counter() - started) * 1000)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--copies", type=int, default=20, help="times the 63-session corpus is synced")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--limit", type=int, default=10)
    parser.add_argument("--data-dir", default=str(BASE_DIR / "data"))
    args = parser.parse_args()

    import anyio

    from tests.benchmarks.ingest import send_all

    provider = FakeEmbeddingsServer().start()
    _, socket_dir = start_database(Path(args.data_dir))
    name = f"opensync_bench_mcp_{os.getpid()}"
    embeddings = {
        "OPENSYNC_EMBEDDINGS_PROVIDER": "openai",
        "OPENSYNC_EMBEDDINGS_MODEL": "text-embedding-3-small",
        "OPENSYNC_EMBEDDINGS_DIMENSIONS": DIMENSIONS,
        "OPENSYNC_EMBEDDINGS_BASE_URL": provider.url,
        "OPENSYNC_EMBEDDINGS_API_KEY": "test-key",  # what the fake server accepts
    }
    os.environ.update(embeddings)  # the migrate in fresh_database sizes the vector columns from it
    web = None
    try:
        env = {**fresh_database(socket_dir, name), **embeddings}
        key = subprocess.run(
            [sys.executable, "manage.py", "create_api_key", "--email", "bench@example.com", "--name", "bench"],
            cwd=BASE_DIR, env=env, check=True, capture_output=True, text=True,
        ).stdout.strip()  # fmt: skip
        web, port = start_web(env, args.workers)
        bodies = corpus_batches(args.copies)
        send_all(port, key, bodies, clients=2)
        started = time.perf_counter()
        subprocess.run([sys.executable, "manage.py", "embeddings", "--all"], cwd=BASE_DIR, env=env, check=True,
                       stderr=subprocess.PIPE, text=True)  # fmt: skip
        print(f"corpus: {args.copies * len(SESSIONS)} sessions, embedded in {time.perf_counter() - started:.1f} s; "
              f"{len(QUERIES)} queries x {len(MODES)} modes x {args.rounds} rounds, gunicorn --workers {args.workers}")  # fmt: skip
        times = anyio.run(measure, f"http://127.0.0.1:{port}", key, args.rounds, args.limit)
    finally:
        if web is not None:
            web.terminate()
            web.wait(timeout=30)
        recreate_database(socket_dir, name, create=False)
        provider.stop()

    figures: dict[str, float] = {}
    print(f"{'mode':<10}{'MCP p50':>9}{'API p50':>9}{'ratio':>7}{'MCP p95':>9}{'API p95':>9}{'ratio':>7}   (ms)")
    rows = [(mode, times[mode]["mcp"], times[mode]["api"]) for mode in MODES]
    rows.append(("all", [t for m in MODES for t in times[m]["mcp"]], [t for m in MODES for t in times[m]["api"]]))
    for mode, mine, api in rows:
        p50 = (statistics.median(mine), statistics.median(api))
        p95 = (percentile(mine, 0.95), percentile(api, 0.95))
        print(
            f"{mode:<10}{p50[0]:9.2f}{p50[1]:9.2f}{p50[0] / p50[1]:7.2f}{p95[0]:9.2f}{p95[1]:9.2f}{p95[0] / p95[1]:7.2f}"
        )
        figures |= {
            f"{mode}_mcp_p50_ms": round(p50[0], 2), f"{mode}_api_p50_ms": round(p50[1], 2),
            f"{mode}_mcp_p95_ms": round(p95[0], 2), f"{mode}_api_p95_ms": round(p95[1], 2),
            f"{mode}_p50_ratio": round(p50[0] / p50[1], 3), f"{mode}_p95_ratio": round(p95[0] / p95[1], 3),
        }  # fmt: skip
    figures |= {"ratio": figures["all_p50_ratio"], "p95_ratio": figures["all_p95_ratio"], "calls": len(rows[-1][1])}
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
