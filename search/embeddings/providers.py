"""Embedding providers behind one small interface, chosen by OPENSYNC_EMBEDDINGS_PROVIDER.

* `local` (the default): all-MiniLM-L6-v2 in numpy, in this process (search.embeddings.minilm),
  loaded on first use, once per process: no account, no download, nothing sent anywhere.
* `openai`: the `openai` package against OpenAI or any OpenAI-compatible server
  (OPENSYNC_EMBEDDINGS_BASE_URL: Azure OpenAI's v1 endpoint, Ollama, vLLM, LM Studio).
* `sentence-transformers`: a local model, from the optional `local` extra (imported on first use).

Errors are sorted into two kinds so callers need not know the provider: EmbeddingTransientError
(network, timeout, 429, 5xx: worth retrying) and EmbeddingConfigError (bad key, unknown model,
wrong dimensions, missing package: retrying won't help).
"""

import functools
import logging
import threading

from django.conf import settings

logger = logging.getLogger(__name__)


class EmbeddingError(Exception):
    """The provider could not embed the texts."""


class EmbeddingTransientError(EmbeddingError):
    """Worth retrying later: network trouble, a timeout, rate limiting, a server error."""


class EmbeddingConfigError(EmbeddingError):
    """Retrying won't help until the configuration changes."""


class EmbeddingSwitchPending(EmbeddingError):
    """The stored vectors come from another model, and no worker has switched them over yet."""


class EmbeddingProvider:
    name: str = ""
    model: str
    dimensions: int
    batch_size: int

    def embed(self, texts: list[str]) -> list[list[float]]:
        """One vector per text, in order; at most `batch_size` texts per request to the backend."""
        vectors: list[list[float]] = []
        for start in range(0, len(texts), self.batch_size):
            batch = texts[start : start + self.batch_size]
            vectors.extend(self._check(self._embed_batch(batch), len(batch)))
        return vectors

    def _embed_batch(self, texts: list[str]) -> list[list[float]]:
        raise NotImplementedError

    def _check(self, vectors: list[list[float]], count: int) -> list[list[float]]:
        if len(vectors) != count:
            raise EmbeddingTransientError(f"{self} returned {len(vectors)} vectors for {count} texts")
        for vector in vectors:
            if len(vector) != self.dimensions:
                raise EmbeddingConfigError(
                    f"{self} returned vectors of {len(vector)} dimensions, but OPENSYNC_EMBEDDINGS_DIMENSIONS is "
                    f"{self.dimensions}: set it to {len(vector)} (a worker then resizes the vector columns)"
                )
        return vectors

    def __str__(self) -> str:
        return f"{self.name}:{self.model}"


class OpenAIProvider(EmbeddingProvider):
    name = "openai"

    def __init__(
        self,
        *,
        model: str,
        dimensions: int,
        base_url: str,
        api_key: str,
        timeout: float,
        batch_size: int,
        send_dimensions: str,
    ) -> None:
        import openai

        self.model = model
        self.dimensions = dimensions
        self.batch_size = batch_size
        # The `dimensions` parameter exists for text-embedding-3 models; other models and servers
        # may reject it, and give their native size anyway.
        if send_dimensions == "auto":
            self.send_dimensions = model.startswith("text-embedding-3")
        else:
            self.send_dimensions = send_dimensions == "always"
        # The client does not retry: the Celery task retries with backoff, and a search request
        # should fail fast and fall back to full-text.
        self._client = openai.OpenAI(
            api_key=api_key or "none",  # local servers (Ollama, vLLM) ignore the key, but the client wants one
            base_url=base_url or None,
            timeout=timeout,
            max_retries=0,
        )

    def _embed_batch(self, texts: list[str]) -> list[list[float]]:
        import openai

        extra = {"dimensions": self.dimensions} if self.send_dimensions else {}
        try:
            # "float", not the client's default base64: every OpenAI-compatible server speaks it
            response = self._client.embeddings.create(model=self.model, input=texts, encoding_format="float", **extra)
        except openai.APIConnectionError as exc:  # includes timeouts
            raise EmbeddingTransientError(f"{self}: {exc}") from exc
        except openai.APIStatusError as exc:
            if exc.status_code in (408, 409, 429) or exc.status_code >= 500:
                raise EmbeddingTransientError(f"{self}: HTTP {exc.status_code}: {exc.message}") from exc
            raise EmbeddingConfigError(f"{self}: HTTP {exc.status_code}: {exc.message}") from exc
        except openai.OpenAIError as exc:  # e.g. a response that isn't an embeddings response
            raise EmbeddingTransientError(f"{self}: {exc}") from exc
        return [item.embedding for item in sorted(response.data, key=lambda item: item.index)]


class InProcessProvider(EmbeddingProvider):
    """A model run in this process: loaded by `_open` on the first texts to embed, once per
    process (a web worker that never runs a semantic search never loads it)."""

    def __init__(self, *, model: str, dimensions: int, batch_size: int) -> None:
        self.model = model
        self.dimensions = dimensions
        self.batch_size = batch_size
        self._model = None
        self._lock = threading.Lock()

    def _open(self):
        raise NotImplementedError

    def _load(self):
        with self._lock:
            if self._model is None:
                self._model = self._open()
        return self._model


class SentenceTransformersProvider(InProcessProvider):
    """Any sentence-transformers model (the optional `local` extra, with torch), downloaded from
    the Hugging Face hub the first time unless the model name is a local path."""

    name = "sentence-transformers"

    def _open(self):
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise EmbeddingConfigError(
                "OPENSYNC_EMBEDDINGS_PROVIDER=sentence-transformers needs the optional `local` extra: "
                "pip install 'sentence-transformers>=3'"
            ) from exc
        try:
            return SentenceTransformer(self.model)
        except Exception as exc:  # an unknown name, no network for the first download, ...
            raise EmbeddingConfigError(f"{self}: cannot load the model: {exc}") from exc

    def _embed_batch(self, texts: list[str]) -> list[list[float]]:
        model = self._load()
        vectors = model.encode(texts, batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True)
        return [vector.tolist() for vector in vectors]


class LocalProvider(InProcessProvider):
    """all-MiniLM-L6-v2 (384 dimensions) run in numpy (search.embeddings.minilm): about 90 MB of
    weights, no torch."""

    name = "local"

    def __init__(self, *, batch_size: int, threads: int) -> None:
        super().__init__(model=settings.LOCAL_EMBEDDINGS_MODEL, dimensions=384, batch_size=batch_size)
        self.threads = threads

    def _open(self):
        from . import minilm  # numpy and tokenizers: loaded only in processes that embed

        try:
            return minilm.MiniLM(threads=self.threads or None)
        except minilm.ModelError as exc:
            raise EmbeddingConfigError(f"{self}: {exc}") from exc

    def _embed_batch(self, texts: list[str]) -> list[list[float]]:
        return self._load().encode(texts).tolist()


def get_provider() -> EmbeddingProvider | None:
    """The configured provider, or None when OPENSYNC_EMBEDDINGS_PROVIDER is `none`.

    Cheap to call: one instance per configuration and process (keeps the HTTP connection pool
    or the loaded local model).
    """
    if settings.OPENSYNC_EMBEDDINGS_PROVIDER == "none":
        return None
    return _provider(
        settings.OPENSYNC_EMBEDDINGS_PROVIDER,
        settings.OPENSYNC_EMBEDDINGS_MODEL,
        settings.OPENSYNC_EMBEDDINGS_DIMENSIONS,
        settings.OPENSYNC_EMBEDDINGS_BASE_URL,
        settings.OPENSYNC_EMBEDDINGS_API_KEY,
        settings.OPENSYNC_EMBEDDINGS_TIMEOUT,
        settings.OPENSYNC_EMBEDDINGS_BATCH_SIZE,
        settings.OPENSYNC_EMBEDDINGS_SEND_DIMENSIONS,
        settings.OPENSYNC_EMBEDDINGS_THREADS,
    )


@functools.lru_cache(maxsize=4)
def _provider(
    name, model, dimensions, base_url, api_key, timeout, batch_size, send_dimensions, threads
) -> EmbeddingProvider:
    if name == "local":
        return LocalProvider(batch_size=batch_size, threads=threads)
    if name == "openai":
        return OpenAIProvider(
            model=model,
            dimensions=dimensions,
            base_url=base_url,
            api_key=api_key,
            timeout=timeout,
            batch_size=batch_size,
            send_dimensions=send_dimensions,
        )
    if name == "sentence-transformers":
        return SentenceTransformersProvider(model=model, dimensions=dimensions, batch_size=batch_size)
    raise EmbeddingConfigError(f"Unknown embeddings provider {name!r}")
