"""Local embeddings benchmark: the numpy all-MiniLM-L6-v2 (search.embeddings.minilm) against
sentence-transformers (torch) on the same texts, in the same run.

    .venv/bin/python tests/benchmarks/embeddings.py [--rounds 3] [--batch 8] [--threads N]
                                                    [--st-python PATH] [--install]

Texts: every message of the labelled search corpus (search/tests/relevance_corpus.py), as the
embedding pipeline cuts them into chunks (search.embeddings.text.chunk_text), and its 39 queries.

* throughput: all the chunks, --rounds times, each round the numpy model then sentence-
  transformers (each already loaded and warmed up), in batches of --batch: chunks per second.
* query latency: each query alone (what the web process does per semantic search), p50/p95.
* threads: the numpy model's BLAS threads (--threads, default the CPUs this process may use, as
  in production), and torch's own default.
* load: seconds to load each model; memory: what loading and encoding add to this process's peak
  RSS for the numpy model (batch activations included), the whole child's peak for torch.
* --install: the size and the install time of `make run`'s environment (a new venv from
  requirements.lock, and requirements-model.txt with it), before this model (requirements.lock of
  --before, default f06b9f7) and now, with uv's cache warm for both.

sentence-transformers runs where it is installed: in this interpreter (the `local` extra), or the
Python given by --st-python (a venv with sentence-transformers and torch, e.g. one made with
`pip install torch==2.13.0 sentence-transformers`), in a child process reading the same texts and
the same model folder (the wheel's zip, extracted), with HF_HUB_OFFLINE=1. Without it the
comparison is left out and `ratio` is null.

Last line: one JSON object; `ratio` is numpy chunks/s divided by sentence-transformers' (target
at least 0.5).
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parents[2]
sys.path[0] = str(BASE_DIR)
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "opensync.settings.test")
os.environ.setdefault("DATABASE_URL", "postgres://bench@127.0.0.1:1/none")  # never connected to
os.environ.setdefault("SECRET_KEY", "benchmark-only")

from tests.benchmarks import percentile  # noqa: E402 - after the path is set

ST_CHILD = r"""
import json, resource, sys, time
from sentence_transformers import SentenceTransformer
import torch
started = time.perf_counter()
model = SentenceTransformer(sys.argv[1], device="cpu")
load = time.perf_counter() - started
job = json.loads(open(sys.argv[2]).read())
model.encode(job["texts"][:64], batch_size=job["batch"], normalize_embeddings=True)  # warm-up
out = {"load_s": load, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
       "torch": torch.__version__, "threads": torch.get_num_threads(), "rounds": [], "queries": []}
for _ in range(job["rounds"]):
    started = time.perf_counter()
    model.encode(job["texts"], batch_size=job["batch"], normalize_embeddings=True)
    out["rounds"].append(time.perf_counter() - started)
for query in job["queries"]:
    started = time.perf_counter()
    model.encode([query], normalize_embeddings=True)
    out["queries"].append((time.perf_counter() - started) * 1000)
print(json.dumps(out))
"""


def corpus() -> tuple[list[str], list[str]]:
    import django

    django.setup()
    from search.embeddings.text import chunk_text
    from search.tests.relevance_corpus import QUERIES, SESSIONS

    chunks = []
    for _, _, messages in SESSIONS:
        for message in messages:
            text = message.get("textContent") or ""
            chunks.extend(chunk_text(text, size=2000, overlap=200, max_chunks=20) if text.strip() else [])
    return chunks, [query for query, _, _ in QUERIES]


def venv_install(lock: Path, model_requirements: Path | None) -> tuple[float, float]:
    """(seconds, MB) to install a new venv from `lock` (and the model wheel) as the Makefile does."""
    with tempfile.TemporaryDirectory() as tmp:
        venv = Path(tmp) / "venv"
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
        command = [str(BASE_DIR / ".venv/bin/uv"), "pip", "install", "--quiet", "--python", str(venv / "bin/python"),
                   "--require-hashes", "--no-deps", "-r", str(lock)]  # fmt: skip
        if model_requirements is not None:
            command += ["-r", str(model_requirements)]
        started = time.perf_counter()
        subprocess.run(command, check=True, env={**os.environ, "UV_SYSTEM_CERTS": "1"})
        seconds = time.perf_counter() - started
        size = sum(f.stat().st_size for f in venv.rglob("*") if f.is_file() and not f.is_symlink())
        return seconds, size / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--threads", type=int, help="the numpy model's BLAS threads (default: the CPUs it may use)")
    parser.add_argument("--st-python", help="a Python with sentence-transformers (default: this one, if it has it)")
    parser.add_argument("--install", action="store_true", help="measure the environment's install size and time")
    parser.add_argument("--before", default="f06b9f7", help="the commit whose requirements.lock is 'before'")
    args = parser.parse_args()

    texts, queries = corpus()
    print(f"{len(texts)} chunks ({sum(map(len, texts)):,} characters), {len(queries)} queries, batch {args.batch}")
    from search.embeddings import minilm

    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    model = minilm.MiniLM(threads=args.threads)
    load = time.perf_counter() - started
    model.encode(texts[:64], batch_size=args.batch)  # warm-up
    rss = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) / 1024

    st_python = args.st_python
    if st_python is None:
        import importlib.util

        st_python = sys.executable if importlib.util.find_spec("sentence_transformers") else None
    figures: dict[str, object] = {"chunks": len(texts), "batch": args.batch, "numpy_threads": model.threads,
                                  "numpy_load_s": round(load, 2), "numpy_rss_mb": round(rss, 1)}  # fmt: skip
    ours: list[float] = []
    theirs: list[float] = []
    st: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "model"
        with zipfile.ZipFile(minilm.model_zip()) as archive:
            archive.extractall(folder)
        job = Path(tmp) / "job.json"
        job.write_text(json.dumps({"texts": texts, "queries": queries, "batch": args.batch, "rounds": 1}))
        for _ in range(args.rounds):
            started = time.perf_counter()
            model.encode(texts, batch_size=args.batch)
            ours.append(time.perf_counter() - started)
            if st_python:
                done = subprocess.run(
                    [st_python, "-c", ST_CHILD, str(folder), str(job)],
                    capture_output=True, text=True, check=True,
                    env={**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"},
                )  # fmt: skip
                st = json.loads(done.stdout.strip().splitlines()[-1])
                theirs.extend(st["rounds"])
    our_queries = []
    for query in queries:
        started = time.perf_counter()
        model.encode([query])
        our_queries.append((time.perf_counter() - started) * 1000)

    our_rate = len(texts) / statistics.median(ours)
    print(f"numpy ({model.threads} threads)  load {load:5.2f} s  +{rss:6.1f} MB  {our_rate:7.1f} chunks/s  "
          f"query p50 {statistics.median(our_queries):6.2f} ms  p95 {percentile(our_queries, 0.95):6.2f} ms")  # fmt: skip
    figures |= {
        "numpy_chunks_per_s": round(our_rate, 1),
        "numpy_query_p50_ms": round(statistics.median(our_queries), 2),
        "numpy_query_p95_ms": round(percentile(our_queries, 0.95), 2),
    }
    ratio = None
    if theirs:
        st_rate = len(texts) / statistics.median(theirs)
        ratio = our_rate / st_rate
        print(f"sentence-transformers (torch {st['torch']}, {st['threads']} threads)  load {st['load_s']:5.2f} s  "
              f"peak {st['peak_rss_mb']:6.1f} MB  {st_rate:7.1f} chunks/s  query p50 {statistics.median(st['queries']):6.2f} ms  "
              f"p95 {percentile(st['queries'], 0.95):6.2f} ms")  # fmt: skip
        print(f"ratio numpy / sentence-transformers: {ratio:.3f}")
        figures |= {
            "st_chunks_per_s": round(st_rate, 1),
            "st_threads": st["threads"],
            "st_load_s": round(st["load_s"], 2),
            "st_peak_rss_mb": round(st["peak_rss_mb"], 1),
            "st_query_p50_ms": round(statistics.median(st["queries"]), 2),
            "st_query_p95_ms": round(percentile(st["queries"], 0.95), 2),
            "query_p50_ratio": round(statistics.median(our_queries) / statistics.median(st["queries"]), 3),
        }
    else:
        print("sentence-transformers is not installed: no comparison (pass --st-python)")
    if args.install:
        with tempfile.TemporaryDirectory() as tmp:
            before = Path(tmp) / "before.lock"
            before.write_text(
                subprocess.run(
                    ["git", "show", f"{args.before}:requirements.lock"],  # noqa: S607 - git from PATH
                    cwd=BASE_DIR,
                    check=True,
                    capture_output=True,
                    text=True,
                ).stdout
            )
            venv_install(before, None)  # fills uv's cache, so both timings are the warm-cache install
            venv_install(BASE_DIR / "requirements.lock", BASE_DIR / "requirements-model.txt")
            before_s, before_mb = venv_install(before, None)
            after_s, after_mb = venv_install(BASE_DIR / "requirements.lock", BASE_DIR / "requirements-model.txt")
        print(f"environment  before ({args.before}): {before_mb:7.0f} MB in {before_s:5.1f} s; "
              f"now: {after_mb:7.0f} MB in {after_s:5.1f} s (+{after_mb - before_mb:.0f} MB)")  # fmt: skip
        figures |= {"env_before_mb": round(before_mb), "env_after_mb": round(after_mb),
                    "install_before_s": round(before_s, 1), "install_after_s": round(after_s, 1)}  # fmt: skip
    figures["ratio"] = None if ratio is None else round(ratio, 3)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
