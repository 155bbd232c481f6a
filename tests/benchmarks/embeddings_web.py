"""What the local embedding model costs a web worker: memory, and the latency of a semantic search.

    .venv/bin/python tests/benchmarks/embeddings_web.py [--workers 2] [--queries 39] [--keep]

On a fresh database on the embedded server (dropped at the end): gunicorn as the Procfile runs it,
with nothing configured for embeddings (the local model, the default). The labelled search corpus
is synced and embedded (in this process's Django, as the worker would), then:

* each gunicorn worker's RSS (its /proc status) after start, after full-text searches, and after
  its first and then many semantic searches (the model loads on the first): `rss_*_mb` per worker;
* per-query latency through HTTP of `/api/search` with `type=fulltext` and `type=semantic`, the
  39 corpus queries each, interleaved (p50/p95): the query's embedding is the difference.

Last line: one JSON object; `ratio` is a worker's RSS with the model loaded divided by its RSS
after full-text searches only (the same worker, the same run), `latency_ratio` semantic/full-text p50.
"""

import argparse
import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlencode

BASE_DIR = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(BASE_DIR))

from search.tests.relevance_corpus import QUERIES  # noqa: E402 - no Django
from tests.benchmarks import percentile  # noqa: E402
from tests.benchmarks.ingest import (  # noqa: E402
    fresh_database,
    recreate_database,
    send_all,
    start_database,
    start_web,
)
from tests.benchmarks.mcp import corpus_batches  # noqa: E402

DB_NAME = "bench_embeddings_web"
REPHRASE = ("", "how ", "why ", "when ", "where ", "what ")


def worker_pids(master: int) -> list[int]:
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return sorted(int(pid) for pid in children)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def search(port: int, key: str, query: str, mode: str) -> tuple[float, dict]:
    url = f"http://127.0.0.1:{port}/api/search?{urlencode({'q': query, 'type': mode, 'limit': 10})}"
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}"})
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=120) as response:  # noqa: S310 - our own server, http://127.0.0.1
        body = json.loads(response.read())
    return (time.perf_counter() - started) * 1000, body


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5, help="passes over the 39 queries per mode")
    parser.add_argument("--keep", action="store_true", help="keep the database")
    args = parser.parse_args()

    data_dir = Path(os.environ.get("OPENSYNC_DATA_DIR", BASE_DIR / "data"))
    _, socket_dir = start_database(data_dir)
    for name in [name for name in os.environ if name.startswith("OPENSYNC_EMBEDDINGS_")]:
        del os.environ[name]  # nothing configured: the local model
    web = None
    try:
        env = fresh_database(socket_dir, DB_NAME)  # created and migrated, embeddings off
        del env["OPENSYNC_EMBEDDINGS_PROVIDER"]  # ... which the servers here must not inherit
        run = lambda *command: subprocess.run(  # noqa: E731
            [sys.executable, "manage.py", *command], cwd=BASE_DIR, env=env, check=True, capture_output=True, text=True
        ).stdout.strip()
        key = run("create_api_key", "--email", "bench@example.com", "--scope", "sync")
        web, port = start_web(env, args.workers)
        send_all(port, key, corpus_batches(1), clients=1)
        started = time.perf_counter()
        run("embeddings", "--all")  # the local model, as the worker runs it
        embed_seconds = time.perf_counter() - started
        print(f"corpus synced; embedded by `manage.py embeddings --all` in {embed_seconds:.1f}s", file=sys.stderr)
        time.sleep(1)
        pids = worker_pids(web.pid)
        rss = {"start": {pid: rss_mb(pid) for pid in pids}}
        latencies: dict[str, list[float]] = {"fulltext": [], "semantic": []}
        for _ in range(3):  # every worker has served full-text searches
            for query, _, _ in QUERIES:
                search(port, key, query, "fulltext")
        rss["fulltext"] = {pid: rss_mb(pid) for pid in pids}
        for query, _, _ in QUERIES[:8]:  # every worker loads the model (requests spread over them)
            search(port, key, query, "semantic")
        rss["first_semantic"] = {pid: rss_mb(pid) for pid in pids}
        for round_ in range(args.rounds):
            for query, _, _ in QUERIES:
                modes = ("fulltext", "semantic") if round_ % 2 == 0 else ("semantic", "fulltext")
                for mode in modes:
                    # each round asks in other words: a query vector is cached per process
                    milliseconds, body = search(port, key, f"{REPHRASE[round_ % len(REPHRASE)]}{query}", mode)
                    assert body["type"] == mode, body.get("notice")
                    latencies[mode].append(milliseconds)
        rss["after"] = {pid: rss_mb(pid) for pid in pids}
    finally:
        if web is not None:
            web.terminate()
            web.wait(30)
        if not args.keep:
            recreate_database(socket_dir, DB_NAME, create=False)

    print(f"{'worker':>8} {'start':>8} {'fulltext':>9} {'1st sem.':>9} {'after':>8}  (RSS, MB)")
    for pid in pids:
        print(
            f"{pid:>8} {rss['start'][pid]:>8.1f} {rss['fulltext'][pid]:>9.1f} "
            f"{rss['first_semantic'][pid]:>9.1f} {rss['after'][pid]:>8.1f}"
        )
    added = [rss["after"][pid] - rss["fulltext"][pid] for pid in pids]
    figures = {mode: (percentile(v, 0.5), percentile(v, 0.95)) for mode, v in latencies.items()}
    for mode, (p50, p95) in figures.items():
        print(f"{mode:>9}: p50 {p50:.1f} ms, p95 {p95:.1f} ms over {len(latencies[mode])} queries")
    print(
        json.dumps(
            {
                "ratio": round(max(rss["after"][p] / rss["fulltext"][p] for p in pids), 3),
                "rss_fulltext_mb": [round(rss["fulltext"][p], 1) for p in pids],
                "rss_with_model_mb": [round(rss["after"][p], 1) for p in pids],
                "model_added_mb": [round(a, 1) for a in added],
                "corpus_embed_seconds": round(embed_seconds, 1),
                "latency_ratio": round(figures["semantic"][0] / figures["fulltext"][0], 3),
                "fulltext_p50_ms": round(figures["fulltext"][0], 2),
                "fulltext_p95_ms": round(figures["fulltext"][1], 2),
                "semantic_p50_ms": round(figures["semantic"][0], 2),
                "semantic_p95_ms": round(figures["semantic"][1], 2),
            }
        )
    )


if __name__ == "__main__":
    main()
