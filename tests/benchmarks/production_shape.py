"""Ingest and search throughput: the production shape (web and worker from the Procfile, against
PostgreSQL and Redis as separate TCP services, and again with PgBouncer in transaction pooling in
front of PostgreSQL) against the embedded mode (`make run`), in the same run.

    .venv/bin/python tests/benchmarks/production_shape.py [--sessions 40] [--messages 50] [--searches 100] [--rounds 3]

Each mode gets a fresh database, one API key, `--sessions` `/sync/batch` requests (one session of
`--messages` messages each) from 4 concurrent clients, then `--searches` keyword searches. The
modes take turns, `--rounds` times (the machine is shared: a burst of other work hits one round,
not one mode), and each figure is the median of its rounds. Prints messages/s and searches/s for
each mode and the ratios to embedded. Last line: one JSON object; "ratio" is the ingest ratio
separate/embedded.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(BASE_DIR))
# The benchmark measures the work, not the per-key API budgets. Inherited by the servers.
for _scope in ("SYNC", "READ", "SEARCH", "EXPORT"):
    os.environ.setdefault(f"OPENSYNC_RATE_LIMIT_{_scope}", "off")

from tests.live import free_port, request, stop, wait_for_health  # noqa: E402 - after sys.path
from tests.production import create_key, procfile_running, separate_services  # noqa: E402

WORDS = [
    "the",
    "deploy",
    "fails",
    "when",
    "migrations",
    "race",
    "the",
    "web",
    "boot",
    "so",
    "retry",
    "the",
    "release",
    "with",
    "a",
    "lock",
]
CLIENTS = 4


def batch(n: int, messages: int) -> dict:
    text = [" ".join(WORDS[(n + i + k) % len(WORDS)] for k in range(40)) for i in range(messages)]
    return {
        "sessions": [{"externalId": f"s{n}", "title": f"Session {n}"}],
        "messages": [
            {"sessionExternalId": f"s{n}", "externalId": f"s{n}-m{i}", "role": "user" if i % 2 else "assistant",
             "textContent": text[i], "parts": [{"type": "text", "content": text[i]}]}
            for i in range(messages)
        ],
    }  # fmt: skip


def workload(port: int, key: str, args) -> dict:
    def sync(n):
        status, body = request(port, "POST", "/sync/batch", batch(n, args.messages), key=key, timeout=120)
        assert status == 200, body

    def search(n):
        status, body = request(port, "GET", f"/api/search?q={WORDS[n % len(WORDS)]}", key=key)
        assert status == 200, body

    with ThreadPoolExecutor(CLIENTS) as pool:
        start = time.perf_counter()
        list(pool.map(sync, range(args.sessions)))
        ingest = args.sessions * args.messages / (time.perf_counter() - start)
        start = time.perf_counter()
        list(pool.map(search, range(args.searches)))
        searches = args.searches / (time.perf_counter() - start)
    return {"ingest_messages_per_s": round(ingest, 1), "searches_per_s": round(searches, 1)}


def separate(args, *, pgbouncer: bool = False) -> dict:
    with separate_services(pgbouncer=pgbouncer) as env, procfile_running(env, "web", "worker") as (port, _log):
        return workload(port, create_key(env), args)


def embedded(args) -> dict:
    with tempfile.TemporaryDirectory(prefix="opensync-embedded-") as data_dir:
        env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "CELERY_BROKER_URL"}}
        port = free_port()
        env.update(DJANGO_SETTINGS_MODULE="opensync.settings", OPENSYNC_DATA_DIR=data_dir, PORT=str(port),
                   WEB_CONCURRENCY="2")  # fmt: skip
        proc = subprocess.Popen(
            [sys.executable, "-m", "opensync.run"], cwd=BASE_DIR, env=env, start_new_session=True,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            wait_for_health(port, proc, timeout=180)
            return workload(port, create_key(env), args)
        finally:
            stop(proc, timeout=60)


MODES = {
    "embedded": embedded,
    "separate": separate,
    "pgbouncer": lambda args: separate(args, pgbouncer=True),
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sessions", type=int, default=40)
    parser.add_argument("--messages", type=int, default=50)
    parser.add_argument("--searches", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    rounds: dict[str, list[dict]] = {mode: [] for mode in MODES}
    for n in range(args.rounds):
        for mode, run in MODES.items():
            rounds[mode].append(figures := run(args))
            print(f"round {n + 1} {mode:>9}: {figures}", flush=True)
    results = {mode: {key: statistics.median(r[key] for r in runs) for key in runs[0]} for mode, runs in rounds.items()}
    for mode, figures in results.items():
        print(
            f"{mode:>9}: {figures['ingest_messages_per_s']:8.1f} messages/s  {figures['searches_per_s']:7.1f} searches/s"
        )
    ratios = {}
    for mode in ("separate", "pgbouncer"):
        ingest = results[mode]["ingest_messages_per_s"] / results["embedded"]["ingest_messages_per_s"]
        search = results[mode]["searches_per_s"] / results["embedded"]["searches_per_s"]
        ratios[mode] = {"ingest": round(ingest, 3), "search": round(search, 3)}
        print(f"{mode}/embedded: ingest {ingest:.2f}, search {search:.2f}")
    print(json.dumps({
        **results, "rounds": rounds, "ratios": ratios,
        "ratio": ratios["separate"]["ingest"], "search_ratio": ratios["separate"]["search"],
    }))  # fmt: skip


if __name__ == "__main__":
    main()
